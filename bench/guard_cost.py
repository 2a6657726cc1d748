"""The send guard on the request path: what one ``guard.check`` costs at 10 thousand and at
100 thousand (and 1 million) recorded messages, against a primary-key lookup of one
``SentMessage`` in the same run.

The tables hold what a site with that many messages over 30 days would hold: the messages
(five countries, 600 prefixes), the guard's counts (``GuardTally``, as the sweeps fold them:
one row per destination and ten minutes) and two days of its checks (``GuardEvent``). Checks
go to random numbers of those prefixes, from random requesters, in ``enforce`` mode.
Targets: at most 3 queries at every size, the same number at every size, median time within
1.5x between the smallest and the largest size.

    .venv/bin/python bench/guard_cost.py [--quick] [--db sqlite|postgres] [--sizes 10000,100000]
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.common import Figure

DAYS = 30
COUNTRIES = (
    ("GB", "447", 12),
    ("FR", "336", 11),
    ("US", "1212", 11),
    ("NG", "23480", 13),
    ("IN", "919", 12),
)


def load(size: int, rng: random.Random) -> list[tuple[str, int]]:
    """``size`` messages over 30 days, their tallies and two days of checks; returns the
    prefixes as (prefix digits, number length)."""
    from django_nexmo_conversion.models import GuardEvent, GuardTally, SentMessage
    from django_nexmo_conversion.rollups.guard import bucket_of

    common.reset()
    GuardEvent.objects.all().delete()
    GuardTally.objects.all().delete()
    prefixes = []
    for country, lead, length in COUNTRIES:
        cc = {"GB": "44", "FR": "33", "US": "1", "NG": "234", "IN": "91"}[country]
        for _ in range(120):
            body = lead[len(cc) :] + "".join(rng.choice("0123456789") for _ in range(5))
            prefixes.append((country, cc + body[:5], length, f"{rng.randrange(10**5, 10**6)}"))
    now = datetime.now(dt_timezone.utc)
    tallies: Counter[tuple[str, str, str, datetime, str]] = Counter()
    rows = []
    for n in range(size):
        country, prefix, length, network = rng.choice(prefixes)
        sent_at = now - timedelta(seconds=rng.random() * DAYS * 86400)
        converted = rng.random() < 0.7
        bucket = bucket_of(sent_at)
        for key in (
            ("*", "", ""),
            ("c", country, ""),
            ("p", prefix, network),
            ("n", network, network),
        ):
            tallies[(*key, bucket, "sent")] += 1
            tallies[(*key, bucket, "converted")] += converted
        rows.append(
            {
                "id": n + 1,
                "message_id": common.message_id(n + 1),
                "sent_at": sent_at,
                "country": country,
                "prefix": prefix,
                "network": network,
                "counted": True,
            }
        )
    common.bulk_insert(SentMessage, rows)
    merged: dict[tuple[str, str, str, datetime], dict[str, int]] = {}
    for (kind, name, network, bucket, column), count in tallies.items():
        merged.setdefault((kind, name, network, bucket), {"sent": 0, "converted": 0})[column] = (
            count
        )
    common.bulk_insert(
        GuardTally,
        (
            {"kind": k, "name": n, "network": w, "bucket": b, **c}
            for (k, n, w, b), c in merged.items()
        ),
    )
    events = size * 2 // DAYS
    common.bulk_insert(
        GuardEvent,
        (
            {
                "at": now - timedelta(seconds=rng.random() * 2 * 86400),
                "prefix": rng.choice(prefixes)[1],
                "country": "GB",
                "number_hash": f"{rng.getrandbits(128):032x}",
                "block_hash": f"{rng.getrandbits(128):032x}",
                "client_hash": f"{rng.getrandbits(128):032x}",
                "action": "allow",
            }
            for _ in range(events)
        ),
    )
    common.analyze()
    return [(p, length) for _c, p, length, _w in prefixes]


def measure(size: int, calls: int, rng: random.Random) -> dict[str, float]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_nexmo_conversion import guard
    from django_nexmo_conversion.models import SentMessage

    prefixes = load(size, rng)
    from django.utils import timezone

    from django_nexmo_conversion.conf import get_settings
    from django_nexmo_conversion.guard import live

    settings = get_settings().guard
    checks, lookups, reads, queries = [], [], [], set()
    for i in range(calls):
        prefix, length = rng.choice(prefixes)
        number = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix)))
        client = f"203.0.113.{rng.randrange(256)}"
        pk = rng.randrange(1, size + 1)
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            guard.check(number, client=client)
            checks.append(time.perf_counter() - start)
        queries.add(len(captured))
        # The reads alone (rules and counts), without the INSERT and its commit.
        target, digits = live.target_of(number, client, settings)
        start = time.perf_counter()
        live.evidence(target, digits, timezone.now(), settings)
        reads.append(time.perf_counter() - start)
        start = time.perf_counter()
        SentMessage.objects.get(pk=pk)
        lookups.append(time.perf_counter() - start)
        del i
    return {
        "queries": max(queries),
        "check_ms": statistics.median(checks) * 1000,
        "lookup_ms": statistics.median(lookups) * 1000,
        "reads_ms": statistics.median(reads) * 1000,
        "rows": size,
    }


def main() -> None:
    p = common.parser(__doc__.splitlines()[0], databases=("sqlite",))
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--calls", type=int, default=400)
    args = p.parse_args()
    db = common.databases_of(args)[0]
    common.setup(db, {"DISPATCH": "manual", "GUARD": {"MODE": "enforce"}})
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes, args.calls = [1000, 10000], 100
    rng = random.Random(24)
    found = {}
    for size in sizes:
        started = time.perf_counter()
        found[size] = measure(size, args.calls, rng)
        print(f"{db} {size:,} messages: {found[size]} ({time.perf_counter() - started:.0f} s)")
    small, large = found[sizes[0]], found[sizes[-1]]
    for size in sizes:
        f = found[size]
        print(f"  {size:,}: reads alone (rules + counts, 2 queries) {f['reads_ms']:.2f} ms")
    figures = []
    for size in sizes:
        f = found[size]
        figures.append(
            Figure(
                "guard_cost",
                f"queries per check, {size:,} messages ({db})",
                f["queries"],
                "",
                None,
                "",
                None,
                "<= 3",
                f["queries"] <= 3,
            )
        )
        figures.append(
            Figure(
                "guard_cost",
                f"check median, {size:,} messages ({db})",
                f["check_ms"],
                "ms",
                f["lookup_ms"],
                "pk lookup",
                f["check_ms"] / f["lookup_ms"],
                "<= 5 ms",
                None,
            )
        )
    figures.append(
        Figure(
            "guard_cost",
            f"check median, largest / smallest ({db})",
            large["check_ms"] / small["check_ms"],
            "x",
            None,
            "",
            None,
            "<= 1.5",
            large["check_ms"] / small["check_ms"] <= 1.5 and large["queries"] == small["queries"],
        )
    )
    common.finish(args, figures)


if __name__ == "__main__":
    main()
