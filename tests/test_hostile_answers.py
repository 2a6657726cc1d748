"""Hostile answers: a hostile ``Retry-After`` (unbounded, overflowing, garbage), waits that
must end at SIGTERM, and a server that trickles its answer past ``TIMEOUT``.

Tests never assert wall-clock times: the rate limiter runs on a fake clock, and the trickling
server says whether the client hung up before it had sent everything.
"""

from __future__ import annotations

import math
import select
import signal
import socket
import threading
import time
from datetime import timedelta
from types import TracebackType
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connections
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from django_nexmo_conversion import mark_converted, report_pending
from django_nexmo_conversion.choices import Outcome
from django_nexmo_conversion.conf import get_settings
from django_nexmo_conversion.models import Conversion, Status
from django_nexmo_conversion.reporting.outcomes import retry_delay
from django_nexmo_conversion.reporting.ratelimit import STATE_KEY, STOP_CHECK, RateLimiter
from django_nexmo_conversion.sandbox import DEFAULT_API_KEY, DEFAULT_API_SECRET, Sandbox
from django_nexmo_conversion.transport.answers import RETRY_AFTER_CEILING, parse_retry_after
from django_nexmo_conversion.transport.client import Client
from django_nexmo_conversion.transport.deadline import Deadline
from django_nexmo_conversion.transport.wire import Account, Report

from .helpers import FixedAnswerServer, configure, sandbox_settings
from .processes import django_admin, running, wait_until, worker_env

# --- Retry-After -----------------------------------------------------------------------------


def assert_sane(seconds: float | None) -> None:
    if seconds is not None:
        assert math.isfinite(seconds)
        assert 0.0 <= seconds <= RETRY_AFTER_CEILING
        timedelta(seconds=seconds)  # what the outcome adds to now: must not overflow


@given(st.text())
def test_any_retry_after_text_parses_to_a_sane_number_or_nothing(text: str) -> None:
    assert_sane(parse_retry_after(text))


@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers().map(str),
        st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
    )
)
def test_numbers_and_dates_of_any_size_parse_to_a_sane_number_or_nothing(text: str) -> None:
    assert_sane(parse_retry_after(text))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("9" * 20, RETRY_AFTER_CEILING),
        ("Fri, 31 Dec 9999 23:59:59 GMT", RETRY_AFTER_CEILING),
        ("Mon, 01 Jan 0001 00:00:00 GMT", 0.0),
        ("1e400", None),
        ("inf", None),
        ("-inf", None),
        ("nan", None),
        ("-5", None),
        ("1_000", None),
        ("soon", None),
        ("Fri, 99 Foo 9999 99:99:99 GMT", None),
        ("", None),
        (None, None),
    ],
)
def test_hostile_retry_after_values(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


@pytest.mark.django_db
@given(
    attempt=st.integers(min_value=1, max_value=64),
    retry_after=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)
def test_a_retry_delay_never_exceeds_retry_backoff_max(
    attempt: int, retry_after: float | None
) -> None:
    conf = get_settings()
    delay = retry_delay(attempt, retry_after, conf)
    assert 0.0 <= delay <= conf.retry_backoff_max
    timedelta(seconds=delay)


@pytest.mark.django_db
def test_a_day_long_retry_after_waits_retry_backoff_max_at_most(settings: Any) -> None:
    with Sandbox(retry_after=86400) as sandbox:
        configure(settings, sandbox=sandbox, RETRY_BACKOFF_MAX=30)
        sandbox.script(429)
        mark_converted("SLOW1")

        before = timezone.now()
        assert report_pending().retrying == 1

    row = Conversion.objects.get()
    assert row.status == Status.PENDING
    assert row.next_attempt_at is not None
    assert row.next_attempt_at <= before + timedelta(seconds=30) + (timezone.now() - before)


# --- the shared rate limiter ------------------------------------------------------------------


class FakeTime:
    """A clock that moves only when slept on, and counts the sleeping."""

    def __init__(self, stop_after: float = math.inf) -> None:
        self.now = 1000.0
        self.slept = 0.0
        self.stop_after = stop_after

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert math.isfinite(seconds)
        assert seconds >= 0
        self.now += seconds
        self.slept += seconds

    def should_stop(self) -> bool:
        return self.slept >= self.stop_after


@pytest.fixture
def shared_cache() -> Any:
    cache.clear()
    yield cache
    cache.clear()


@pytest.mark.parametrize("penalty", [86400.0, 1e300, math.inf, math.nan, -5.0])
def test_a_penalty_stops_the_workers_for_max_wait_at_most(
    shared_cache: Any, penalty: float
) -> None:
    fake = FakeTime()
    limiter = RateLimiter(10, clock=fake.clock, sleep=fake.sleep, max_wait=60)
    limiter.penalize(penalty)
    assert limiter.wait()
    assert fake.slept <= 60 + limiter.interval


def test_a_poisoned_shared_state_is_bounded_and_healed(shared_cache: Any) -> None:
    """An older version (or a host with a larger RETRY_BACKOFF_MAX) left a far-off restart."""
    fake = FakeTime()
    shared_cache.set(STATE_KEY, {"next": 1e300, "started": []})
    limiter = RateLimiter(10, clock=fake.clock, sleep=fake.sleep, max_wait=60)
    assert limiter.wait()
    assert fake.slept <= 60 + limiter.interval
    assert shared_cache.get(STATE_KEY)["next"] <= fake.now + 1


def test_a_wait_ends_as_soon_as_the_caller_must_stop(shared_cache: Any) -> None:
    fake = FakeTime(stop_after=1.0)
    limiter = RateLimiter(10, clock=fake.clock, sleep=fake.sleep, max_wait=3600)
    limiter.penalize(3600)
    assert limiter.wait(fake.should_stop) is False
    assert fake.slept <= 1.0 + STOP_CHECK
    # Not counted as started: the next caller's turn is not taken.
    assert shared_cache.get(STATE_KEY)["started"] == []


@pytest.mark.django_db(transaction=True)
def test_sigterm_ends_a_loop_waiting_out_a_429(tmp_path: Any) -> None:
    """One 429 with ``Retry-After: 86400`` used to put ``--loop`` to sleep for the whole
    penalty, deaf to SIGTERM. Now the shared pause is bounded and a run never sleeps it out
    past ``TIMEOUT``: the conversion it was about to send goes back to pending, unsent, and
    the loop goes on polling until SIGTERM ends it."""
    with Sandbox(retry_after=86400) as sandbox:
        sandbox.script(429)
        first, second = mark_converted("TERM1"), mark_converted("TERM2")
        env = worker_env(
            sandbox_settings(sandbox, RATE_LIMIT=5, RETRY_BACKOFF_MAX=3600, DISPATCH="manual"),
            PYTHONUNBUFFERED="1",  # the summary line is read from the log while it runs
        )
        command = django_admin("report_conversions", "--loop", "--concurrency", "1")
        with running(command, env, log=tmp_path / "loop.log") as process:
            assert wait_until(lambda: len(sandbox.requests) == 1, timeout=30)
            # The run that got the 429 ends, its summary written, only once it has come to the
            # second conversion and given it back rather than wait out the pause.
            log = tmp_path / "loop.log"
            assert wait_until(lambda: "retrying 1" in log.read_text(), timeout=30)
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(timeout=30)
        assert returncode == 0, (tmp_path / "loop.log").read_text()
        assert [r.status for r in sandbox.requests] == [429]
    states = dict(Conversion.objects.values_list("pk", "status"))
    assert states == {first.pk: Status.PENDING, second.pk: Status.PENDING}
    assert Conversion.objects.get(pk=second.pk).attempt_count == 0


# --- a server that trickles its answer -------------------------------------------------------


class Trickler:
    """A loopback HTTP server that sends its answer one byte at a time, each byte well within
    the client's read timeout. ``cut`` tells whether the client hung up before the end."""

    def __init__(self, answer: bytes, *, at_once: int = 0, pause: float = 0.05) -> None:
        self.answer = answer
        self.at_once = at_once
        self.pause = pause
        self.cut = threading.Event()
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Trickler:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        try:
            conn, _address = self._listener.accept()
        except OSError:
            return
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            head, _, body = request.partition(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
            )
            while len(body) < length:
                body += conn.recv(65536)
            conn.sendall(self.answer[: self.at_once])
            for index in range(self.at_once, len(self.answer)):
                if self._stop.is_set() or self._hung_up(conn):
                    self.cut.set()
                    return
                try:
                    conn.sendall(self.answer[index : index + 1])
                except OSError:
                    self.cut.set()
                    return
                time.sleep(self.pause)
            self.finished.set()

    @staticmethod
    def _hung_up(conn: socket.socket) -> bool:
        readable, _, _ = select.select([conn], [], [], 0)
        if not readable:
            return False
        try:
            return conn.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True


BODY = b'{"title": "ok"}'.ljust(200)
TRICKLED_HEAD = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 200\r\n\r\n" + BODY
OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"


def send_to(trickler: Trickler) -> Any:
    client = Client(base_url=trickler.base_url, timeout=1)
    report = Report("sms", "TRICKLE1", True, timezone.now())
    try:
        return client.send(report, Account(DEFAULT_API_KEY, DEFAULT_API_SECRET))
    finally:
        client.close()


def test_a_trickled_status_line_is_cut_at_the_deadline() -> None:
    # 60 bytes of head at 0.05 s each: 3 s, each byte well within the 1 s read timeout.
    with Trickler(TRICKLED_HEAD, pause=0.05) as trickler:
        answer = send_to(trickler)
        assert trickler.cut.wait(10)
    assert not trickler.finished.is_set()
    assert (answer.outcome, answer.status_code) == (Outcome.TRANSIENT, None)
    assert answer.error == "timed out after 1 s"


def test_a_trickled_body_is_cut_and_its_status_kept() -> None:
    """The status line said 200: Nexmo took the report. Taking the cut for a failure would
    send it again."""
    with Trickler(OK_HEAD + BODY, at_once=len(OK_HEAD), pause=0.05) as trickler:
        answer = send_to(trickler)
        assert trickler.cut.wait(10)
    assert not trickler.finished.is_set()
    assert (answer.outcome, answer.status_code) == (Outcome.REPORTED, 200)


@pytest.mark.django_db
def test_a_trickling_api_leaves_the_conversion_to_retry(settings: Any) -> None:
    with Trickler(TRICKLED_HEAD, pause=0.05) as trickler:
        configure(settings, **sandbox_settings(trickler.base_url, TIMEOUT=1))
        mark_converted("TRICKLE2")
        assert report_pending().retrying == 1
        assert trickler.cut.wait(10)
    row = Conversion.objects.get()
    assert (row.status, row.attempt_count) == (Status.PENDING, 1)
    assert row.last_error == "timed out after 1 s"


def test_a_shorter_deadline_is_kept_while_a_longer_one_runs() -> None:
    """One watchdog serves every request: a request with a later deadline, started first in
    another thread, must not make it sleep past this one's."""
    holding, release = threading.Event(), threading.Event()

    def long_request() -> None:
        with Deadline(60):
            holding.set()
            release.wait(30)

    other = threading.Thread(target=long_request)
    other.start()
    try:
        assert holding.wait(10)
        with Trickler(TRICKLED_HEAD, pause=0.05) as trickler:
            answer = send_to(trickler)
            assert trickler.cut.wait(10)
        assert not trickler.finished.is_set()
        assert answer.error == "timed out after 1 s"
    finally:
        release.set()
        other.join(10)


# --- bodies in any charset ---------------------------------------------------------------------


@pytest.mark.parametrize("charset", ["bogus", "rot13", "utf-16", "x" * 300])
@pytest.mark.django_db(transaction=True)
def test_a_200_in_an_unknown_charset_is_a_report_sent_once(settings: Any, charset: str) -> None:
    body = "OK".encode("utf-16") if charset == "utf-16" else b"OK \xff\xfe"
    with FixedAnswerServer(200, body, f"text/plain; charset={charset}") as server:
        configure(
            settings,
            BACKEND="django_nexmo_conversion.backends.http.HttpBackend",
            BASE_URL=server.url,
            API_KEY=DEFAULT_API_KEY,
            API_SECRET=DEFAULT_API_SECRET,
        )
        conversion = mark_converted("0A0000000000C5E1")
        for _run in range(3):
            report_pending()
        conversion.refresh_from_db()
        assert conversion.status == Status.REPORTED
        assert server.posts == 1


@pytest.mark.parametrize("charset", ["bogus", "rot13"])
@pytest.mark.django_db(transaction=True)
def test_an_error_in_an_unknown_charset_is_stored_redacted(settings: Any, charset: str) -> None:
    secret = "hostile-Secret-1234"

    def echo(request: bytes) -> bytes:
        return b"no such account: " + request  # the form body, api_secret included

    with FixedAnswerServer(422, echo, f"text/plain; charset={charset}") as server:
        configure(
            settings,
            BACKEND="django_nexmo_conversion.backends.http.HttpBackend",
            BASE_URL=server.url,
            API_KEY=DEFAULT_API_KEY,
            API_SECRET=secret,
            AUTH="params",
        )
        conversion = mark_converted("0A0000000000C5E2")
        report_pending()
        conversion.refresh_from_db()
        assert conversion.status == Status.FAILED
        assert "no such account" in conversion.last_error
        assert secret not in conversion.last_error


# --- a far-future Retry-After and the shared limiter -------------------------------------------


def test_a_shared_pause_lasts_a_minute_at_most_whatever_retry_backoff_max(
    shared_cache: Any,
) -> None:
    """One answer may delay its own conversion by up to RETRY_BACKOFF_MAX (6 hours by
    default), never every worker: the pause all share is a minute at most."""
    fake = FakeTime()
    limiter = RateLimiter(10, clock=fake.clock, sleep=fake.sleep, max_wait=21600)
    limiter.penalize(21600)
    assert limiter.wait()
    assert fake.slept <= 60 + limiter.interval


def test_a_state_paused_for_hours_is_healed_to_a_minute(shared_cache: Any) -> None:
    fake = FakeTime()
    shared_cache.set(STATE_KEY, {"next": fake.now + 21600, "started": []})
    limiter = RateLimiter(10, clock=fake.clock, sleep=fake.sleep, max_wait=21600)
    assert limiter.wait()
    assert fake.slept <= 60 + limiter.interval


@pytest.mark.django_db(transaction=True)
def test_a_far_future_retry_after_delays_its_own_conversion_and_pauses_no_run(
    settings: Any, shared_cache: Any
) -> None:
    with Sandbox(retry_after=253402300799) as sandbox:  # Retry-After: about year 9999
        configure(settings, sandbox=sandbox, RATE_LIMIT=5, RETRY_BACKOFF_MAX=21600)
        sandbox.script(429)
        throttled, waiting = mark_converted("0A0000000000FA01"), mark_converted("0A0000000000FA02")
        finished: list[Any] = []

        def run() -> None:
            try:
                finished.append(report_pending(concurrency=1))
            finally:
                connections.close_all()

        runner = threading.Thread(target=run, daemon=True)
        runner.start()
        # The run does not sleep out the pause: the rows wait in the database instead. (A
        # bound with a wide margin: before, it slept for hours.)
        runner.join(timeout=30)
        assert finished, "the run slept out the 429's pause"
        assert len(sandbox.requests) == 1
        throttled.refresh_from_db()
        waiting.refresh_from_db()
        assert throttled.status == waiting.status == Status.PENDING
        assert throttled.next_attempt_at is not None
        assert throttled.next_attempt_at <= timezone.now() + timedelta(seconds=21600)
        assert waiting.attempt_count == 0  # never sent: nothing spent


@pytest.mark.parametrize("charset", ["bogus", "utf-8"])
def test_a_hostile_error_body_never_raises_out_of_the_client(charset: str) -> None:
    """A 401 echoing the request in an unknown charset, or as JSON nested deeper than the
    parser goes: the client answers (an error, redacted), it never raises with the raw body
    in its frames for an error page or a reporter to show."""
    secret = "hostile-Secret-5678"

    def echo(request: bytes) -> bytes:
        return b"[" * 5000 + request

    with FixedAnswerServer(401, echo, f"application/json; charset={charset}") as server:
        client = Client(base_url=server.url, timeout=5)
        report = Report(
            channel="sms", message_id="0A0000000000C5E3", delivered=True, timestamp=timezone.now()
        )
        answer = client.send(report, Account(api_key="k", api_secret=secret, auth="params"))
    assert answer.outcome == Outcome.ACCOUNT_ERROR
    assert answer.status_code == 401
    assert secret not in answer.error
