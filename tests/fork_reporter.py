"""A process that reports, then forks children that report too, as gunicorn ``--preload``,
multiprocessing or Celery's prefork pool do (tests/test_fork_safety.py).

    python -m tests.fork_reporter CHILDREN PER_CHILD WHEN

The dispatch mode is the settings' (``DISPATCH``): ``manual`` reports with
``report_pending`` (what the command runs). ``WHEN`` is where the parent stands when it forks:
``after`` its own report (its keep-alive connection and send pool are up), ``during`` one (a
report of the parent's is on the wire in another thread). Each child marks ``PER_CHILD``
conversions, reports them and exits 0; the parent exits 0 once every child did, 1 if a child
failed, 2 if a child still ran after the bound (hung).
"""

from __future__ import annotations

import os
import sys
import threading
import time

#: A child that has not exited by then is hung (each report takes milliseconds).
CHILD_BOUND = 40.0


def report(prefix: str, count: int) -> bool:
    from django_nexmo_conversion import mark_converted, report_pending
    from django_nexmo_conversion.conf import get_settings
    from django_nexmo_conversion.dispatch import background

    for n in range(count):
        mark_converted(f"{prefix}{n:04d}")
    mode = get_settings().dispatch
    if mode == "manual":
        report_pending()
    elif mode == "background":
        return background.flush(timeout=CHILD_BOUND)
    return True


def child(index: int, count: int) -> int:
    from django.db import connections

    try:
        ok = report(f"CHILD{index}-", count)
    finally:
        connections.close_all()
    return 0 if ok else 1


def main(children: int, per_child: int, when: str) -> int:
    import django

    django.setup()
    from django.db import connections

    report("PARENT-", 2)
    busy = None
    if when == "during":
        # A report of the parent's in flight in another thread while it forks.
        busy = threading.Thread(target=lambda: (report("BUSY-", 4), connections.close_all()))
        busy.start()
        # Fork once its requests are on the wire (the sandbox answers slowly): its thread
        # then waits for answers, not inside the database driver (SQLite's library cannot
        # be forked in the middle of a call).
        from django_nexmo_conversion.conf import get_settings
        from django_nexmo_conversion.models import Conversion, Status

        on_wire = Conversion.objects.filter(
            message__message_id__startswith="BUSY-", status=Status.SENDING
        )
        # report_pending claims the four at once; the other modes send as the marks come.
        needed = 4 if get_settings().dispatch == "manual" else 1
        while on_wire.count() < needed and busy.is_alive():
            time.sleep(0.01)
        if not busy.is_alive():
            print("the parent's report ended before the fork", flush=True)
            return 3
    # As any preforking server must: the children open their own database connections.
    connections.close_all()
    pids = []
    for index in range(children):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = child(index, per_child)
            finally:
                os._exit(code)
        pids.append(pid)
    if busy is not None:
        busy.join()
    worst = 0
    deadline = time.monotonic() + CHILD_BOUND
    for pid in pids:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                worst = max(worst, 0 if os.waitstatus_to_exitcode(status) == 0 else 1)
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                worst = 2
                break
            time.sleep(0.05)
    print("children", worst, flush=True)
    return worst


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
