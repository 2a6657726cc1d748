"""The dashboard's status-count reads right after ``rebuild_conversion_stats`` (issue 25, item 3).

Loads ``--rows`` conversions as ``admin_scale.py`` does (COPY, then the rebuild) but without
its final ``VACUUM ANALYZE``, times the two status-count reads the dashboard makes, then
rebuilds again followed by ``rollups.analyze()`` and times them again. PostgreSQL
only (database ``bench_cpu`` unless ``NEXMO_BENCH_PG_NAME`` says otherwise); not in
``run_all.py``: loading takes minutes.

    .venv/bin/python bench/after_rebuild.py [--rows 200000] [--repeat 30]
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=30)
    args = p.parse_args()
    common.setup("postgres")
    from django_nexmo_conversion.rollups import analyze, by_status, rates

    analyzed = common.analyze
    common.analyze = lambda: None  # type: ignore[assignment]  # as an import leaves the tables
    try:
        admin_scale.load(args.rows)
    finally:
        common.analyze = analyzed  # type: ignore[assignment]
    totals, since = reads(args.repeat)
    print(f"{args.rows:,} conversions, right after the rebuild, no ANALYZE:")
    print(f"  totals {totals:.1f} ms, totals_since {since:.1f} ms")
    rates.rebuild_rates()
    by_status.rebuild_counts()
    start = time.perf_counter()
    analyze()
    took = time.perf_counter() - start
    totals, since = reads(args.repeat)
    print(f"{args.rows:,} conversions, right after the rebuild and its ANALYZE ({took:.1f} s):")
    print(f"  totals {totals:.1f} ms, totals_since {since:.1f} ms")


if __name__ == "__main__":
    main()
