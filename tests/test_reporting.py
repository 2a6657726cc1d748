"""The reporting engine end to end: mark, report, and what reached the sandbox over loopback."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from django_nexmo_conversion import mark_converted, record_message, report_pending, signals
from django_nexmo_conversion.models import Conversion, ConversionAttempt, Outcome, Status
from django_nexmo_conversion.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    AccountSpec,
    ReceivedRequest,
    Sandbox,
)
from django_nexmo_conversion.transport.signing import SIGNATURE_METHODS, verify

from .helpers import configure, mark_many

pytestmark = [pytest.mark.django_db, pytest.mark.sandbox]

WIRE_FIELDS = {"message-id", "delivered", "timestamp"}  # the credentials: the header
BODY_CREDENTIALS = {"api_key", "api_secret"}  # AUTH="params"
SIGNATURE_SECRET = "sig-secret-Qx7w"


def make_due(*conversions: Conversion) -> None:
    """Pretend the backoff has passed (as if the clock moved on)."""
    past = timezone.now() - timedelta(seconds=1)
    Conversion.objects.filter(pk__in=[c.pk for c in conversions]).update(next_attempt_at=past)


def fresh(conversion: Conversion) -> Conversion:
    return Conversion.objects.get(pk=conversion.pk)


@pytest.fixture
def fired() -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Every app signal sent during the test, by name, as the keyword arguments it carried."""
    got: dict[str, list[dict[str, Any]]] = {"marked": [], "reported": [], "failed": []}
    pairs = {
        "marked": signals.conversion_marked,
        "reported": signals.conversion_reported,
        "failed": signals.conversion_failed,
    }
    for name, signal in pairs.items():

        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            kwargs.pop("signal", None)
            got[_name].append({"sender": sender, **kwargs})

        signal.connect(receiver, weak=False, dispatch_uid=f"test-reporting-{name}")
    yield got
    for name, signal in pairs.items():
        signal.disconnect(dispatch_uid=f"test-reporting-{name}")


def assert_no_secret_stored(*secrets: str) -> None:
    texts = [
        *Conversion.objects.values_list("last_error", flat=True),
        *ConversionAttempt.objects.values_list("error", flat=True),
    ]
    for secret in secrets:
        assert not any(secret in text for text in texts)


# --------------------------------------------------------------------------- the wire


def test_sms_conversion_reaches_the_sandbox_exactly_as_the_api_wants(
    nexmo_sandbox: Sandbox,
) -> None:
    # Neither UTC nor the project's zone (Europe/Paris): 08:30:05 in New York is 13:30:05 UTC.
    at = datetime(2024, 1, 15, 8, 30, 5, tzinfo=ZoneInfo("America/New_York"))
    mark_converted("0A00000012345678", timestamp=at)

    result = report_pending()

    assert (result.reported, result.retrying, result.failed, result.halted) == (1, 0, 0, False)
    [request] = nexmo_sandbox.requests
    assert (request.method, request.path, request.query) == ("POST", "/conversions/sms", "")
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form == {
        "message-id": "0A00000012345678",
        "delivered": "true",
        "timestamp": "2024-01-15 13:30:05",
    }
    # AUTH="basic", the default: the credentials travel in the header, never in the body.
    token = base64.b64encode(f"{DEFAULT_API_KEY}:{DEFAULT_API_SECRET}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {token}"
    # The record keeps headers as received; only its repr masks secrets.
    assert token not in repr(request)
    assert request.status == 200


def test_params_auth_sends_the_credentials_in_the_body(
    nexmo_sandbox: Sandbox, settings: Any
) -> None:
    configure(settings, AUTH="params")
    mark_converted("0A00000012345679")

    assert report_pending().reported == 1

    [request] = nexmo_sandbox.requests
    assert "authorization" not in request.headers
    # The record keeps form values as received; only its repr masks secrets.
    assert request.form["api_key"] == DEFAULT_API_KEY
    assert request.form["api_secret"] == DEFAULT_API_SECRET
    assert set(request.form) == WIRE_FIELDS | BODY_CREDENTIALS
    assert DEFAULT_API_SECRET not in repr(request)


def test_voice_not_delivered_goes_to_the_voice_endpoint(nexmo_sandbox: Sandbox) -> None:
    # Summer time this time: New York is UTC-4 in July.
    at = datetime(2024, 7, 1, 23, 59, 59, tzinfo=ZoneInfo("America/New_York"))
    mark_converted(
        "3fa85f64-5717-4562-b3fc-2c963f66afa6", channel="voice", delivered=False, timestamp=at
    )

    assert report_pending().reported == 1

    [request] = nexmo_sandbox.requests
    assert (request.path, request.channel, request.query) == ("/conversions/voice", "voice", "")
    assert set(request.form) == WIRE_FIELDS
    assert request.form["delivered"] == "false"
    assert request.form["timestamp"] == "2024-07-02 03:59:59"
    assert request.form["message-id"] == "3fa85f64-5717-4562-b3fc-2c963f66afa6"


def test_default_timestamp_is_now_in_utc(nexmo_sandbox: Sandbox) -> None:
    before = datetime.now(dt_timezone.utc).replace(microsecond=0)
    with timezone.override(ZoneInfo("Asia/Tokyo")):  # an active zone must not leak either
        mark_converted("0A00000000000001")
    after = datetime.now(dt_timezone.utc)

    report_pending()

    [request] = nexmo_sandbox.requests
    sent = datetime.strptime(request.form["timestamp"], "%Y-%m-%d %H:%M:%S").replace(
        tzinfo=dt_timezone.utc
    )
    assert before <= sent <= after


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
def test_signed_requests_verify_and_never_carry_the_secret(
    nexmo_sandbox: Sandbox, settings: Any, method: str
) -> None:
    nexmo_sandbox.accounts[DEFAULT_API_KEY] = AccountSpec(
        signature_secret=SIGNATURE_SECRET, signature_method=method
    )
    # API_SECRET stays configured: signing must still keep it off the wire.
    configure(settings, SIGNATURE_SECRET=SIGNATURE_SECRET, SIGNATURE_METHOD=method)
    conversion = mark_converted("0A0000000000516E")

    result = report_pending()

    [request] = nexmo_sandbox.requests
    assert request.status == 200, request
    assert set(request.form) == WIRE_FIELDS | {"api_key", "sig"}
    assert verify(request.form, secret=SIGNATURE_SECRET, method=method)
    assert DEFAULT_API_SECRET not in request.query + str(request.headers)
    assert result.reported == 1
    assert fresh(conversion).status == Status.REPORTED


def test_a_wrong_signature_is_refused_by_the_sandbox(nexmo_sandbox: Sandbox, settings: Any) -> None:
    nexmo_sandbox.accounts[DEFAULT_API_KEY] = AccountSpec(
        signature_secret=SIGNATURE_SECRET, signature_method="sha256"
    )
    configure(settings, SIGNATURE_SECRET=SIGNATURE_SECRET, SIGNATURE_METHOD="sha512")
    conversion = mark_converted("0A0000000000516F")

    result = report_pending()

    assert result.halted
    assert result.status_code == 401
    assert [r.status for r in nexmo_sandbox.requests] == [401]
    assert fresh(conversion).status == Status.PENDING
    assert_no_secret_stored(SIGNATURE_SECRET, DEFAULT_API_SECRET)


def test_each_message_is_reported_with_its_own_accounts_credentials(
    nexmo_sandbox: Sandbox, settings: Any
) -> None:
    nexmo_sandbox.accounts["k2"] = AccountSpec(api_secret="secret-of-k2")
    nexmo_sandbox.accounts["k3"] = AccountSpec(
        signature_secret="sig-of-k3", signature_method="sha1"
    )
    configure(
        settings,
        AUTH="params",  # the credentials each account sends, read from the body
        ACCOUNTS={
            "k2": {"API_SECRET": "secret-of-k2"},
            "k3": {"SIGNATURE_SECRET": "sig-of-k3", "SIGNATURE_METHOD": "sha1"},
        },
    )
    for message_id, api_key in [("M-K2", "k2"), ("M-K3", "k3"), ("M-DEF", None), ("M-ODD", "k9")]:
        mark_converted(record_message(message_id, api_key=api_key))

    result = report_pending()

    assert result.reported == 4
    forms = {r.message_id: r.form for r in nexmo_sandbox.requests}
    assert all(r.status == 200 for r in nexmo_sandbox.requests)
    assert (forms["M-K2"]["api_key"], forms["M-K2"]["api_secret"]) == ("k2", "secret-of-k2")
    assert forms["M-K3"]["api_key"] == "k3"
    assert "api_secret" not in forms["M-K3"]
    assert verify(forms["M-K3"], secret="sig-of-k3", method="sha1")
    # No key, or a key not in ACCOUNTS: the default account.
    for message_id in ("M-DEF", "M-ODD"):
        assert forms[message_id]["api_key"] == DEFAULT_API_KEY
        assert forms[message_id]["api_secret"] == DEFAULT_API_SECRET


# --------------------------------------------------------------------------- outcomes


def test_200_reports_with_time_attempt_and_signal(
    nexmo_sandbox: Sandbox, fired: dict[str, list[dict[str, Any]]]
) -> None:
    conversion = mark_converted("0A000000000000C8")
    before = timezone.now()

    report_pending()

    after = timezone.now()
    row = fresh(conversion)
    assert row.status == Status.REPORTED
    assert row.reported_at is not None
    assert before <= row.reported_at <= after
    assert (row.attempt_count, row.last_status_code, row.next_attempt_at) == (1, 200, None)
    assert [kw["conversion"].pk for kw in fired["reported"]] == [conversion.pk]
    assert fired["reported"][0]["sender"] is Conversion
    assert fired["failed"] == []
    [attempt] = row.attempts.all()
    assert (attempt.http_status, attempt.outcome, attempt.error) == (200, Outcome.REPORTED, "")
    assert timedelta(0) < attempt.duration < after - before + timedelta(seconds=1)
    assert before <= attempt.started_at <= after
    # Reported is final: the next run sends nothing.
    assert report_pending().attempted == 0
    assert len(nexmo_sandbox.requests) == 1


@pytest.mark.parametrize(
    ("status", "cause"),
    [(401, "credentials"), (402, "not enabled")],
)
def test_account_error_halts_and_burns_nothing(
    nexmo_sandbox: Sandbox,
    settings: Any,
    fired: dict[str, list[dict[str, Any]]],
    status: int,
    cause: str,
) -> None:
    if status == 401:
        configure(settings, API_SECRET="not-the-right-secret")
    else:
        nexmo_sandbox.accounts[DEFAULT_API_KEY] = AccountSpec(conversions_enabled=False)
    conversions = mark_many(5)

    result = report_pending(concurrency=1)

    assert result.halted
    assert result.status_code == status
    assert cause in result.error
    assert cause in result.summary()
    # It stopped at the first answer: one request, one attempt row, nothing spent.
    assert [r.status for r in nexmo_sandbox.requests] == [status]
    assert (result.reported, result.retrying, result.failed) == (0, 0, 0)
    rows = list(Conversion.objects.order_by("pk"))
    assert [(r.status, r.attempt_count, r.claim_token) for r in rows] == [
        (Status.PENDING, 0, "")
    ] * len(conversions)
    assert all(r.next_attempt_at is not None and r.next_attempt_at <= timezone.now() for r in rows)
    [attempt] = ConversionAttempt.objects.all()
    assert attempt.conversion_id == conversions[0].pk
    assert nexmo_sandbox.requests[0].message_id == "MSG0000"
    assert (attempt.http_status, attempt.outcome) == (status, Outcome.ACCOUNT_ERROR)
    assert cause in attempt.error
    assert fired["failed"] == []
    assert fired["reported"] == []
    assert_no_secret_stored("not-the-right-secret", DEFAULT_API_SECRET)

    # Once the account is fixed, everything goes out.
    nexmo_sandbox.accounts[DEFAULT_API_KEY] = AccountSpec()
    configure(settings, API_SECRET=DEFAULT_API_SECRET)
    assert report_pending().reported == len(conversions)


def test_account_error_records_the_attempt_on_the_right_conversion(nexmo_sandbox: Sandbox) -> None:
    conversions = mark_many(3)
    nexmo_sandbox.script(402, message_id="MSG0000")

    result = report_pending(concurrency=1)

    assert result.halted
    [attempt] = ConversionAttempt.objects.all()
    assert attempt.conversion_id == conversions[0].pk
    assert [r.message_id for r in nexmo_sandbox.requests] == ["MSG0000"]


def test_account_error_with_concurrency_stops_what_is_not_in_flight(
    nexmo_sandbox: Sandbox, settings: Any
) -> None:
    configure(settings, API_SECRET="not-the-right-secret")
    nexmo_sandbox.latency = 0.05
    total, concurrency = 60, 4
    mark_many(total)

    result = report_pending(concurrency=concurrency)

    assert result.halted
    assert result.status_code == 401
    sent = len(nexmo_sandbox.requests)
    # Only what was in flight went: the first answers, plus at most one more per worker
    # thread picked up in the instant before the rest was cancelled.
    assert 1 <= sent <= 2 * concurrency
    assert ConversionAttempt.objects.count() == sent
    assert set(ConversionAttempt.objects.values_list("outcome", flat=True)) == {
        Outcome.ACCOUNT_ERROR
    }
    assert Conversion.objects.filter(status=Status.PENDING, attempt_count=0).count() == total


@pytest.mark.parametrize("status", [400, 410, 420, 422, 423])
def test_parameter_errors_fail_at_once(
    nexmo_sandbox: Sandbox, fired: dict[str, list[dict[str, Any]]], status: int
) -> None:
    conversion = mark_converted("0A0000000000BAD0")
    nexmo_sandbox.script(status)

    result = report_pending()

    assert (result.failed, result.retrying, result.halted) == (1, 0, False)
    row = fresh(conversion)
    assert (row.status, row.attempt_count, row.last_status_code) == (Status.FAILED, 1, status)
    assert row.next_attempt_at is None
    assert row.reported_at is None
    assert f"HTTP {status}" in row.last_error
    [event] = fired["failed"]
    assert event["conversion"].pk == conversion.pk
    assert event["status_code"] == status
    assert event["error"] == row.last_error
    [attempt] = row.attempts.all()
    assert (attempt.http_status, attempt.outcome) == (status, Outcome.REJECTED)
    # No retry, ever: the next run leaves it alone.
    assert report_pending().attempted == 0
    assert len(nexmo_sandbox.requests) == 1


def test_429_waits_for_retry_after(nexmo_sandbox: Sandbox, settings: Any) -> None:
    configure(settings, RETRY_BACKOFF=1, RETRY_BACKOFF_MAX=3600)
    nexmo_sandbox.retry_after = 40
    conversion = mark_converted("0A00000000000429")
    nexmo_sandbox.script(429)
    before = timezone.now()

    result = report_pending()

    after = timezone.now()
    assert result.retrying == 1
    row = fresh(conversion)
    assert (row.status, row.attempt_count, row.last_status_code) == (Status.PENDING, 1, 429)
    assert row.next_attempt_at is not None
    assert before + timedelta(seconds=40) <= row.next_attempt_at <= after + timedelta(seconds=40)
    [attempt] = row.attempts.all()
    assert (attempt.http_status, attempt.outcome) == (429, Outcome.TRANSIENT)
    # Not due yet: another run does not send it.
    assert report_pending().attempted == 0
    assert len(nexmo_sandbox.requests) == 1


def test_a_run_tries_each_conversion_at_most_once(nexmo_sandbox: Sandbox) -> None:
    nexmo_sandbox.retry_after = 0  # due again at once...
    conversion = mark_converted("0A00000000004290")
    nexmo_sandbox.script(429, 429, 429)

    result = report_pending()

    # ...yet this run does not loop on it.
    assert result.retrying == 1
    assert result.attempted == 1
    assert len(nexmo_sandbox.requests) == 1
    assert fresh(conversion).next_attempt_at <= timezone.now()  # type: ignore[operator]
    # The next run takes it again.
    assert report_pending().attempted == 1
    assert len(nexmo_sandbox.requests) == 2


@pytest.mark.parametrize("fault", [500, 502, 503, 504, "drop", "hang"])
def test_transient_failures_back_off_with_jitter(
    nexmo_sandbox: Sandbox, settings: Any, fired: dict[str, list[dict[str, Any]]], fault: Any
) -> None:
    backoff = 100
    # An answer arrives well within TIMEOUT; a hang lasts well past it.
    configure(settings, RETRY_BACKOFF=backoff, RETRY_BACKOFF_MAX=10_000, TIMEOUT=1.5)
    nexmo_sandbox.hang_seconds = 5.0
    conversion = mark_converted("0A0000000000FA17")
    nexmo_sandbox.script(fault)
    before = timezone.now()

    result = report_pending()

    after = timezone.now()
    assert (result.retrying, result.failed, result.halted) == (1, 0, False)
    # Exactly one request: no hidden retry inside the HTTP client.
    assert len(nexmo_sandbox.requests) == 1
    row = fresh(conversion)
    assert (row.status, row.attempt_count) == (Status.PENDING, 1)
    assert row.next_attempt_at is not None
    low, high = before + timedelta(seconds=backoff / 2), after + timedelta(seconds=backoff)
    assert low <= row.next_attempt_at <= high
    [attempt] = row.attempts.all()
    assert attempt.outcome == Outcome.TRANSIENT
    if isinstance(fault, int):
        assert attempt.http_status == row.last_status_code == fault
        assert f"HTTP {fault}" in attempt.error
    else:
        assert attempt.http_status is None
        assert ("timed out" if fault == "hang" else "connection error") in attempt.error
    assert attempt.error == row.last_error
    assert fired["failed"] == []

    # The second attempt's step is twice the first: within [backoff, 2 * backoff].
    make_due(conversion)
    nexmo_sandbox.script(503)
    before = timezone.now()
    report_pending()
    after = timezone.now()
    row = fresh(conversion)
    assert row.attempt_count == 2
    assert row.next_attempt_at is not None
    low, high = before + timedelta(seconds=backoff), after + timedelta(seconds=2 * backoff)
    assert low <= row.next_attempt_at <= high


def test_backoff_is_jittered_across_conversions(nexmo_sandbox: Sandbox, settings: Any) -> None:
    configure(settings, RETRY_BACKOFF=100, RETRY_BACKOFF_MAX=10_000)
    conversions = mark_many(8)
    nexmo_sandbox.script(*[503] * 8)

    assert report_pending().retrying == 8

    delays = {fresh(c).next_attempt_at for c in conversions}
    assert len(delays) > 1  # not all workers come back at the same instant


def test_gives_up_after_max_attempts(
    nexmo_sandbox: Sandbox, settings: Any, fired: dict[str, list[dict[str, Any]]]
) -> None:
    configure(settings, MAX_ATTEMPTS=3)
    conversion = mark_converted("0A0000000000DEAD")
    nexmo_sandbox.script(503, "drop", 503)

    results = []
    for _ in range(3):
        results.append(report_pending())
        if fresh(conversion).status == Status.PENDING:
            make_due(conversion)

    assert [(r.retrying, r.failed) for r in results] == [(1, 0), (1, 0), (0, 1)]
    row = fresh(conversion)
    assert (row.status, row.attempt_count, row.next_attempt_at) == (Status.FAILED, 3, None)
    assert "gave up after 3 attempts" in row.last_error
    [event] = fired["failed"]
    assert event["conversion"].pk == conversion.pk
    assert event["status_code"] == 503
    assert [(a.http_status, a.outcome) for a in row.attempts.all()] == [
        (503, Outcome.TRANSIENT),
        (None, Outcome.TRANSIENT),
        (503, Outcome.TRANSIENT),
    ]
    # Failed is final until someone retries it by hand.
    make_due(conversion)
    assert report_pending().attempted == 0
    assert len(nexmo_sandbox.requests) == 3


def test_a_broken_signal_receiver_does_not_stop_the_run(nexmo_sandbox: Sandbox) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    signals.conversion_reported.connect(broken, weak=False, dispatch_uid="test-broken")
    try:
        mark_many(3)
        result = report_pending(concurrency=1)
    finally:
        signals.conversion_reported.disconnect(dispatch_uid="test-broken")

    assert result.reported == 3
    assert Conversion.objects.filter(status=Status.REPORTED).count() == 3


# --------------------------------------------------------------------------- runs


def test_limit_is_respected(nexmo_sandbox: Sandbox) -> None:
    mark_many(5)

    assert report_pending(limit=0).attempted == 0
    assert nexmo_sandbox.requests == []

    result = report_pending(limit=2)

    assert result.reported == 2
    assert len(nexmo_sandbox.requests) == 2
    assert Conversion.objects.filter(status=Status.PENDING).count() == 3
    assert report_pending(limit=10).reported == 3


def test_oldest_due_goes_first(nexmo_sandbox: Sandbox) -> None:
    conversions = mark_many(3)
    now = timezone.now()
    for offset, conversion in zip((1, 3, 2), conversions, strict=True):
        Conversion.objects.filter(pk=conversion.pk).update(
            next_attempt_at=now - timedelta(minutes=offset)
        )

    report_pending(limit=1)

    assert [r.message_id for r in nexmo_sandbox.requests] == ["MSG0001"]


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = peak = 0
    for _, step in events:  # an end sorts before a start at the same instant
        current += step
        peak = max(peak, current)
    return peak


def test_concurrency_bounds_requests_in_flight(nexmo_sandbox: Sandbox) -> None:
    # The sandbox stamps arrival (received_at) and we stamp the moment it answers, both on the
    # monotonic clock: a request is inside that window only while a client waits for it.
    answered: dict[int, float] = {}
    lock = threading.Lock()

    def on_request(request: ReceivedRequest) -> None:
        with lock:
            answered[id(request)] = time.monotonic()

    nexmo_sandbox.on_request = on_request
    nexmo_sandbox.latency = 0.05
    mark_many(10)

    result = report_pending(concurrency=2)

    assert result.reported == 10
    requests = nexmo_sandbox.requests
    windows = [(r.received_at, answered[id(r)]) for r in requests]
    assert _max_overlap(windows) == 2
    assert len({r.connection for r in requests}) <= 2  # one kept-alive connection per thread


def test_concurrency_from_settings(nexmo_sandbox: Sandbox, settings: Any) -> None:
    configure(settings, CONCURRENCY=3)
    answered: dict[int, float] = {}
    nexmo_sandbox.on_request = lambda r: answered.__setitem__(id(r), time.monotonic())
    nexmo_sandbox.latency = 0.05
    mark_many(9)

    assert report_pending().reported == 9

    windows = [(r.received_at, answered[id(r)]) for r in nexmo_sandbox.requests]
    assert 2 <= _max_overlap(windows) <= 3


@pytest.mark.parametrize(
    "kwargs",
    [{"limit": -1}, {"limit": 1.5}, {"limit": True}, {"concurrency": 0}, {"concurrency": "2"}],
)
def test_bad_run_arguments_are_refused(nexmo_sandbox: Sandbox, kwargs: dict[str, Any]) -> None:
    from django_nexmo_conversion.exceptions import ConversionInputError

    mark_many(1)
    with pytest.raises(ConversionInputError, match=next(iter(kwargs))):
        report_pending(**kwargs)
    assert nexmo_sandbox.requests == []
    assert Conversion.objects.get().status == Status.PENDING


@pytest.mark.usefixtures("no_env_credentials")
def test_an_error_while_sending_gives_the_claimed_rows_back(
    nexmo_sandbox: Sandbox, settings: Any
) -> None:
    # Only a named account: a message sent with another key has no credentials to use.
    configure(settings, API_KEY=None, API_SECRET=None, ACCOUNTS={"k2": {"API_SECRET": "s2"}})
    mark_converted(record_message("M-NOKEY"))
    mark_converted(record_message("M-K2", api_key="k2"))

    with pytest.raises(ImproperlyConfigured, match="API_KEY"):
        report_pending(concurrency=1)

    # Nothing is left claimed (stuck as "sending" until the lease ran out), nothing burned.
    assert (
        list(Conversion.objects.values_list("status", "attempt_count", "claim_token"))
        == [(Status.PENDING, 0, "")] * 2
    )
    assert ConversionAttempt.objects.count() == 0
