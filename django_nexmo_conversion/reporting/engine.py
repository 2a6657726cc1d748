"""The reporting engine: take due conversions, send them, write the answers.

Top to bottom: :func:`report_pending` claims batches of due rows (``claims``), ``senders``
POSTs them through the backend and writes the answers (``outcomes``) as they arrive.
The periodic job that also retries, marks non-conversions and counts is ``sweep.report_due``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.utils import timezone

from ..conf import ConversionSettings, get_settings
from ..transport import telemetry
from ..validation import clean_count
from .claims import batch_size, claim_batch, lease_rounds
from .result import ReportResult
from .senders import Batches, Run, send_concurrently, send_one_by_one

__all__ = ["ReportResult", "report_conversions", "report_pending"]


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
    lapsed = True
    while remaining is None or remaining > 0:
        if should_stop():
            return
        size = batch_size(concurrency, conf, queued=queued)
        if remaining is not None:
            size = min(size, remaining)
        taken = claim_batch(size, pks=pks, due_at=started, conf=conf, lapsed=lapsed)
        rows, lapsed = taken.rows, taken.lapsed_left
        if not rows:
            return
        if remaining is not None:
            remaining -= len(rows)
        yield taken.token, rows
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

    A 401/402 stops its account (the rest of its rows stay pending; other accounts go on);
    an endpoint error (403/404/405/406/415, a redirect) stops the run. Nothing is burned.
    ``pks`` narrows the run to those conversions (the dispatchers use it); ``progress`` is
    called with the running tally after each group of answers is written. With OpenTelemetry
    installed the run is one span, the parent of its POSTs' spans.
    """
    with telemetry.run_span() as span:
        result = _report_pending(
            limit=limit,
            concurrency=concurrency,
            pks=pks,
            should_stop=should_stop,
            progress=progress,
        )
        span.counted(
            reported=result.reported,
            retrying=result.retrying,
            failed=result.failed,
            halted=result.halted,
        )
    return result


def _report_pending(
    *,
    limit: int | None,
    concurrency: int | None,
    pks: Sequence[int] | None,
    should_stop: Callable[[], bool] | None,
    progress: Callable[[ReportResult], None] | None,
) -> ReportResult:
    conf = get_settings()
    conf.raise_for_problems()
    if limit is not None:
        limit = clean_count(limit, name="limit", minimum=0)
    concurrency = clean_count(
        conf.concurrency if concurrency is None else concurrency, name="concurrency", minimum=1
    )
    should_stop = should_stop or (lambda: False)
    run = Run(conf, progress, should_stop)
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
        send_concurrently(batches, run, concurrency, should_stop, queue_ahead=queue_ahead)
    if concurrency <= 1 or (run.pool_closed and not run.stopped):
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
        send_one_by_one(batches, run, should_stop)
    return run.result


def report_conversions(
    pks: Sequence[int], *, should_stop: Callable[[], bool] | None = None
) -> ReportResult:
    """Report these conversions now if they are due (what the dispatchers call)."""
    return report_pending(
        pks=list(pks),
        concurrency=min(len(pks), get_settings().concurrency) or 1,
        should_stop=should_stop,
    )
