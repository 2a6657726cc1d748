"""Conversions by reporting status, per hour of marking (``StatusCount``): what the
dashboard's status panel and periods and the Prometheus gauge read, at the same cost at a
thousand rows as at ten million.

A conversion's status changes in many places (marking, claims, answers, retries, leases) and
none of them counts anything: each row keeps ``counted_status``, the status it is counted
under, and every sweep moves the rows whose status changed since (:func:`fold_statuses`).
Reads add what changed since the last sweep (:func:`totals`, :func:`totals_since`), found
through the ``(counted_status, status)`` index one pair at a time, so they are exact at
once, and cost the rows changed in one sweep interval, not the table. A deleted conversion
leaves a -1 for its count (``StatusCountChange``) in the deleting transaction: a
``pre_delete`` receiver, or, for a whole batch of ``purge_conversions``,
:func:`settled_deletion`. Only the sweeps write the counter rows, in key order; two sweeps
creating the same new rows at once may still deadlock on InnoDB's gap locks, and then one
batch rolls back whole, to be counted by the next sweep.

Hours marked more than :data:`HOURLY_FOR` ago are counted one row per month and status (at the
month's first hour): only the all-time totals read them, and a year of hours was 35,000 rows
to add up on every dashboard view. Every writer counts an old hour into its month, and each
sweep moves the hours that aged past it since (:func:`compact_counts`).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.db import models, transaction
from django.db.models import Count, F, Q, Sum, Value
from django.db.models.signals import pre_delete
from django.utils import timezone

from ..choices import Status
from ..models import Conversion, SentMessage, StatusCount, StatusCountChange
from . import counters, rates
from .rates import hour_of

__all__ = [
    "HOURLY_FOR",
    "changed_pairs",
    "compact_counts",
    "connect_deletions",
    "counted_hour",
    "fold_deletions",
    "fold_statuses",
    "hourly_since",
    "month_of",
    "rebuild_counts",
    "settled_deletion",
    "totals",
    "totals_since",
]

COUNTS = ("conversions",)

#: How long an hour of marking keeps a count row of its own: the dashboard's periods (the
#: longest is 30 days, ``queries.WINDOWS``) start at a whole hour, so their hours must be
#: apart; a day's margin. Older hours are counted by month.
HOURLY_FOR = timedelta(days=31)


def month_of(moment: datetime) -> datetime:
    """The first hour of ``moment``'s month, in UTC (as every count row's hour): where old
    hours are counted."""
    return hour_of(moment).replace(day=1, hour=0)


def hourly_since(now: datetime | None = None) -> datetime:
    """The oldest hour still counted on its own row."""
    return hour_of((now or timezone.now()) - HOURLY_FOR)


def counted_hour(hour: datetime, since: datetime) -> datetime:
    """The count row's hour for conversions marked in ``hour``: that hour from ``since`` on,
    before it its month."""
    return hour if hour >= since else month_of(hour)


def changed_pairs() -> list[tuple[str, str]]:
    """Every (counted, current) status pair of a row whose status changed since it was
    counted (new rows, counted under "", included). Queried one pair at a time: each is an
    equality range of the ``(counted_status, status)`` index, where an OR of them all can
    make a planner (SQLite's, after ANALYZE) scan the table."""
    return [
        (counted, current)
        for current in Status.values
        for counted in ["", *Status.values]
        if counted != current
    ]


def _moves(rows: Any) -> dict[counters.FrozenKey, dict[str, int]]:
    """The counter changes that (created_at, counted_status, status) rows call for."""
    totals: dict[counters.FrozenKey, dict[str, int]] = {}
    since = hourly_since()
    for created_at, counted, current in rows:
        hour = counted_hour(hour_of(created_at), since)
        if counted:
            counters.tally(totals, {"hour": hour, "status": counted}, {"conversions": -1})
        counters.tally(totals, {"hour": hour, "status": current}, {"conversions": 1})
    return totals


def fold_statuses(*, batch_size: int) -> int:
    """Move one batch of conversions whose status changed to their new status's count, in
    one transaction; returns how many it took (``folding.fold`` runs the batches)."""
    with transaction.atomic():
        counters.take_write_lock(Conversion, "counted_status")
        batch: list[tuple[Any, ...]] = []
        for counted, current in changed_pairs():
            if len(batch) >= batch_size:
                break
            # Locked, so no claim or answer changes their status before this commits (a
            # claim skips them; an answer waits a moment).
            rows = counters.locked(
                Conversion.objects.filter(counted_status=counted, status=current)
            )
            batch += rows.order_by().values_list("pk", "created_at", "counted_status", "status")[
                : batch_size - len(batch)
            ]
        counters.add_all(StatusCount, _moves(row[1:] for row in batch), counts=COUNTS)
        Conversion.objects.filter(pk__in=[row[0] for row in batch]).update(
            counted_status=F("status")
        )
    return len(batch)


def fold_deletions(*, batch_size: int) -> int:
    """Add one batch of the changes deletions left to their counts, in one transaction;
    returns how many it took."""
    with transaction.atomic():
        counters.take_write_lock(StatusCountChange, "change")
        rows = counters.locked(StatusCountChange.objects.all())
        batch = list(rows.order_by().values_list("pk", "hour", "status", "change")[:batch_size])
        totals: dict[counters.FrozenKey, dict[str, int]] = {}
        since = hourly_since()
        for _pk, hour, status, change in batch:
            key = {"hour": counted_hour(hour, since), "status": status}
            counters.tally(totals, key, {"conversions": change})
        counters.add_all(StatusCount, totals, counts=COUNTS)
        StatusCountChange.objects.filter(pk__in=[row[0] for row in batch]).delete()
    return len(batch)


def compact_counts(*, batch_size: int) -> int:
    """Move one batch of hourly counts older than :data:`HOURLY_FOR` into their months' rows,
    in one transaction; returns how many hourly rows it moved. Each sweep's fold runs it:
    about a day's worth of hours ages past the limit each day."""
    # Which rows aged, read without a lock or a transaction: most sweeps find none, and the
    # months' rows (a handful a year, read too and told apart here: a filter on the day and
    # hour would be cut in the database's session time zone) are not locked for nothing.
    old = StatusCount.objects.filter(hour__lt=hourly_since()).values_list("pk", "hour")
    aged = [pk for pk, hour in old.order_by("hour", "status") if hour != month_of(hour)]
    if not aged:
        return 0
    with transaction.atomic():
        counters.take_write_lock(StatusCount, "conversions")
        rows = counters.locked(StatusCount.objects.filter(pk__in=aged[:batch_size]))
        batch = list(
            rows.order_by("hour", "status").values_list("pk", "hour", "status", "conversions")
        )
        totals: dict[counters.FrozenKey, dict[str, int]] = {}
        for _pk, hour, status, conversions in batch:
            key = {"hour": month_of(hour), "status": status}
            counters.tally(totals, key, {"conversions": conversions})
        StatusCount.objects.filter(pk__in=[row[0] for row in batch]).delete()
        counters.add_all(StatusCount, totals, counts=COUNTS)
    return len(batch)


def _live(periods: Sequence[datetime | None]) -> list[dict[str, int]]:
    """For each period's start (None: all time), the counts of the conversions marked since
    then: the counter rows, the deletions' changes not counted in yet, and the rows whose
    status changed since the last sweep, in one statement (one snapshot: a sweep committing
    between two reads would count its rows twice or not at all)."""
    counted = StatusCount.objects.order_by()
    deleted = StatusCountChange.objects.order_by()
    earliest = None if None in periods else min(p for p in periods if p is not None)
    if earliest is not None:
        counted = counted.filter(hour__gte=earliest)
        deleted = deleted.filter(hour__gte=earliest)

    def per_period(aggregate: Callable[[Q | None], Any], field: str) -> dict[str, Any]:
        # One column per period, each aggregating only the rows since that period's start.
        return {
            f"n{index}": aggregate(None if start is None else Q(**{f"{field}__gte": start}))
            for index, start in enumerate(periods)
        }

    # Every part's rows: (the status counted up, the status counted down or "", counts...).
    parts: list[models.QuerySet[Any, Any]] = [
        counted.values_list("status")
        .annotate(down=Value(""))
        .annotate(**per_period(lambda since: Sum("conversions", filter=since), "hour")),
        deleted.values_list("status")
        .annotate(down=Value(""))
        .annotate(**per_period(lambda since: Sum("change", filter=since), "hour")),
    ]
    for was, now in changed_pairs():
        # The pair alone in WHERE (the periods are in the counts): a range on created_at
        # there would tempt a planner to walk that index instead.
        moved = Conversion.objects.filter(counted_status=was, status=now).order_by()
        parts.append(
            moved.annotate(up=Value(now), down=Value(was))
            .values_list("up", "down")
            .annotate(**per_period(lambda since: Count("pk", filter=since), "created_at"))
        )
    found = [dict.fromkeys(Status.values, 0) for _period in periods]
    for up, down, *numbers in parts[0].union(*parts[1:], all=True):
        for counts, n in zip(found, numbers, strict=True):
            counts[up] += n or 0
            if down:
                counts[down] -= n or 0
    return found


def totals() -> dict[str, int]:
    """How many conversions are in each status now (every status, zeros included)."""
    return _live([None])[0]


def totals_since(*starts: datetime) -> list[dict[str, int]]:
    """For each of ``starts`` (cut at its whole UTC hour, within :data:`HOURLY_FOR` of now),
    how many conversions marked since then are in each status now; one query for them all."""
    hours = [hour_of(start) for start in starts]
    since = hourly_since()
    if any(hour < since for hour in hours):
        # Older hours are counted by month: a count from one would be wrong, not slow.
        raise ValueError(f"totals_since() counts from {HOURLY_FOR.days} days ago at most")
    return _live(hours)


# --- deletion ---------------------------------------------------------------------------------

_settled: contextvars.ContextVar[bool] = contextvars.ContextVar("nexmo_settled", default=False)


@contextlib.contextmanager
def settled_deletion(conversions: models.QuerySet[Conversion]) -> Iterator[None]:
    """Take ``conversions`` out of their counts before the caller deletes them in the
    ``with`` block, in the same transaction: a few statements for the whole set, where the
    ``pre_delete`` receiver would take two per row."""
    ids = list(conversions.select_for_update().values_list("pk", flat=True))
    rows = Conversion.objects.filter(pk__in=ids).exclude(counted_status="")
    totals: dict[counters.FrozenKey, dict[str, int]] = {}
    for created_at, counted in rows.values_list("created_at", "counted_status"):
        key = {"hour": hour_of(created_at), "status": counted}
        counters.tally(totals, key, {"change": -1})
    StatusCountChange.objects.bulk_create(
        StatusCountChange(**dict(key), **change) for key, change in totals.items()
    )
    rows.update(counted_status="")
    token = _settled.set(True)
    try:
        yield
    finally:
        _settled.reset(token)


def _uncount(sender: Any, instance: Conversion, **kwargs: Any) -> None:
    # Any other deletion (the admin, a cascade, a queryset, a proxy model, your code): read
    # what the row is counted under with the row locked (a sweep may have moved it since it
    # was loaded), and leave a -1 for that count, in the deleting transaction. Its converted
    # count leaves the hourly rollups too, so marking the message again counts it once.
    if _settled.get():
        return
    # On SQLite, a write first: the deletion's transaction must not start as a reader.
    counters.take_write_lock(Conversion, "counted_status")
    rates.forget_conversion(instance.pk)
    counted = (
        Conversion.objects.select_for_update()
        .filter(pk=instance.pk)
        .values_list("counted_status", flat=True)
        .first()
    )
    if counted:
        StatusCountChange.objects.create(
            hour=hour_of(instance.created_at), status=counted, change=-1
        )


def _uncount_message(sender: Any, instance: SentMessage, **kwargs: Any) -> None:
    # A send deleted by hand leaves the hourly rollups as a recount would (a purge keeps it).
    if _settled.get():
        return
    counters.take_write_lock(SentMessage, "counted")
    rates.forget_message(instance.pk)


def connect_deletions() -> None:
    """Connect the deletion receivers to ``Conversion`` and ``SentMessage`` and to every proxy
    of them (the app's ``ConversionDashboard``, a project's own): Django sends ``pre_delete``
    with the proxy as the sender. Called by the app's ``ready()``, once every app's models
    are loaded; connected per model, so other models keep their fast deletes."""
    for model in apps.get_models():
        concrete = model._meta.concrete_model
        if concrete is Conversion:
            uid = f"nexmo_conversion_uncount:{model._meta.label}"
            pre_delete.connect(_uncount, sender=model, dispatch_uid=uid)
        elif concrete is SentMessage:
            uid = f"nexmo_conversion_uncount_message:{model._meta.label}"
            pre_delete.connect(_uncount_message, sender=model, dispatch_uid=uid)


# --- rebuild ----------------------------------------------------------------------------------


def rebuild_counts(*, batch_size: int = 5000) -> int:
    """Recount the status counts from the conversions; returns the counter rows written.
    One transaction; run it when the app is quiet (see ``rates.rebuild_rates``)."""
    with transaction.atomic():
        Conversion.objects.exclude(counted_status=F("status")).update(counted_status=F("status"))
        totals: dict[counters.FrozenKey, dict[str, int]] = {}
        since = hourly_since()
        rows = Conversion.objects.order_by().values_list("created_at", "status")
        for created_at, status in rows.iterator(chunk_size=batch_size):
            hour = counted_hour(hour_of(created_at), since)
            counters.tally(totals, {"hour": hour, "status": status}, {"conversions": 1})
        StatusCount.objects.all().delete()
        StatusCountChange.objects.all().delete()
        StatusCount.objects.bulk_create(
            [StatusCount(**dict(key), **counts) for key, counts in totals.items()],
            batch_size=batch_size,
        )
    return len(totals)
