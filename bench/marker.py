"""A steady stream of ``mark_converted`` calls, as web requests would make them (timeliness.py).

Marks ``--rate`` conversions a second for ``--duration`` seconds from ``--workers`` threads (a
web server's workers), each inside ``transaction.atomic()`` like a view with
``ATOMIC_REQUESTS``. Prints one JSON line per mark: the message id and ``time.monotonic()``
taken right after ``mark_converted`` returned (CLOCK_MONOTONIC is shared by all processes,
so the sandbox's ``received_at`` can be compared with it). With ``DISPATCH="on_commit"``
the report is sent when the ``atomic`` block commits, after that moment.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=50.0)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--prefix", default="T")
    args = p.parse_args()

    import django

    django.setup()
    from django.db import close_old_connections, transaction

    from django_nexmo_conversion import mark_converted

    total = int(args.rate * args.duration)
    start = time.monotonic() + 0.5  # let every worker get ready
    lock = threading.Lock()
    next_index = 0
    out_lock = threading.Lock()
    late = 0

    def worker() -> None:
        nonlocal next_index, late
        while True:
            with lock:
                index = next_index
                next_index += 1
            if index >= total:
                break
            due = start + index / args.rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            elif wait < -0.05:
                with out_lock:
                    late += 1
            message_id = f"{args.prefix}{index:012d}"
            with transaction.atomic():
                mark_converted(message_id)
                returned = time.monotonic()
            with out_lock:
                sys.stdout.write(json.dumps({"id": message_id, "t": returned}) + "\n")
        close_old_connections()

    threads = [threading.Thread(target=worker) for _ in range(args.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sys.stdout.flush()
    # Marks that started more than 50 ms after their slot: the stream was not steady.
    print(json.dumps({"late": late, "total": total}), file=sys.stderr)


if __name__ == "__main__":
    main()
