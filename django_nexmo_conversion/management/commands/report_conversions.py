"""``manage.py report_conversions``: report what is due, once or in a loop."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from ...client import halt_fix
from ...marking import retry_now
from ...models import Conversion, Status
from ...queries import due_conversions
from ...reporting.engine import ReportResult, report_due

#: The first wait of --loop once a poll finds nothing; it doubles up to --interval.
MIN_POLL_WAIT = 0.05


class Command(BaseCommand):
    help = "Report due conversions to the Nexmo Conversion API."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=None, help="Report at most N per run.")
        parser.add_argument(
            "--concurrency", type=int, default=None, help="Parallel requests (default CONCURRENCY)."
        )
        parser.add_argument(
            "--loop", action="store_true", help="Keep polling until SIGTERM or Ctrl-C."
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=2.0,
            help="With --loop, the longest wait between polls when idle (default 2). While "
            "conversions keep coming it polls again at once: Nexmo wants reports quickly.",
        )
        parser.add_argument(
            "--retry-failed",
            action="store_true",
            help="First make failed conversions pending again with a fresh attempt budget.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="List what is due; send nothing, change nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        limit, concurrency = options["limit"], options["concurrency"]
        if limit is not None and limit < 0:
            raise CommandError("--limit must be >= 0.")
        if concurrency is not None and concurrency < 1:
            raise CommandError("--concurrency must be >= 1.")
        if options["interval"] <= 0:
            raise CommandError("--interval must be > 0.")

        if options["dry_run"]:
            self._dry_run(limit, options["retry_failed"])
            return
        if options["retry_failed"]:
            count = retry_now(Conversion.objects.filter(status=Status.FAILED))
            self.stdout.write(f"{count} failed conversion(s) made pending again.")
        if options["loop"]:
            self._loop(limit, concurrency, options["interval"])
            return
        result = self._run_once(limit, concurrency)
        self._finish(result)

    def _dry_run(self, limit: int | None, retry_failed: bool) -> None:
        rows = due_conversions(limit=limit, include_failed=retry_failed)
        for conversion in rows:
            self.stdout.write(
                f"would report {conversion.message.channel} {conversion.message.message_id} "
                f"delivered={'true' if conversion.delivered else 'false'} "
                f"(attempts so far: {conversion.attempt_count})"
            )
        self.stdout.write(f"{len(rows)} conversion(s) due; nothing sent (--dry-run).")

    def _run_once(
        self, limit: int | None, concurrency: int | None, stop: threading.Event | None = None
    ) -> ReportResult:
        # On a terminal, a progress line moves as the answers are written.
        progress = _Progress(self.stdout) if self.stdout.isatty() else None
        result = report_due(
            limit=limit,
            concurrency=concurrency,
            should_stop=stop.is_set if stop else None,
            progress=progress.show if progress else None,
        )
        if progress is not None:
            progress.done()
        if result.non_conversions:
            self.stdout.write(f"{result.non_conversions} non-conversion(s) marked delivered=false.")
        return result

    def _finish(self, result: ReportResult) -> None:
        self.stdout.write(result.summary())
        if result.halted:
            # Nexmo's own 401 text says the credentials are wrong, not which setting to fix.
            fix = halt_fix(result.status_code)
            hint = f" To fix: {fix}." if fix and fix not in result.error else ""
            if result.halted_run:
                what = "Stopped by an endpoint error (every account)"
            else:
                what = f"API key(s) {', '.join(result.halted_accounts)} stopped by an account error"
            raise CommandError(
                f"{what}; nothing was burned, their conversions stay pending. {result.error}{hint}",
                returncode=2,
            )

    def _loop(self, limit: int | None, concurrency: int | None, interval: float) -> None:
        stop = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            self.stderr.write("Stopping after the requests in flight…")
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        failures = 0
        idle_wait = 0.0
        while not stop.is_set():
            try:
                result = self._run_once(limit, concurrency, stop)
                failures = 0
            except Exception as exc:  # the database or the API went away: log, back off, carry on
                failures += 1
                close_old_connections()
                self.stderr.write(f"Report run failed ({type(exc).__name__}: {exc}); retrying.")
                stop.wait(min(interval * 2**failures, 60))
                continue
            if result.attempted:
                self.stdout.write(result.summary())
            if result.halted:
                self.stderr.write(result.error)
            if result.halted_run:
                # An endpoint error needs a human; poll slowly rather than hammer Nexmo. A
                # halted account alone does not slow the others down: each run sends it one
                # request, which says when it works again.
                stop.wait(max(interval, 60))
                continue
            # Adaptive: while conversions keep coming, poll again at once (a fixed interval
            # alone would add interval / 2 to every report on average); when idle, back off
            # step by step to the interval, so a lull between two marks costs little.
            if result.attempted:
                idle_wait = 0.0
            else:
                idle_wait = min(interval, max(idle_wait * 2, MIN_POLL_WAIT))
            stop.wait(idle_wait)


class _Progress:
    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.started = time.monotonic()

    def show(self, result: ReportResult) -> None:
        rate = result.attempted / max(time.monotonic() - self.started, 1e-6)
        self.stream.write(f"\r{result.summary()}  ({rate:.0f}/s)", ending="")
        self.stream.flush()

    def done(self) -> None:
        self.stream.write("")
