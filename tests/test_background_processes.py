"""The background reporter in real processes: flushed at exit, bounded at exit, and many
processes marking and sweeping one table without sending anything twice or losing anything —
even when one is killed mid-send."""

from __future__ import annotations

import signal
import sys
from collections import Counter
from contextlib import ExitStack

import pytest
from django.db import connection

from django_nexmo_conversion.conf import build_settings
from django_nexmo_conversion.models import Conversion, ConversionAttempt, Status
from django_nexmo_conversion.reporting.claims import held_at_most
from django_nexmo_conversion.sandbox import Sandbox

from .helpers import sandbox_settings
from .processes import running, wait_until, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


def marker(prefix: str, count: int, linger: float) -> list[str]:
    return [sys.executable, "-m", "tests.background_marker", prefix, str(count), str(linger)]


def background_env(sandbox: Sandbox, **overrides: object) -> dict[str, str]:
    return worker_env(
        sandbox_settings(sandbox, DISPATCH="background", SWEEP_INTERVAL=0.3, **overrides)
    )


def test_what_is_queued_at_exit_is_reported_before_the_process_ends(tmp_path) -> None:
    with (
        Sandbox() as sandbox,
        running(
            marker("EXIT", 20, 0), background_env(sandbox), log=tmp_path / "marker.log"
        ) as process,
    ):
        assert process.wait(timeout=60) == 0
        # No linger: the reports went out from the exit flush, or before.
        assert sorted(r.message_id for r in sandbox.reported()) == [
            f"EXIT{n:06d}" for n in range(20)
        ]
    assert Conversion.objects.filter(status=Status.REPORTED).count() == 20


def test_an_api_that_hangs_does_not_hold_the_exit_and_nothing_is_lost(tmp_path) -> None:
    with Sandbox(latency=90) as sandbox:
        env = background_env(sandbox, TIMEOUT=60, LEASE_SECONDS=180)
        with running(marker("HANG", 3, 0), env, log=tmp_path / "marker.log") as process:
            # The exit flush gives up after its bound (2 s), far below one TIMEOUT (60 s) and
            # the API's 90 s; 30 s leaves room for a process starting on a busy machine.
            assert process.wait(timeout=30) == 0
        # Every mark is still a row, pending or (its lease not yet run out) sending.
        states = set(Conversion.objects.values_list("status", flat=True))
        assert Conversion.objects.count() == 3
        assert states <= {Status.PENDING, Status.SENDING}


def test_four_processes_mark_and_sweep_without_duplicates_or_losses(tmp_path) -> None:
    count = 300 if connection.vendor in ("postgresql", "mysql") else 60
    concurrency = 4
    tuning = {"CONCURRENCY": concurrency, "TIMEOUT": 2, "LEASE_SECONDS": 10, "RETRY_BACKOFF": 1}
    with Sandbox(latency=0.02) as sandbox:
        env = background_env(sandbox, **tuning)
        with ExitStack() as stack:
            survivors = [
                stack.enter_context(
                    running(marker(f"P{n}", count, 120), env, log=tmp_path / f"p{n}.log")
                )
                for n in range(3)
            ]
            victim = stack.enter_context(
                running(marker("VICTIM", count, 120), env, log=tmp_path / "victim.log")
            )

            def victim_sent() -> int:
                return sum(1 for r in sandbox.requests if r.message_id.startswith("VICTIM"))

            # Kill it while its reporter has requests on the wire.
            assert wait_until(lambda: victim_sent() >= 10, timeout=60)
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)

            # The survivors' sweeps report the rest, the victim's leftovers included once
            # their leases run out. A survivor says "marked" once its last mark is committed;
            # counting rows instead would count the victim's marks too, and end the wait (and
            # the survivors) while one was still marking.
            def all_reported() -> bool:
                return (
                    all(b"marked" in (tmp_path / f"p{n}.log").read_bytes() for n in range(3))
                    and not Conversion.objects.exclude(status=Status.REPORTED).exists()
                )

            assert wait_until(all_reported, timeout=120)
            for process in survivors:
                process.send_signal(signal.SIGTERM)
            for process in survivors:
                assert process.wait(timeout=30) == 0

    sent = Counter(r.message_id for r in sandbox.requests)
    reported = set(
        Conversion.objects.filter(status=Status.REPORTED).values_list(
            "message__message_id", flat=True
        )
    )
    assert set(sent) == reported  # nothing lost, nothing sent that was not marked
    twice = {message_id: n for message_id, n in sent.items() if n > 1}
    # At-least-once only where a process died between Nexmo's answer and its own write: what
    # the victim held claimed (its sweeps claim anyone's rows), each send unrecorded — every
    # other send is an attempt on record.
    window = held_at_most(
        concurrency, build_settings({"API_KEY": "k", "API_SECRET": "s", **tuning})
    )
    assert sum(n - 1 for n in twice.values()) <= window, twice
    recorded = Counter(
        ConversionAttempt.objects.filter(conversion__message__message_id__in=twice).values_list(
            "conversion__message__message_id", flat=True
        )
    )
    assert all(recorded[message_id] == n - 1 for message_id, n in twice.items()), twice
    survivors_marks = {f"P{p}{n:06d}" for p in range(3) for n in range(count)}
    assert survivors_marks <= reported, sorted(survivors_marks - reported)[:10]


def test_exit_is_bounded_by_the_flush_and_one_timeout_while_nexmo_hangs(tmp_path) -> None:
    """The send pool must not run every queued send at exit: 20 marks, 2 at a time, against
    an API that never answers within TIMEOUT held the exit for 45 s and more."""
    timeout, linger = 3, 4
    log = tmp_path / "marker.log"
    with Sandbox(latency=60) as sandbox:
        env = background_env(sandbox, TIMEOUT=timeout, CONCURRENCY=2, LEASE_SECONDS=120)
        # It exits after lingering while its reporter is mid-run, requests on the wire.
        with running(marker("BOUND", 20, linger), env, log=log) as process:
            assert wait_until(lambda: b"marked" in log.read_bytes(), timeout=60)
            # The bound is EXIT_FLUSH_SECONDS (2) + one TIMEOUT (3) = 5 s after lingering;
            # 10 s of margin for a loaded machine, far under what draining the queue takes.
            process.wait(timeout=linger + 2 + timeout + 10)
        # Nothing lost: every mark is a row, pending (or sending until its lease ends).
        assert Conversion.objects.count() == 20
        assert set(Conversion.objects.values_list("status", flat=True)) <= {
            Status.PENDING,
            Status.SENDING,
        }
