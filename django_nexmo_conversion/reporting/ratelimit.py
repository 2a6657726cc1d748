"""``RATE_LIMIT``: requests per second across every worker and host, kept in Django's cache.

Two rules, checked together under a tiny cache mutex right before each request starts:

- spacing: requests start at least ``1 / rate`` seconds apart, so they do not come in bursts;
- a sliding log of the last second's starts: never more than the budget in any one second,
  even when threads that slept through their turn wake up late together.

The budget is 5 % under ``RATE_LIMIT`` (19 of 20): the time from our send to Nexmo's
arrival varies, and that slack keeps Nexmo's own one-second windows within the limit.
A 429 moves the shared timeline past its ``Retry-After``, slowing every worker down, for at
most ``SHARED_PAUSE_MAX`` seconds (a minute; less if ``max_wait`` says so): one answer may
delay its own conversion by up to ``RETRY_BACKOFF_MAX``, but must not stop every worker on
every host for hours. A caller may also refuse to sleep out a pause longer than its own
deadline (``wait(longest_pause=...)``): its rows then wait in the database. Every wait is cut
short when the caller is asked to stop.

The cache must be shared by the workers (Redis in production; locmem only limits one
process) and is used from the report threads, so it must not be the database cache.
The hosts' clocks are assumed to agree (NTP).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.core.cache import caches

STATE_KEY = "django_nexmo_conversion:ratelimit:state"
LOCK_KEY = "django_nexmo_conversion:ratelimit:lock"
WINDOW = 1.0
SAFETY = 0.95
#: A holder that dies keeps the lock at most this long.
LOCK_TIMEOUT = 2
#: The longest single sleep while waiting for a turn: how soon a stop request is noticed.
STOP_CHECK = 0.05
#: Waits between tries for the mutex: from a millisecond, doubling to 16 ms. Every thread of
#: every worker polls it (a cache round trip each), so a fixed 1 ms poll kept 16 waiting
#: threads busy on the CPU while one held it.
LOCK_POLL_FIRST = 0.001
LOCK_POLL_MAX = 0.016
#: The longest penalty when none is given (an hour).
DEFAULT_MAX_WAIT = 3600.0
#: The longest pause one 429 imposes on every worker, whatever ``max_wait`` says.
SHARED_PAUSE_MAX = 60.0


class RateLimiter:
    def __init__(
        self,
        rate: float,
        *,
        cache_alias: str = "default",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> None:
        self.budget = max(1, math.floor(rate * SAFETY))
        self.max_wait = min(max_wait, SHARED_PAUSE_MAX)
        self.interval = WINDOW / self.budget
        self.cache = caches[cache_alias]
        self.clock = clock
        self.sleep = sleep
        # The threads of one run queue here and only the first talks to the shared cache:
        # with every sending thread of every worker polling the cache for the next turn, a
        # run spent more CPU waiting for its turns (40 ms per request at 20 requests a
        # second over 4 workers x 4 threads) than sending.
        self._turn = threading.Lock()

    def wait(
        self, should_stop: Callable[[], bool] = lambda: False, *, longest_pause: float = math.inf
    ) -> bool:
        """Block until this caller may start a request, and count it as started. Returns
        False, without counting, as soon as ``should_stop()`` says so (SIGTERM), or at once
        when a 429's pause would keep it waiting longer than ``longest_pause`` seconds (the
        caller's deadline; waiting one's turn in the spacing is not a pause)."""
        while not self._turn.acquire(timeout=STOP_CHECK):
            if should_stop():
                return False
        try:
            return self._wait_turn(should_stop, longest_pause)
        finally:
            self._turn.release()

    def _wait_turn(self, should_stop: Callable[[], bool], longest_pause: float) -> bool:
        while (delay := self._with_lock(self._take)) > 0:
            if delay > longest_pause and delay > self.interval + WINDOW:
                return False
            end = self.clock() + delay
            while (left := end - self.clock()) > 0:
                if should_stop():
                    return False
                self.sleep(min(left, STOP_CHECK))
        return True

    def penalize(self, seconds: float) -> None:
        """Nexmo said 429: nobody starts another request for ``seconds`` (at most
        ``max_wait``; a value that is not a finite number counts as ``max_wait``)."""
        seconds = min(max(seconds, 0.0), self.max_wait) if math.isfinite(seconds) else self.max_wait

        def push() -> float:
            state = self._state()
            state["next"] = max(state["next"], self.clock() + seconds)
            self._save(state)
            return 0.0

        self._with_lock(push)

    def _take(self) -> float:
        """Start now if both rules allow it (returns 0), else return how long to wait."""
        now = self.clock()
        state = self._state()
        started = [t for t in state["started"] if t > now - WINDOW]
        next_start = float(state["next"])
        if math.isnan(next_start):
            next_start = 0.0
        if next_start > now + self.max_wait:
            # Bounded even when the shared state holds a later time (another host's larger
            # RETRY_BACKOFF_MAX, an older version's unbounded penalty): heal it for everyone.
            next_start = now + self.max_wait
            self._save({**state, "next": next_start})
        wait = next_start - now
        if len(started) >= self.budget:
            wait = max(wait, started[0] + WINDOW - now)
        if wait > 0:
            return wait
        started.append(now)
        self._save({"next": now + self.interval, "started": started})
        return 0.0

    def _state(self) -> dict[str, Any]:
        state = self.cache.get(STATE_KEY)
        if not isinstance(state, dict):
            return {"next": 0.0, "started": []}
        return state

    def _save(self, state: dict[str, Any]) -> None:
        self.cache.set(STATE_KEY, state, timeout=3600)

    def _with_lock(self, action: Callable[[], float]) -> float:
        token = uuid.uuid4().hex
        poll = LOCK_POLL_FIRST
        # cache.add is atomic (SET NX on Redis): a tiny mutex around read-modify-write.
        while not self.cache.add(LOCK_KEY, token, timeout=LOCK_TIMEOUT):
            self.sleep(poll)
            poll = min(poll * 2, LOCK_POLL_MAX)
        try:
            return action()
        finally:
            if self.cache.get(LOCK_KEY) == token:
                self.cache.delete(LOCK_KEY)
