"""The sending side of a report run: POSTs from a bounded thread pool (threads do HTTP only,
never SQL), answers written from the calling thread as they arrive, and which rows may be
given back.

What may be sent twice: a claimed row goes back to pending only if its request never started;
one that was sent keeps its lease until its answer is written, so no other worker sends it
meanwhile. An answer that cannot be written (the database connection lost for longer than the
write retries) leaves that row to be sent again once its lease ends; no other row.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from django.db import DatabaseError, InterfaceError, OperationalError, connection

from ..backends import BaseBackend, get_backend
from ..choices import Status
from ..conf import ConversionSettings
from ..models import Conversion
from ..transport import telemetry
from ..transport.wire import Answer, Report
from .claims import release
from .outcomes import halts, halts_everything, storable, write_answers
from .ratelimit import RateLimiter
from .result import ReportResult, RunHalt

logger = logging.getLogger("django_nexmo_conversion")

#: Pauses between tries to write answers after the database connection was lost. An answer
#: not written means that conversion is sent again once its lease ends, so a few seconds of
#: retries (the only waits a stop request does not cut short) are worth it.
WRITE_RETRY_PAUSES = (0.2, 1.0, 2.0)

#: The batches of one run: (claim token, rows).
Batches = Iterator[tuple[str, list[Conversion]]]


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


def _forget_pools_in_child() -> None:
    # A forked child has the parent's pools but none of their threads: work submitted to them
    # would wait forever. It starts pools of its own (and a lock no parent thread holds).
    global _pool_lock, _pools
    _pool_lock = threading.Lock()
    _pools = {}


os.register_at_fork(after_in_child=_forget_pools_in_child)


def executor(size: int) -> ThreadPoolExecutor:
    """A long-lived pool per size, so worker threads (and their keep-alive connections)
    survive from one run to the next: ``--loop`` and on_commit reuse them."""
    with _pool_lock:
        pool = _pools.get(size)
        if pool is None:
            pool = _pools[size] = ThreadPoolExecutor(size, thread_name_prefix="nexmo-conversion")
        return pool


class Run:
    """One report run's sending side: the backend, the shared rate limit, and the tally."""

    def __init__(
        self,
        conf: ConversionSettings,
        progress: Callable[[ReportResult], None] | None,
        should_stop: Callable[[], bool],
    ) -> None:
        self.conf = conf
        self.result = ReportResult()
        self.progress = progress
        self.should_stop = should_stop
        #: The pool refused work (the interpreter is exiting): the rest goes one by one.
        self.pool_closed = False
        self.limiter = (
            RateLimiter(
                conf.rate_limit,
                cache_alias=conf.rate_limit_cache,
                max_wait=conf.retry_backoff_max,
            )
            if conf.rate_limit
            else None
        )
        self._backend: BaseBackend | None = None
        # Which claimed rows went on the wire, and which were given back, by (claim token,
        # pk): a row is released only if it never went out, and never goes out once released
        # under that claim (one lock for both). The same run may claim it again later.
        self._lock = threading.Lock()
        self._on_wire: set[tuple[str, int]] = set()
        self._released: set[tuple[str, int]] = set()
        #: API keys a 401/402 stopped: their rows are not sent (released) for the rest of the
        #: run. Written and read by the senders (a set add is atomic under the GIL).
        self.halted_keys: set[str] = set()
        self._halted_everything = False
        #: The run's trace context, made current in the pool threads that send.
        self.trace_context = telemetry.current_context()

    @property
    def stopped(self) -> bool:
        """The whole run stopped (an endpoint error)."""
        return self.result.halted_run

    def send(self, row: Conversion) -> Answer | None:
        """One POST (in a worker thread: no SQL here); None when the row is not sent: its
        account (or the whole run) is halted, or the run is stopping. It is released then."""
        with telemetry.attached(self.trace_context):
            return self._send(row)

    def _send(self, row: Conversion) -> Answer | None:
        account = self.conf.account_for(row.message.api_key)
        if self._halted_everything or account.api_key in self.halted_keys:
            return None
        if self._backend is None:
            self._backend = get_backend()
        # A 429's pause shared by every worker is not slept out past one TIMEOUT (what a
        # request could take anyway): the row goes back to pending for a later run instead.
        if self.limiter is not None and not self.limiter.wait(
            self.should_stop, longest_pause=self.conf.timeout
        ):
            return None
        claimed = (row.claim_token, row.pk)
        with self._lock:
            if self.should_stop() or claimed in self._released:
                return None
            self._on_wire.add(claimed)
        try:
            answer = self._backend.send(report_of(row), account)
        except BaseException:
            # Raised instead of answering (a CA file missing, a backend bug): nothing reached
            # Nexmo, so the row may be given back.
            with self._lock:
                self._on_wire.discard(claimed)
            raise
        if self.limiter is not None and answer.status_code == 429:
            wait = answer.retry_after if answer.retry_after is not None else 1.0
            self.limiter.penalize(min(wait, self.conf.retry_backoff_max))
        # Noted here, in the sending thread, not when the answer is written: the other senders
        # stop taking this account's rows (or any row) at once, so at most the requests
        # already in flight get the same refusal.
        if halts_everything(answer):
            self._halted_everything = True
        elif halts(answer):
            self.halted_keys.add(account.api_key)
        return answer

    def release_unsent(self, token: str, pks: set[int]) -> None:
        """Give back the claimed rows ``pks`` that never went on the wire. One sent but not
        recorded keeps its lease: no other worker sends it while its answer may still come."""
        with self._lock:
            unsent = {pk for pk in pks if (token, pk) not in self._on_wire}
            self._released |= {(token, pk) for pk in unsent}
        if not unsent:
            return
        try:
            release(token, unsent)
        except (DatabaseError, InterfaceError):
            # The database went away: they return when their lease ends, never sent twice.
            logger.warning("Could not release %d unsent conversion(s).", len(unsent))

    def _write(self, token: str, answered: list[tuple[Conversion, Answer]]) -> list[str]:
        """``write_answers``, tried again on a fresh connection when the connection is lost."""
        for pause in (*WRITE_RETRY_PAUSES, None):
            try:
                return write_answers(answered, token, self.conf)
            except (OperationalError, InterfaceError):
                # Inside the caller's transaction a new connection would lose it: give up.
                if pause is None or connection.in_atomic_block:
                    raise
                logger.warning(
                    "Database connection lost writing %d answer(s); reconnecting.", len(answered)
                )
                with contextlib.suppress(DatabaseError, InterfaceError):
                    connection.close()
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def record(self, token: str, answered: list[tuple[Conversion, Answer]]) -> bool:
        """Write answers (in one transaction) and count them; False when the run must halt."""
        result = self.result
        go_on = True
        statuses = self._write(token, answered)
        for (row, answer), status in zip(answered, statuses, strict=True):
            error = storable(answer.error)
            if halts_everything(answer):
                if not result.halted_run:
                    logger.error("Reporting halted: %s", error)
                    keys = result.halt.api_keys if result.halt is not None else []
                    result.halt = RunHalt(answer.outcome, answer.status_code, error, keys)
                go_on = False
            elif halts(answer):
                key = self.conf.account_for(row.message.api_key).api_key
                if result.halt is None:
                    result.halt = RunHalt(answer.outcome, answer.status_code, error)
                if key not in result.halt.api_keys:
                    logger.error("Reporting halted for API key %s: %s", key, error)
                    result.halt.api_keys.append(key)
            elif status == Status.REPORTED:
                result.reported += 1
            elif status == Status.FAILED:
                result.failed += 1
            elif status == Status.PENDING:
                result.retrying += 1
        if self.progress is not None:
            self.progress(result)
        return go_on


def send_one_by_one(batches: Batches, run: Run, should_stop: Callable[[], bool]) -> None:
    for token, rows in batches:
        unwritten = {row.pk for row in rows}
        try:
            for row in rows:
                if should_stop():
                    break
                answer = run.send(row)
                if answer is None:
                    if should_stop():
                        break
                    continue  # its account is halted: released below
                go_on = run.record(token, [(row, answer)])
                unwritten.discard(row.pk)
                if not go_on:
                    break
        finally:
            # Also on an unexpected error (no credentials for a key, a backend that raised,
            # the database): claimed rows never sent must not sit as "sending" until their
            # lease ends.
            if unwritten:
                run.release_unsent(token, unwritten)
        if run.stopped:
            return


def send_concurrently(
    batches: Batches,
    run: Run,
    concurrency: int,
    should_stop: Callable[[], bool],
    *,
    queue_ahead: bool,
) -> None:
    """Send from the thread pool and write the answers from this thread as they arrive.

    With ``queue_ahead`` the next batch is claimed as soon as the last queued request of
    this one has started, so the pool never sits idle waiting for a claim.
    """
    pool = executor(concurrency)
    owner: dict[Future[Answer | None], tuple[str, Conversion]] = {}
    running: set[Future[Answer | None]] = set()
    # Each future puts itself here when it finishes (or is cancelled): the loop takes them as
    # they come, where ``concurrent.futures.wait`` locks and unlocks every running future
    # twice per call.
    finished: queue.SimpleQueue[Future[Answer | None]] = queue.SimpleQueue()
    # Claim token -> rows whose answer is not written yet; at the end, those of them never
    # sent are released (``Run.release_unsent``).
    unwritten: dict[str, set[int]] = {}

    def queue_next() -> bool:
        try:
            batch = next(batches, None)
        except (OperationalError, InterfaceError):
            if not running:
                raise
            # The connection went while requests are in flight: claim no more, and write
            # their answers (``Run.record`` reconnects) rather than lose them.
            logger.warning("Database connection lost claiming the next batch.")
            return False
        if batch is None:
            return False
        token, rows = batch
        unwritten[token] = {row.pk for row in rows}
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
            future.add_done_callback(finished.put)
        return True

    stopping = False
    #: A send that raised (a backend error): raised once every answer in flight is written.
    failure: Exception | None = None
    try:
        more = queue_next()
        while running:
            done = [finished.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    done.append(finished.get_nowait())
            running.difference_update(done)
            answered: dict[str, list[tuple[Conversion, Answer]]] = {}
            for future in done:
                if future.cancelled():
                    continue
                token, row = owner.pop(future)
                try:
                    answer = future.result()
                except Exception as exc:
                    # Not sent (``Run.send``): released below. The answers of the others
                    # still come in and are written, or they would be sent again.
                    failure = failure or exc
                    answer = None
                if answer is None:
                    # Not sent, released below: its account is halted (the others go on), or
                    # the run is stopping or a send failed (then nothing more starts).
                    if failure is not None or should_stop():
                        stopping = True
                        for other in running:
                            other.cancel()
                    continue
                if halts_everything(answer) or should_stop():
                    # Halted or asked to stop: cancel before writing the outcome, so the pool
                    # does not start more sends meanwhile; what has not started is released.
                    stopping = True
                    for other in running:
                        other.cancel()
                answered.setdefault(token, []).append((row, answer))
            # Every answer that came in while the last ones were written goes in one
            # transaction: under load the groups grow and the commits thin out.
            for token, rows_answered in answered.items():
                run.record(token, rows_answered)
                unwritten[token].difference_update(row.pk for row, _answer in rows_answered)
            stopping = stopping or run.stopped
            if more and not stopping and len(running) <= (concurrency if queue_ahead else 0):
                more = queue_next()
        if failure is not None:
            raise failure
    except BaseException:
        # Stop the queued sends; one already on the wire keeps its lease, so no other worker
        # sends it while this request may still succeed.
        for future in running:
            future.cancel()
        raise
    finally:
        for token, pks in unwritten.items():
            if pks:
                run.release_unsent(token, pks)
