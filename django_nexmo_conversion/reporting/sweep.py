"""The periodic job: what every sweep does, whoever runs it (the background reporter's timer,
``report_conversions``, the Celery and ``django.tasks`` tasks).

It sits apart from the engine so that reporting one conversion never imports the rollups or
the insights: the engine sends, the sweep also keeps the figures and alerts current.
"""

from __future__ import annotations

from collections.abc import Callable

from ..insights import low_conversion_alerts
from ..rollups import fold
from .engine import ReportResult, report_pending
from .non_conversion import mark_non_conversions

__all__ = ["report_due"]


def report_due(
    *,
    limit: int | None = None,
    concurrency: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[ReportResult], None] | None = None,
) -> ReportResult:
    """The periodic job: mark the non-conversions whose window closed, then report whatever
    is due (new conversions, retries, leftovers of a dead worker); then count what was
    recorded and marked since into the rollups, and look for low-conversion destinations
    (``conversion_rate_low`` fires once per new alert)."""
    marked = mark_non_conversions()
    result = report_pending(
        limit=limit, concurrency=concurrency, should_stop=should_stop, progress=progress
    )
    result.non_conversions = marked
    fold()
    # Two small queries on the hourly rollups: cheap enough for every sweep, and a sweep
    # is what makes an alert fire even when nobody looks at the admin.
    low_conversion_alerts()
    return result
