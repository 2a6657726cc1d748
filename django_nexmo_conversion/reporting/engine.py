"""The reporting engine: take due conversions, send them, write the answers.

Top to bottom: :func:`report_pending` claims batches of due rows (``claims``), the backend
sends them from a bounded thread pool (threads do HTTP only, never SQL), and the answers are
written from the calling thread as they arrive (``outcomes``). :func:`report_due` is the
periodic job (the command, the queue tasks and the dispatchers' sweeps all run it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from django.utils import timezone

from ..backends import BaseBackend, get_backend
from ..choices import Status
from ..conf import ConversionSettings, get_settings
from ..insights import low_conversion_alerts
from ..models import Conversion
from ..non_conversion import mark_non_conversions
from ..ratelimit import RateLimiter
from ..validation import clean_count
from ..wire import Answer, Report
from .claims import batch_size, claim, lease_rounds, release
from .outcomes import halts, write_answers

logger = logging.getLogger("django_nexmo_conversion")

#: The batches of one run: (claim token, rows).
Batches = Iterator[tuple[str, list[Conversion]]]


@dataclass
class ReportResult:
    """What one report run did."""

    reported: int = 0
    retrying: int = 0
    failed: int = 0
    #: True when an account error (401/402) stopped the run; everything left stays pending.
    halted: bool = False
    status_code: int | None = None
    error: str = ""
    #: Messages marked ``delivered=False`` by ``NON_CONVERSION_AFTER`` before the run.
    non_conversions: int = 0

    @property
    def attempted(self) -> int:
        return self.reported + self.retrying + self.failed

    def merge(self, other: ReportResult) -> None:
        self.reported += other.reported
        self.retrying += other.retrying
        self.failed += other.failed
        self.non_conversions += other.non_conversions
        if other.halted:
            self.halted, self.status_code, self.error = True, other.status_code, other.error

    def summary(self) -> str:
        text = f"reported {self.reported}, retrying {self.retrying}, failed {self.failed}"
        if self.halted:
            text += f"; HALTED by an account error: {self.error}"
        return text


def report_of(conversion: Conversion) -> Report:
    """What Nexmo receives for ``conversion``."""
    return Report(
        channel=conversion.message.channel,
        message_id=conversion.message.message_id,
        delivered=conversion.delivered,
        timestamp=conversion.timestamp,
    )


_pool_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}


def _executor(size: int) -> ThreadPoolExecutor:
    """A long-lived pool per size, so worker threads (and their keep-alive connections)
    survive from one run to the next: ``--loop`` and on_commit reuse them."""
    with _pool_lock:
        pool = _pools.get(size)
        if pool is None:
            pool = _pools[size] = ThreadPoolExecutor(size, thread_name_prefix="nexmo-conversion")
        return pool


class _Run:
    """One report run's sending side: the backend, the shared rate limit, and the tally."""

    def __init__(
        self, conf: ConversionSettings, progress: Callable[[ReportResult], None] | None
    ) -> None:
        self.conf = conf
        self.result = ReportResult()
        self.progress = progress
        #: The pool refused work (the interpreter is exiting): the rest goes one by one.
        self.pool_closed = False
        self.limiter = (
            RateLimiter(conf.rate_limit, cache_alias=conf.rate_limit_cache)
            if conf.rate_limit
            else None
        )
        self._backend: BaseBackend | None = None

    def send(self, row: Conversion) -> Answer:
        """One POST (in a worker thread: no SQL here)."""
        if self._backend is None:
            self._backend = get_backend()
        if self.limiter is not None:
            self.limiter.wait()
        answer = self._backend.send(report_of(row), self.conf.account_for(row.message.api_key))
        if self.limiter is not None and answer.status_code == 429:
            self.limiter.penalize(answer.retry_after if answer.retry_after is not None else 1.0)
        return answer

    def record(self, token: str, answered: list[tuple[Conversion, Answer]]) -> bool:
        """Write answers (in one transaction) and count them; False when the run must halt."""
        result = self.result
        go_on = True
        statuses = write_answers(answered, token, self.conf)
        for (_row, answer), status in zip(answered, statuses, strict=True):
            if halts(answer):
                if not result.halted:
                    logger.error("Reporting halted: %s", answer.error)
                result.halted, result.status_code = True, answer.status_code
                result.error = answer.error
                go_on = False
            elif status == Status.REPORTED:
                result.reported += 1
            elif status == Status.FAILED:
                result.failed += 1
            elif status == Status.PENDING:
                result.retrying += 1
        if self.progress is not None:
            self.progress(result)
        return go_on


def _send_one_by_one(batches: Batches, run: _Run, should_stop: Callable[[], bool]) -> None:
    for token, rows in batches:
        unsent = {row.pk for row in rows}
        try:
            for row in rows:
                if should_stop():
                    break
                answer = run.send(row)
                unsent.discard(row.pk)
                if not run.record(token, [(row, answer)]):
                    break
        finally:
            # Also on an unexpected error (no credentials for a key, a backend that raised,
            # the database): claimed rows must not sit as "sending" until their lease ends.
            if unsent:
                release(token, unsent)
        if run.result.halted:
            return


def _send_concurrently(
    batches: Batches,
    run: _Run,
    concurrency: int,
    should_stop: Callable[[], bool],
    *,
    queue_ahead: bool,
) -> None:
    """Send from the thread pool and write the answers from this thread as they arrive.

    With ``queue_ahead`` the next batch is claimed as soon as the last queued request of
    this one has started, so the pool never sits idle waiting for a claim.
    """
    pool = _executor(concurrency)
    owner: dict[Future[Answer], tuple[str, Conversion]] = {}
    running: set[Future[Answer]] = set()
    unsent: dict[str, set[int]] = {}  # claim token -> rows not sent (released at the end)

    def queue_next() -> bool:
        batch = next(batches, None)
        if batch is None:
            return False
        token, rows = batch
        unsent[token] = {row.pk for row in rows}
        for row in rows:
            try:
                future = pool.submit(run.send, row)
            except RuntimeError:
                # At interpreter exit the pool takes no more work; what it did not take is
                # released below and sent one by one from this thread.
                run.pool_closed = True
                return False
            owner[future] = (token, row)
            running.add(future)
        return True

    stopping = False
    try:
        more = queue_next()
        while running:
            done, still = wait(running, return_when=FIRST_COMPLETED)
            running.intersection_update(still)
            answered: dict[str, list[tuple[Conversion, Answer]]] = {}
            for future in done:
                if future.cancelled():
                    continue
                token, row = owner.pop(future)
                answer = future.result()
                if halts(answer) or should_stop():
                    # Halted or asked to stop: cancel before writing the outcome, so the pool
                    # does not start more sends meanwhile; what has not started is released.
                    stopping = True
                    for other in running:
                        other.cancel()
                answered.setdefault(token, []).append((row, answer))
            # Every answer that came in while the last ones were written goes in one
            # transaction: under load the groups grow and the commits thin out.
            for token, rows_answered in answered.items():
                unsent[token].difference_update(row.pk for row, _answer in rows_answered)
                run.record(token, rows_answered)
            stopping = stopping or run.result.halted
            if more and not stopping and len(running) <= (concurrency if queue_ahead else 0):
                more = queue_next()
    except BaseException:
        # Stop the queued sends; one already on the wire keeps its lease, so no other worker
        # sends it while this request may still succeed.
        for future in running:
            if not future.cancel() and not future.done():
                token, row = owner[future]
                unsent[token].discard(row.pk)
        raise
    finally:
        for token, pks in unsent.items():
            if pks:
                release(token, pks)


def _pending_batches(
    *,
    limit: int | None,
    concurrency: int,
    pks: Sequence[int] | None,
    conf: ConversionSettings,
    should_stop: Callable[[], bool],
    queued: bool = False,
) -> Batches:
    # Only rows due when the run started: a row this run reschedules waits for the next run,
    # so one run tries each conversion at most once.
    started = timezone.now()
    remaining = limit
    while remaining is None or remaining > 0:
        if should_stop():
            return
        size = batch_size(concurrency, conf, queued=queued)
        if remaining is not None:
            size = min(size, remaining)
        token, rows = claim(size, pks=pks, due_at=started, conf=conf)
        if not rows:
            return
        if remaining is not None:
            remaining -= len(rows)
        yield token, rows
        if len(rows) < size:
            # Fewer than asked: nothing else was due when the run started, or another
            # worker is taking it. Another claim would only come back empty (for the one
            # conversion an on_commit dispatch reports, that was a third of its queries).
            return


def report_pending(
    *,
    limit: int | None = None,
    concurrency: int | None = None,
    pks: Sequence[int] | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[ReportResult], None] | None = None,
) -> ReportResult:
    """Report every conversion due now (at most ``limit``), ``concurrency`` at a time.

    Stops at the first account error (401/402) and leaves everything not yet sent pending.
    ``pks`` narrows the run to those conversions (the dispatchers use it); ``progress`` is
    called with the running tally after each group of answers is written.
    """
    conf = get_settings()
    conf.raise_for_problems()
    if limit is not None:
        limit = clean_count(limit, name="limit", minimum=0)
    concurrency = clean_count(
        conf.concurrency if concurrency is None else concurrency, name="concurrency", minimum=1
    )
    should_stop = should_stop or (lambda: False)
    run = _Run(conf, progress)
    # Claiming a batch while the previous one still sends needs room for one more round
    # within the lease.
    queue_ahead = concurrency > 1 and lease_rounds(conf) >= 2
    batches = _pending_batches(
        limit=limit,
        concurrency=concurrency,
        pks=pks,
        conf=conf,
        should_stop=should_stop,
        queued=queue_ahead,
    )
    if concurrency > 1:
        _send_concurrently(batches, run, concurrency, should_stop, queue_ahead=queue_ahead)
    if concurrency <= 1 or (run.pool_closed and not run.result.halted):
        if run.pool_closed:
            # Fresh batches: the released rows are due from now, after this run started.
            done = run.result.attempted
            batches = _pending_batches(
                limit=None if limit is None else limit - done,
                concurrency=1,
                pks=pks,
                conf=conf,
                should_stop=should_stop,
            )
        _send_one_by_one(batches, run, should_stop)
    return run.result


def report_conversions(pks: Sequence[int]) -> ReportResult:
    """Report these conversions now if they are due (what the dispatchers call)."""
    return report_pending(pks=list(pks), concurrency=min(len(pks), get_settings().concurrency) or 1)


def report_due(
    *,
    limit: int | None = None,
    concurrency: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[ReportResult], None] | None = None,
) -> ReportResult:
    """The periodic job: mark the non-conversions whose window closed, then report whatever
    is due (new conversions, retries, leftovers of a dead worker); then look for
    low-conversion destinations (``conversion_rate_low`` fires once per new alert)."""
    marked = mark_non_conversions()
    result = report_pending(
        limit=limit, concurrency=concurrency, should_stop=should_stop, progress=progress
    )
    result.non_conversions = marked
    # Two small queries on the hourly rollups: cheap enough for every sweep, and a sweep
    # is what makes an alert fire even when nobody looks at the admin.
    low_conversion_alerts()
    return result
