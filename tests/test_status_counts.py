"""The status counts (``StatusCount``) the dashboard and the Prometheus gauge read equal a
recount of the conversions at every moment: before a sweep, after it, after deletions by
any path, and with threads marking, reporting, sweeping and deleting at once (PostgreSQL
and MariaDB, where writers really overlap)."""

from __future__ import annotations

import io
import itertools
import traceback
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection
from django.urls import reverse
from django.utils import timezone

from django_nexmo_conversion import insights, mark_converted, queries, report_pending
from django_nexmo_conversion.marking import retry_now
from django_nexmo_conversion.models import (
    Conversion,
    ConversionDashboard,
    SentMessage,
    Status,
    StatusCount,
)
from django_nexmo_conversion.retention import purge
from django_nexmo_conversion.rollups.by_status import (
    HOURLY_FOR,
    hourly_since,
    month_of,
    totals_since,
)
from django_nexmo_conversion.rollups.counters import lock_conflict
from django_nexmo_conversion.rollups.rates import hour_of
from django_nexmo_conversion.testing.factories import ConversionFactory

from .helpers import concurrent_writers, configure, mark_many, one_at_a_time, run_together

LOCMEM = "django_nexmo_conversion.backends.locmem.LocmemBackend"


def recount(since: Any = None) -> dict[str, int]:
    rows = Conversion.objects.all()
    if since is not None:
        rows = rows.filter(created_at__gte=hour_of(since))
    counted = Counter(rows.values_list("status", flat=True))
    return {status: counted.get(status, 0) for status in Status.values}


def stored() -> dict[str, int]:
    """What the counter rows alone say (right only after a sweep)."""
    counted: Counter[str] = Counter()
    for status, n in StatusCount.objects.values_list("status", "conversions"):
        counted[status] += n
    return {status: counted.get(status, 0) for status in Status.values}


def assert_exact() -> None:
    assert queries.status_counts() == recount()
    insights.refresh()
    assert stored() == recount()
    assert queries.status_counts() == recount()


@pytest.fixture
def locmem(settings: Any) -> None:
    configure(settings, BACKEND=LOCMEM, DISPATCH="manual")


@pytest.mark.django_db
@pytest.mark.usefixtures("locmem")
def test_the_counts_are_exact_before_and_after_each_sweep(settings: Any) -> None:
    mark_many(6, prefix="ST")
    # Marked, not swept yet: the reads count the rows changed since the sweep.
    assert StatusCount.objects.count() == 0
    assert queries.status_counts() == {"pending": 6, "sending": 0, "reported": 0, "failed": 0}
    assert_exact()
    report_pending()
    assert queries.status_counts()["reported"] == 6
    assert_exact()
    # A failure, a retry by hand, and an upgrade of a non-conversion.
    failed = ConversionFactory(status=Status.FAILED)
    assert_exact()
    retry_now(Conversion.objects.filter(pk=failed.pk))
    mark_converted("ST-FALSE", delivered=False)
    assert_exact()
    mark_converted("ST-FALSE", delivered=True)
    assert (
        queries.status_counts()
        == recount()
        == {
            "pending": 2,
            "sending": 0,
            "reported": 6,
            "failed": 0,
        }
    )
    assert_exact()


@pytest.mark.django_db
@pytest.mark.usefixtures("locmem")
def test_periods_count_the_conversions_marked_since_their_hour() -> None:
    now = timezone.now()
    for days in (0, 0, 2, 9, 40):
        ConversionFactory(created_at=now - timedelta(days=days))
    insights.refresh()
    ConversionFactory(status=Status.FAILED, created_at=now - timedelta(days=3))  # not swept
    starts = [now - timedelta(days=1), now - timedelta(days=7), now - timedelta(days=30)]
    assert totals_since(*starts) == [recount(since) for since in starts]
    assert [sum(c.values()) for c in totals_since(*starts)] == [2, 4, 5]
    windows = {w.key: (w.marked, w.reported, w.failed) for w in queries.window_counts(now=now)}
    assert windows == {"24h": (2, 0, 0), "7d": (4, 0, 1), "30d": (5, 0, 1)}


def count_rows() -> dict[tuple[Any, str], int]:
    return {(row.hour, row.status): row.conversions for row in StatusCount.objects.all()}


@pytest.mark.django_db
@pytest.mark.usefixtures("locmem")
def test_hours_older_than_the_dashboards_periods_are_counted_by_month() -> None:
    now = timezone.now()
    for days in (0, 3, 29, 45, 46, 80, 81, 200):
        ConversionFactory(created_at=now - timedelta(days=days))
    insights.refresh()
    since = hourly_since()
    rows = count_rows()
    # Each hour of the last HOURLY_FOR keeps its row; each older month has one.
    assert sorted(hour for hour, _ in rows if hour >= since) == sorted(
        hour_of(now - timedelta(days=days)) for days in (0, 3, 29)
    )
    assert {hour for hour, _ in rows if hour < since} == {
        month_of(hour_of(now - timedelta(days=days))) for days in (45, 46, 80, 81, 200)
    }
    assert sum(rows.values()) == 8
    assert_exact()
    starts = [now - timedelta(days=1), now - timedelta(days=7), now - timedelta(days=30)]
    assert totals_since(*starts) == [recount(since) for since in starts]
    # A rebuild writes the same rows.
    call_command("rebuild_conversion_stats", stdout=io.StringIO())
    assert count_rows() == rows


@pytest.mark.django_db
@pytest.mark.usefixtures("locmem")
def test_hourly_counts_that_aged_past_the_limit_move_into_their_month() -> None:
    now = timezone.now()
    old = [hour_of(now - timedelta(days=days, hours=hours)) for days, hours in ((40, 0), (40, 5))]
    for hour in old:
        ConversionFactory(created_at=hour, status=Status.REPORTED)
    insights.refresh()
    # Hours counted on their own rows while they were recent (or by a version before months).
    StatusCount.objects.all().delete()
    StatusCount.objects.bulk_create(
        StatusCount(hour=hour, status=Status.REPORTED, conversions=1) for hour in old
    )
    ConversionFactory(created_at=now)  # a recent hour, left as it is

    insights.refresh()

    assert count_rows() == {
        (month_of(old[0]), Status.REPORTED): 2,
        (hour_of(now), Status.PENDING): 1,
    }
    assert_exact()


@pytest.mark.django_db
def test_a_period_older_than_the_hourly_counts_is_refused() -> None:
    with pytest.raises(ValueError, match="31 days ago at most"):
        totals_since(timezone.now() - HOURLY_FOR - timedelta(hours=2))


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("locmem")
def test_a_deletion_by_any_path_leaves_the_counts_exact() -> None:
    mark_many(8, prefix="DEL")
    report_pending(limit=5)
    insights.refresh()
    mark_many(2, prefix="NEW")  # not swept yet when deleted
    # The admin's way (the ORM, one row at a time, with the cascade from the message).
    SentMessage.objects.get(message_id="DEL0000").delete()
    Conversion.objects.get(message__message_id="NEW0000").delete()
    # A bulk delete of a queryset.
    Conversion.objects.filter(message__message_id__in=["DEL0006", "DEL0007"]).delete()
    assert queries.status_counts() == recount()
    assert_exact()
    # The purge settles whole batches at once.
    Conversion.objects.filter(status=Status.REPORTED).update(reported_at=timezone.now())
    result = purge(older_than=timedelta(0), statuses=["reported", "pending"], batch_size=2)
    assert result.conversions == 6
    assert Conversion.objects.count() == 0
    assert queries.status_counts() == recount() == dict.fromkeys(Status.values, 0)
    assert_exact()


@pytest.mark.django_db
@pytest.mark.usefixtures("locmem")
def test_rebuild_recounts_the_status_counts() -> None:
    mark_many(4, prefix="RB")
    report_pending(limit=1)
    insights.refresh()
    StatusCount.objects.update(conversions=99)  # damaged behind the app's back
    Conversion.objects.filter(status=Status.PENDING).update(status=Status.FAILED)  # raw-ish
    call_command("rebuild_conversion_stats", stdout=io.StringIO())
    assert stored() == recount() == {"pending": 0, "sending": 0, "reported": 1, "failed": 3}
    assert queries.status_counts() == recount()


@pytest.mark.django_db
def test_rebuild_leaves_fresh_planner_statistics() -> None:
    """The rebuild rewrites the counter tables whole: it analyzes what it rewrote, so the
    dashboard's reads are planned from the new rows, not from the old statistics (InnoDB
    recalculates by itself, and its ANALYZE TABLE would commit the caller's transaction)."""
    mark_many(3, prefix="AN")
    executed: list[str] = []

    def watch(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        executed.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        call_command("rebuild_conversion_stats", stdout=io.StringIO())
    analyzed = " ".join(sql for sql in executed if sql.upper().startswith("ANALYZE"))
    if connection.vendor == "mysql":
        assert analyzed == ""
        return
    for model in (StatusCount, Conversion):
        assert model._meta.db_table in analyzed


# --- concurrent writers ------------------------------------------------------------------------

THREADS = 6
PER_THREAD = 12


@concurrent_writers
def test_marking_reporting_sweeping_and_deleting_at_once_lose_no_count(settings: Any) -> None:
    configure(settings, BACKEND=LOCMEM, DISPATCH="manual")
    next_turn = one_at_a_time(itertools.count())

    def work() -> int:
        me = next_turn()
        for index in range(PER_THREAD):
            mark_converted(f"C{me:02d}{index:013d}")
            step = (me + index) % 4
            if step == 0:
                report_pending(limit=3, concurrency=1)  # claims and answers
            elif step == 1:
                insights.refresh(batch_size=5)  # a sweep
            elif step == 2 and index:
                # A deletion, of a row another thread may be claiming or sweeping.
                Conversion.objects.filter(message__message_id=f"C{me:02d}{index - 1:013d}").delete()
        return me

    done, errors = run_together(THREADS, work)
    assert errors == [], "".join(traceback.format_exception(errors[0]))
    assert sorted(done) == list(range(THREADS))
    assert Conversion.objects.filter(status=Status.REPORTED).exists()
    assert queries.status_counts() == recount()
    assert_exact()
    per_hour = Counter(
        (hour_of(created), status)
        for created, status in Conversion.objects.values_list("created_at", "status")
    )
    assert {key: n for key, n in count_rows().items() if n} == dict(per_hour)


@concurrent_writers
def test_old_hours_move_into_their_months_while_sweeps_report_and_delete(settings: Any) -> None:
    configure(settings, BACKEND=LOCMEM, DISPATCH="manual")
    now = timezone.now()
    old = [
        ConversionFactory(created_at=now - timedelta(days=40, hours=n % 30))
        for n in range(THREADS * PER_THREAD)
    ]
    insights.refresh()
    # Counted one row per hour, as they were while recent (or by a version before months).
    StatusCount.objects.all().delete()
    per_hour = Counter((hour_of(c.created_at), c.status) for c in old)
    StatusCount.objects.bulk_create(
        StatusCount(hour=hour, status=status, conversions=n)
        for (hour, status), n in per_hour.items()
    )
    next_turn = one_at_a_time(itertools.count())

    def work() -> int:
        me = next_turn()
        mine = old[me * PER_THREAD : (me + 1) * PER_THREAD]
        for index, conversion in enumerate(mine):
            step = (me + index) % 4
            if step == 0:
                insights.refresh(batch_size=5)  # a sweep: it compacts among the rest
            elif step == 1:
                conversion.delete()  # an old hour's -1
            elif step == 2:
                report_pending(limit=2, concurrency=1)  # old rows change status
            else:
                mark_converted(f"M{me:02d}{index:013d}")  # a recent hour
        return me

    done, errors = run_together(THREADS, work)
    assert errors == [], "".join(traceback.format_exception(errors[0]))
    assert sorted(done) == list(range(THREADS))
    assert queries.status_counts() == recount()
    assert_exact()
    since = hourly_since()
    assert all(hour == month_of(hour) for hour, _ in count_rows() if hour < since)


class _Cause(Exception):
    def __init__(self, *args: object, sqlstate: str | None = None) -> None:
        super().__init__(*args)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("cause", "conflict"),
    [
        (_Cause("deadlock detected", sqlstate="40P01"), True),  # PostgreSQL (psycopg 3)
        (_Cause(1213, "Deadlock found when trying to get lock"), True),  # MariaDB
        (_Cause(1205, "Lock wait timeout exceeded"), True),
        (_Cause("relation does not exist", sqlstate="42P01"), False),
        (_Cause(1146, "Table doesn't exist"), False),
    ],
)
def test_only_a_lost_lock_conflict_is_left_to_the_next_sweep(cause: Exception, conflict: bool):
    error = DatabaseError(str(cause))
    error.__cause__ = cause  # as Django's error wrapper raises it: "from" the driver's
    assert lock_conflict(error) is conflict


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL statistics object")
def test_postgresql_knows_how_rare_a_changed_status_is() -> None:
    # Without it the planner takes each (counted, current) pair for thousands of rows, and the
    # reads cost enough to be JIT-compiled (70 ms at a million rows; bench/RESULTS.md).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT stxkeys FROM pg_statistic_ext WHERE stxname = %s", ["nexmo_conv_status_pair"]
        )
        assert cursor.fetchone() is not None


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("locmem")
def test_a_deletion_through_a_proxy_model_leaves_the_counts_exact() -> None:
    mark_many(6, prefix="PROXY")
    report_pending(limit=3)
    Conversion.objects.filter(message__message_id="PROXY0004").update(status=Status.FAILED)
    insights.refresh()
    # One row (the admin's way), then a queryset, through the dashboard's proxy model.
    ConversionDashboard.objects.get(message__message_id="PROXY0000").delete()
    ConversionDashboard.objects.filter(message__message_id__in=["PROXY0004", "PROXY0005"]).delete()
    assert queries.status_counts() == recount()
    assert_exact()


def rates_by_channel() -> tuple[int, int]:
    rows = insights.conversion_rates(by="channel")
    return sum(r.sent for r in rows), sum(r.converted for r in rows)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("locmem")
def test_deleting_in_the_admin_then_marking_again_counts_once(admin_client: Any) -> None:
    conversion = mark_converted("0A000000000AD001")
    mark_converted("0A000000000AD002")
    insights.refresh()
    url = reverse("admin:django_nexmo_conversion_conversion_delete", args=[conversion.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not Conversion.objects.filter(pk=conversion.pk).exists()
    # The message itself, deleted in the admin too (its conversion goes with it).
    gone = SentMessage.objects.get(message_id="0A000000000AD002")
    url = reverse("admin:django_nexmo_conversion_sentmessage_delete", args=[gone.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302

    mark_converted("0A000000000AD001")
    insights.refresh()
    assert rates_by_channel() == (1, 1)
    assert_exact()
    call_command("rebuild_conversion_stats", stdout=io.StringIO())
    assert rates_by_channel() == (1, 1)  # what a recount says
