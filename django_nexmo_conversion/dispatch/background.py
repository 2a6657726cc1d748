"""``DISPATCH = "background"``: a reporter thread per process, so no request waits for Nexmo.

Marking hands the new row's primary key over after commit (:func:`submit`); the thread
reports what arrives together in one run and, every ``SWEEP_INTERVAL`` seconds, runs the
periodic job (due retries, non-conversions, rows a dead worker left). Everything it works on
is a row in the database: a key dropped from the queue (full, or the process exits first) is
still pending there, and a later sweep, run or worker reports it.

Shaped like the Sentry SDK's transport worker: started lazily on the first submit, restarted
in a forked child (gunicorn ``--preload``, multiprocessing) rather than inherited, a bounded
queue that drops instead of blocking the caller, and a time-bounded flush at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import queue
import random
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import close_old_connections, connections
from django.dispatch import receiver

from ..conf import SETTING_NAME, get_settings
from ..reporting.engine import ReportResult, report_conversions
from ..reporting.sweep import report_due
from .retries import RetryTimer, earliest

logger = logging.getLogger("django_nexmo_conversion")

_configuration_errors_logged: set[str] = set()


def log_configuration_error(exc: ImproperlyConfigured) -> None:
    """One log line, no stack, for settings that stop reporting (no credentials, say): the
    message names the setting to fix. Once per message and process: every sweep and every
    mark would meet it again, and the system checks already warned at start."""
    message = str(exc)
    if message in _configuration_errors_logged:
        return
    _configuration_errors_logged.add(message)
    logger.error(
        "Conversions not reported: %s They stay pending for the next sweep or "
        "`manage.py report_conversions` once the settings are fixed.",
        message,
    )


#: Keys waiting for the thread; beyond this, a mark is left to the next sweep (never lost).
QUEUE_SIZE = 10_000
#: At most this many keys go into one run (one claim per ``CONCURRENCY``-sized batch).
RUN_SIZE = 500
#: How long the interpreter's exit waits for what is queued to go out.
EXIT_FLUSH_SECONDS = 2.0
#: Sweeps are spread by this fraction either way, so processes started together do not
#: sweep together.
SWEEP_JITTER = 0.1


class BackgroundReporter:
    """The reporter thread of one process. Use :func:`get_reporter`, not this class."""

    def __init__(self, *, sweep_interval: float, queue_size: int = QUEUE_SIZE) -> None:
        self.sweep_interval = sweep_interval
        #: Primary keys; ``None`` only wakes the thread up (to stop).
        self._queue: queue.Queue[int | None] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        #: Keys submitted whose run has not finished yet (for :meth:`flush`).
        self._outstanding = 0
        self._idle = threading.Condition(self._lock)
        #: Transient answers of this thread's runs, retried at their due time (thread only).
        self._retries = RetryTimer()
        #: The thread could not start, and the log said so (it says it once).
        self._told_cannot_start = False

    # --- the callers' side ---------------------------------------------------------------------

    def submit(self, pk: int) -> bool:
        """Queue ``pk`` for reporting; False when the queue is full (the row stays pending)."""
        self._ensure_thread()
        with self._lock:
            self._outstanding += 1
        try:
            self._queue.put_nowait(pk)
        except queue.Full:
            self._done(1)
            logger.warning(
                "The background reporter's queue is full; conversion %s is left for the next "
                "sweep.",
                pk,
            )
            return False
        return True

    def start(self) -> None:
        """Run the thread (and so its sweeps) in this process, with nothing to report yet."""
        self._ensure_thread()

    def flush(self, timeout: float) -> bool:
        """Wait until everything submitted so far has been reported (or tried); False if
        ``timeout`` seconds passed first."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._outstanding:
                left = deadline - time.monotonic()
                if left <= 0 or not self.is_alive():
                    return False
                self._idle.wait(min(left, 0.05))
        return True

    def stop(self, timeout: float) -> None:
        """Report what is queued for at most ``timeout`` seconds, then end the thread. What is
        left stays pending in the database."""
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread.ident is not None:  # started
            # Wake it if it waits for work; a full queue means it is not waiting.
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
            thread.join(max(0.0, deadline - time.monotonic()))

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _ensure_thread(self) -> None:
        if self.is_alive():
            return
        with self._lock:
            if self.is_alive() or self._stopping.is_set():
                return
            if threads_disabled():
                logger.warning(THREADS_DISABLED)
            thread = threading.Thread(
                target=self._main, name="nexmo-conversion-reporter", daemon=True
            )
            try:
                thread.start()
            except Exception as exc:
                # Out of threads, or the interpreter is shutting down (Python 3.12 refuses
                # new threads then): the caller's row is committed and must not fail for
                # it. What was submitted stays pending for a sweep, a run or the command.
                if not self._told_cannot_start:  # once: not a line per mark
                    self._told_cannot_start = True
                    _cannot_start(exc)
                return
            self._thread = thread

    # --- the thread's side -----------------------------------------------------------------------

    def _main(self) -> None:
        next_sweep = self._after_interval()
        try:
            while not self._stopping.is_set():
                pks = self._take(
                    timeout=self._until(earliest(next_sweep, self._retries.next_due()))
                )
                due = self._retries.take_due()
                if pks or due:
                    self._work(functools.partial(self._report, [*pks, *due]), len(pks))
                if next_sweep is not None and time.monotonic() >= next_sweep:
                    self._work(functools.partial(report_due, should_stop=self._stopping.is_set), 0)
                    next_sweep = self._after_interval()
        finally:
            # The thread's own connection: nobody else would ever close it.
            connections.close_all()

    def _report(self, pks: list[int]) -> ReportResult:
        """Report ``pks`` if due; those that come back transient are retried at their due time."""
        result = report_conversions(pks, should_stop=self._stopping.is_set)
        if result.retrying:
            self._retries.schedule(pks)
        return result

    def _take(self, *, timeout: float | None) -> list[int]:
        """The keys that arrived together: block for the first, then take what is there."""
        try:
            got = [self._queue.get(timeout=timeout if timeout is None else max(timeout, 0.0))]
        except queue.Empty:
            return []
        while len(got) < RUN_SIZE:
            try:
                got.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return [pk for pk in got if pk is not None]

    def _work(self, run: Callable[[], ReportResult], taken: int) -> None:
        close_old_connections()
        try:
            result = run()
            if result.halted:
                # Everything stays pending; the next sweep tries again (one request).
                logger.error("Background reporting halted: %s", result.error)
        except ImproperlyConfigured as exc:
            # The message names the setting to fix; a stack would only bury it.
            log_configuration_error(exc)
        except Exception:
            # Never let the thread die: what failed stays pending for the next sweep.
            logger.exception("Background reporting failed; the conversions stay pending.")
        finally:
            close_old_connections()
            self._done(taken)

    def _done(self, count: int) -> None:
        with self._idle:
            self._outstanding -= count
            self._idle.notify_all()

    def _after_interval(self) -> float | None:
        if not self.sweep_interval:
            return None
        spread = 1 + random.uniform(-SWEEP_JITTER, SWEEP_JITTER)
        return time.monotonic() + self.sweep_interval * spread

    @staticmethod
    def _until(moment: float | None) -> float | None:
        return None if moment is None else moment - time.monotonic()


def _cannot_start(exc: Exception) -> None:
    """Say that the reporter thread could not start."""
    logger.error(
        "The background reporter could not start (%s: %s); conversions stay pending until a "
        "sweep, a report run or `manage.py report_conversions` reports them.",
        type(exc).__name__,
        exc,
    )


THREADS_DISABLED = (
    "uWSGI runs without threads, so the background reporter cannot run: conversions stay "
    "pending until something else reports them. Start uWSGI with --enable-threads (or "
    "--threads N), or set NEXMO_CONVERSION['DISPATCH'] to another mode."
)


def threads_disabled() -> bool:
    """True under uWSGI started without threads: there, Python threads never get to run."""
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is None:
        return False
    options: dict[Any, Any] = getattr(uwsgi, "opt", None) or {}

    def option(name: str) -> Any:
        # uWSGI gives option names as str or bytes, values as bytes or True, by version.
        value = options.get(name, options.get(name.encode()))
        return value.decode() if isinstance(value, bytes) else value

    enabled = option("enable-threads") in (True, "true", "1", "yes", "on")
    try:
        threads = int(option("threads") or 1)
    except (TypeError, ValueError):
        threads = 1
    return not enabled and threads <= 1


_lock = threading.Lock()
_reporter: BackgroundReporter | None = None


def get_reporter() -> BackgroundReporter:
    """This process's reporter (created on first use, anew in a forked child)."""
    global _reporter
    with _lock:
        if _reporter is None:
            _reporter = BackgroundReporter(sweep_interval=get_settings().sweep_interval)
        return _reporter


def submit(pk: int) -> bool:
    """Report ``pk`` from the background thread; called after the marking commits."""
    return get_reporter().submit(pk)


def start() -> None:
    """Make sure this process sweeps (called when a message is recorded, so the rollups
    count it even where nothing is marked yet)."""
    get_reporter().start()


def flush(timeout: float = 5.0) -> bool:
    """Wait until what was submitted in this process has been reported (tests, scripts)."""
    with _lock:
        reporter = _reporter
    return True if reporter is None else reporter.flush(timeout)


def shutdown(timeout: float = EXIT_FLUSH_SECONDS) -> None:
    """Flush for at most ``timeout`` seconds and stop the thread (at interpreter exit; also
    when the settings change, so the next submit starts a thread with the new ones)."""
    global _reporter
    with _lock:
        reporter, _reporter = _reporter, None
    if reporter is not None:
        reporter.stop(timeout)


def _forget_in_child() -> None:
    # A forked child has the parent's objects but not its threads: it starts its own.
    global _lock, _reporter
    _lock = threading.Lock()
    _reporter = None


@receiver(setting_changed)
def _restart_on_change(*, setting: str, **kwargs: Any) -> None:
    # The thread was started with the old SWEEP_INTERVAL: the next submit starts anew.
    if setting == SETTING_NAME:
        shutdown()
        _configuration_errors_logged.clear()  # new settings, new errors worth a line


os.register_at_fork(after_in_child=_forget_in_child)
# At exit, stop before ``concurrent.futures`` joins the send pool's threads: it lets them run
# every send still queued first, one TIMEOUT each. Registered after it (the senders imported
# it), so run before it. Exit then takes EXIT_FLUSH_SECONDS plus the one TIMEOUT of the
# requests already on the wire; what was not sent stays pending for the next process.
_register_before_threads_join = getattr(threading, "_register_atexit", atexit.register)
_register_before_threads_join(shutdown)
atexit.register(shutdown)
