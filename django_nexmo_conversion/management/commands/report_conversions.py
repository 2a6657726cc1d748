"""``manage.py report_conversions``: report what is due, once or in a loop.

Output follows ``-v``: 0 prints nothing but errors; 1 (the default) one summary line per run,
and on a terminal a progress line (done/total, rate, ETA) while it works; 2 adds a line per
conversion (the app's INFO log, on stdout); 3 the app's DEBUG log too.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser
from django.db import close_old_connections
from django.utils import timezone

from ...marking import retry_now
from ...models import Conversion, Status
from ...queries import count_due, due_conversions
from ...reporting.result import ReportResult
from ...reporting.sweep import report_due
from ...transport.answers import halt_fix
from ..progress import APP_LOGGER, Progress, quiet_app_log
from ..usage import UsageExitCode

#: The first wait of --loop once a poll finds nothing; it doubles up to --interval.
MIN_POLL_WAIT = 0.05


class Command(UsageExitCode):
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
        parser.add_argument(
            "--count",
            action="store_true",
            help="With --dry-run, print only how many conversions are due (one number).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        limit, concurrency = options["limit"], options["concurrency"]
        if limit is not None and limit < 0:
            raise CommandError("--limit must be >= 0.")
        if concurrency is not None and concurrency < 1:
            raise CommandError("--concurrency must be >= 1.")
        if options["interval"] <= 0:
            raise CommandError("--interval must be > 0.")
        if options["count"] and not options["dry_run"]:
            raise CommandError("--count goes with --dry-run (it counts, it does not report).")
        self.verbosity: int = options["verbosity"]
        try:
            self._handle(limit, concurrency, options)
        except ImproperlyConfigured as exc:
            # The setting to fix is named in the message: one line, no traceback.
            raise CommandError(str(exc)) from None

    def _handle(self, limit: int | None, concurrency: int | None, options: dict[str, Any]) -> None:
        if options["dry_run"]:
            self._dry_run(limit, options["retry_failed"], options["count"])
            return
        if options["retry_failed"]:
            count = retry_now(Conversion.objects.filter(status=Status.FAILED))
            self._say(f"{count} failed conversion(s) made pending again.", self.style.NOTICE)
        with self._app_log_on_stdout():
            if options["loop"]:
                self._loop(limit, concurrency, options["interval"])
                return
            result = self._run_once(limit, concurrency)
            self._finish(result)

    def _say(self, text: str, style: Callable[[str], str] | None = None, *, level: int = 1) -> None:
        if self.verbosity >= level:
            self.stdout.write(text, style_func=style)

    def _styled(self, result: ReportResult) -> Callable[[str], str]:
        if result.halted or result.failed:
            return self.style.ERROR
        return self.style.WARNING if result.retrying else self.style.SUCCESS

    def _dry_run(self, limit: int | None, retry_failed: bool, count_only: bool) -> None:
        if count_only:
            # The output is the answer, not chatter: printed at every verbosity, bare, so a
            # script can read it (`due=$(manage.py report_conversions --dry-run --count)`).
            self.stdout.write(str(count_due(limit=limit, include_failed=retry_failed)))
            return
        rows = due_conversions(limit=limit, include_failed=retry_failed)
        for conversion in rows:
            self._say(
                f"would report {conversion.message.channel} {conversion.message.message_id} "
                f"delivered={'true' if conversion.delivered else 'false'} "
                f"(attempts so far: {conversion.attempt_count})"
            )
        self._say(f"{len(rows)} conversion(s) due; nothing sent (--dry-run).", self.style.NOTICE)

    @contextmanager
    def _app_log_on_stdout(self) -> Iterator[None]:
        """At -v 2 and 3, the app's log (a line per conversion) goes to stdout for the run."""
        if self.verbosity < 2:
            yield
            return
        logger = logging.getLogger(APP_LOGGER)
        handler = logging.StreamHandler(self.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        saved = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if self.verbosity >= 3 else logging.INFO)
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(saved)

    def _run_once(
        self, limit: int | None, concurrency: int | None, stop: threading.Event | None = None
    ) -> ReportResult:
        # A progress line only where someone watches it, and not under the per-conversion
        # lines of -v 2, which it would tear.
        progress = None
        if self.verbosity == 1 and self.stdout.isatty():
            progress = Progress(self.stdout, count_due(limit=limit))
        with quiet_app_log(progress is not None):
            result = report_due(
                limit=limit,
                concurrency=concurrency,
                should_stop=stop.is_set if stop else None,
                progress=progress.show if progress else None,
            )
        if progress is not None:
            progress.done()
        if result.non_conversions:
            self._say(f"{result.non_conversions} non-conversion(s) marked delivered=false.")
        return result

    def _finish(self, result: ReportResult) -> None:
        self._say(result.summary(), self._styled(result))
        halt = result.halt
        if halt is not None:
            # Nexmo's own 401 text says the credentials are wrong, not which setting to fix.
            fix = halt_fix(halt.outcome, halt.status_code)
            hint = f" To fix: {fix}." if fix and fix not in halt.error else ""
            if halt.everything:
                what = "Stopped by an endpoint error (every account)"
            else:
                what = f"API key(s) {', '.join(halt.api_keys)} stopped by an account error"
            raise CommandError(
                f"{what}; nothing was burned, their conversions stay pending. {halt.error}{hint}",
                returncode=2,
            )

    def _loop(self, limit: int | None, concurrency: int | None, interval: float) -> None:
        stop = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            self.stderr.write(f"{stamp()} Stopping after the requests in flight…")
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        failures = 0
        idle_wait = 0.0
        while not stop.is_set():
            try:
                result = self._run_once(limit, concurrency, stop)
                failures = 0
            except ImproperlyConfigured:
                raise  # waiting will not fix the settings: say it and stop
            except Exception as exc:  # the database or the API went away: log, back off, carry on
                failures += 1
                close_old_connections()
                self.stderr.write(
                    f"{stamp()} Report run failed ({type(exc).__name__}: {exc}); retrying."
                )
                stop.wait(min(interval * 2**failures, 60))
                continue
            if result.attempted:
                # A long-running loop's lines end up in a journal: each says when.
                self._say(f"{stamp()} {result.summary()}", self._styled(result))
            if result.halted:
                self.stderr.write(f"{stamp()} {result.error}")
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


def stamp() -> str:
    """The local time, to the second, with its UTC offset: ``2026-05-04T12:00:00+02:00``."""
    return timezone.localtime().isoformat(timespec="seconds")
