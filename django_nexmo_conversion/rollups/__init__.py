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

from django.db import DatabaseError

from . import by_status, counters, guard, rates

logger = logging.getLogger("django_nexmo_conversion")

__all__ = ["fold"]


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
