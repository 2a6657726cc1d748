"""An outbox for tests, like ``django.core.mail.outbox``::

    from django_nexmo_conversion.backends.locmem import outbox

    def test_signup_converts(client):
        ...
        assert [r.message_id for r in outbox] == ["0A0000001234567B"]

The list is cleared by the ``nexmo_outbox`` pytest fixture and by ``outbox.clear()``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..choices import Outcome
from ..transport.wire import Answer, Report, build_params, format_timestamp
from .base import BaseBackend

if TYPE_CHECKING:
    from ..transport.wire import Account


@dataclass(frozen=True)
class SentReport:
    channel: str
    message_id: str
    delivered: bool
    #: The conversion time, ``YYYY-MM-DD HH:MM:SS`` UTC.
    timestamp: str
    api_key: str
    #: The form fields exactly as the http backend would POST them, minus the secret or sig
    #: (a signed report of an old conversion carries a UNIX ``timestamp``: see ``wire``).
    params: dict[str, str]


outbox: list[SentReport] = []
_lock = threading.Lock()


class LocmemBackend(BaseBackend):
    """Keeps every report in ``outbox`` and answers 200."""

    def send(self, report: Report, account: Account) -> Answer:
        params = {
            k: v for k, v in build_params(report, account).items() if k not in ("api_secret", "sig")
        }
        sent = SentReport(
            channel=report.channel,
            message_id=report.message_id,
            delivered=report.delivered,
            timestamp=format_timestamp(report.timestamp),
            api_key=account.api_key,
            params=params,
        )
        with _lock:
            outbox.append(sent)
        return Answer(Outcome.REPORTED, 200)
