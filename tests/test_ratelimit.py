"""The shared rate limiter with a fake clock: which start times it allows."""

from __future__ import annotations

from itertools import pairwise

import pytest
from django.core.cache import cache

from django_nexmo_conversion.reporting.ratelimit import RateLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake():
    cache.clear()
    yield FakeTime()
    cache.clear()


def starts(limiter: RateLimiter, fake: FakeTime, count: int) -> list[float]:
    times = []
    for _ in range(count):
        limiter.wait()
        times.append(fake.now)
    return times


def test_budget_is_just_under_the_rate_and_evenly_spaced(fake):
    limiter = RateLimiter(20, clock=fake.clock, sleep=fake.sleep)
    times = starts(limiter, fake, 60)
    assert limiter.budget == 19
    gaps = {round(b - a, 6) for a, b in pairwise(times)}
    assert gaps == {round(1 / 19, 6)}
    # No one-second window holds more than the budget.
    assert max(sum(1 for t in times if s <= t < s + 1) for s in times) == 19


def test_workers_sharing_the_cache_share_the_budget(fake):
    """Two limiters (two workers) on the same cache interleave instead of doubling the rate."""
    a = RateLimiter(10, clock=fake.clock, sleep=fake.sleep)
    b = RateLimiter(10, clock=fake.clock, sleep=fake.sleep)
    times = []
    for _ in range(20):
        for limiter in (a, b):
            limiter.wait()
            times.append(fake.now)
    assert max(sum(1 for t in times if s <= t < s + 1) for s in times) <= 10


def test_late_wakers_cannot_burst(fake):
    """Slots booked long ago do not add up to a burst: the sliding log still holds."""
    limiter = RateLimiter(5, clock=fake.clock, sleep=fake.sleep)
    starts(limiter, fake, 4)
    fake.now += 0.01
    more = starts(limiter, fake, 4)
    everything = [*more]
    assert all(b - a >= 1 / 4 - 1e-9 for a, b in pairwise(everything))


def test_429_pauses_everyone_for_retry_after(fake):
    a = RateLimiter(20, clock=fake.clock, sleep=fake.sleep)
    b = RateLimiter(20, clock=fake.clock, sleep=fake.sleep)
    a.wait()
    told_at = fake.now
    a.penalize(3.0)
    b.wait()
    assert fake.now >= told_at + 3.0
