"""A process that marks conversions with DISPATCH="background" and lingers while its reporter
thread reports and sweeps, then exits (tests/test_background_processes.py).

    python -m tests.background_marker PREFIX COUNT LINGER_SECONDS

SIGTERM ends it through a normal exit, so the reporter's flush at exit runs.
"""

from __future__ import annotations

import signal
import sys
import time


def main(prefix: str, count: int, linger: float) -> None:
    import django

    django.setup()
    from django_nexmo_conversion import mark_converted

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    for n in range(count):
        mark_converted(f"{prefix}{n:06d}")
    print("marked", flush=True)
    time.sleep(linger)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
