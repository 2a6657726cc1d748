"""Eight threads checking (and recording) sends to one attacked prefix at once, on the
databases that run them in parallel: consistent decisions, no deadlock, no error."""

from __future__ import annotations

import itertools
import threading
from typing import Any

from django_nexmo_conversion import guard, record_message
from django_nexmo_conversion.models import GuardEvent

from .helpers import concurrent_writers, configure, one_at_a_time, run_together

THREADS = 8
PER_THREAD = 6


@concurrent_writers
def test_eight_threads_on_one_attacked_prefix_let_through_no_more_than_one_plus_in_flight(
    settings: Any,
) -> None:
    # A country never sent to: one thread alone lets NEW_DESTINATION_MAX (5) through.
    configure(settings, GUARD={"MODE": "enforce"})
    next_number = one_at_a_time(f"234803{i:07d}" for i in itertools.count(0, 1000))

    def work() -> list[bool]:
        allowed = []
        for _ in range(PER_THREAD):
            number = next_number()
            decision = guard.check(number, client=f"10.0.0.{threading.get_ident() % 250}")
            if decision.allowed:
                record_message(f"C{number}", recipient=number)
            allowed.append(decision.allowed)
        return allowed

    results, errors = run_together(THREADS, work)
    assert errors == []
    let_through = sum(sum(allowed) for allowed in results)
    assert 5 <= let_through <= 5 + THREADS - 1
    assert GuardEvent.objects.count() == THREADS * PER_THREAD
    assert not any(e.reason == "guard_error" for e in GuardEvent.objects.all())
