"""4. Memory: peak RSS of one report run over 100,000 pending conversions vs. 10,000.

``manage.py report_conversions --concurrency 16`` in its own process, with the dummy backend
(every report a 200 at once, so the run is all database and bookkeeping); its peak RSS is
read from ``wait4``'s rusage. A run that streams in batches stays flat; one that loaded the
queue would grow ten-fold. The baseline is the smaller run. Target: ratio <= 1.2.

    .venv/bin/python bench/memory.py [--quick] [--large N] [--small N]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.common import Figure


def peak_rss_mb(db: str, count: int) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of a report run over ``count`` pending conversions."""
    from django_nexmo_conversion.models import Conversion, Status

    common.reset()
    if count:
        common.load_pending(count)
    common.analyze()
    env = common.child_env(db, {"BACKEND": "django_nexmo_conversion.backends.dummy.DummyBackend"})
    start = time.perf_counter()
    process = subprocess.Popen(
        common.manage("report_conversions", "--concurrency", "16"),
        cwd=common.ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    assert os.waitstatus_to_exitcode(status) == 0, process.stderr.read() if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    reported = Conversion.objects.filter(status=Status.REPORTED).count()
    assert reported == count, f"{reported} of {count} reported"
    return usage.ru_maxrss / 1024, seconds  # ru_maxrss is in KiB on Linux


def main() -> None:
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--large", type=int, default=None, help="default 100000 (quick 20000)")
    p.add_argument("--small", type=int, default=None, help="default 10000 (quick 2000)")
    args = p.parse_args()
    large = args.large or (20_000 if args.quick else 100_000)
    small = args.small or (2_000 if args.quick else 10_000)
    db = common.databases_of(args)[0]
    common.setup(db)
    empty, _ = peak_rss_mb(db, 0)
    small_rss, small_s = peak_rss_mb(db, small)
    large_rss, large_s = peak_rss_mb(db, large)
    print(f"nothing due: {empty:.1f} MB")
    print(f"{small:,} conversions: {small_rss:.1f} MB ({small_s:.1f} s, {small / small_s:.0f}/s)")
    print(f"{large:,} conversions: {large_rss:.1f} MB ({large_s:.1f} s, {large / large_s:.0f}/s)")
    ratio = large_rss / small_rss
    common.finish(
        args,
        [
            Figure(
                bench="memory",
                figure=f"peak RSS, report run over {large:,} pending ({db})",
                value=large_rss,
                unit="MB",
                baseline=small_rss,
                baseline_label=f"{small:,} pending",
                ratio=ratio,
                target="<= 1.2",
                met=ratio <= 1.2,
                note=f"{empty:.1f} MB with nothing due; dummy backend, concurrency 16; "
                f"{large / large_s:.0f} conversions/s through the database",
            )
        ],
    )


if __name__ == "__main__":
    main()
