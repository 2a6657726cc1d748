"""Everything that writes the aggregates, and :func:`fold`, the sweeps' counting.

The modules: ``rates`` (the hourly rollups of sends and conversions, ``ConversionStat``),
``by_status`` (conversions by status per hour of marking), ``counters`` (counter rows:
atomic updates, upserts, skip-locked batches). Reads live in ``insights``, ``queries`` and
``health``; nothing else writes these tables (a test walks the imports to keep it so).

Nothing that writes a message or a conversion counts it: recording, marking, claiming and
writing answers only write their own row, so no request and no worker waits on a counter row
that all the others want too. Each row says what the aggregates count of it (``counted``,
``counted_status``); :func:`fold`, run by every sweep, counts the difference in batches, one
transaction each, the counts and the rows' flags committed together: a crash loses no count
and counts nothing twice, and concurrent sweeps take disjoint rows (``SKIP LOCKED``).
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connections, router
from django.db.models import Model

from ..models import Conversion, ConversionStat, SentMessage, StatusCount, StatusCountChange
from . import by_status, counters, guard, rates

logger = logging.getLogger("django_nexmo_conversion")

__all__ = ["analyze", "fold", "rebuild"]


def fold(*, batch_size: int = 1000) -> int:
    """Count what was recorded, marked or moved since the last fold into the hourly rollups
    (``rates``) and the status counts (``by_status``); returns how many rows it counted.
    Each sweep calls it (``report_due``); so does ``purge_conversions``, before it deletes."""
    total = 0
    steps = (
        rates.fold_messages,
        rates.fold_conversions,
        by_status.fold_statuses,
        by_status.fold_deletions,
        by_status.compact_counts,
        guard.prune,
    )
    for step in steps:
        while True:  # batches until one comes back short
            try:
                done = step(batch_size=batch_size)
            except DatabaseError as exc:
                if not counters.lock_conflict(exc):
                    raise
                # Another sweep creating the same counter rows at the same moment (InnoDB's
                # upserts lock the gaps they insert into). The batch was rolled back whole,
                # counts and flags together: the next sweep takes it again.
                logger.info("A sweep's counting met another sweep's; the next sweep goes on.")
                return total
            total += done
            if done < batch_size:
                break
    return total


#: What a rebuild rewrites: the counter tables whole, and a flag on every message and
#: conversion.
REWRITTEN: tuple[type[Model], ...] = (
    ConversionStat,
    StatusCount,
    StatusCountChange,
    SentMessage,
    Conversion,
)


def analyze(models: tuple[type[Model], ...] = REWRITTEN) -> None:
    """Fresh planner statistics for ``models``' tables. A rebuild deletes and rewrites the
    counter tables (and every message's and conversion's flag): until autovacuum comes by,
    PostgreSQL plans the dashboard's status-count reads from the old statistics (37 ms at
    200,000 conversions instead of 2), and SQLite keeps none until asked. ANALYZE reads a
    bounded sample whatever the table's size, and may run in a transaction.

    Not on MariaDB/MySQL: InnoDB recalculates a table's statistics by itself once a tenth of
    its rows changed (``innodb_stats_auto_recalc``), and its ``ANALYZE TABLE`` commits the
    caller's transaction."""
    for model in models:
        connection = connections[router.db_for_write(model)]
        if connection.vendor in ("postgresql", "sqlite"):
            table = connection.ops.quote_name(model._meta.db_table)
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {table}")


def rebuild(*, batch_size: int = 5000) -> tuple[int, int]:
    """Recount the hourly rollups and the status counts from the rows (an import, a restore,
    rows changed behind the app's back), then refresh the planner's statistics of what was
    rewritten. Returns how many rollup rows and status-count rows it wrote."""
    rows = rates.rebuild_rates(batch_size=batch_size)
    counts = by_status.rebuild_counts(batch_size=batch_size)
    analyze()
    return rows, counts
