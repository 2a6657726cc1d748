"""2. Timeliness: from ``mark_converted`` returning to the sandbox receiving the report.

A marker process (bench/marker.py) marks a steady 50 conversions a second, each in a
transaction as a view would; the sandbox (HTTPS, 20 ms latency) stamps each request on
arrival. Two set-ups:

- ``on_commit``: ``DISPATCH="on_commit"``, the marker's own process reports after commit.
- ``loop``: ``DISPATCH="manual"`` and ``manage.py report_conversions --loop`` running beside
  it (default interval).

The baseline is the loop's polling interval: the delay a fixed-interval poller adds on
average (interval / 2). Targets: p99 < 1 s (on_commit), < 2 s (loop).

    .venv/bin/python bench/timeliness.py [--quick] [--duration S] [--rate R]
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.common import Figure


def run_mode(
    mode: str, db: str, sandbox: object, cert: str, rate: float, duration: float, prefix: str
) -> dict[str, float]:
    arrivals: dict[str, float] = {}
    lock = threading.Lock()

    def on_request(request: object) -> None:
        with lock:
            arrivals.setdefault(request.message_id, request.received_at)  # type: ignore[attr-defined]

    sandbox.on_request = on_request  # type: ignore[attr-defined]
    dispatch = "on_commit" if mode == "on_commit" else "manual"
    conversion = common.https_settings(sandbox, DISPATCH=dispatch)
    env = common.child_env(db, conversion, NEXMO_BENCH_CA_BUNDLE=cert)
    loop = None
    if mode == "loop":
        loop = subprocess.Popen(
            common.manage("report_conversions", "--loop"),
            cwd=common.ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.5)  # started and polling before the first mark
    try:
        _wall, output = common.run_child(
            common.bench_script(
                "marker.py",
                "--rate",
                str(rate),
                "--duration",
                str(duration),
                "--prefix",
                prefix,
            ),
            env,
            timeout=duration * 4 + 120,
        )
        marks = {}
        late = 0
        for line in output.splitlines():
            if not line.startswith("{"):
                continue
            item = json.loads(line)
            if "id" in item:
                marks[item["id"]] = item["t"]
            elif "late" in item:
                late = item["late"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock:
                if all(m in arrivals for m in marks):
                    break
            time.sleep(0.1)
    finally:
        if loop is not None:
            loop.send_signal(signal.SIGTERM)
            try:
                loop.wait(timeout=30)
            except subprocess.TimeoutExpired:
                loop.kill()
        sandbox.on_request = None  # type: ignore[attr-defined]
    missing = [m for m in marks if m not in arrivals]
    assert not missing, f"{len(missing)} marks never reached the sandbox ({mode})"
    delays = [arrivals[m] - t for m, t in marks.items()]
    # The first marks find an idle loop backed off to its interval; past the first 2 s it is
    # the steady state.
    first = min(marks.values())
    steady = [arrivals[m] - t for m, t in marks.items() if t >= first + 2.0]
    return {
        "count": len(delays),
        "p50": common.percentile(delays, 50),
        "p99": common.percentile(delays, 99),
        "max": max(delays),
        "steady_p99": common.percentile(steady, 99) if steady else float("nan"),
        "late": late,
    }


def main() -> None:
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=None, help="seconds (default 30; quick 6)")
    p.add_argument("--rate", type=float, default=50.0, help="marks per second")
    p.add_argument("--latency", type=float, default=0.020)
    p.add_argument("--mode", action="append", choices=("on_commit", "loop"))
    p.add_argument("--interval", type=float, default=2.0, help="the loop's --interval default")
    args = p.parse_args()
    duration = args.duration or (6.0 if args.quick else 30.0)
    db = common.databases_of(args)[0]
    common.setup(db)
    from django_nexmo_conversion.sandbox import Sandbox

    cert, key = common.certificate()
    common.reset()
    targets = {"on_commit": 1.0, "loop": 2.0}
    figures: list[Figure] = []
    with Sandbox(latency=args.latency, certfile=cert, keyfile=key) as sandbox:
        for n, mode in enumerate(args.mode or ("on_commit", "loop")):
            r = run_mode(mode, db, sandbox, cert, args.rate, duration, prefix=f"T{n}X")
            print(
                f"{mode}: {r['count']} marks at {args.rate:g}/s: p50 {r['p50'] * 1000:.0f} ms, "
                f"p99 {r['p99'] * 1000:.0f} ms (after the first 2 s: "
                f"{r['steady_p99'] * 1000:.0f} ms), max {r['max'] * 1000:.0f} ms "
                f"({r['late']} marks started > 50 ms late)"
            )
            baseline = args.interval / 2
            figures.append(
                Figure(
                    bench="timeliness",
                    figure=f"p99 mark -> Nexmo, {mode}, {args.rate:g} marks/s ({db})",
                    value=r["p99"],
                    unit="s",
                    baseline=baseline,
                    baseline_label=f"fixed {args.interval:g} s poll, mean wait",
                    ratio=r["p99"] / baseline,
                    target=f"p99 < {targets[mode]:g} s",
                    met=r["p99"] < targets[mode],
                    note=f"p50 {r['p50'] * 1000:.0f} ms, max {r['max'] * 1000:.0f} ms, "
                    f"p99 after the first 2 s {r['steady_p99'] * 1000:.0f} ms; {r['count']} marks, "
                    f"{r['late']} started > 50 ms after their slot",
                    extra=r,
                )
            )
    common.finish(args, figures)


if __name__ == "__main__":
    main()
