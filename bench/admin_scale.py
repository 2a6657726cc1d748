"""5. Admin at scale: the admin pages (Insights included) with 1,000,000 conversions vs. 1,000.

The same pages are fetched (logged in as a superuser, Django's test client, warm) with a
small table and a large one, each loaded in bulk (COPY on PostgreSQL, executemany on SQLite)
and analysed. Rows are spread over the last 365 days: 93 % reported, 3 % failed (each with
its failed attempt), 2 % pending, 1 % sending, 1 % not delivered, so the dashboard's 30-day
views hold about 8 % of them. Targets: no more queries, and at most 3x the time.

Loading a million rows takes minutes; ``--rows`` scales the large table down.

    .venv/bin/python bench/admin_scale.py [--quick] [--rows N] [--db sqlite --db postgres]
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.common import Figure

SMALL = 1_000
PAGES = {
    "conversion changelist": ("admin:django_nexmo_conversion_conversion_changelist", ""),
    "conversion changelist, status=failed": (
        "admin:django_nexmo_conversion_conversion_changelist",
        "?status__exact=failed",
    ),
    "conversion search by message id": (
        "admin:django_nexmo_conversion_conversion_changelist",
        "?q=B00000000000003E8",
    ),
    "sent message changelist": ("admin:django_nexmo_conversion_sentmessage_changelist", ""),
    "dashboard": ("admin:django_nexmo_conversion_conversion_dashboard", ""),
    "insights": ("admin:django_nexmo_conversion_conversion_insights", ""),
}
#: (country, network) the messages are spread over: the Insights page's tables.
DESTINATIONS = [
    ("GB", "23415"),
    ("GB", "23410"),
    ("FR", "20801"),
    ("DE", "26201"),
    ("US", "310260"),
    ("NG", "62130"),
    ("IN", "40445"),
    ("BR", "72405"),
]
ERRORS = [
    (422, "HTTP 422: Invalid parameters — Parameter 'timestamp' is invalid"),
    (420, "HTTP 420: Invalid parameters — Parameter 'message-id' is required."),
    (503, "HTTP 503: Service Unavailable (gave up after 8 attempts)"),
]


def status_of(n: int) -> str:
    bucket = n % 100
    if bucket < 93:
        return "reported"
    if bucket < 96:
        return "failed"
    if bucket < 98:
        return "pending"
    return "sending"


def load(rows: int) -> None:
    from django_nexmo_conversion.models import Conversion, ConversionAttempt, SentMessage

    common.reset()
    now = datetime.now(timezone.utc)
    span = timedelta(days=365).total_seconds()

    def sent_at(n: int) -> datetime:
        return now - timedelta(seconds=span * (rows - n) / rows + 60)

    common.bulk_insert(
        SentMessage,
        (
            {
                "id": n,
                "message_id": common.message_id(n),
                "channel": "sms" if n % 10 else "voice",
                "recipient": f"4477009{n % 100000:05d}",
                "sent_at": sent_at(n),
                "api_key": "sandbox-key",
                "country": DESTINATIONS[n % len(DESTINATIONS)][0],
                "network": DESTINATIONS[n % len(DESTINATIONS)][1],
                "delivery_status": "delivered" if n % 7 else "expired",
            }
            for n in range(1, rows + 1)
        ),
    )

    def conversion(n: int) -> dict[str, object]:
        at = sent_at(n) + timedelta(seconds=30)
        status = status_of(n)
        row: dict[str, object] = {
            "id": n,
            "message_id": n,
            "delivered": n % 100 != 99,
            "timestamp": at,
            "status": status,
            "created_at": at,
        }
        if status == "reported":
            row.update(attempt_count=1, last_status_code=200, reported_at=at + timedelta(seconds=1))
        elif status == "failed":
            code, error = ERRORS[n % len(ERRORS)]
            row.update(attempt_count=1, last_status_code=code, last_error=error)
        elif status == "pending":
            row.update(next_attempt_at=now + timedelta(minutes=5))
        else:
            row.update(next_attempt_at=now + timedelta(minutes=5), claim_token="f" * 32)
        return row

    common.bulk_insert(Conversion, (conversion(n) for n in range(1, rows + 1)))
    common.bulk_insert(
        ConversionAttempt,
        (
            {
                "conversion_id": n,
                "started_at": sent_at(n),
                "duration": timedelta(milliseconds=25),
                "http_status": ERRORS[n % len(ERRORS)][0],
                "outcome": "rejected",
                "error": ERRORS[n % len(ERRORS)][1],
            }
            for n in range(1, rows + 1)
            if status_of(n) == "failed"
        ),
    )
    # Loaded behind the app's back, as an import would be: recount the hourly rollups and the
    # status counts the dashboard and the Insights page read (rebuild_conversion_stats).
    from django_nexmo_conversion.rollups import by_status, rates

    started = time.perf_counter()
    rollups = rates.rebuild_rates()
    counts = by_status.rebuild_counts()
    print(
        f"rebuilt {rollups:,} rollup rows and {counts:,} status count rows in "
        f"{time.perf_counter() - started:.0f} s"
    )
    common.analyze()


def measure_pages(repeat: int, *, only: str | None = None) -> dict[str, tuple[int, float]]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    user_model = get_user_model()
    user = user_model.objects.filter(
        username="bench"
    ).first() or user_model.objects.create_superuser("bench", "bench@example.com", "bench")
    client = Client()
    client.force_login(user)
    results = {}
    for name, (url_name, query) in PAGES.items():
        if only is not None and name != only:
            continue
        url = reverse(url_name) + query
        for _ in range(2):  # warm: templates, caches, the database's buffers
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
        with CaptureQueriesContext(connection) as captured:
            client.get(url)
        # Read now: captured_queries slices the connection's log, which the next request resets.
        queries = len(captured.captured_queries)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            client.get(url)
            times.append(time.perf_counter() - start)
        results[name] = (queries, statistics.median(times))
    return results


def measure(db: str, rows: int, repeat: int) -> list[Figure]:
    started = time.perf_counter()
    load(SMALL)
    small = measure_pages(repeat)
    started = time.perf_counter()
    load(rows)
    load_s = time.perf_counter() - started
    print(f"loaded {rows:,} conversions in {load_s:.0f} s")
    large = measure_pages(repeat)
    figures = []
    for name in PAGES:
        (q_small, t_small), (q_large, t_large) = small[name], large[name]
        ratio = t_large / t_small
        print(
            f"{name}: {q_large} queries ({q_small} at {SMALL:,}), "
            f"{t_large * 1000:.1f} ms vs {t_small * 1000:.1f} ms = {ratio:.2f}x"
        )
        figures.append(
            Figure(
                bench="admin_scale",
                figure=f"{name}, {rows:,} vs {SMALL:,} conversions ({db})",
                value=t_large * 1000,
                unit="ms",
                baseline=t_small * 1000,
                baseline_label=f"{SMALL:,} rows",
                ratio=ratio,
                target="<= 3x, no more queries",
                # One fewer at scale is fine: PostgreSQL's unfiltered list then takes the
                # planner's row estimate instead of counting (EstimatedCountPaginator).
                met=ratio <= 3 and q_large <= q_small,
                note=f"queries {q_large} vs {q_small}; median of {repeat}",
                extra={"queries": q_large, "queries_small": q_small},
            )
        )
    return figures


def main() -> None:
    p = common.parser(__doc__.split("\n")[0], databases=common.DATABASES)
    p.add_argument(
        "--rows", type=int, default=None, help="large table (default 1000000; quick 20000)"
    )
    p.add_argument("--repeat", type=int, default=None, help="fetches per page (default 15)")
    args = p.parse_args()
    rows = args.rows or (20_000 if args.quick else 1_000_000)
    repeat = args.repeat or (5 if args.quick else 15)
    dbs = common.databases_of(args)
    if len(dbs) > 1:
        figures = []
        for db in dbs:
            figures += common.run_self_for(
                db, __file__, args, ["--rows", str(rows), "--repeat", str(repeat)]
            )
        common.finish(args, figures)
        return
    common.setup(dbs[0])
    common.finish(args, measure(dbs[0], rows, repeat))


if __name__ == "__main__":
    main()
