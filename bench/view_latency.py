"""7. The view's answer time: a request whose view calls ``mark_converted``, by ``DISPATCH``.

The view is served in-process by Django's test client (the full request/response cycle,
middleware included); the Conversion API is the sandbox over plain HTTP on loopback, answering
at once, after 1.5 s, or hanging (past ``TIMEOUT``, 3 s here to keep the run short: with the
default 10 s, ``on_commit`` would hold each request 10 s). ``manual`` — nothing but the row —
is the baseline of each API speed. Target (the "never in the request path" issue): the
default ``background`` within 3x of ``manual``'s p99 at every API speed.

    .venv/bin/python bench/view_latency.py [--quick] [--db sqlite --db postgres] [--requests N]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.common import Figure

MODES = ("manual", "on_commit", "background")
#: API speed -> sandbox latency (s). "hanging" answers after TIMEOUT: a timeout every time.
SPEEDS = {"0 ms": 0.0, "1.5 s": 1.5, "hanging": 30.0}
TIMEOUT = 3


def measure(db: str, requests: int, slow_requests: int) -> list[Figure]:
    from django.test import Client, override_settings

    from django_nexmo_conversion.dispatch import background
    from django_nexmo_conversion.sandbox import DEFAULT_API_KEY, DEFAULT_API_SECRET, Sandbox

    common.reset()
    client = Client()
    figures = []
    serial = 0
    with Sandbox() as sandbox:
        for speed, latency in SPEEDS.items():
            sandbox.latency = latency
            p99: dict[str, float] = {}
            p50: dict[str, float] = {}
            for mode in MODES:
                conf = {
                    "BACKEND": "django_nexmo_conversion.backends.http.HttpBackend",
                    "BASE_URL": sandbox.base_url,
                    "API_KEY": DEFAULT_API_KEY,
                    "API_SECRET": DEFAULT_API_SECRET,
                    "DISPATCH": mode,
                    "TIMEOUT": TIMEOUT,
                    "LEASE_SECONDS": 60,
                }
                # on_commit waits for the API on every request: fewer of them when it is slow.
                count = slow_requests if (mode == "on_commit" and latency) else requests
                times = []
                with override_settings(NEXMO_CONVERSION=conf):
                    for _ in range(3):  # warm up: the first request of a mode builds things
                        serial += 1
                        client.post(f"/mark/{common.message_id(serial, 'V')}/")
                    for _ in range(count):
                        serial += 1
                        start = time.perf_counter()
                        response = client.post(f"/mark/{common.message_id(serial, 'V')}/")
                        times.append(time.perf_counter() - start)
                        assert response.status_code == 200
                    # What the reporter thread still has goes out before the next mode.
                    background.shutdown(timeout=0.1)
                p50[mode] = common.percentile(times, 50) * 1000
                p99[mode] = common.percentile(times, 99) * 1000
            for mode in ("on_commit", "background"):
                ratio = p99[mode] / p99["manual"]
                figures.append(
                    Figure(
                        bench="view_latency",
                        figure=f"view p99, {mode}, API {speed} ({db})",
                        value=p99[mode],
                        unit="ms",
                        baseline=p99["manual"],
                        baseline_label="manual",
                        ratio=ratio,
                        target="<= 3x" if mode == "background" else "",
                        met=ratio <= 3 if mode == "background" else None,
                        note=f"p50 {p50[mode]:.2f} ms (manual {p50['manual']:.2f} ms)",
                    )
                )
            sandbox.clear()
    return figures


def main() -> None:
    p = common.parser(__doc__.split("\n")[0], databases=("sqlite", "postgres"))
    p.add_argument("--requests", type=int, default=None, help="requests per mode (default 200)")
    args = p.parse_args()
    requests = args.requests or (30 if args.quick else 200)
    dbs = common.databases_of(args)
    if len(dbs) > 1:
        figures = []
        for db in dbs:
            figures += common.run_self_for(db, __file__, args, ["--requests", str(requests)])
        common.finish(args, figures)
        return
    common.setup(dbs[0])
    common.finish(args, measure(dbs[0], requests, slow_requests=5 if args.quick else 10))


if __name__ == "__main__":
    main()
