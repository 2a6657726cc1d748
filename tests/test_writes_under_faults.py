"""Writes under faults: a write that fails, a row deleted or upgraded while its report
is in flight, a database connection lost mid-run. None of them may send a conversion twice,
lose an answer that came in, or lose a real conversion.

Run on every database (``NEXMO_TEST_DB=postgres`` / ``mariadb`` for real locking and real
dropped connections).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, ClassVar

import pytest
from django.db import connection, connections
from django.utils import timezone

from django_nexmo_conversion import mark_converted, report_pending
from django_nexmo_conversion.backends.locmem import LocmemBackend, outbox
from django_nexmo_conversion.choices import MarkOutcome
from django_nexmo_conversion.conf import get_settings
from django_nexmo_conversion.models import Conversion, ConversionAttempt, Outcome, Status
from django_nexmo_conversion.reporting.claims import claim
from django_nexmo_conversion.reporting.outcomes import ERROR_TEXT_MAX, storable, write_answers
from django_nexmo_conversion.sandbox import Sandbox
from django_nexmo_conversion.transport.wire import Account, Answer, Report

from .helpers import configure, mark_many, one_at_a_time, run_together
from .processes import wait_until

LOCMEM = "django_nexmo_conversion.backends.locmem.LocmemBackend"


def sent_per_message() -> Counter[str]:
    return Counter(report.message_id for report in outbox)


def statuses() -> Counter[str]:
    return Counter(Conversion.objects.values_list("status", flat=True))


# --- stored error texts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "bad\x00body",
        "line\r\nbreak\tand \x1b[31mescape\x7f\x85",
        "lone \ud800 surrogate",
        "é" * (ERROR_TEXT_MAX * 3),
    ],
)
def test_stored_error_texts_are_printable_and_bounded(text: str) -> None:
    stored = storable(text)
    assert len(stored) <= ERROR_TEXT_MAX
    assert all(ch.isprintable() or ch == " " for ch in stored)
    stored.encode("utf-8")  # a lone surrogate would raise here (and in every database)


@pytest.mark.django_db
def test_an_error_body_with_a_nul_spoils_neither_its_row_nor_the_batch() -> None:
    """PostgreSQL refuses NUL in text: the whole group's write used to fail with it."""
    kept, poisoned, other = mark_many(3, prefix="NUL")
    token, claimed = claim(10)
    by_pk = {row.pk: row for row in claimed}
    answered = [
        (by_pk[kept.pk], Answer(Outcome.REPORTED, 200)),
        (by_pk[poisoned.pk], Answer(Outcome.REJECTED, 422, "HTTP 422: bad\x00id\x01" + "x" * 5000)),
        (by_pk[other.pk], Answer(Outcome.TRANSIENT, 503, "HTTP 503: down\x00")),
    ]

    assert write_answers(answered, token, get_settings()) == [
        Status.REPORTED,
        Status.FAILED,
        Status.PENDING,
    ]

    row = Conversion.objects.get(pk=poisoned.pk)
    assert row.last_error.startswith("HTTP 422: bad")
    assert "\x00" not in row.last_error
    assert "\x01" not in row.last_error
    assert len(row.last_error) <= ERROR_TEXT_MAX
    errors = ConversionAttempt.objects.values_list("error", flat=True)
    assert len(errors) == 3
    assert not any("\x00" in error for error in errors)
    assert not Conversion.objects.filter(status=Status.SENDING).exists()


@pytest.mark.django_db
def test_an_answer_the_database_refuses_is_stored_without_it_and_spoils_no_other() -> None:
    """A status code beyond the column's range (an odd backend): PostgreSQL and MariaDB refuse
    it, which used to fail the whole group's write."""
    kept, odd = mark_many(2, prefix="ODD")
    token, claimed = claim(10)
    by_pk = {row.pk: row for row in claimed}
    answered = [
        (by_pk[kept.pk], Answer(Outcome.REPORTED, 200)),
        (by_pk[odd.pk], Answer(Outcome.REJECTED, 70000, "HTTP 70000")),
    ]

    assert write_answers(answered, token, get_settings()) == [Status.REPORTED, Status.FAILED]

    assert statuses() == {Status.REPORTED: 1, Status.FAILED: 1}
    assert ConversionAttempt.objects.count() == 2
    row = Conversion.objects.get(pk=odd.pk)
    if connection.vendor != "sqlite":  # SQLite stores any integer
        assert (row.last_status_code, row.last_error) == (
            None,
            "(the answer could not be stored as it came: DataError)",
        )


# --- a send that raises, a row deleted while in flight -----------------------------------------


class ScriptedBackend(LocmemBackend):
    """Locmem, plus what the test asks for one message: raise, or delete its row first."""

    raise_for: ClassVar[str] = ""
    delete_for: ClassVar[str] = ""
    raised: ClassVar[threading.Event] = threading.Event()
    other_started: ClassVar[threading.Event] = threading.Event()

    def send(self, report: Report, account: Account) -> Answer:
        if report.message_id == self.raise_for:
            # Not before another send is in flight: on a loaded machine the pool may not have
            # started one yet, and the test is about the answers that come after the failure.
            type(self).other_started.wait(5)
            type(self).raised.set()
            raise RuntimeError("backend broke before sending")
        type(self).other_started.set()
        if report.message_id == self.delete_for:
            # What an admin deleting the row while its report is in flight does.
            Conversion.objects.filter(message__message_id=report.message_id).delete()
            connection.close()  # this pool thread's own connection
        elif self.raise_for:
            # The others answer after the failure, so they are in flight when it happens.
            type(self).raised.wait(5)
            time.sleep(0.05)
        return super().send(report, account)


@pytest.fixture
def scripted(settings: Any) -> type[ScriptedBackend]:
    configure(settings, BACKEND=f"{__name__}.ScriptedBackend")
    ScriptedBackend.raise_for = ScriptedBackend.delete_for = ""
    ScriptedBackend.raised = threading.Event()
    ScriptedBackend.other_started = threading.Event()
    return ScriptedBackend


@pytest.mark.django_db(transaction=True)
def test_a_send_that_raises_leaves_the_answers_of_the_others_written(scripted: Any) -> None:
    """The others' answers came in after the failure: they used to stay 'sending' and, once
    their lease ended, go to Nexmo a second time."""
    mark_many(4, prefix="RAISE")
    scripted.raise_for = "RAISE0001"

    with pytest.raises(RuntimeError, match="backend broke"):
        report_pending(concurrency=4)

    # Every row sent is recorded; the rest (the failed one, any the pool had not started)
    # is pending again, due at once and nothing spent. Nothing is left 'sending'.
    sent = set(sent_per_message())
    assert sent
    reported = Conversion.objects.filter(status=Status.REPORTED)
    assert set(reported.values_list("message__message_id", flat=True)) == sent
    assert not Conversion.objects.filter(status=Status.SENDING).exists()
    failed = Conversion.objects.get(message__message_id="RAISE0001")
    assert (failed.status, failed.attempt_count) == (Status.PENDING, 0)
    scripted.raise_for = ""
    assert report_pending(concurrency=4).reported == 4 - len(sent)
    assert set(sent_per_message().values()) == {1}
    assert len(sent_per_message()) == 4


@pytest.mark.django_db(transaction=True)
def test_a_row_deleted_while_in_flight_is_skipped_and_spoils_nothing(scripted: Any) -> None:
    """Its attempt's foreign key used to fail the whole group's COMMIT: the run raised and
    the rows answered with it were sent again."""
    mark_many(8, prefix="DEL")
    scripted.delete_for = "DEL0003"

    result = report_pending(concurrency=4)

    assert result.reported == 7
    assert not Conversion.objects.filter(message__message_id="DEL0003").exists()
    assert statuses() == {Status.REPORTED: 7}
    assert ConversionAttempt.objects.count() == 7
    assert set(sent_per_message().values()) == {1}
    assert report_pending(concurrency=4).attempted == 0


# --- the upgrade delivered=False -> True while false is in flight ------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "answer",
    [
        Answer(Outcome.TRANSIENT, 503, "HTTP 503", retry_after=0.0),
        Answer(Outcome.REPORTED, 200),
        Answer(Outcome.REJECTED, 422, "HTTP 422"),
    ],
    ids=["transient", "reported", "rejected"],
)
def test_an_upgrade_while_false_is_in_flight_sends_true_next(settings: Any, answer: Answer) -> None:
    """Driven step by step: claim (false goes out), upgrade, the answer to false comes back."""
    configure(settings, BACKEND=LOCMEM)
    mark_converted("UPG1", delivered=False)
    token, [row] = claim(1)

    upgraded = mark_converted("UPG1", delivered=True)

    assert upgraded.marked == MarkOutcome.UPGRADED
    assert (upgraded.status, upgraded.delivered) == (Status.SENDING, True)  # still in flight
    assert write_answers([(row, answer)], token, get_settings()) == [Status.PENDING]
    stored = Conversion.objects.get(pk=row.pk)
    assert (stored.status, stored.delivered, stored.attempt_count) == (Status.PENDING, True, 0)
    assert stored.reported_at is None
    assert ConversionAttempt.objects.filter(conversion=stored).count() == 1  # false's attempt

    assert report_pending().reported == 1
    [report] = outbox
    assert (report.message_id, report.delivered) == ("UPG1", True)
    assert Conversion.objects.get(pk=row.pk).status == Status.REPORTED


@pytest.mark.django_db(transaction=True)
def test_an_upgrade_during_a_real_send_that_fails_is_not_lost(settings: Any) -> None:
    """Real timing: the report of false is on the wire (the sandbox holds its 503 until the
    user has converted); Nexmo must end up with true."""
    on_the_wire, converted_now = threading.Event(), threading.Event()

    def hold(request: object) -> None:
        on_the_wire.set()
        converted_now.wait(10)

    with Sandbox(on_request=hold) as sandbox:
        configure(settings, sandbox=sandbox, TIMEOUT=15)
        sandbox.script(503, message_id="RACE1")
        mark_converted("RACE1", delivered=False)
        results, raised = [], []

        def run() -> None:
            try:
                results.append(report_pending())
            except BaseException as exc:  # pragma: no cover - asserted empty below
                raised.append(exc)
            finally:
                connections.close_all()

        sender = threading.Thread(target=run)
        sender.start()
        try:
            # Once the request has arrived, not once the row is "sending": between the claim's
            # commit and its read of the rows, a mark would make the run send true at once
            # (right too, but not the race this test is about).
            assert on_the_wire.wait(10)
            converted = mark_converted("RACE1", delivered=True)
        finally:
            converted_now.set()
            sender.join(20)
        assert not raised
        assert converted.marked == MarkOutcome.UPGRADED
        assert [r.form["delivered"] for r in sandbox.requests] == ["false"]
        assert wait_until(lambda: report_pending().reported == 1, timeout=10)
        assert [r.form["delivered"] for r in sandbox.requests] == ["false", "true"]
        assert Conversion.objects.get().status == Status.REPORTED


@pytest.mark.django_db(transaction=True)
def test_upgrades_racing_a_report_run_are_never_lost(settings: Any) -> None:
    """Marks of true against a report run sending false, let go at the same instant: every
    mark that says it upgraded ends with true at Nexmo; one that came after false was
    recorded as reported finds it reported (as the README says), and nothing else happens."""
    with Sandbox(latency=0.02) as sandbox:
        configure(settings, sandbox=sandbox, CONCURRENCY=4)
        count = 12
        for n in range(count):
            mark_converted(f"RACE{n:02d}", delivered=False)
        next_turn = one_at_a_time(iter(range(count + 1)))

        def work() -> tuple[str, str]:
            n = next_turn()
            if n == 0:
                report_pending()
                return "", ""
            message_id = f"RACE{n - 1:02d}"
            return message_id, mark_converted(message_id, delivered=True).marked

        returned, raised = run_together(count + 1, work)
        assert not raised
        marked = dict(item for item in returned if item[0])
        assert wait_until(
            lambda: (
                report_pending() is not None
                and not Conversion.objects.exclude(status=Status.REPORTED).exists()
            ),
            timeout=15,
        )
        last: dict[str, str] = {}
        for request in sandbox.requests:
            assert request.message_id is not None
            last[request.message_id] = request.form["delivered"]
        stored = dict(Conversion.objects.values_list("message__message_id", "delivered"))
        for message_id, outcome in marked.items():
            assert outcome in (MarkOutcome.UPGRADED, MarkOutcome.FOUND)
            expected = "true" if outcome == MarkOutcome.UPGRADED else "false"
            assert last[message_id] == expected, message_id
            assert stored[message_id] is (expected == "true")


# --- a database connection lost mid-run ---------------------------------------------------------


class ConnectionKillingBackend(LocmemBackend):
    """Locmem; its first send kills the reporting thread's database connection, as a
    failover, a restart or a proxy's idle timeout would."""

    victim: ClassVar[int | None] = None

    def send(self, report: Report, account: Account) -> Answer:
        cls = type(self)
        victim, cls.victim = cls.victim, None
        if victim is not None:
            # From a connection of its own: with CONCURRENCY 1 this is the reporting thread.
            killer = threading.Thread(target=kill_connection, args=(victim,))
            killer.start()
            killer.join()
        return super().send(report, account)


def kill_connection(victim: int) -> None:
    try:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_terminate_backend(%s)", [victim])
            else:
                cursor.execute(f"KILL CONNECTION {int(victim)}")
    finally:
        connection.close()


def backend_id() -> int:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_backend_pid()")
        else:
            cursor.execute("SELECT CONNECTION_ID()")
        return int(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_connection_lost_mid_run_sends_nothing_twice(settings: Any, concurrency: int) -> None:
    if connection.vendor == "sqlite":
        pytest.skip("needs a database server to drop the connection (NEXMO_TEST_DB=postgres)")
    configure(settings, BACKEND=f"{__name__}.ConnectionKillingBackend")
    mark_many(8, prefix="DROP")
    ConnectionKillingBackend.victim = backend_id()

    result = report_pending(concurrency=concurrency)

    assert result.reported == 8
    assert statuses() == {Status.REPORTED: 8}
    assert set(sent_per_message().values()) == {1}
    assert ConversionAttempt.objects.count() == 8
    assert Conversion.objects.filter(next_attempt_at__gt=timezone.now()).count() == 0
