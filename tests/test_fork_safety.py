"""Forked processes (gunicorn ``--preload``, multiprocessing, Celery's prefork pool) report on
connections and a send pool of their own: a child never reads an answer meant for another
process, and never waits on the parent's pool threads, which do not exist in it.

Real forks (``tests/fork_reporter.py``) against the sandbox, which numbers the TCP
connections it accepted: requests sharing a number were sent over one kept-alive connection.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict

import pytest
from django.db import connection

from django_nexmo_conversion.models import Conversion, Status
from django_nexmo_conversion.sandbox import Sandbox

from .helpers import sandbox_settings
from .processes import worker_env

pytestmark = pytest.mark.django_db(transaction=True)

CHILDREN = 3
PER_CHILD = 4


def fork_and_report(sandbox: Sandbox, dispatch: str, when: str) -> subprocess.CompletedProcess[str]:
    # No sweeps: each process reports its own marks only (a sweep of the parent's would take
    # the children's rows too, and give them back at its exit).
    settings = sandbox_settings(sandbox, DISPATCH=dispatch, CONCURRENCY=4, SWEEP_INTERVAL=0)
    env = worker_env(settings)
    command = [sys.executable, "-m", "tests.fork_reporter", str(CHILDREN), str(PER_CHILD), when]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def process_of(message_id: str | None, dispatch: str) -> str:
    """Which process sent ``message_id``: the parent (PARENT-, BUSY-), or the child that marked
    it. With ``manual`` a child's ``report_pending`` may send a sibling's rows too: then all
    children are one group (a connection inherited from the parent carried the parent's
    requests first, so sharing one still shows)."""
    prefix = (message_id or "?").split("-")[0]
    if prefix in ("PARENT", "BUSY"):
        return "parent"
    return "children" if dispatch == "manual" else prefix


@pytest.mark.parametrize("when", ["after", "during"])
@pytest.mark.parametrize("dispatch", ["on_commit", "background", "manual"])
def test_forked_children_report_on_their_own_connections_and_pool(dispatch: str, when: str) -> None:
    if when == "during" and connection.vendor == "sqlite":
        # SQLite's library has process-wide mutexes: forking while another thread is inside
        # it leaves the child's next connect waiting forever, whatever this app does.
        pytest.skip("SQLite cannot be forked while another thread is inside it")
    # Forking "during" a report: the parent's requests are slow, so it forks with them on
    # the wire.
    with Sandbox(latency=1.0 if when == "during" else 0.0) as sandbox:
        finished = fork_and_report(sandbox, dispatch, when)
        requests = sandbox.requests

    # Every child ended (none hung on the parent's pool) and reported all it marked.
    assert finished.returncode == 0, finished.stdout + finished.stderr
    children = Conversion.objects.filter(message__message_id__startswith="CHILD")
    assert children.count() == CHILDREN * PER_CHILD
    # None left "sending" (a child hung on the parent's pool left them so until the lease
    # ended); each one sent was recorded with the answer to its own request. (On MariaDB a
    # child's run may skip a row a sibling's claim was scanning, SKIP LOCKED: it stays
    # pending, unsent, for a sweep; sweeps are off here.)
    answered = {request.message_id: request.status for request in requests}
    for message_id, status, code in children.values_list(
        "message__message_id", "status", "last_status_code"
    ):
        assert status in (Status.REPORTED, Status.PENDING), (message_id, status)
        if status == Status.REPORTED:
            assert answered[message_id] == code == 200
        else:
            assert message_id not in answered
    assert children.filter(status=Status.REPORTED).exists()
    # No TCP connection carried the requests of two processes.
    users: dict[int, set[str]] = defaultdict(set)
    for request in requests:
        users[request.connection].add(process_of(request.message_id, dispatch))
    shared = {number: who for number, who in users.items() if len(who) > 1}
    assert not shared, shared
