"""The progress line ``report_conversions`` draws on a terminal while a run works."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..reporting.result import ReportResult

#: The logger the app writes a line per conversion to (reporting.outcomes).
APP_LOGGER = "django_nexmo_conversion"


@contextmanager
def quiet_app_log(quiet: bool) -> Iterator[None]:
    """While a progress line is drawn, the app's INFO lines (one per conversion) would tear
    it wherever the project logs INFO to the console; warnings and errors still pass."""
    logger = logging.getLogger(APP_LOGGER)
    saved = logger.level
    if quiet and logger.getEffectiveLevel() < logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(saved)


class Progress:
    """One line, redrawn after each group of answers: done/total, rate and time left."""

    def __init__(self, stream: Any, total: int) -> None:
        self.stream = stream
        self.total = total
        self.started = time.monotonic()

    def line(self, result: ReportResult, elapsed: float) -> str:
        done = result.attempted
        # Rows marked during the run can make it take more than counted at the start.
        total = max(self.total, done)
        rate = done / max(elapsed, 1e-6)
        eta = f"ETA {format_seconds((total - done) / rate)}" if rate > 0 else "ETA ?"
        return f"{done}/{total} · {result.summary()} · {rate:.0f}/s · {eta}"

    def show(self, result: ReportResult) -> None:
        # \r and clear-to-end-of-line: the new line may be shorter than the last one.
        self.stream.write(
            f"\r{self.line(result, time.monotonic() - self.started)}\x1b[K", ending=""
        )
        self.stream.flush()

    def done(self) -> None:
        # Erase the progress line: the summary that follows says the same, for good.
        self.stream.write("\r\x1b[K", ending="")
        self.stream.flush()


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
