from __future__ import annotations

from typing import TYPE_CHECKING

from ..transport.client import Client
from ..transport.wire import Answer, Report
from .base import BaseBackend

if TYPE_CHECKING:
    from ..conf import ConversionSettings
    from ..transport.wire import Account


class HttpBackend(BaseBackend):
    """Reports to the Conversion API at ``BASE_URL`` (the default)."""

    def __init__(self, *, settings: ConversionSettings) -> None:
        super().__init__(settings=settings)
        self.client = Client(
            base_url=settings.base_url,
            timeout=settings.timeout,
            verify=settings.verify,
            proxies=settings.proxies,
        )

    def send(self, report: Report, account: Account) -> Answer:
        return self.client.send(report, account)

    def close(self) -> None:
        self.client.close()
