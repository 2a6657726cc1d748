"""client.py: wire parameters, the outcome table, and one POST (``responses`` for the narrow
unit tests, the real sandbox for connection reuse)."""

from __future__ import annotations

import email.utils
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
import responses

from django_nexmo_conversion import __version__
from django_nexmo_conversion.choices import Outcome
from django_nexmo_conversion.exceptions import ConversionInputError
from django_nexmo_conversion.sandbox import DEFAULT_API_KEY, DEFAULT_API_SECRET, Sandbox
from django_nexmo_conversion.transport.adapter import ReportAdapter
from django_nexmo_conversion.transport.answers import classify, describe_error
from django_nexmo_conversion.transport.client import USER_AGENT, Client, form_body
from django_nexmo_conversion.transport.signing import SIGNATURE_METHODS, verify
from django_nexmo_conversion.transport.wire import (
    Account,
    Report,
    Secret,
    authorization,
    build_params,
    endpoint,
    format_timestamp,
)

BASE = "https://api.example.test"
SMS_URL = f"{BASE}/conversions/sms"
AT = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
KEY_SECRET = Account(api_key="key1", api_secret="secret-Q7", auth="params")


def report(
    message_id: str = "0A0000001234567B", *, delivered: bool = True, channel: str = "sms"
) -> Report:
    return Report(channel=channel, message_id=message_id, delivered=delivered, timestamp=AT)


# --- parameters on the wire -------------------------------------------------------------------


def test_build_params_with_key_and_secret() -> None:
    assert build_params(report(), KEY_SECRET) == {
        "api_key": "key1",
        "api_secret": "secret-Q7",
        "message-id": "0A0000001234567B",
        "delivered": "true",
        "timestamp": "2024-05-01 12:30:00",
    }
    assert build_params(report(delivered=False), KEY_SECRET)["delivered"] == "false"


def test_build_params_under_the_default_basic_auth_carries_no_credential() -> None:
    account = Account(api_key="key1", api_secret="secret-Q7")  # AUTH="basic", the default
    assert build_params(report(), account) == {
        "message-id": "0A0000001234567B",
        "delivered": "true",
        "timestamp": "2024-05-01 12:30:00",
    }


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
def test_build_params_signed_has_sig_and_no_secret(method: str) -> None:
    account = Account(
        api_key="key1", api_secret="secret-Q7", signature_secret="sig-K2", signature_method=method
    )
    params = build_params(report(), account)
    assert "api_secret" not in params
    assert set(params) == {"api_key", "message-id", "delivered", "timestamp", "sig"}
    assert verify(params, secret="sig-K2", method=method)
    assert not verify(params, secret="secret-Q7", method=method)


def test_format_timestamp_converts_other_zones_to_utc() -> None:
    tokyo = datetime(2024, 1, 1, 9, 0, 5, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert format_timestamp(tokyo) == "2024-01-01 00:00:05"
    new_york_summer = datetime(2024, 7, 1, 20, 15, tzinfo=ZoneInfo("America/New_York"))
    assert format_timestamp(new_york_summer) == "2024-07-02 00:15:00"
    assert format_timestamp(datetime(2024, 7, 1, 3, 4, 5, 999999, tzinfo=timezone.utc)) == (
        "2024-07-01 03:04:05"
    )


def test_format_timestamp_rejects_naive() -> None:
    with pytest.raises(ConversionInputError, match="timezone-aware"):
        format_timestamp(datetime(2024, 1, 1, 12, 0))


def test_endpoint_per_channel() -> None:
    assert endpoint(BASE, "sms") == f"{BASE}/conversions/sms"
    assert endpoint(BASE + "/", "voice") == f"{BASE}/conversions/voice"


# --- the outcome table ------------------------------------------------------------------------


def test_200_is_reported() -> None:
    answer = classify(200, "", {})
    assert (answer.outcome, answer.status_code, answer.error) == (Outcome.REPORTED, 200, "")


def test_401_is_an_account_error_naming_the_credentials() -> None:
    body = '{"title": "Invalid credentials supplied", "detail": "Wrong credentials."}'
    answer = classify(401, body, {})
    assert answer.outcome == Outcome.ACCOUNT_ERROR
    assert answer.status_code == 401
    assert "Invalid credentials supplied" in answer.error


def test_402_with_an_html_body_is_an_account_error_without_markup() -> None:
    body = "<!DOCTYPE html><html><body><h1>Payment Required</h1></body></html>"
    answer = classify(402, body, {})
    assert answer.outcome == Outcome.ACCOUNT_ERROR
    assert "not enabled" in answer.error
    assert "<" not in answer.error


@pytest.mark.parametrize("status", [420, 422, 423, 400, 409, 410])
def test_other_4xx_are_rejected(status: int) -> None:
    answer = classify(status, '{"title": "Invalid parameters"}', {"Retry-After": "5"})
    assert answer.outcome == Outcome.REJECTED
    assert answer.status_code == status
    assert answer.retry_after is None


def test_429_with_retry_after_seconds_is_transient() -> None:
    answer = classify(429, "", {"Retry-After": "17"})
    assert answer.outcome == Outcome.TRANSIENT
    assert answer.retry_after == 17.0
    assert "too many requests" in answer.error


def test_429_with_retry_after_http_date() -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=120)
    answer = classify(429, "", {"Retry-After": email.utils.format_datetime(when, usegmt=True)})
    assert answer.outcome == Outcome.TRANSIENT
    assert answer.retry_after is not None
    assert 100 <= answer.retry_after <= 121


def test_retry_after_in_the_past_or_garbage() -> None:
    assert classify(429, "", {"Retry-After": "Mon, 01 Jan 2001 00:00:00 GMT"}).retry_after == 0.0
    assert classify(429, "", {"Retry-After": "soon"}).retry_after is None
    assert classify(429, "", {}).retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_are_transient(status: int) -> None:
    answer = classify(status, "upstream down", {})
    assert answer.outcome == Outcome.TRANSIENT
    assert answer.status_code == status
    assert "upstream down" in answer.error


def test_describe_error_with_nexmo_json() -> None:
    body = '{"type": "https://x", "title": "Invalid parameters", "detail": "message-id missing"}'
    text = describe_error(420, body)
    assert text.startswith("HTTP 420")
    assert "Invalid parameters" in text
    assert "message-id missing" in text
    assert "https://x" not in text
    assert "bad key" in describe_error(401, '{"error-text": "bad key"}')


def test_describe_error_plain_text_is_capped() -> None:
    text = describe_error(500, "x" * 5000)
    assert text.startswith("HTTP 500")
    assert 300 <= len(text) < 400
    assert describe_error(503, "") == "HTTP 503"


# --- one POST (responses) ---------------------------------------------------------------------


@responses.activate
def test_send_posts_a_form_body_and_nothing_in_the_url() -> None:
    responses.add(responses.POST, SMS_URL, status=200)
    answer = Client(base_url=BASE, timeout=3.5).send(report(), KEY_SECRET)

    assert answer.outcome == Outcome.REPORTED
    assert answer.status_code == 200
    (call,) = responses.calls
    request = call.request
    assert urlsplit(request.url).query == ""
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.body) == {
        "api_key": ["key1"],
        "api_secret": ["secret-Q7"],
        "message-id": ["0A0000001234567B"],
        "delivered": ["true"],
        "timestamp": ["2024-05-01 12:30:00"],
    }
    assert f"django-nexmo-conversion/{__version__}" in request.headers["User-Agent"]
    assert request.req_kwargs["timeout"] == 3.5


@responses.activate
def test_send_voice_goes_to_the_voice_endpoint() -> None:
    responses.add(responses.POST, f"{BASE}/conversions/voice", status=200)
    answer = Client(base_url=BASE, timeout=1).send(report(channel="voice"), KEY_SECRET)
    assert answer.outcome == Outcome.REPORTED
    assert responses.calls[0].request.url == f"{BASE}/conversions/voice"


@responses.activate
def test_send_classifies_the_answer() -> None:
    responses.add(
        responses.POST,
        SMS_URL,
        status=429,
        json={"title": "Throttled"},
        headers={"Retry-After": "3"},
    )
    answer = Client(base_url=BASE, timeout=1).send(report(), KEY_SECRET)
    assert (answer.outcome, answer.status_code, answer.retry_after) == (Outcome.TRANSIENT, 429, 3)
    assert "Throttled" in answer.error
    assert answer.duration >= 0


@responses.activate
def test_timeout_is_transient() -> None:
    responses.add(responses.POST, SMS_URL, body=requests.ReadTimeout("read timed out"))
    answer = Client(base_url=BASE, timeout=2).send(report(), KEY_SECRET)
    assert answer.outcome == Outcome.TRANSIENT
    assert answer.status_code is None
    assert "timed out" in answer.error


@responses.activate
def test_connection_error_is_transient_and_says_nothing_of_the_body() -> None:
    responses.add(
        responses.POST, SMS_URL, body=requests.ConnectionError("refused: api_secret=secret-Q7")
    )
    answer = Client(base_url=BASE, timeout=2).send(report(), KEY_SECRET)
    assert answer.outcome == Outcome.TRANSIENT
    assert answer.status_code is None
    assert "connection error" in answer.error
    assert "secret-Q7" not in answer.error


@responses.activate
def test_an_error_page_echoing_the_request_never_carries_the_secret() -> None:
    """A proxy or gateway may echo the body it got; that text becomes ``last_error``."""
    account = Account(api_key="key1", api_secret="s+cr/t=Q7&x")
    echoed = "api_key=key1&api_secret=s%2Bcr%2Ft%3DQ7%26x&message-id=0A0000001234567B"
    responses.add(responses.POST, SMS_URL, status=400, body=f"Bad request: {echoed}")
    responses.add(
        responses.POST, SMS_URL, status=500, json={"title": "Error", "detail": "got s+cr/t=Q7&x"}
    )
    client = Client(base_url=BASE, timeout=2)
    rejected = client.send(report(), account)
    transient = client.send(report(), account)
    assert rejected.outcome == Outcome.REJECTED
    assert transient.outcome == Outcome.TRANSIENT
    for answer in (rejected, transient):
        assert "s+cr/t" not in answer.error, answer.error
        assert "s%2Bcr" not in answer.error, answer.error
        assert "***" in answer.error
    assert "message-id=0A0000001234567B" in rejected.error  # the rest is kept


@responses.activate
def test_redirect_is_not_followed() -> None:
    responses.add(
        responses.POST, SMS_URL, status=302, headers={"Location": "https://elsewhere.test/steal"}
    )
    responses.add(responses.POST, "https://elsewhere.test/steal", status=200)
    answer = Client(base_url=BASE, timeout=2).send(report(), KEY_SECRET)
    assert len(responses.calls) == 1
    # A redirect says BASE_URL is wrong (the same for every conversion): it halts, burns nothing.
    assert answer.outcome == Outcome.ENDPOINT_ERROR
    assert answer.status_code == 302
    assert "redirected to https://elsewhere.test/steal" in answer.error
    assert "BASE_URL" in answer.error


@responses.activate
def test_signed_send_carries_no_secret() -> None:
    responses.add(responses.POST, SMS_URL, status=200)
    account = Account(api_key="key1", api_secret="secret-Q7", signature_secret="sig-K2")
    Client(base_url=BASE, timeout=2).send(report(), account)
    body = parse_qs(responses.calls[0].request.body)
    assert "api_secret" not in body
    assert "secret-Q7" not in responses.calls[0].request.body
    assert "sig-K2" not in responses.calls[0].request.body
    assert verify({k: v[0] for k, v in body.items()}, secret="sig-K2")


# --- connection reuse against the real sandbox ------------------------------------------------


@pytest.mark.sandbox
def test_one_client_reuses_one_connection() -> None:
    account = Account(api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET)
    with Sandbox() as sandbox:
        client = Client(base_url=sandbox.base_url, timeout=5)
        try:
            answers = [client.send(report(f"0A00000000000{i:03d}"), account) for i in range(3)]
        finally:
            client.close()
        received = sandbox.requests
    assert [a.outcome for a in answers] == [Outcome.REPORTED] * 3
    assert len(received) == 3
    assert {r.connection for r in received} == {received[0].connection}
    assert [r.message_id for r in received] == [f"0A00000000000{i:03d}" for i in range(3)]
    assert all(r.query == "" for r in received)


@pytest.mark.parametrize("auth", ["basic", "params"])
def test_a_report_is_byte_for_byte_what_a_requests_session_would_send(auth: str) -> None:
    """The client prepares its request itself (none of a session's per-request merging):
    the same method, path, headers in the same order, and body as ``Session.post``."""
    account = Account(api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET, auth=auth)
    sent = report("0A0000000000C0DE")
    with Sandbox() as sandbox:
        client = Client(base_url=sandbox.base_url, timeout=5)
        try:
            assert client.send(sent, account).outcome == Outcome.REPORTED
            session = requests.Session()
            session.trust_env = False
            session.headers["User-Agent"] = USER_AGENT
            session.headers["Accept"] = "application/json, text/plain, */*"
            header = authorization(account)
            with session:
                session.post(
                    endpoint(sandbox.base_url, "sms"),
                    data=build_params(sent, account),
                    headers={"Authorization": header} if header else None,
                    timeout=5,
                )
        finally:
            client.close()
        ours, theirs = sandbox.requests
    assert (ours.method, ours.path, ours.query) == (theirs.method, theirs.path, theirs.query)
    assert list(ours.headers.items()) == list(theirs.headers.items())
    assert ours.form == theirs.form


@pytest.mark.parametrize(
    "value",
    ["0A0000000000C0DE", "", "a b+c&d=e/f%g?h#i", "clé ü 日本 \u2028\U0001f600", "~-._*'()!"],
)
def test_the_form_is_encoded_as_requests_encodes_it(value: str) -> None:
    """The client encodes the form itself (without requests' per-call protocol checks): the
    body is the one ``requests`` prepares for the same fields, secrets included."""
    params = {"api_key": value, "api_secret": Secret(value), "message-id": value}
    prepared = requests.Request("POST", "https://api.example/", data=params).prepare()
    assert form_body(params) == prepared.body


# --- the route adapter: each endpoint's pool and target looked up once -------------------------


SANDBOX_ACCOUNT = Account(api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET, auth="params")


def route_session() -> tuple[requests.Session, ReportAdapter]:
    session = requests.Session()
    session.trust_env = False
    adapter = ReportAdapter()
    for prefix in ("https://", "http://"):
        session.mount(prefix, adapter)
    return session, adapter


def test_a_pool_closed_since_it_was_looked_up_is_looked_up_again() -> None:
    session, adapter = route_session()
    with Sandbox() as sandbox, session:
        form = build_params(report(), SANDBOX_ACCOUNT)
        assert session.post(sandbox.url(), data=form, timeout=5).ok
        # What urllib3 1.26's pool manager does to a pool it drops: forgets it and closes it
        # (2.x leaves it open).
        request = session.prepare_request(requests.Request("POST", sandbox.url()))
        dropped = adapter.get_connection_with_tls_context(request, verify=True)
        adapter.poolmanager.clear()
        dropped.close()
        assert session.post(sandbox.url(), data=form, timeout=5).ok
        first, second = sandbox.requests
    assert first.connection != second.connection


def test_each_verify_setting_keeps_its_own_trust(tls_cert: tuple[Path, Path]) -> None:
    """A private CA trusted for one request is not trusted for the next that asks for the
    public CAs: the route is kept per TLS setting, not per URL alone."""
    cert, key = tls_cert
    session, _adapter = route_session()
    with Sandbox(certfile=cert, keyfile=key) as sandbox, session:
        post = {"url": sandbox.url(), "data": build_params(report(), SANDBOX_ACCOUNT), "timeout": 5}
        assert session.post(**post, verify=str(cert)).ok
        with pytest.raises(requests.exceptions.SSLError):
            session.post(**post, verify=True)
        assert session.post(**post, verify=str(cert)).ok
