"""8. Metrics scrape at scale: one Prometheus scrape of ``ConversionCollector`` with
1,000,000 conversions vs. 1,000.

The tables are loaded as for the admin benchmark (``admin_scale.load``: a year of rows, 93 %
reported, 3 % failed with their attempts, 2 % pending, 1 % sending), analysed, and scraped
through a ``CollectorRegistry`` (``generate_latest``: the text a ``/metrics`` endpoint
serves), warm. Targets: the same queries, and at most 3x the time of 1,000 rows.

    .venv/bin/python bench/metrics_scrape.py [--quick] [--rows N] [--db postgres --db sqlite]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.common import Figure

SMALL = 1_000


def scrape(repeat: int) -> tuple[int, float, list[str]]:
    """(queries, median seconds, the SQL) of one scrape."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from prometheus_client import CollectorRegistry, generate_latest

    from django_nexmo_conversion.contrib.prometheus import ConversionCollector

    registry = CollectorRegistry()
    registry.register(ConversionCollector())
    for _ in range(3):  # warm: the database's buffers and plans
        generate_latest(registry)
    with CaptureQueriesContext(connection) as captured:
        generate_latest(registry)
    sql = [q["sql"] for q in captured.captured_queries]
    return len(sql), common.median_time(lambda: generate_latest(registry), repeat), sql


def count_time(repeat: int) -> float:
    """Median seconds of ``nexmo_conversions{status}``'s one query alone (the status counts:
    their counter rows plus the rows changed since the last sweep)."""
    from django_nexmo_conversion.queries import status_counts

    status_counts()
    return common.median_time(status_counts, repeat)


def rest_time(repeat: int) -> float:
    """Median seconds of the collector's other reads (every metric but the status count)."""
    from django.utils import timezone

    from django_nexmo_conversion.health import (
        FAILURE_WINDOW,
        attempts_since,
        expired_leases,
        oldest_due,
    )
    from django_nexmo_conversion.queries import latest_halt

    def reads() -> None:
        now = timezone.now()
        oldest_due(now)
        attempts_since(now - FAILURE_WINDOW)
        expired_leases(now)
        latest_halt()

    reads()
    return common.median_time(reads, repeat)


def measure(db: str, rows: int, repeat: int) -> list[Figure]:
    from bench.admin_scale import load

    load(SMALL)
    small_queries, small_time, _ = scrape(repeat)
    small_count, small_rest = count_time(repeat), rest_time(repeat)
    load(rows)
    large_queries, large_time, sql = scrape(repeat)
    large_count, large_rest = count_time(repeat), rest_time(repeat)

    def against_small(figure: str, large: float, small: float, **more: object) -> Figure:
        """A figure at ``rows`` against the same at 1,000 rows (times in ms)."""
        ratio = large / small
        unit = str(more.pop("unit", "ms"))
        scale = 1 if unit == "queries" else 1000
        target = str(more.pop("target", "<= 3x"))
        met = (ratio == 1 if target == "same" else ratio <= 3) if target != "-" else None
        return Figure(
            bench="metrics_scrape",
            figure=f"{figure}, {rows:,} rows ({db})",
            value=large * scale,
            unit=unit,
            baseline=small * scale,
            baseline_label=f"{SMALL:,} rows",
            ratio=ratio,
            target=target,
            met=met,
            **more,  # type: ignore[arg-type]
        )

    return [
        against_small(
            "queries per scrape", large_queries, small_queries, unit="queries", target="same"
        ),
        against_small("scrape time", large_time, small_time, extra={"sql": sql}),
        against_small(
            "of which nexmo_conversions{status} (status counts)",
            large_count,
            small_count,
            target="-",
            note="one statement: the counter rows plus the rows changed since the last sweep",
        ),
        against_small("every other metric's reads", large_rest, small_rest),
    ]


def main() -> None:
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="the large table")
    args = p.parse_args()
    rows = 20_000 if args.quick else args.rows
    repeat = 5 if args.quick else 21
    dbs = common.databases_of(args)
    figures: list[Figure] = []
    if len(dbs) > 1:
        for db in dbs:
            figures += common.run_self_for(db, __file__, args, ["--rows", str(rows)])
    else:
        common.setup(dbs[0])
        figures = measure(dbs[0], rows, repeat)
    common.finish(args, figures)


if __name__ == "__main__":
    main()
