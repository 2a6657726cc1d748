from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..conf import ConversionSettings
    from ..transport.wire import Account, Answer, Report


class BaseBackend:
    """The whole interface: ``send`` one report with one account's credentials.

    ``send`` is called from worker threads at once, must not touch the database, and must
    return an ``Answer`` rather than raise for anything Nexmo (or the network) did.
    """

    def __init__(self, *, settings: ConversionSettings) -> None:
        self.settings = settings

    def send(self, report: Report, account: Account) -> Answer:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; called when the settings change."""
