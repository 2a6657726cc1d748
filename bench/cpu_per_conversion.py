"""9. CPU per conversion: the app's report run against a bare ``requests`` client, side by side.

The same sandbox (HTTPS on loopback, 20 ms latency, sharing the machine's cores) receives, in
turn, 2,000 reports from ``manage.py report_conversions --concurrency 16`` (logging at
WARNING, as in ``settings.py``) and the same 2,000 POSTs from a bare ``requests`` client:
16 threads, one kept-alive ``Session`` per thread, the same form fields and Basic header, no
database. Each runs in its own process; the two alternate, several times, so a neighbour's
load on a shared machine falls on both.

The app's run is the whole sweep the command makes (marking non-conversions, reporting,
counting the run's conversions into the rollups, the low-rate alerts): the sends were counted
by earlier sweeps, as on a live site, where a message is sent minutes before it converts.

Per contender and run: reports per second from the sandbox's arrival times (first request to
last answer), and CPU seconds of its whole process (every thread: ``getrusage``) spent in the
report step (Python and Django start-up left out, shown apart) per reported conversion.
Targets: the app at >= 90 % of the bare client's throughput and <= 1.15x its CPU per
conversion (medians of the per-pair ratios; the spread is printed).

    .venv/bin/python bench/cpu_per_conversion.py [--quick] [--db sqlite|postgres] [--repeat N]
    .venv/bin/python bench/cpu_per_conversion.py --db sqlite --profile app.svg  # py-spy
    (one app run, sampling the thread holding the GIL; ``--profile stacks.txt``: collapsed
    stacks, for grep and sorting)

Uses its own database (``bench_cpu`` on PostgreSQL, ``$TMPDIR/nexmo-bench-cpu/`` for SQLite)
so it does not disturb other benchmark runs on a shared machine.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("NEXMO_BENCH_PG_NAME", "bench_cpu")
os.environ.setdefault("NEXMO_BENCH_DIR", str(Path(tempfile.gettempdir()) / "nexmo-bench-cpu"))

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.common import Figure

#: The app's settings for the run: Basic auth, as the bare client sends it.
AUTH = "basic"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the two contenders, each in its own process ------------------------------------------------


def child_app(concurrency: int) -> None:
    """The report step of ``report_conversions`` (after Django's set-up)."""
    import django

    django.setup()
    from django.core.management import call_command

    from django_nexmo_conversion.reporting import sweep

    engine: dict[str, float] = {}
    report_pending = sweep.report_pending

    def measured_report_pending(**kwargs: Any) -> Any:
        # The sweep's reporting step alone (claims, POSTs, answers written): what the bare
        # client does. Marking non-conversions, counting and alerts come before and after.
        start_cpu, main = _cpu(), time.thread_time()
        try:
            return report_pending(**kwargs)
        finally:
            engine["cpu"] = _cpu() - start_cpu
            # The calling thread claims and writes (the database side); the pool's POST.
            engine["main_cpu"] = time.thread_time() - main

    sweep.report_pending = measured_report_pending  # type: ignore[assignment]
    start_cpu, start = _cpu(), time.perf_counter()
    call_command("report_conversions", "--concurrency", str(concurrency), verbosity=0)
    sweep_cpu, wall = _cpu() - start_cpu, time.perf_counter() - start
    print(json.dumps({**engine, "sweep_cpu": sweep_cpu, "wall": wall, "process_cpu": _cpu()}))


def child_bare(
    base_url: str, ca: str, ids_file: str, stamp: str, concurrency: int, *, transport: bool
) -> None:
    """What a careful hand-written client does: a thread pool, a kept-alive session per
    thread, the same POST (form fields, Basic header), the answer read; no database. With
    ``transport``, the same pool sends through the app's own HTTP client instead
    (``transport.client.Client``, no Django set-up, no database): what the app's sending
    threads cost apart from the database work."""
    import base64
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from datetime import datetime, timezone

    import requests

    from django_nexmo_conversion.sandbox import DEFAULT_API_KEY, DEFAULT_API_SECRET

    ids = Path(ids_file).read_text().split()
    url = f"{base_url}/conversions/sms"
    pair = f"{DEFAULT_API_KEY}:{DEFAULT_API_SECRET}".encode()
    headers = {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    local = threading.local()

    def post(message_id: str) -> int:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False  # as the app: no proxies or .netrc from the environment
            session.verify = ca
        response = session.post(
            url,
            data={"message-id": message_id, "delivered": "true", "timestamp": stamp},
            headers=headers,
            timeout=10,
            allow_redirects=False,
        )
        response.content  # noqa: B018 - read the answer, as the app does
        return response.status_code

    if transport:
        from django_nexmo_conversion.transport.client import Client
        from django_nexmo_conversion.transport.wire import Account, Report

        client = Client(base_url=base_url, timeout=10, verify=ca, proxies={})
        account = Account(api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET)
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)

        def post(message_id: str) -> int:
            report = Report(channel="sms", message_id=message_id, delivered=True, timestamp=at)
            return client.send(report, account).status_code or 0

    start_cpu, start = _cpu(), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        statuses = Counter(pool.map(post, ids))
    cpu, wall = _cpu() - start_cpu, time.perf_counter() - start
    print(json.dumps({"cpu": cpu, "wall": wall, "process_cpu": _cpu(), "statuses": statuses}))


# --- the parent: database, sandbox, alternation -------------------------------------------------


def _window(sandbox: Any, count: int) -> float:
    received = sandbox.requests
    assert len(received) == count, f"{len(received)} of {count} requests arrived"
    times = sorted(r.received_at for r in received)
    return times[-1] - times[0] + sandbox.latency


def app_run(
    db: str, sandbox: Any, cert: str, count: int, concurrency: int, profile: str | None
) -> dict[str, float]:
    from django_nexmo_conversion.models import Conversion, ConversionAttempt, SentMessage, Status

    common.reset()
    common.load_pending(count)
    # The sends were counted by the sweeps that followed them, long before their conversions
    # (as on a live site); the conversions, just marked, are counted by this run's sweep.
    SentMessage.objects.update(counted=True)
    common.analyze()
    sandbox.clear()
    env = common.child_env(
        db,
        common.https_settings(sandbox, CONCURRENCY=concurrency, AUTH=AUTH),
        NEXMO_BENCH_CA_BUNDLE=cert,
    )
    command = [sys.executable, __file__, "--child", "app", "--concurrency", str(concurrency)]
    if profile:
        spy = Path(sys.executable).parent / "py-spy"
        form = "flamegraph" if profile.endswith(".svg") else "raw"  # raw: collapsed stacks
        spy_args = ["record", "--gil", "-o", profile, "-f", form, "-r", "200", "--"]
        command = [str(spy), *spy_args, *command]
    _wall, output = common.run_child(command, env)
    measured = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    window = _window(sandbox, count)
    per_id = Counter(r.message_id for r in sandbox.requests)
    # What must hold while being fast: each reported once, every attempt recorded.
    assert all(r.status == 200 for r in sandbox.requests), "the sandbox refused a report"
    assert max(per_id.values()) == 1, "a conversion was sent twice"
    assert Conversion.objects.filter(status=Status.REPORTED).count() == count
    assert ConversionAttempt.objects.count() == count
    return {
        "rate": count / window,
        "cpu_ms": measured["cpu"] * 1000 / count,
        "sweep_cpu_ms": measured["sweep_cpu"] * 1000 / count,
        **measured,
    }


def bare_run(
    sandbox: Any, cert: str, count: int, concurrency: int, *, transport: bool = False
) -> dict[str, float]:
    from datetime import datetime, timezone

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(common.message_id(n) for n in range(1, count + 1)))
    sandbox.clear()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    command = [
        sys.executable,
        __file__,
        "--child",
        "bare",
        "--concurrency",
        str(concurrency),
        "--base-url",
        sandbox.base_url,
        "--ca",
        cert,
        "--ids",
        f.name,
        "--timestamp",
        stamp,
        *(["--transport"] if transport else []),
    ]
    _wall, output = common.run_child(command, dict(common.child_env("sqlite")))
    Path(f.name).unlink()
    measured = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    assert measured["statuses"] == {"200": count}, measured["statuses"]
    window = _window(sandbox, count)
    return {"rate": count / window, "cpu_ms": measured["cpu"] * 1000 / count, **measured}


def _spread(values: list[float], digits: int = 2) -> str:
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


def _cpu_figure(
    figure: str,
    values: list[float],
    bare: list[float],
    ratios: list[float],
    *,
    note: str,
    at_most: float | None = None,
) -> Figure:
    """A CPU-per-report figure against the bare client's: the median of the per-pair ratios,
    held to ``at_most`` when given."""
    ratio = statistics.median(ratios)
    return Figure(
        bench="cpu_per_conversion",
        figure=figure,
        value=statistics.median(values),
        unit="ms",
        baseline=statistics.median(bare),
        baseline_label="bare requests",
        ratio=ratio,
        target="-" if at_most is None else f"<= {at_most:g}",
        met=None if at_most is None else ratio <= at_most,
        note=note,
    )


def measure(db: str, args: Any) -> list[Figure]:
    count = args.count or (300 if args.quick else 2000)
    repeat = args.repeat or (1 if args.quick else 5)
    common.setup(db)
    from django_nexmo_conversion.sandbox import Sandbox

    cert, key = common.certificate()
    pairs: list[tuple[dict[str, float], dict[str, float]]] = []
    #: The app's HTTP client alone, right after each pair: the sending threads' share.
    transports: list[dict[str, float]] = []
    with Sandbox(latency=args.latency, certfile=cert, keyfile=key) as sandbox:
        if args.profile:
            app_run(db, sandbox, cert, count, args.concurrency, args.profile)
            print(f"profile written to {args.profile}")
            return []
        for n in range(repeat):
            # Alternate who goes first: a neighbour's burst should not always hit the same one.
            if n % 2:
                bare = bare_run(sandbox, cert, count, args.concurrency)
                app = app_run(db, sandbox, cert, count, args.concurrency, None)
            else:
                app = app_run(db, sandbox, cert, count, args.concurrency, None)
                bare = bare_run(sandbox, cert, count, args.concurrency)
            pairs.append((app, bare))
            transports.append(bare_run(sandbox, cert, count, args.concurrency, transport=True))
            print(
                f"[{db} run {n + 1}] app {app['rate']:.0f}/s {app['cpu_ms']:.3f} ms CPU/conv "
                f"({app['main_cpu'] * 1000 / count:.3f} in the calling thread; whole sweep "
                f"{app['sweep_cpu_ms']:.3f}); "
                f"bare {bare['rate']:.0f}/s {bare['cpu_ms']:.3f} ms CPU/conv; "
                f"rate ratio {app['rate'] / bare['rate']:.2f}, "
                f"CPU ratio {app['cpu_ms'] / bare['cpu_ms']:.2f}; "
                f"the app's HTTP client alone {transports[-1]['cpu_ms']:.3f} ms CPU/request",
                flush=True,
            )
    rate_ratios = [a["rate"] / b["rate"] for a, b in pairs]
    cpu_ratios = [a["cpu_ms"] / b["cpu_ms"] for a, b in pairs]
    app_rates, bare_rates = [a["rate"] for a, _ in pairs], [b["rate"] for _, b in pairs]
    app_cpu, bare_cpu = [a["cpu_ms"] for a, _ in pairs], [b["cpu_ms"] for _, b in pairs]
    rate_ratio = statistics.median(rate_ratios)
    shape = (
        f"{count} conversions, concurrency {args.concurrency}, {args.latency * 1000:g} ms, HTTPS"
    )
    sweep_ratios = [a["sweep_cpu_ms"] / b["cpu_ms"] for a, b in pairs]
    sweep_cpu = [a["sweep_cpu_ms"] for a, _ in pairs]
    main_cpu = [a["main_cpu"] * 1000 / count for a, _ in pairs]
    start_up = statistics.median(a["process_cpu"] - a["sweep_cpu"] for a, _ in pairs)
    transport_cpu = [t["cpu_ms"] for t in transports]
    transport_ratios = [
        t["cpu_ms"] / b["cpu_ms"] for t, (_, b) in zip(transports, pairs, strict=True)
    ]
    return [
        Figure(
            bench="cpu_per_conversion",
            figure=f"reports/s, app vs bare requests, {shape} ({db})",
            value=statistics.median(app_rates),
            unit="/s",
            baseline=statistics.median(bare_rates),
            baseline_label="bare requests",
            ratio=rate_ratio,
            target=">= 0.9",
            met=rate_ratio >= 0.9,
            note=f"median of {len(pairs)} interleaved pairs; ratio spread "
            f"{_spread(rate_ratios)}; app {_spread(app_rates, 0)}/s, "
            f"bare {_spread(bare_rates, 0)}/s",
            extra={"pairs": pairs},
        ),
        _cpu_figure(
            f"CPU per reported conversion, app vs bare requests ({db})",
            app_cpu,
            bare_cpu,
            cpu_ratios,
            at_most=1.15,
            note=f"whole process (every thread), the sweep's reporting step (report_pending); "
            f"median of {len(pairs)} pairs; ratio spread {_spread(cpu_ratios)}; app "
            f"{_spread(app_cpu, 3)} ms (of which the calling thread, claims and writes: "
            f"median {statistics.median(main_cpu):.3f} ms), bare {_spread(bare_cpu, 3)} ms",
        ),
        _cpu_figure(
            f"CPU per reported conversion, the command's whole sweep vs bare ({db})",
            sweep_cpu,
            bare_cpu,
            sweep_ratios,
            note=f"report_conversions' sweep: marking non-conversions, reporting, counting the "
            f"conversions into the rollups (fold), alerts; ratio spread {_spread(sweep_ratios)}; "
            f"Python+Django start-up ({start_up:.2f} s CPU per process) left out",
        ),
        _cpu_figure(
            f"CPU per request, the app's HTTP client alone vs bare requests ({db})",
            transport_cpu,
            bare_cpu,
            transport_ratios,
            note="transport.client.Client in the bare client's thread pool, no database: what "
            f"the app's sending threads cost; ratio spread {_spread(transport_ratios)}",
        ),
    ]


def main() -> None:
    p = common.parser(__doc__.split("\n")[0], databases=common.DATABASES)
    p.add_argument("--count", type=int, default=None, help="conversions (default 2000; quick 300)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--latency", type=float, default=0.020, help="sandbox latency, seconds")
    p.add_argument("--repeat", type=int, default=None, help="pairs of runs (default 5; quick 1)")
    p.add_argument("--profile", help="write a py-spy flame graph (SVG) of one app run here")
    p.add_argument("--child", choices=("app", "bare"), help=SUPPRESS_HELP)
    p.add_argument("--base-url", help=SUPPRESS_HELP)
    p.add_argument("--ca", help=SUPPRESS_HELP)
    p.add_argument("--ids", help=SUPPRESS_HELP)
    p.add_argument("--timestamp", help=SUPPRESS_HELP)
    p.add_argument("--transport", action="store_true", help=SUPPRESS_HELP)
    args = p.parse_args()
    if args.child == "app":
        child_app(args.concurrency)
        return
    if args.child == "bare":
        child_bare(
            args.base_url,
            args.ca,
            args.ids,
            args.timestamp,
            args.concurrency,
            transport=args.transport,
        )
        return
    dbs = common.databases_of(args)
    if len(dbs) > 1:
        # One database per process: Django is configured once.
        figures: list[Figure] = []
        extra = ["--latency", str(args.latency), "--concurrency", str(args.concurrency)]
        for name in ("count", "repeat"):
            if getattr(args, name):
                extra += [f"--{name}", str(getattr(args, name))]
        for db in dbs:
            figures += common.run_self_for(db, __file__, args, extra)
        common.finish(args, figures)
        return
    common.finish(args, measure(dbs[0], args))


SUPPRESS_HELP = "==SUPPRESS=="

if __name__ == "__main__":
    main()
