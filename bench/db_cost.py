"""6. Database cost per conversion: statements per reported conversion in a report run.

Every statement Django sends is counted (``CaptureQueriesContext``; BEGIN, COMMIT and
SAVEPOINT included) while ``report_pending`` reports the conversions to the sandbox over
HTTPS with 20 ms latency, ``concurrency=16``: claims take rows in bulk, and the answers that
arrive together are written together (one INSERT for their attempts, one UPDATE per kind
of outcome, one commit). The baseline is the same engine one conversion at a time
(``concurrency=1``), which writes each answer on its own. Target: <= 3 per conversion.

    .venv/bin/python bench/db_cost.py [--quick] [--count N] [--db sqlite --db postgres]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.common import Figure


def statements_per_conversion(count: int, concurrency: int) -> tuple[float, dict[str, int]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_nexmo_conversion import report_pending
    from django_nexmo_conversion.models import ConversionAttempt

    common.reset()
    common.load_pending(count)
    common.analyze()
    with CaptureQueriesContext(connection) as captured:
        result = report_pending(concurrency=concurrency)
    assert result.reported == count, result.summary()
    assert ConversionAttempt.objects.count() == count
    kinds: dict[str, int] = {}
    for query in captured.captured_queries:
        kind = query["sql"].split(None, 1)[0].upper()
        kinds[kind] = kinds.get(kind, 0) + 1
    return len(captured.captured_queries) / count, kinds


def measure(db: str, count: int, baseline_count: int, latency: float) -> list[Figure]:
    from django.conf import settings

    from django_nexmo_conversion.backends import reset_backend
    from django_nexmo_conversion.sandbox import Sandbox

    cert, key = common.certificate()
    import os

    os.environ["NEXMO_BENCH_CA_BUNDLE"] = cert
    with Sandbox(latency=latency, certfile=cert, keyfile=key) as sandbox:
        settings.NEXMO_CONVERSION = {
            **settings.NEXMO_CONVERSION,
            **common.https_settings(sandbox),
        }
        reset_backend()
        per, kinds = statements_per_conversion(count, 16)
        base, base_kinds = statements_per_conversion(baseline_count, 1)
    print(f"concurrency 16: {per:.2f} statements per conversion {kinds}")
    print(f"one at a time:  {base:.2f} statements per conversion {base_kinds}")
    return [
        Figure(
            bench="db_cost",
            figure=f"statements per reported conversion, {count} at concurrency 16 ({db})",
            value=per,
            unit="",
            baseline=base,
            baseline_label="one at a time",
            ratio=per / base,
            target="<= 3",
            met=per <= 3,
            note=f"{kinds}; one at a time: {base_kinds}",
        )
    ]


def main() -> None:
    p = common.parser(__doc__.split("\n")[0], databases=common.DATABASES)
    p.add_argument("--count", type=int, default=None, help="default 2000 (quick 300)")
    p.add_argument("--latency", type=float, default=0.020)
    args = p.parse_args()
    count = args.count or (300 if args.quick else 2000)
    baseline_count = min(count, 100 if args.quick else 200)
    dbs = common.databases_of(args)
    if len(dbs) > 1:
        figures = []
        for db in dbs:
            figures += common.run_self_for(db, __file__, args, ["--count", str(count)])
        common.finish(args, figures)
        return
    common.setup(dbs[0])
    common.finish(args, measure(dbs[0], count, baseline_count, args.latency))


if __name__ == "__main__":
    main()
