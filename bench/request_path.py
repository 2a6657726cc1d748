"""3. Request-path cost: ``mark_converted`` (``DISPATCH="manual"``) vs. a bare ``create``.

What marking adds to a web request over writing the same ``Conversion`` row by hand with
``Conversion.objects.create(...)``: queries per call and time per call, both on the same
kind of already recorded message, interleaved call by call so load on the machine hits
both alike. Measured in autocommit (Django's default) and inside ``transaction.atomic()``
(``ATOMIC_REQUESTS``), on SQLite and PostgreSQL. Targets: <= 3 queries, <= 2x the time.

    .venv/bin/python bench/request_path.py [--quick] [--db sqlite --db postgres] [--calls N]
"""

from __future__ import annotations

import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.common import Figure


def measure(db: str, calls: int) -> list[Figure]:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from django_nexmo_conversion import mark_converted
    from django_nexmo_conversion.models import Conversion, SentMessage

    common.reset()
    # Messages recorded beforehand, as record_sms_response would have: one set per contender.
    total = 4 * calls + 200
    now = timezone.now()
    common.bulk_insert(
        SentMessage,
        (
            {"id": n, "message_id": common.message_id(n, "R"), "sent_at": now}
            for n in range(1, total + 1)
        ),
    )
    # Their counts in the hourly rollups, as recording them would have made (a send is counted
    # when recorded; marking adds to the row of its hour and destination).
    from django_nexmo_conversion.rollups.rates import rebuild_rates

    rebuild_rates()
    common.analyze()
    messages = iter(SentMessage.objects.order_by("pk"))

    def bare() -> None:
        at = timezone.now()
        Conversion.objects.create(
            message=next(messages), delivered=True, timestamp=at, next_attempt_at=at
        )

    def marked() -> None:
        mark_converted(next(messages))

    figures = []
    for wrapped in (False, True):
        context = transaction.atomic if wrapped else nullcontext
        where = "in atomic()" if wrapped else "autocommit"
        queries = {}
        for name, func in (("bare", bare), ("mark", marked)):
            with context(), CaptureQueriesContext(connection) as captured:
                func()
            # BEGIN/COMMIT are not logged by Django; SAVEPOINTs are.
            queries[name] = len(captured.captured_queries)
        for _ in range(20):  # warm up both
            with context():
                bare()
            with context():
                marked()
        times: dict[str, list[float]] = {"bare": [], "mark": []}
        for n in range(calls):
            # Alternate who goes first, so neither always follows the other's commit.
            order = (
                (("bare", bare), ("mark", marked)) if n % 2 else (("mark", marked), ("bare", bare))
            )
            for name, func in order:
                start = time.perf_counter()
                with context():
                    func()
                times[name].append(time.perf_counter() - start)
        bare_t, mark_t = statistics.median(times["bare"]), statistics.median(times["mark"])
        ratio = mark_t / bare_t
        figures.append(
            Figure(
                bench="request_path",
                figure=f"mark_converted queries, {where} ({db})",
                value=queries["mark"],
                unit="",
                baseline=queries["bare"],
                baseline_label="bare create",
                ratio=None,
                target="<= 3",
                met=queries["mark"] <= 3,
            )
        )
        figures.append(
            Figure(
                bench="request_path",
                figure=f"mark_converted time per call, {where} ({db})",
                value=mark_t * 1000,
                unit="ms",
                baseline=bare_t * 1000,
                baseline_label="bare create",
                ratio=ratio,
                target="<= 2x",
                met=ratio <= 2,
                note=f"medians of {calls} interleaved calls",
            )
        )
    return figures


def main() -> None:
    p = common.parser(__doc__.split("\n")[0], databases=common.DATABASES)
    p.add_argument("--calls", type=int, default=None, help="calls per contender (default 2000)")
    args = p.parse_args()
    calls = args.calls or (200 if args.quick else 2000)
    dbs = common.databases_of(args)
    if len(dbs) > 1:
        # One database per process: Django is configured once.
        figures = []
        for db in dbs:
            figures += common.run_self_for(db, __file__, args, ["--calls", str(calls)])
        common.finish(args, figures)
        return
    common.setup(dbs[0])
    common.finish(args, measure(dbs[0], calls))


if __name__ == "__main__":
    main()
