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

from django_nexmo_conversion.models import Conversion, Status
from django_nexmo_conversion.sandbox import Sandbox

from .helpers import sandbox_settings
from .processes import worker_env

pytestmark = pytest.mark.django_db(transaction=True)

CHILDREN = 3
PER_CHILD = 4


def fork_and_report(sandbox: Sandbox, dispatch: str, when: str) -> subprocess.CompletedProcess[str]:
    env = worker_env(sandbox_settings(sandbox, DISPATCH=dispatch, CONCURRENCY=4))
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
    # Forking "during" a report: the parent's requests are slow, so it forks with them on
    # the wire.
    with Sandbox(latency=1.0 if when == "during" else 0.0) as sandbox:
        finished = fork_and_report(sandbox, dispatch, when)
        requests = sandbox.requests

    # Every child ended (none hung on the parent's pool) and reported all it marked.
    assert finished.returncode == 0, finished.stdout + finished.stderr
    children = Conversion.objects.filter(message__message_id__startswith="CHILD")
    assert children.count() == CHILDREN * PER_CHILD
    assert set(children.values_list("status", flat=True)) == {Status.REPORTED}
    # No TCP connection carried the requests of two processes.
    users: dict[int, set[str]] = defaultdict(set)
    for request in requests:
        users[request.connection].add(process_of(request.message_id, dispatch))
    shared = {number: who for number, who in users.items() if len(who) > 1}
    assert not shared, shared
