"""NON_CONVERSION_AFTER: messages that never converted are reported delivered=false, once.

The concurrency test runs on whichever database the suite uses; on PostgreSQL
(``NEXMO_TEST_DB=postgres``, part of ``make test``) two threads really insert at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_nexmo_conversion import (
    mark_converted,
    record_message,
    record_sms_response,
    report_pending,
    signals,
)
from django_nexmo_conversion.exceptions import ConversionInputError
from django_nexmo_conversion.models import Conversion, SentMessage, Status
from django_nexmo_conversion.reporting.non_conversion import mark_non_conversions
from django_nexmo_conversion.sandbox import Sandbox
from django_nexmo_conversion.transport.wire import format_timestamp

from .helpers import configure, run_together

pytestmark = pytest.mark.django_db

WINDOW = 3600


@pytest.fixture(autouse=True)
def window(settings: Any) -> None:
    configure(settings, NON_CONVERSION_AFTER=WINDOW)


def sent(message_id: str, ago: timedelta) -> SentMessage:
    return record_message(message_id, sent_at=timezone.now() - ago)


def non_conversions() -> dict[str, datetime]:
    return dict(
        Conversion.objects.filter(delivered=False).values_list("message__message_id", "timestamp")
    )


def test_messages_past_the_window_are_marked_delivered_false() -> None:
    old = sent("0A000000DDDD0001", timedelta(hours=3))
    sent("0A000000DDDD0002", timedelta(minutes=10))  # window still open
    converted = sent("0A000000DDDD0003", timedelta(hours=3))
    mark_converted(converted)

    assert mark_non_conversions() == 1
    # Reported as of the moment the window closed: never in the future, the same for any run.
    assert non_conversions() == {old.message_id: old.sent_at + timedelta(seconds=WINDOW)}
    conversion = Conversion.objects.get(message=old)
    assert conversion.status == Status.PENDING
    assert conversion.next_attempt_at is not None
    assert conversion.next_attempt_at <= timezone.now()
    assert conversion.claim_token == ""
    assert Conversion.objects.get(message=converted).delivered is True


def test_only_once() -> None:
    sent("0A000000DDDD0004", timedelta(hours=2))
    assert mark_non_conversions() == 1
    assert mark_non_conversions() == 0
    assert Conversion.objects.count() == 1


def test_nothing_when_the_setting_is_off(settings: Any) -> None:
    configure(settings, NON_CONVERSION_AFTER=None)
    sent("0A000000DDDD0005", timedelta(days=30))
    assert mark_non_conversions() == 0
    assert not Conversion.objects.exists()


def test_timestamps_are_never_in_the_future() -> None:
    message = sent("0A000000DDDD0006", timedelta(seconds=WINDOW + 5))
    # A "now" ahead of the real clock must not close windows early.
    assert mark_non_conversions(now=timezone.now() + timedelta(days=1)) == 1
    assert non_conversions()[message.message_id] <= timezone.now()
    assert sent("0A000000DDDD0007", timedelta(seconds=10))
    assert mark_non_conversions(now=timezone.now() + timedelta(days=1)) == 0


def test_multipart_parts_follow_their_first_part() -> None:
    parts = record_sms_response(
        {
            "message-count": "3",
            "messages": [{"message-id": f"0A000000DDDD001{i}", "status": "0"} for i in range(1, 4)],
        }
    )
    SentMessage.objects.filter(pk__in=[m.pk for m in parts]).update(
        sent_at=timezone.now() - timedelta(hours=2)
    )
    assert mark_non_conversions() == 3
    stamps = non_conversions()
    assert sorted(stamps) == [m.message_id for m in parts]
    assert len(set(stamps.values())) == 1


def test_a_late_conversion_upgrades_an_unreported_non_conversion() -> None:
    message = sent("0A000000DDDD0008", timedelta(hours=2))
    mark_non_conversions()
    mark_converted(message)
    assert Conversion.objects.get(message=message).delivered is True


def test_only_windows_closed_within_the_lookback_are_marked() -> None:
    ancient = sent("0A000000DDDD0009", timedelta(days=90))
    recent = sent("0A000000DDDD0010", timedelta(hours=2))
    # Default lookback: one day after the window closed. Old history is not reported.
    assert mark_non_conversions() == 1
    assert list(non_conversions()) == [recent.message_id]
    assert mark_non_conversions(lookback=timedelta(days=30)) == 0
    assert mark_non_conversions(lookback=None) == 1
    assert ancient.message_id in non_conversions()


def test_conversion_marked_is_sent_for_each_new_row() -> None:
    sent("0A000000DDDD0011", timedelta(hours=2))
    sent("0A000000DDDD0012", timedelta(hours=2))
    seen: list[tuple[str, bool]] = []

    def on_marked(conversion: Conversion, **kwargs: Any) -> None:
        seen.append((conversion.message.message_id, conversion.delivered))

    signals.conversion_marked.connect(on_marked)
    try:
        mark_non_conversions()
        mark_non_conversions()
    finally:
        signals.conversion_marked.disconnect(on_marked)
    assert sorted(seen) == [("0A000000DDDD0011", False), ("0A000000DDDD0012", False)]


def test_work_is_done_in_bounded_batches() -> None:
    for i in range(25):
        sent(f"0A000000EEEE{i:04d}", timedelta(hours=2))
    with CaptureQueriesContext(connection) as queries:
        assert mark_non_conversions(batch_size=4) == 25
    inserts = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 7  # ceil(25 / 4)
    assert Conversion.objects.filter(delivered=False).count() == 25


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"now": datetime(2024, 1, 1)}, "now must be a timezone-aware"),
        ({"lookback": timedelta(0)}, "lookback"),
        ({"lookback": 3600}, "lookback"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: str) -> None:
    sent("0A000000DDDD0013", timedelta(hours=2))
    with pytest.raises(ConversionInputError, match=error):
        mark_non_conversions(**kwargs)
    assert not Conversion.objects.exists()


def test_reported_to_nexmo_as_delivered_false(nexmo_sandbox: Sandbox) -> None:
    message = sent("0A000000DDDD0014", timedelta(hours=5))
    mark_non_conversions()
    assert report_pending().reported == 1
    [request] = nexmo_sandbox.reported()
    assert request.form["message-id"] == message.message_id
    assert request.form["delivered"] == "false"
    assert request.form["timestamp"] == format_timestamp(
        message.sent_at + timedelta(seconds=WINDOW)
    )


def test_report_conversions_marks_and_reports_them(nexmo_sandbox: Sandbox) -> None:
    sent("0A000000DDDD0015", timedelta(hours=5))
    out = StringIO()
    call_command("report_conversions", stdout=out)
    assert "1 non-conversion(s) marked" in out.getvalue()
    assert [r.form["delivered"] for r in nexmo_sandbox.reported()] == ["false"]
    call_command("report_conversions", stdout=StringIO())
    assert len(nexmo_sandbox.requests) == 1


# --- exactly once under concurrent runs ------------------------------------------------------


def test_a_run_racing_another_counts_only_its_own_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run B marks everything between run A's read and A's insert: A inserts nothing, and
    says so. Deterministic, on every database."""
    for i in range(6):
        sent(f"0A000000FFFF{i:04d}", timedelta(hours=2))
    manager = Conversion.objects
    real_bulk_create = manager.bulk_create
    counts: dict[str, int] = {}

    def racing_bulk_create(*args: Any, **kwargs: Any) -> Any:
        if "B" not in counts:
            monkeypatch.setattr(manager, "bulk_create", real_bulk_create)
            counts["B"] = mark_non_conversions()  # the other run wins the race
        return real_bulk_create(*args, **kwargs)

    monkeypatch.setattr(manager, "bulk_create", racing_bulk_create)
    counts["A"] = mark_non_conversions()
    assert counts == {"B": 6, "A": 0}
    assert Conversion.objects.count() == 6


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_mark_each_message_exactly_once(nexmo_sandbox: Sandbox) -> None:
    total = 120
    for i in range(total):
        sent(f"0A00000C{i:08d}", timedelta(hours=2, seconds=i))
    retried: list[int] = []

    def run() -> int:
        mine = 0
        while True:
            try:
                # Small batches so the two runs overlap many times.
                created = mark_non_conversions(batch_size=7)
            except OperationalError:  # SQLite shared cache: the other writer holds it
                retried.append(1)
                continue
            mine += created
            if created == 0:
                return mine

    results, errors = run_together(2, run)

    assert errors == []
    assert Conversion.objects.count() == total
    if not retried:  # always so on PostgreSQL: every insert was counted by exactly one run
        assert sum(results) == total
    assert report_pending().reported == total
    ids = [r.form["message-id"] for r in nexmo_sandbox.reported()]
    assert len(ids) == len(set(ids)) == total
    assert set(ids) == set(SentMessage.objects.values_list("message_id", flat=True))
