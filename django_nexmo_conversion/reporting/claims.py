"""Which worker sends which conversion: claims with an expiring lease, and their release.

A claimed row is ``sending`` with ``claim_token`` naming its claim and ``next_attempt_at``
holding the lease's end; a worker that dies loses its rows to the next claim once the lease
runs out.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from .. import signals
from ..conf import ConversionSettings, get_settings
from ..models import Conversion, Status


def lease_rounds(conf: ConversionSettings) -> int:
    """How many rounds of requests surely fit in one lease.

    Every row of a batch must go out before the batch's lease ends, or another worker could
    take it over and send it too. A request may take TIMEOUT to connect plus TIMEOUT to read.
    """
    return int(conf.lease_seconds // (2 * conf.timeout + 1))


def batch_size(concurrency: int, conf: ConversionSettings, *, queued: bool = False) -> int:
    """Rows per claim: no more rounds of ``concurrency`` requests than the lease allows, one
    fewer for a batch ``queued`` behind the one still sending (it may wait that round)."""
    rounds = lease_rounds(conf) - (1 if queued else 0)
    return concurrency * max(1, min(rounds, max(4, 32 // concurrency)))


def held_at_most(concurrency: int, conf: ConversionSettings) -> int:
    """The most rows one report run holds claimed at once: the batch sending and, when the
    lease leaves room, the one claimed ahead of it. A run that dies can leave at most these
    sent but not recorded (the at-least-once window)."""
    ahead = batch_size(concurrency, conf, queued=True) if lease_rounds(conf) >= 2 else 0
    return batch_size(concurrency, conf) + (ahead if concurrency > 1 else 0)


@dataclass(frozen=True)
class Claim:
    """One claim: its token, the rows it took, and whether rows whose lease ran out may
    remain (``False`` once a claim found fewer of them than it wanted)."""

    token: str
    rows: list[Conversion]
    lapsed_left: bool


def claim(
    size: int,
    *,
    pks: Sequence[int] | None = None,
    due_at: datetime | None = None,
    conf: ConversionSettings | None = None,
) -> tuple[str, list[Conversion]]:
    """Take up to ``size`` due conversions for this worker; returns (claim token, rows).

    Portable compare-and-set: the UPDATE repeats the ``due`` condition, so of two workers
    racing for a row only one changes it. Where the database can skip locked rows we also
    do, so parallel workers pick different rows instead of contending for the same ones.
    ``due_at`` (default now) takes only rows due by then.
    """
    taken = claim_batch(size, pks=pks, due_at=due_at, conf=conf)
    return taken.token, taken.rows


def claim_batch(
    size: int,
    *,
    pks: Sequence[int] | None = None,
    due_at: datetime | None = None,
    conf: ConversionSettings | None = None,
    lapsed: bool = True,
) -> Claim:
    """:func:`claim`, for a run claiming batch after batch: with ``lapsed=False`` it looks only
    for pending rows. A run passes the last claim's ``lapsed_left``: rows due by the run's
    start whose lease ran out were all taken once a claim found fewer than it wanted (a lease
    given since ends after the run's start), so asking again is a statement for nothing."""
    conf = conf or get_settings()
    now = timezone.now()
    due_at = due_at or now
    token = uuid.uuid4().hex
    due = Conversion.objects.due(due_at)
    if pks is not None:
        due = due.filter(pk__in=pks)
    features = connection.features
    chosen: Iterable[int]
    claimed = 0
    lapsed_left = lapsed
    with transaction.atomic():
        # One status at a time, oldest due first: each is one range of the (status,
        # next_attempt_at) index read in order, so a claim stops after ``size`` rows however
        # long the queue. Both statuses in one ORDER BY made the database sort every due row
        # on each claim (bench/memory.py: a backlog of 100,000 drained at half the speed of
        # one of 10,000). Rows whose lease ran out have waited longest: they go first.
        for status in (Status.SENDING, Status.PENDING) if lapsed else (Status.PENDING,):
            wanted = size - claimed
            if wanted <= 0:
                break
            candidates = due.filter(status=status).order_by("next_attempt_at")
            if features.has_select_for_update_skip_locked:
                # PostgreSQL, MariaDB >= 10.6, MySQL 8: parallel workers skip each other's rows.
                # Read first, not as a subquery of the UPDATE as on SQLite: PostgreSQL may run
                # a LIMITed, locking subquery more than once and take more rows than asked
                # (tried: a claim of 2 took 3, tests/test_lease.py).
                chosen = list(
                    candidates.select_for_update(skip_locked=True).values_list("pk", flat=True)[
                        :wanted
                    ]
                )
            elif features.allow_sliced_subqueries_with_in:
                # SQLite: one statement. A read followed by a write would have to upgrade its
                # lock, which SQLite refuses at once ("database is locked") under contention.
                chosen = candidates.values_list("pk", flat=True)[:wanted]
            else:
                chosen = list(candidates.values_list("pk", flat=True)[:wanted])
            taken = (
                Conversion.objects.due(due_at)
                .filter(pk__in=chosen)
                .update(
                    status=Status.SENDING,
                    claim_token=token,
                    next_attempt_at=now + timedelta(seconds=conf.lease_seconds),
                )
            )
            if status == Status.SENDING:
                # Fewer found than wanted: none left (rows another worker holds locked are being
                # claimed by it; were its claim rolled back, the next run takes them).
                found = len(chosen) if isinstance(chosen, list) else taken
                lapsed_left = found >= wanted
            claimed += taken
    if not claimed:
        return Claim(token, [], lapsed_left)
    # status=SENDING narrows the scan to rows in flight (the due index's prefix).
    query = (
        Conversion.objects.filter(status=Status.SENDING, claim_token=token)
        .select_related("message")
        .order_by("next_attempt_at", "pk")
    )
    if not _outcomes_listened():
        # Only what reporting reads: building the rest (a dozen more columns, four more
        # datetimes parsed per row) was a third of a claim's CPU. The outcome signals' receivers
        # get the row itself, so with one connected every column is read.
        query = query.only(*REPORTED_FIELDS)
    return Claim(token, list(query), lapsed_left)


#: What sending a claimed row and writing its answer read of it and of its message.
REPORTED_FIELDS = (
    "delivered",
    "timestamp",
    "status",
    "attempt_count",
    "claim_token",
    "message__message_id",
    "message__channel",
    "message__api_key",
)


def _outcomes_listened() -> bool:
    return signals.conversion_reported.has_listeners(
        Conversion
    ) or signals.conversion_failed.has_listeners(Conversion)


def release(token: str, pks: Iterable[int]) -> int:
    """Give claimed but unsent conversions back, due now and with nothing burned."""
    return Conversion.objects.filter(
        pk__in=list(pks), claim_token=token, status=Status.SENDING
    ).update(status=Status.PENDING, claim_token="", next_attempt_at=timezone.now())
