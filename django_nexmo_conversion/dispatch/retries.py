"""The background reporter's own retries: a conversion it tried that came back transient is
tried again at its due time (``next_attempt_at``, give or take a second), not at the next
sweep, which may be ``SWEEP_INTERVAL`` seconds later.

Only the reporter thread touches a :class:`RetryTimer`. What it holds is a hint: the row in
the database is the truth, so a retry another worker took first, or one this process never
gets to (it exits), is simply claimed by whoever comes next.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Sequence

from django.utils import timezone

from ..choices import Status
from ..models import Conversion

#: A retry goes this long after its due time, so that the claim's "due by now" holds on a
#: database clock a little behind ours.
MARGIN_SECONDS = 0.05
#: At most this many retries are remembered; beyond, they wait for a sweep (never lost).
MAX_SCHEDULED = 10_000


class RetryTimer:
    """Due times (``time.monotonic()``) of the conversions this process will retry itself."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._scheduled: set[int] = set()

    def schedule(self, pks: Sequence[int]) -> None:
        """Remember when each of ``pks`` that is pending again is due (one query)."""
        if not pks:
            return
        now, clock = timezone.now(), time.monotonic()
        # Due later only: a row left due now (a halted account's) waits for the next sweep.
        rows = Conversion.objects.filter(
            pk__in=list(pks), status=Status.PENDING, next_attempt_at__gt=now
        ).values_list("pk", "next_attempt_at")
        for pk, due in rows:
            if due is None or pk in self._scheduled or len(self._heap) >= MAX_SCHEDULED:
                continue
            wait = max(0.0, (due - now).total_seconds()) + MARGIN_SECONDS
            heapq.heappush(self._heap, (clock + wait, pk))
            self._scheduled.add(pk)

    def next_due(self) -> float | None:
        """When the first remembered retry is due, or None."""
        return self._heap[0][0] if self._heap else None

    def take_due(self) -> list[int]:
        """The conversions due by now, forgotten as they are handed out."""
        clock = time.monotonic()
        due: list[int] = []
        while self._heap and self._heap[0][0] <= clock:
            _when, pk = heapq.heappop(self._heap)
            self._scheduled.discard(pk)
            due.append(pk)
        return due


def earliest(*moments: float | None) -> float | None:
    """The first of ``moments`` that is set, or None."""
    present = [moment for moment in moments if moment is not None]
    return min(present) if present else None
