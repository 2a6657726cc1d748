"""Retention: ``purge`` and ``manage.py purge_conversions``."""

from __future__ import annotations

import contextlib
import re
import threading
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_nexmo_conversion import insights, mark_converted, record_message
from django_nexmo_conversion.choices import ReplyOutcome
from django_nexmo_conversion.exceptions import ConversionInputError
from django_nexmo_conversion.models import (
    Conversion,
    ConversionAttempt,
    InboundMessage,
    SentMessage,
    Status,
)
from django_nexmo_conversion.retention import PurgeResult, purge
from django_nexmo_conversion.testing.factories import (
    ConversionAttemptFactory,
    ConversionFactory,
    SentMessageFactory,
)

pytestmark = pytest.mark.django_db

OLD = timedelta(days=100)


def message(
    name: str,
    *,
    age: timedelta = OLD,
    status: str | None = None,
    attempts: int = 0,
    parent: SentMessage | None = None,
) -> SentMessage:
    sent = SentMessageFactory(message_id=name, sent_at=timezone.now() - age, parent=parent)
    if status is not None:
        conversion = ConversionFactory(message=sent, status=status)
        for _ in range(attempts):
            ConversionAttemptFactory(conversion=conversion)
    return sent


@pytest.fixture
def world() -> dict[str, SentMessage]:
    rows = {
        "reported": message("REPORTED", status=Status.REPORTED, attempts=2),
        "failed": message("FAILED", status=Status.FAILED, attempts=3),
        "unconverted": message("UNCONVERTED"),
        "pending": message("PENDING", status=Status.PENDING, attempts=1),
        "sending": message("SENDING", status=Status.SENDING),
        "recent": message("RECENT", age=timedelta(days=2), status=Status.REPORTED, attempts=1),
    }
    # A long SMS, reported whole.
    head = rows["long"] = message("LONG-1", status=Status.REPORTED, attempts=1)
    message("LONG-2", status=Status.REPORTED, attempts=1, parent=head)
    # A long SMS with one part still pending: it must go whole or not at all.
    split = rows["split"] = message("SPLIT-1", status=Status.REPORTED)
    message("SPLIT-2", status=Status.PENDING, parent=split)
    return rows


def left() -> set[str]:
    return set(SentMessage.objects.values_list("message_id", flat=True))


def test_default_purges_finished_sends_only(world: dict[str, SentMessage]) -> None:
    result = purge(older_than=timedelta(days=30))
    assert left() == {"PENDING", "SENDING", "RECENT", "SPLIT-1", "SPLIT-2"}
    # REPORTED, FAILED, UNCONVERTED, LONG-1, LONG-2; their conversions and attempts.
    assert (result.messages, result.conversions, result.attempts) == (5, 4, 2 + 3 + 1 + 1)
    assert not ConversionAttempt.objects.filter(conversion__message__message_id="FAILED").exists()
    assert Conversion.objects.count() == 5  # PENDING, SENDING, RECENT, SPLIT-1, SPLIT-2


def test_status_narrows_and_pending_must_be_asked_for(world: dict[str, SentMessage]) -> None:
    purge(older_than=timedelta(days=30), statuses=["failed"])
    assert "FAILED" not in left()
    assert {"REPORTED", "UNCONVERTED", "PENDING"} <= left()
    purge(older_than=timedelta(days=30), statuses=["pending"])
    assert "PENDING" not in left()
    # SPLIT has a reported first part and a pending second one: both states now allowed.
    purge(older_than=timedelta(days=30), statuses=["pending", "reported"])
    assert not {"SPLIT-1", "SPLIT-2"} & left()
    assert {"SENDING", "RECENT"} <= left()


def test_sending_is_never_purged(world: dict[str, SentMessage]) -> None:
    with pytest.raises(ConversionInputError, match="status must be among"):
        purge(older_than=timedelta(days=1), statuses=["sending"])
    purge(older_than=timedelta(days=1), statuses=["reported", "failed", "pending", "unconverted"])
    assert left() == {"SENDING"}


def test_dry_run_counts_exactly_what_a_real_run_deletes(world: dict[str, SentMessage]) -> None:
    before = left()
    dry = purge(older_than=timedelta(days=30), dry_run=True)
    assert left() == before
    real = purge(older_than=timedelta(days=30))
    assert (dry.messages, dry.conversions, dry.attempts) == (
        real.messages,
        real.conversions,
        real.attempts,
    )


def reply(name: str, *, age: timedelta = OLD, answers: SentMessage | None = None) -> None:
    at = timezone.now() - age
    outcome = ReplyOutcome.CONVERTED if answers else ReplyOutcome.UNMATCHED
    InboundMessage.objects.create(
        message_id=name, replied_at=at, received_at=at, matched=answers, outcome=outcome
    )


def replies_left() -> set[str]:
    return set(InboundMessage.objects.values_list("message_id", flat=True))


@pytest.mark.parametrize("dry_run", [True, False])
def test_old_replies_go_with_what_they_answered(
    world: dict[str, SentMessage], dry_run: bool
) -> None:
    reply("IN-UNMATCHED")
    reply("IN-TO-REPORTED", answers=world["reported"])
    reply("IN-TO-PENDING", answers=world["pending"])  # its message stays: so does the reply
    reply("IN-RECENT", age=timedelta(days=2))

    result = purge(older_than=timedelta(days=30), dry_run=dry_run, batch_size=1)

    assert result.inbound == 2
    if dry_run:
        assert len(replies_left()) == 4
    else:
        assert replies_left() == {"IN-TO-PENDING", "IN-RECENT"}
        assert result.batches == 4 + 2  # four sends (a long SMS is one), then two replies


def test_deletes_in_bounded_batches() -> None:
    for i in range(11):
        message(f"BATCH{i:02d}", status=Status.REPORTED, attempts=1)
    with CaptureQueriesContext(connection) as queries:
        result = purge(older_than=timedelta(days=30), batch_size=4)
    assert result.batches == 3
    assert (result.messages, result.conversions, result.attempts) == (11, 11, 11)
    table = SentMessage._meta.db_table
    deletes = [
        q["sql"] for q in queries if q["sql"].upper().startswith("DELETE") and table in q["sql"]
    ]
    assert len(deletes) == 3
    assert not SentMessage.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"older_than": timedelta(days=-1)}, "negative"),
        ({"older_than": 30}, "timedelta or an aware datetime"),
        ({"older_than": timedelta(days=1), "batch_size": 0}, "batch_size"),
        ({"older_than": timedelta(days=1), "statuses": []}, "at least one status"),
        ({"older_than": timedelta(days=1), "statuses": ["done"]}, "'done'"),
    ],
)
def test_bad_arguments_delete_nothing(
    world: dict[str, SentMessage], kwargs: dict[str, Any], error: str
) -> None:
    before = left()
    with pytest.raises(ConversionInputError, match=error):
        purge(**kwargs)
    assert left() == before


# --- the command ----------------------------------------------------------------------------


def command(*args: str) -> str:
    out = StringIO()
    call_command("purge_conversions", *args, stdout=out)
    return out.getvalue()


def test_command_prints_counts(world: dict[str, SentMessage]) -> None:
    output = command("--older-than", "30", "--batch-size", "2")
    assert (
        "Deleted 5 message(s), 4 conversion(s), 7 attempt(s), 0 inbound message(s) in 2 batch(es)."
        in output
    )
    assert "REPORTED" not in left()


def test_command_dry_run(world: dict[str, SentMessage]) -> None:
    output = command(
        "--older-than", "30", "--status", "failed", "--status", "unconverted", "--dry-run"
    )
    assert (
        "Would delete 2 message(s), 1 conversion(s), 3 attempt(s), 0 inbound message(s)" in output
    )
    assert {"FAILED", "UNCONVERTED"} <= left()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--older-than", "0"], "at least 1"),
        (["--older-than", "30", "--status", "sending"], "invalid choice"),
        (["--older-than", "30", "--batch-size", "0"], "--batch-size"),
        ([], "--older-than"),
    ],
)
def test_command_errors(world: dict[str, SentMessage], args: list[str], error: str) -> None:
    before = left()
    with pytest.raises(CommandError, match=error):
        command(*args)
    assert left() == before


def test_purge_result_summary() -> None:
    assert PurgeResult(1, 2, 3, inbound=4).summary() == (
        "1 message(s), 2 conversion(s), 3 attempt(s), 4 inbound message(s)"
    )


# --- a purge beside live traffic -----------------------------------------------------------------

#: The purge's walk for the keys of its next batch (not a locking read, not the fold's).
KEYS_QUERY = re.compile(r"""^\s*SELECT\b.*sent_at[`"]?\s*<(?!.*FOR UPDATE)""", re.S | re.I)


def after_the_purge_picks_its_batch(action: Any, *, before: bool = False) -> Any:
    """An execute wrapper running ``action`` once, right after (or before) the purge's first
    query for a batch's keys: what live traffic can do between its choice and its delete."""
    done: list[bool] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        ripe = not done and KEYS_QUERY.search(sql) is not None
        if ripe and before:
            done.append(True)
            action()
        result = execute(sql, params, many, context)
        if ripe and not before:
            done.append(True)
            action()
        return result

    wrapper.done = done  # type: ignore[attr-defined]
    return wrapper


def in_another_connection(work: Any) -> None:
    """Run ``work`` in a thread of its own (its own connection, its own commit) and wait."""
    raised: list[BaseException] = []

    def thread() -> None:
        try:
            work()
        except BaseException as exc:  # pragma: no cover - asserted below
            raised.append(exc)
        finally:
            connections.close_all()

    runner = threading.Thread(target=thread)
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive()
    assert not raised, raised


@pytest.mark.parametrize("where", ["same transaction", "another connection"])
@pytest.mark.django_db(transaction=True)
def test_a_conversion_marked_while_the_purge_runs_is_never_deleted(where: str) -> None:
    if where == "another connection" and connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer at a time: no mark commits inside a purge's batch")
    old = message("RACE-OLD")  # never converted: the purge picks it
    insights.refresh()

    def mark() -> None:
        mark_converted("RACE-OLD")

    action = mark if where == "same transaction" else lambda: in_another_connection(mark)
    hook = after_the_purge_picks_its_batch(action)
    with connection.execute_wrapper(hook):
        purge(older_than=timedelta(days=30))  # neither loses the mark nor fails

    assert hook.done
    conversion = Conversion.objects.get(message__message_id="RACE-OLD")
    assert conversion.status == Status.PENDING
    assert conversion.message_id == old.pk


@pytest.mark.django_db(transaction=True)
def test_an_old_send_recorded_after_the_purges_count_is_counted_before_it_goes() -> None:
    message("COUNTED-OLD")
    insights.refresh()

    def record() -> None:
        record_message("LATE-OLD", sent_at=timezone.now() - OLD)

    hook = after_the_purge_picks_its_batch(record, before=True)
    with connection.execute_wrapper(hook):
        purge(older_than=timedelta(days=30))
    assert hook.done
    purge(older_than=timedelta(days=30))  # a later purge (or a sweep) counts it first

    assert not SentMessage.objects.exists()
    sent = sum(row.sent for row in insights.conversion_rates(by="channel"))
    assert sent == 2


@pytest.mark.django_db(transaction=True)
def test_marks_racing_purges_are_never_lost_and_never_fail_them() -> None:
    """Natural timing: two threads mark old, never converted messages while two purge them
    (a batch a message). Every mark that returned is still there; no purge failed."""
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer at a time: nothing overlaps")
    names = [f"NATURAL{n:04d}" for n in range(60)]
    for name in names:
        message(name)
    insights.refresh()
    marked: list[int] = []
    raised: list[BaseException] = []
    start = threading.Barrier(4)

    def purging() -> None:
        start.wait()
        for _round in range(3):
            purge(older_than=timedelta(days=30), batch_size=1)

    def marking(chosen: list[str]) -> None:
        start.wait()
        for name in chosen:
            # Its message purged as it was marked: said (ConversionInputError), nothing stored.
            with contextlib.suppress(ConversionInputError):
                marked.append(mark_converted(name).pk)

    def thread(work: Any, *args: Any) -> threading.Thread:
        def run() -> None:
            try:
                work(*args)
            except BaseException as exc:  # pragma: no cover - asserted below
                raised.append(exc)
            finally:
                connections.close_all()

        return threading.Thread(target=run)

    threads = [
        thread(purging),
        thread(purging),
        thread(marking, names[::2]),
        thread(marking, names[1::2]),
    ]
    for each in threads:
        each.start()
    for each in threads:
        each.join(timeout=120)
    assert not raised, raised
    assert marked
    assert Conversion.objects.filter(pk__in=marked).count() == len(marked)
