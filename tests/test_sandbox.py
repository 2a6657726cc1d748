"""The Conversion API sandbox, driven over loopback with ``requests``; no Django involved."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from django_nexmo_conversion.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    AccountSpec,
    Sandbox,
)
from django_nexmo_conversion.transport.signing import SIGNATURE_METHODS, sign

from .processes import ROOT, SANDBOX_CLI

pytestmark = pytest.mark.sandbox

SIGNED_KEY = "signed-key"
SIGNATURE_SECRET = "sig-secret-Zq81"
TIMEOUT = 5.0


def conversion(message_id: str = "0A0000000123ABCD1", **extra: str) -> dict[str, str]:
    """Valid parameters with the default account's key and secret."""
    params = {
        "api_key": DEFAULT_API_KEY,
        "api_secret": DEFAULT_API_SECRET,
        "message-id": message_id,
        "delivered": "true",
        "timestamp": "2024-05-01 12:30:00",
    }
    params.update(extra)
    return params


def signed(params: dict[str, str], *, secret: str, method: str) -> dict[str, str]:
    unsigned = {k: v for k, v in params.items() if k != "api_secret"}
    return {**unsigned, "sig": sign(unsigned, secret=secret, method=method)}


def post(sandbox: Sandbox, data: dict[str, str], channel: str = "sms", **kw: Any) -> Any:
    return requests.post(sandbox.url(channel), data=data, timeout=kw.pop("timeout", TIMEOUT), **kw)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    # A hang far past the clients' 0.3 s timeouts (stopping the sandbox wakes it at once).
    with Sandbox(hang_seconds=10.0) as running:
        yield running


def assert_json_error(response: requests.Response, status: int, slug: str) -> dict[str, str]:
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    body: dict[str, str] = response.json()
    assert set(body) == {"type", "title", "detail", "instance"}
    assert body["type"].endswith("#" + slug)
    assert re.fullmatch(r"[0-9a-f]{32}", body["instance"])
    return body


# --------------------------------------------------------------------------- authentication


def test_good_secret_is_reported_with_empty_body(sandbox: Sandbox) -> None:
    response = post(sandbox, conversion("m-ok"))

    assert response.status_code == 200
    assert response.content == b""
    [record] = sandbox.reported()
    assert (record.method, record.path, record.channel) == ("POST", "/conversions/sms", "sms")
    assert record.message_id == "m-ok"
    assert record.form["delivered"] == "true"
    assert record.headers["content-type"] == "application/x-www-form-urlencoded"
    assert record.query == ""


def test_voice_channel_is_recorded(sandbox: Sandbox) -> None:
    assert post(sandbox, conversion(), channel="voice").status_code == 200
    assert sandbox.requests[-1].channel == "voice"


@pytest.mark.parametrize(
    "override",
    [
        {"api_secret": "wrong"},
        {"api_secret": ""},
        {"api_key": "unknown-key"},
        {"api_key": ""},
    ],
)
def test_bad_credentials_are_401(sandbox: Sandbox, override: dict[str, str]) -> None:
    response = post(sandbox, conversion(**override))

    assert_json_error(response, 401, "unauthorized")
    assert sandbox.reported() == []


def test_missing_credentials_are_401(sandbox: Sandbox) -> None:
    response = post(sandbox, {"message-id": "m", "delivered": "true"})
    assert_json_error(response, 401, "unauthorized")


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
def test_every_signature_method_is_accepted_without_api_secret(method: str) -> None:
    accounts = {SIGNED_KEY: AccountSpec(signature_secret=SIGNATURE_SECRET, signature_method=method)}
    with Sandbox(accounts=accounts) as sandbox:
        params = signed(
            conversion(api_key=SIGNED_KEY, **{"message-id": "a&b=c"}),
            secret=SIGNATURE_SECRET,
            method=method,
        )
        assert "api_secret" not in params

        response = post(sandbox, params)

        assert response.status_code == 200
        assert sandbox.reported()[0].message_id == "a&b=c"


@pytest.mark.parametrize(
    ("spec", "signing_secret", "signing_method"),
    [
        pytest.param(
            AccountSpec(signature_secret=SIGNATURE_SECRET), "wrong", "md5hash", id="secret"
        ),
        pytest.param(
            AccountSpec(signature_secret=SIGNATURE_SECRET, signature_method="sha256"),
            SIGNATURE_SECRET,
            "sha512",
            id="method",
        ),
        pytest.param(AccountSpec(), SIGNATURE_SECRET, "md5hash", id="account-without-secret"),
    ],
)
def test_wrong_signature_is_401(
    spec: AccountSpec, signing_secret: str, signing_method: str
) -> None:
    with Sandbox(accounts={SIGNED_KEY: spec}) as sandbox:
        params = signed(
            conversion(api_key=SIGNED_KEY), secret=signing_secret, method=signing_method
        )
        assert_json_error(post(sandbox, params), 401, "unauthorized")


def test_tampered_signed_request_is_401() -> None:
    with Sandbox(accounts={SIGNED_KEY: AccountSpec(signature_secret=SIGNATURE_SECRET)}) as sandbox:
        params = signed(conversion(api_key=SIGNED_KEY), secret=SIGNATURE_SECRET, method="md5hash")
        params["delivered"] = "false"
        assert post(sandbox, params).status_code == 401


def test_signature_does_not_fall_back_to_api_secret() -> None:
    # A bad sig must fail even when a correct api_secret rides along.
    with Sandbox(accounts={SIGNED_KEY: AccountSpec(signature_secret=SIGNATURE_SECRET)}) as sandbox:
        params = {**conversion(api_key=SIGNED_KEY), "sig": "0" * 32}
        assert post(sandbox, params).status_code == 401


def test_disabled_conversions_answer_402_with_the_openapi_json_body() -> None:
    with Sandbox(accounts={DEFAULT_API_KEY: AccountSpec(conversions_enabled=False)}) as sandbox:
        body = assert_json_error(post(sandbox, conversion()), 402, "conversion-not-enabled")

    assert body["title"] == "Conversion has not been enabled for your account"


def test_html_402_answers_with_jettys_bad_account_credentials_page() -> None:
    disabled = {DEFAULT_API_KEY: AccountSpec(conversions_enabled=False)}
    with Sandbox(accounts=disabled, html_402=True) as sandbox:
        response = post(sandbox, conversion())

    assert response.status_code == 402
    assert response.reason == "Bad Account Credentials"
    assert response.headers["Content-Type"] == "text/html;charset=ISO-8859-1"
    assert "<title>Error 402 Bad Account Credentials</title>" in response.text
    assert "Powered by Jetty://" in response.text
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


@pytest.mark.parametrize(
    ("status", "slug", "title"),
    [
        (401, "unauthorized", "Invalid credentials supplied"),
        (402, "conversion-not-enabled", "Conversion has not been enabled for your account"),
        (420, "invalid-params", "Invalid parameters"),
        (423, "invalid-params", "Invalid parameters"),
    ],
)
def test_the_documented_errors_carry_the_openapi_json_bodies(
    sandbox: Sandbox, status: int, slug: str, title: str
) -> None:
    sandbox.script(status)
    assert assert_json_error(post(sandbox, conversion()), status, slug)["title"] == title


def test_the_cli_serves_jettys_402_page_with_html_402() -> None:
    with running_cli("--port", "0", "--disable-conversions", "--html-402") as cli:
        assert cli.first_line.rstrip().endswith(cli.url.removesuffix("/conversions/sms"))
        response = requests.post(cli.url, data=conversion(), timeout=TIMEOUT)

    assert (response.status_code, response.reason) == (402, "Bad Account Credentials")
    assert "Bad Account Credentials" in response.text


def test_402_comes_after_authentication() -> None:
    with Sandbox(accounts={DEFAULT_API_KEY: AccountSpec(conversions_enabled=False)}) as sandbox:
        assert post(sandbox, conversion(api_secret="wrong")).status_code == 401


def test_accounts_can_change_at_runtime(sandbox: Sandbox) -> None:
    sandbox.accounts["second"] = AccountSpec(api_secret="second-secret")
    assert post(sandbox, conversion(api_key="second", api_secret="second-secret")).ok

    sandbox.accounts[DEFAULT_API_KEY] = AccountSpec(conversions_enabled=False)
    assert post(sandbox, conversion()).status_code == 402


def test_accounts_accept_plain_mappings() -> None:
    with Sandbox(accounts={"k": {"api_secret": "s"}}) as sandbox:
        assert post(sandbox, conversion(api_key="k", api_secret="s")).status_code == 200


def test_unknown_signature_method_is_rejected() -> None:
    with pytest.raises(ValueError, match="signature method"):
        AccountSpec(signature_method="crc32")


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("params", "status"),
    [
        pytest.param({k: v for k, v in conversion().items() if k != "message-id"}, 420, id="no-id"),
        pytest.param(conversion(""), 420, id="empty-id"),
        pytest.param({k: v for k, v in conversion().items() if k != "delivered"}, 423, id="no-dlv"),
        pytest.param(conversion(delivered="yes"), 423, id="not-a-bool"),
        pytest.param(conversion(delivered="yes"), 423, id="yes"),
        pytest.param(conversion(timestamp="2024-05-01T12:30:00"), 423, id="iso-t"),
        pytest.param(conversion(timestamp="2024-05-01 12:30:00.123"), 423, id="micro"),
        pytest.param(conversion(timestamp="2024-5-1 12:30:00"), 423, id="unpadded"),
        pytest.param(conversion(timestamp="2024-13-01 12:30:00"), 423, id="month-13"),
        pytest.param(conversion(timestamp="1714566600"), 423, id="epoch"),
        pytest.param(conversion(timestamp=""), 423, id="empty-ts"),
    ],
)
def test_invalid_parameters(sandbox: Sandbox, params: dict[str, str], status: int) -> None:
    response = post(sandbox, params)

    assert_json_error(response, status, "invalid-params")
    assert sandbox.requests[-1].status == status


@pytest.mark.parametrize("delivered", ["true", "false", "0", "1"])
def test_valid_delivered_values(sandbox: Sandbox, delivered: str) -> None:
    assert post(sandbox, conversion(delivered=delivered)).status_code == 200


def test_timestamp_is_optional_and_extra_params_ignored(sandbox: Sandbox) -> None:
    params = {k: v for k, v in conversion().items() if k != "timestamp"}
    assert post(sandbox, {**params, "client-ref": "x"}).status_code == 200


def test_non_form_body_is_not_read(sandbox: Sandbox) -> None:
    response = requests.post(sandbox.url(), json=conversion(), timeout=TIMEOUT)
    assert response.status_code == 401


def test_utf8_message_id_round_trips(sandbox: Sandbox) -> None:
    assert post(sandbox, conversion("ünïcødé-✓")).status_code == 200
    assert sandbox.requests[-1].message_id == "ünïcødé-✓"


# --------------------------------------------------------------------------- routes


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(sandbox: Sandbox, method: str) -> None:
    response = requests.request(method, sandbox.url(), timeout=TIMEOUT)

    body = assert_json_error(response, 405, "wrong-verb")
    assert method in body["detail"]
    assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize("path", ["/", "/conversions/email", "/conversions/sms/", "/sms"])
def test_unknown_paths_are_404(sandbox: Sandbox, path: str) -> None:
    response = requests.post(sandbox.base_url + path, data=conversion(), timeout=TIMEOUT)
    assert_json_error(response, 404, "not-found")


def test_query_string_is_accepted_but_recorded(sandbox: Sandbox) -> None:
    assert requests.post(sandbox.url(), params=conversion("in-url"), timeout=TIMEOUT).ok
    assert post(sandbox, conversion("in-body")).ok

    in_url, in_body = sandbox.requests
    assert "api_secret=" in in_url.query
    assert in_url.form == {}
    assert in_url.params["message-id"] == "in-url"
    assert in_body.query == ""


# --------------------------------------------------------------------------- scripting


def test_script_per_message_id(sandbox: Sandbox) -> None:
    sandbox.script(503, 429, message_id="flaky")

    assert post(sandbox, conversion("other")).status_code == 200
    assert post(sandbox, conversion("flaky")).status_code == 503
    throttled = post(sandbox, conversion("flaky"))
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1"
    assert post(sandbox, conversion("flaky")).status_code == 200
    assert [r.message_id for r in sandbox.reported()] == ["other", "flaky"]


def test_global_script_is_fifo_and_overrides_checks(sandbox: Sandbox) -> None:
    sandbox.script(500, 200, 401, 402)

    assert_json_error(post(sandbox, conversion("a")), 500, "internal-server-error")
    assert post(sandbox, conversion("b", api_secret="wrong")).status_code == 200
    assert_json_error(post(sandbox, conversion("c")), 401, "unauthorized")
    assert_json_error(post(sandbox, conversion("d")), 402, "conversion-not-enabled")
    assert post(sandbox, conversion("e")).status_code == 200  # script used up


def test_message_script_takes_precedence_over_global(sandbox: Sandbox) -> None:
    sandbox.script(503)
    sandbox.script(423, message_id="x")

    assert post(sandbox, conversion("x")).status_code == 423
    assert post(sandbox, conversion("y")).status_code == 503


def test_script_is_not_used_by_404_or_405(sandbox: Sandbox) -> None:
    sandbox.script(503)
    requests.get(sandbox.url(), timeout=TIMEOUT)
    requests.post(sandbox.base_url + "/nope", timeout=TIMEOUT)
    assert post(sandbox, conversion()).status_code == 503


@pytest.mark.parametrize("item", ["boom", 99, 600, True, 1.5])
def test_script_rejects_bad_items(sandbox: Sandbox, item: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        sandbox.script(item)


def test_clear_forgets_requests_and_scripts(sandbox: Sandbox) -> None:
    sandbox.script(503)
    sandbox.script(503, message_id="m")
    sandbox.clear()
    assert sandbox.requests == []

    assert post(sandbox, conversion("m")).status_code == 200
    assert len(sandbox.requests) == 1


def test_scripted_drop_is_a_connection_error(sandbox: Sandbox) -> None:
    sandbox.script("drop")
    with requests.Session() as session:
        with pytest.raises(requests.ConnectionError):
            session.post(sandbox.url(), data=conversion(), timeout=TIMEOUT)
        assert session.post(sandbox.url(), data=conversion(), timeout=TIMEOUT).ok

    dropped, answered = sandbox.requests
    assert (dropped.status, dropped.fault) == (None, "drop")
    assert answered.connection != dropped.connection


def test_scripted_hang_times_out(sandbox: Sandbox) -> None:
    sandbox.script("hang", message_id="slow")
    with pytest.raises(requests.Timeout):
        post(sandbox, conversion("slow"), timeout=0.3)

    assert sandbox.requests[0].fault == "hang"
    assert sandbox.requests[0].status is None


# --------------------------------------------------------------------------- random faults


def test_throttle_rate_sends_retry_after() -> None:
    with Sandbox(throttle_rate=1.0, retry_after=7) as sandbox:
        response = post(sandbox, conversion())
        assert_json_error(response, 429, "throttled")
        assert response.headers["Retry-After"] == "7"


def test_error_rate_answers_500_or_503() -> None:
    with Sandbox(error_rate=1.0, seed=3) as sandbox:
        statuses = {post(sandbox, conversion()).status_code for _ in range(12)}
        assert statuses == {500, 503}


def test_drop_rate_closes_without_answer() -> None:
    with Sandbox(drop_rate=1.0) as sandbox:
        with pytest.raises(requests.ConnectionError):
            post(sandbox, conversion())
        assert sandbox.requests[0].fault == "drop"


def test_hang_rate_times_out() -> None:
    with Sandbox(hang_rate=1.0, hang_seconds=10.0) as sandbox, pytest.raises(requests.Timeout):
        post(sandbox, conversion(), timeout=0.3)


def test_seeded_faults_are_reproducible() -> None:
    def outcomes(seed: int) -> list[int | str]:
        with (
            Sandbox(error_rate=0.3, throttle_rate=0.3, seed=seed) as sandbox,
            requests.Session() as session,
        ):
            return [
                session.post(sandbox.url(), data=conversion(), timeout=TIMEOUT).status_code
                for _ in range(20)
            ]

    first = outcomes(42)
    assert first == outcomes(42)
    assert {200, 429} <= set(first)
    assert set(first) & {500, 503}


def test_rates_are_validated() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        Sandbox(error_rate=1.5)


# --------------------------------------------------------------------------- transport


def test_latency_is_applied(sandbox: Sandbox) -> None:
    sandbox.latency = 0.2
    started = time.monotonic()
    assert post(sandbox, conversion()).ok
    assert time.monotonic() - started >= 0.2


def test_keep_alive_reuses_one_connection(sandbox: Sandbox) -> None:
    with requests.Session() as session:
        for index in range(4):
            session.post(sandbox.url(), data=conversion(f"k{index}"), timeout=TIMEOUT)
    for _ in range(2):
        post(sandbox, conversion("fresh"))  # a new connection each, without a session

    connections = [r.connection for r in sandbox.requests]
    assert len(set(connections[:4])) == 1
    assert len(set(connections)) == 3


def test_wait_for(sandbox: Sandbox) -> None:
    assert not sandbox.wait_for(1, timeout=0.05)
    sender = threading.Timer(0.1, lambda: post(sandbox, conversion()))
    sender.start()
    try:
        assert sandbox.wait_for(1, timeout=TIMEOUT)
    finally:
        sender.join()


def test_stop_is_prompt_with_a_hanging_request_and_closes_kept_alive_connections() -> None:
    sandbox = Sandbox(hang_seconds=30).start()
    url = sandbox.url()
    session = requests.Session()
    assert session.post(url, data=conversion(), timeout=TIMEOUT).ok
    sandbox.script("hang")
    errors: list[Exception] = []

    def send_hanging() -> None:
        try:
            requests.post(url, data=conversion(), timeout=TIMEOUT)
        except requests.RequestException as exc:
            errors.append(exc)

    hanging = threading.Thread(target=send_hanging)
    hanging.start()
    assert sandbox.wait_for(2)

    started = time.monotonic()
    sandbox.stop()
    assert time.monotonic() - started < TIMEOUT  # far below hang_seconds
    hanging.join(TIMEOUT)
    assert [type(e) for e in errors] == [requests.ConnectionError]  # closed, not timed out
    with pytest.raises(requests.ConnectionError):
        session.post(url, data=conversion(), timeout=TIMEOUT)
    session.close()
    assert not sandbox.running


def test_base_url_requires_a_running_sandbox() -> None:
    with pytest.raises(RuntimeError):
        _ = Sandbox().base_url


def test_tls(tls_cert: tuple[Path, Path]) -> None:
    cert, key = tls_cert
    with Sandbox(certfile=cert, keyfile=key) as sandbox:
        assert sandbox.base_url.startswith("https://127.0.0.1:")
        with requests.Session() as session:
            for _ in range(2):
                response = session.post(
                    sandbox.url(), data=conversion(), verify=str(cert), timeout=TIMEOUT
                )
                assert response.status_code == 200
        with pytest.raises(requests.ConnectionError):
            requests.post(
                sandbox.url().replace("https", "http"), data=conversion(), timeout=TIMEOUT
            )
        assert len({r.connection for r in sandbox.reported()}) == 1


# --------------------------------------------------------------------------- secrets hygiene


def test_reprs_hide_secrets(sandbox: Sandbox) -> None:
    spec = AccountSpec(api_secret="top-secret-1", signature_secret="top-secret-2")
    sandbox.accounts["k"] = spec
    requests.post(
        sandbox.url(),
        params={"api_secret": "top-secret-3"},
        data={"api_key": "k", "sig": "top-secret-4", "message-id": "m", "delivered": "1"},
        timeout=TIMEOUT,
    )
    text = repr(spec) + repr(sandbox) + repr(sandbox.requests)

    assert "top-secret" not in text
    assert "message_id='m'" in text


def test_the_rules_answer_without_a_server() -> None:
    rules = Sandbox(retry_after=7).rules  # never started: the rules need no HTTP server
    rules.script(429, message_id="m-script")

    assert rules.answer("POST", "/conversions/sms", conversion("m-ok")).status == 200
    assert rules.answer("GET", "/conversions/sms", {}).status == 405
    assert rules.answer("POST", "/elsewhere", conversion()).status == 404
    bad = rules.answer("POST", "/conversions/sms", conversion(api_secret="wrong"))
    assert (bad.status, bad.reason, bad.content_type) == (401, "Unauthorized", "application/json")
    throttled = rules.answer("POST", "/conversions/voice", conversion("m-script"))
    assert (throttled.status, throttled.headers) == (429, (("Retry-After", "7"),))


@dataclass
class RunningCli:
    process: subprocess.Popen[str]
    first_line: str
    url: str

    def stop(self) -> str:
        """SIGTERM, as a supervisor would; returns what it printed after the first line."""
        self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=TIMEOUT)
        return output


@contextlib.contextmanager
def running_cli(*options: str) -> Iterator[RunningCli]:
    """``python -m django_nexmo_conversion.sandbox *options``, once it listens."""
    process = subprocess.Popen(
        [*SANDBOX_CLI, *options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)", first_line)
        assert match, first_line
        yield RunningCli(process, first_line, match.group(1) + "/conversions/sms")
    finally:
        process.kill()
        process.wait()


def test_cli_serve_subcommand_is_the_default_spelled_out() -> None:
    with running_cli("serve", "--port", "0") as cli:
        response = requests.post(cli.url, data=conversion("m-serve"), timeout=TIMEOUT)
        assert response.status_code == 200
        output = cli.stop()

    assert cli.process.returncode == 0
    assert output.splitlines() == [
        "POST /conversions/sms message-id=m-serve -> 200",
        "Sandbox stopped.",
    ]


def test_cli_serves_and_never_prints_secrets() -> None:
    secrets = ("cli-api-secret-9f", "cli-signature-secret-7c")
    options = ["--port", "0", "--api-key", "cli-key", "--api-secret", secrets[0]]
    options += ["--signature-secret", secrets[1], "--signature-method", "sha256"]
    with running_cli(*options) as cli:
        params = conversion("cli-msg", api_key="cli-key", api_secret=secrets[0])
        assert requests.post(cli.url, data=params, timeout=TIMEOUT).status_code == 200
        sig_params = signed(params, secret=secrets[1], method="sha256")
        assert requests.post(cli.url, data=sig_params, timeout=TIMEOUT).status_code == 200
        wrong = {**params, "api_secret": secrets[0] + "x"}
        assert requests.post(cli.url, data=wrong, timeout=TIMEOUT).status_code == 401
        output = cli.stop()

    assert cli.process.returncode == 0
    lines = output.splitlines()
    assert lines[0:2] == [
        "POST /conversions/sms message-id=cli-msg -> 200",
        "POST /conversions/sms message-id=cli-msg -> 200",
    ]
    assert "-> 401" in lines[2]
    for secret in (*secrets, sig_params["sig"]):
        assert secret not in cli.first_line + output
