"""The dashboard right after ``rebuild_conversion_stats``, at 2,000 and at ``--rows`` conversions
(issue 25, item 3).

For each size: loads the conversions as ``admin_scale.py`` does (COPY, a year of marks) but
without its final ``VACUUM ANALYZE`` (an import leaves the tables so), runs the rebuild as the
command does (``rollups.rebuild``: the recount, then ``ANALYZE`` of what it rewrote), and
times, right after it, the two status-count reads the dashboard makes (``by_status.totals()``
and ``totals_since(day, week, month)``) and the whole dashboard page. Target: within 2x of
the small table's times. PostgreSQL only (database ``bench_cpu`` unless
``NEXMO_BENCH_PG_NAME`` says otherwise); not in ``run_all.py``: loading a million takes
minutes.

    .venv/bin/python bench/after_rebuild.py [--rows 1000000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("NEXMO_BENCH_PG_NAME", "bench_cpu")

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import admin_scale, common

SMALL = 2_000


def reads(repeat: int) -> tuple[float, float]:
    """Median ms of ``by_status.totals()`` and ``totals_since(day, week, month)``."""
    from django.utils import timezone

    from django_nexmo_conversion.rollups import by_status

    now = timezone.now()
    starts = (now - timedelta(days=1), now - timedelta(days=7), now - timedelta(days=30))
    totals, since = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        by_status.totals()
        totals.append(time.perf_counter() - start)
        start = time.perf_counter()
        by_status.totals_since(*starts)
        since.append(time.perf_counter() - start)
    return statistics.median(totals) * 1000, statistics.median(since) * 1000


def after_rebuild(rows: int, repeat: int) -> dict[str, float]:
    """Load ``rows`` conversions, rebuild as the command does, and time the reads at once."""
    from django_nexmo_conversion.models import StatusCount
    from django_nexmo_conversion.rollups import rebuild

    analyzed = common.analyze
    common.analyze = lambda: None  # type: ignore[assignment]  # as an import leaves the tables
    try:
        admin_scale.load(rows)  # its own recount, as an earlier rebuild would have left
    finally:
        common.analyze = analyzed  # type: ignore[assignment]
    started = time.perf_counter()
    rebuild()
    took = time.perf_counter() - started
    totals, since = reads(repeat)
    page = admin_scale.measure_pages(repeat, only="dashboard")["dashboard"][1] * 1000
    counted = StatusCount.objects.count()
    print(
        f"{rows:,} conversions: rebuilt in {took:.1f} s ({counted:,} status count rows); "
        f"totals {totals:.1f} ms, totals_since {since:.1f} ms, dashboard page {page:.1f} ms",
        flush=True,
    )
    return {"totals": totals, "since": since, "page": page, "rows": counted}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=30)
    args = p.parse_args()
    common.setup("postgres")
    small = after_rebuild(SMALL, args.repeat)
    large = after_rebuild(args.rows, args.repeat)
    for name in ("totals", "since", "page"):
        ratio = large[name] / small[name]
        verdict = "met" if ratio <= 2 else "NOT met"
        print(
            f"{name}: {large[name]:.1f} ms at {args.rows:,} vs {small[name]:.1f} ms at "
            f"{SMALL:,} = {ratio:.2f}x (target <= 2x: {verdict})"
        )


if __name__ == "__main__":
    main()
