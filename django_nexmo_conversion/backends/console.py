from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, TextIO

from ..choices import Outcome
from ..transport.wire import Answer, Report, format_timestamp
from .base import BaseBackend

if TYPE_CHECKING:
    from ..conf import ConversionSettings
    from ..transport.wire import Account


class ConsoleBackend(BaseBackend):
    """Prints each report on stdout instead of sending it (development)."""

    def __init__(self, *, settings: ConversionSettings, stream: TextIO | None = None) -> None:
        super().__init__(settings=settings)
        self.stream = stream
        self._lock = threading.Lock()

    def send(self, report: Report, account: Account) -> Answer:
        line = (
            f"[nexmo conversion] POST /conversions/{report.channel} api_key={account.api_key} "
            f"message-id={report.message_id} delivered={'true' if report.delivered else 'false'} "
            f"timestamp={format_timestamp(report.timestamp)}\n"
        )
        stream = self.stream or sys.stdout
        with self._lock:
            stream.write(line)
            stream.flush()
        return Answer(Outcome.REPORTED, 200)
