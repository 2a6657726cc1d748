"""A stand-in for ``django_nexmo_conversion.insights`` (built in parallel, issue 14): the
shape of its ``low_conversion_alerts`` and ``conversion_rates`` per DESIGN.md, nothing more.
Used through the seams ``health.ALERT_SOURCE``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

ALERT_WINDOW = 3600


@dataclass(frozen=True)
class Alert:
    by: str
    key: str
    label: str
    sent: int
    converted: int
    rate: float
    window_seconds: int


@dataclass(frozen=True)
class RateRow:
    key: str
    label: str
    sent: int
    converted: int
    rate: float | None


def low_conversion_alerts(*, now: datetime | None = None) -> list[Alert]:
    return [Alert("country", "ZZ", "Nowhere", 200, 4, 0.02, 3600)]


def conversion_rates(*, by: str, since: Any = None, until: Any = None) -> list[RateRow]:
    assert by == "country"
    return [RateRow("GB", "United Kingdom", 100, 40, 0.4), RateRow("ZZ", "Nowhere", 0, 0, None)]
