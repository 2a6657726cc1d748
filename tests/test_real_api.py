"""Fidelity to the real API, end to end against the sandbox on loopback: how credentials
travel (AUTH), the outcome table's halting rows (per account and for the whole run), 408,
proxies and CA bundles from the environment or the settings, and the signed-timestamp
collision."""

from __future__ import annotations

import base64
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from django_nexmo_conversion import mark_converted, queries, record_message, report_pending
from django_nexmo_conversion.models import Conversion, ConversionAttempt, Outcome, Status
from django_nexmo_conversion.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    AccountSpec,
    Sandbox,
)
from django_nexmo_conversion.transport.client import Client
from django_nexmo_conversion.transport.signing import sign, verify
from django_nexmo_conversion.transport.wire import (
    SIGNED_TIMESTAMP_MAX_AGE,
    TIMESTAMP_SHAPE,
    Account,
    Report,
    build_params,
)

from .helpers import ForwardingProxy, configure, free_port, mark_many

pytestmark = [pytest.mark.django_db, pytest.mark.sandbox]

SIG_SECRET = "sig-secret-Hq42"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def basic(key: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


def states() -> set[tuple[str, int]]:
    return set(Conversion.objects.values_list("status", "attempt_count"))


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy from the developer's shell; the test sets what it needs."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


# --- AUTH ---------------------------------------------------------------------------------------


def test_basic_auth_sends_the_header_and_no_credential_in_the_body(
    settings: Any, nexmo_sandbox: Sandbox
) -> None:
    configure(settings, AUTH="basic")
    mark_converted("0A00000000BA51C1")

    result = report_pending()

    assert result.reported == 1
    (request,) = nexmo_sandbox.requests
    assert request.headers["authorization"] == basic(DEFAULT_API_KEY, DEFAULT_API_SECRET)
    assert "api_key" not in request.form
    assert "api_secret" not in request.form
    assert request.query == ""
    assert "authorization" not in repr(request) or "***" in repr(request)
    assert DEFAULT_API_SECRET not in repr(request)


def test_basic_auth_with_a_wrong_secret_halts_and_burns_nothing(
    settings: Any, nexmo_sandbox: Sandbox
) -> None:
    configure(settings, AUTH="basic", API_SECRET="not-the-secret-Wq1")
    mark_many(3)

    result = report_pending(concurrency=1)

    assert (result.halted, result.status_code, result.halted_run) == (True, 401, False)
    assert result.halted_accounts == [DEFAULT_API_KEY]
    assert states() == {(Status.PENDING, 0)}
    assert len(nexmo_sandbox.requests) == 1
    assert "not-the-secret-Wq1" not in str(list(ConversionAttempt.objects.values()))


def test_each_account_sends_its_credentials_its_own_way(
    settings: Any, nexmo_sandbox: Sandbox
) -> None:
    nexmo_sandbox.accounts["twofa"] = AccountSpec(api_secret="twofa-secret-9")
    configure(settings, ACCOUNTS={"twofa": {"API_SECRET": "twofa-secret-9", "AUTH": "params"}})
    mark_converted(record_message("0A0000000000AA01", api_key="twofa"))
    mark_converted(record_message("0A0000000000AA02"))  # the default account: basic

    assert report_pending(concurrency=1).reported == 2

    by_id = {r.message_id: r for r in nexmo_sandbox.requests}
    assert "authorization" not in by_id["0A0000000000AA01"].headers
    assert by_id["0A0000000000AA01"].form["api_secret"] == "twofa-secret-9"
    assert by_id["0A0000000000AA02"].headers["authorization"] == basic(
        DEFAULT_API_KEY, DEFAULT_API_SECRET
    )
    assert "api_secret" not in by_id["0A0000000000AA02"].form


def test_basic_is_the_default_auth(nexmo_sandbox: Sandbox) -> None:
    """AUTH unset: the header, as every maintained Vonage SDK sends it since early 2026."""
    mark_converted("0A0000000000AA03")

    assert report_pending().reported == 1

    (request,) = nexmo_sandbox.requests
    assert request.headers["authorization"] == basic(DEFAULT_API_KEY, DEFAULT_API_SECRET)
    assert {"api_key", "api_secret"}.isdisjoint(request.form)


def test_netrc_credentials_are_never_applied(
    settings: Any, nexmo_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests with trust_env would add this login as an Authorization header.
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login netrc-user password netrc-pw-7\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    configure(settings, AUTH="params")  # no header of our own: netrc's would show
    mark_converted("0A0000000000AE01")

    assert report_pending().reported == 1
    assert "authorization" not in nexmo_sandbox.requests[0].headers


def test_sandbox_accepts_delivered_as_python_writes_it(nexmo_sandbox: Sandbox) -> None:
    # Both Python SDKs send str(True): the API takes it, so the sandbox must too.
    for value, status in (("True", 200), ("FALSE", 200), ("yes", 423)):
        answer = requests.post(
            nexmo_sandbox.url(),
            data={
                "api_key": DEFAULT_API_KEY,
                "api_secret": DEFAULT_API_SECRET,
                "message-id": "0A0000000000DE01",
                "delivered": value,
                "timestamp": "2024-05-01 12:30:00",
            },
            timeout=5,
        )
        assert answer.status_code == status, value


def test_sandbox_answers_an_unknown_method_405_in_json(nexmo_sandbox: Sandbox) -> None:
    answer = requests.request("BREW", nexmo_sandbox.url(), timeout=5)
    assert answer.status_code == 405
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Allow"] == "POST"


# --- the outcome table ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308, 403, 404, 405, 406, 415])
def test_endpoint_errors_halt_the_run_and_burn_nothing(nexmo_sandbox: Sandbox, status: int) -> None:
    mark_many(4)
    nexmo_sandbox.script(status)

    result = report_pending(concurrency=1)

    assert (result.halted, result.halted_run, result.status_code) == (True, True, status)
    assert result.attempted == 0
    assert "BASE_URL" in result.error
    assert len(nexmo_sandbox.requests) == 1  # nothing more was sent after it
    assert states() == {(Status.PENDING, 0)}
    attempt = ConversionAttempt.objects.get()
    assert (attempt.http_status, attempt.outcome) == (status, Outcome.ENDPOINT_ERROR)


def test_a_wrong_base_url_path_halts_with_an_error_naming_it(
    settings: Any, nexmo_sandbox: Sandbox
) -> None:
    # Not scripted: the sandbox's own 404 for a path the API does not have.
    configure(settings, BASE_URL=nexmo_sandbox.base_url + "/v1")
    mark_many(3)

    result = report_pending(concurrency=2)

    assert (result.halted_run, result.status_code) == (True, 404)
    assert "BASE_URL" in result.error
    assert states() == {(Status.PENDING, 0)}
    [halt] = queries.current_halts()
    assert (halt.endpoint, halt.status_code) == (True, 404)


def test_the_command_exits_non_zero_naming_base_url(nexmo_sandbox: Sandbox) -> None:
    mark_many(2)
    nexmo_sandbox.script(405)

    with pytest.raises(CommandError) as raised:
        call_command("report_conversions", "--concurrency", "1", stdout=io.StringIO())

    assert raised.value.returncode == 2
    assert "endpoint error" in str(raised.value)
    assert "BASE_URL" in str(raised.value)


def test_the_admin_banner_says_the_endpoint_is_wrong(
    admin_client: Any, nexmo_sandbox: Sandbox
) -> None:
    mark_many(2)
    nexmo_sandbox.script(403)
    report_pending(concurrency=1)

    html = admin_client.get("/admin/django_nexmo_conversion/conversion/").content.decode()

    assert "the endpoint refused the request (HTTP 403), for every account" in html
    assert "NEXMO_CONVERSION[&#x27;BASE_URL&#x27;]" in html


def test_408_is_transient(nexmo_sandbox: Sandbox) -> None:
    (conversion,) = mark_many(1)
    nexmo_sandbox.script(408)

    result = report_pending()

    assert (result.retrying, result.failed, result.halted) == (1, 0, False)
    conversion.refresh_from_db()
    assert (conversion.status, conversion.attempt_count) == (Status.PENDING, 1)
    assert conversion.next_attempt_at is not None
    assert conversion.next_attempt_at > timezone.now()


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_401_halts_its_account_only(
    settings: Any, nexmo_sandbox: Sandbox, concurrency: int
) -> None:
    nexmo_sandbox.accounts["marketing"] = AccountSpec(api_secret="mk-secret-3")
    nexmo_sandbox.key_statuses["marketing"] = 401  # this key only
    configure(settings, ACCOUNTS={"marketing": {"API_SECRET": "mk-secret-3"}})
    for i in range(12):
        mark_converted(record_message(f"0A00000000MK{i:04d}", api_key="marketing"))
        mark_converted(record_message(f"0A00000000TX{i:04d}"))

    result = report_pending(concurrency=concurrency)

    assert result.reported == 12
    assert (result.halted, result.halted_run, result.halted_accounts) == (
        True,
        False,
        ["marketing"],
    )
    marketing = Conversion.objects.filter(message__api_key="marketing")
    assert set(marketing.values_list("status", "attempt_count")) == {(Status.PENDING, 0)}
    others = Conversion.objects.exclude(message__api_key="marketing")
    assert set(others.values_list("status", flat=True)) == {Status.REPORTED}
    sent_for_marketing = [r for r in nexmo_sandbox.requests if r.api_key == "marketing"]
    # Only the requests already in flight when the first 401 came back got one too.
    assert 1 <= len(sent_for_marketing) <= concurrency
    # The banner names the halted key, though the other account reported after the halt.
    [halt] = queries.current_halts()
    assert (halt.api_key, halt.endpoint) == ("marketing", False)


def test_the_command_exits_non_zero_for_a_halted_account(nexmo_sandbox: Sandbox) -> None:
    nexmo_sandbox.key_statuses[DEFAULT_API_KEY] = 402
    mark_many(1)

    with pytest.raises(CommandError) as raised:
        call_command("report_conversions", stdout=io.StringIO())

    assert raised.value.returncode == 2
    assert DEFAULT_API_KEY in str(raised.value)


# --- proxies and CA bundles ----------------------------------------------------------------------


def test_the_environment_proxy_is_used(
    settings: Any, nexmo_sandbox: Sandbox, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    mark_many(2)
    with ForwardingProxy() as proxy:
        # requests applies HTTP_PROXY to loopback too unless NO_PROXY names it.
        clean_proxy_env.setenv("HTTP_PROXY", proxy.url)
        result = report_pending(concurrency=1)
    assert result.reported == 2
    assert [url for _method, url in proxy.forwarded] == [nexmo_sandbox.url()] * 2
    assert len(nexmo_sandbox.requests) == 2


def test_no_proxy_is_honoured(
    settings: Any, nexmo_sandbox: Sandbox, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    mark_many(1)
    with ForwardingProxy() as proxy:
        clean_proxy_env.setenv("HTTP_PROXY", proxy.url)
        clean_proxy_env.setenv("NO_PROXY", "127.0.0.1")
        assert report_pending().reported == 1
    assert proxy.forwarded == []


def test_the_proxies_setting_overrides_the_environment(
    settings: Any, nexmo_sandbox: Sandbox, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    clean_proxy_env.setenv("HTTP_PROXY", dead)
    mark_many(1)
    with ForwardingProxy() as proxy:
        configure(settings, PROXIES={"http": proxy.url})
        assert report_pending().reported == 1
    assert len(proxy.forwarded) == 1

    configure(settings, PROXIES={})  # none at all, whatever the environment says
    mark_converted("0A0000000000D1C7")
    assert report_pending().reported == 1


def test_a_proxy_password_never_reaches_the_rows(
    settings: Any, nexmo_sandbox: Sandbox, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    configure(settings, PROXIES={"http": f"http://user:proxy-pw-Kx3@127.0.0.1:{free_port()}"})
    (conversion,) = mark_many(1)

    result = report_pending()

    assert result.retrying == 1
    conversion.refresh_from_db()
    assert conversion.last_error.startswith("connection error")
    stored = str(list(ConversionAttempt.objects.values())) + conversion.last_error
    assert "proxy-pw-Kx3" not in stored


def test_ca_bundle_comes_from_the_environment_or_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundle = tmp_path / "private-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert Client(base_url="https://api.nexmo.com", timeout=1).verify is True
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert Client(base_url="https://api.nexmo.com", timeout=1).verify == str(bundle)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/elsewhere.pem")
    assert Client(base_url="https://api.nexmo.com", timeout=1).verify == "/elsewhere.pem"
    assert Client(base_url="https://x.test", timeout=1, verify=str(bundle)).verify == str(bundle)


# --- the signed-timestamp collision --------------------------------------------------------------


@pytest.fixture
def strict_sandbox(settings: Any) -> Any:
    """A sandbox whose signature check refuses a ``timestamp`` more than 60 s from now, and
    the app pointed at it with a signature-only account."""
    accounts = {DEFAULT_API_KEY: AccountSpec(signature_secret=SIG_SECRET)}
    with Sandbox(accounts=accounts, signature_max_age=60) as sandbox:
        configure(settings, sandbox=sandbox, API_SECRET=None, SIGNATURE_SECRET=SIG_SECRET)
        yield sandbox


def test_the_strict_sandbox_refuses_an_old_signed_conversion_time(strict_sandbox: Sandbox) -> None:
    # What signing the conversion time as it is (vonage 4's behaviour) meets under a
    # freshness window: the rehearsal the app's behaviour is tested against below.
    params = {
        "api_key": DEFAULT_API_KEY,
        "message-id": "0A0000000000C011",
        "delivered": "true",
        "timestamp": "2024-05-01 12:30:00",
    }
    params["sig"] = sign(params, secret=SIG_SECRET)
    assert requests.post(strict_sandbox.url(), data=params, timeout=5).status_code == 401


def test_a_recent_conversion_is_signed_with_its_own_time(strict_sandbox: Sandbox) -> None:
    mark_converted("0A0000000000C012")

    assert report_pending().reported == 1

    (request,) = strict_sandbox.requests
    assert TIMESTAMP_SHAPE.fullmatch(request.form["timestamp"])
    assert verify(request.form, secret=SIG_SECRET)


def test_old_signed_conversions_are_never_stuck(strict_sandbox: Sandbox) -> None:
    # A retry hours later and a non-conversion at sent_at + NON_CONVERSION_AFTER.
    mark_converted("0A0000000000C013", timestamp=timezone.now() - timedelta(hours=6))
    a_day_ago = timezone.now() - timedelta(days=1)
    mark_converted("0A0000000000C014", delivered=False, timestamp=a_day_ago)

    result = report_pending(concurrency=1)

    assert (result.reported, result.halted) == (2, False)
    for request in strict_sandbox.requests:
        # Signed with the current UNIX time, as Vonage's Ruby SDK signs every conversion.
        assert request.form["timestamp"].isdigit()
        assert verify(request.form, secret=SIG_SECRET)


def test_a_window_shorter_than_ours_halts_only_until_the_conversion_ages(
    settings: Any, strict_sandbox: Sandbox
) -> None:
    # Were the real window shorter than SIGNED_TIMESTAMP_MAX_AGE, a conversion between the
    # two ages gets a 401: its account halts, nothing is burned, other accounts go on.
    strict_sandbox.accounts["other"] = AccountSpec(api_secret="other-secret-1")
    configure(settings, ACCOUNTS={"other": {"API_SECRET": "other-secret-1"}})
    between = timezone.now() - timedelta(seconds=(60 + SIGNED_TIMESTAMP_MAX_AGE) / 2)
    stuck = mark_converted("0A0000000000C015", timestamp=between)
    mark_converted(record_message("0A0000000000C016", api_key="other"))

    first = report_pending(concurrency=1)

    assert (first.reported, first.halted_accounts) == (1, [DEFAULT_API_KEY])
    stuck.refresh_from_db()
    assert (stuck.status, stuck.attempt_count) == (Status.PENDING, 0)
    # Time passing makes the conversion older; moving its time back is the same thing.
    Conversion.objects.filter(pk=stuck.pk).update(
        timestamp=timezone.now() - timedelta(seconds=SIGNED_TIMESTAMP_MAX_AGE + 1)
    )
    second = report_pending()
    assert (second.reported, second.halted) == (1, False)


def test_the_switch_to_the_signing_time_is_at_the_max_age() -> None:
    account = Account(api_key="k", signature_secret="s-1")
    report = Report("sms", "0A01", True, timezone.now())
    inside = report.timestamp + timedelta(seconds=SIGNED_TIMESTAMP_MAX_AGE)
    beyond = inside + timedelta(seconds=1)
    assert TIMESTAMP_SHAPE.fullmatch(build_params(report, account, now=inside)["timestamp"])
    assert build_params(report, account, now=beyond)["timestamp"] == str(int(beyond.timestamp()))
