"""Insights (reads): conversion rates by country, network, channel, API key or day, and the
low-conversion alerts that point at SMS pumping or a broken route.

Everything is summed from the hourly rollups (``ConversionStat``), never from the messages,
so a read costs the same at ten million messages as at a thousand. Periods are cut at whole
UTC hours: ``since`` counts from the start of its hour, ``until`` up to the end of its hour.
Times to convert come from the rollups' histogram: a quantile is the upper bound of the
bucket it falls in (``models.SECONDS_TO_CONVERT_BOUNDS``), ``inf`` beyond the last bound.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Min, Q, QuerySet, Sum, Value
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from . import geography, rollups, signals
from .conf import get_settings
from .exceptions import ConversionInputError
from .models import (
    SECONDS_TO_CONVERT_BOUNDS,
    SECONDS_TO_CONVERT_FIELDS,
    Conversion,
    ConversionAlert,
    ConversionStat,
    SentMessage,
)
from .rollups.rates import hour_of

__all__ = [
    "BY",
    "Alert",
    "Freshness",
    "RateRow",
    "active_alerts",
    "conversion_rates",
    "current_alerts",
    "destination_rates",
    "duration_text",
    "freshness",
    "low_conversion_alerts",
    "quantile",
    "refresh",
]

#: What ``conversion_rates`` can group by.
BY = ("country", "network", "channel", "api_key", "day")
#: What an alert can be about.
ALERT_BY = ("country", "network")
_COUNTS = ("sent", "delivered", "converted", *SECONDS_TO_CONVERT_FIELDS)


@dataclass(frozen=True)
class RateRow:
    """One country, network, channel, API key or day."""

    key: str
    label: str
    sent: int
    #: Sends whose (first part's) latest delivery receipt says delivered.
    delivered: int
    #: Sends with a ``delivered=True`` conversion.
    converted: int
    #: ``converted / sent``; None when nothing was sent.
    rate: float | None
    median_seconds_to_convert: float | None
    p90_seconds_to_convert: float | None


@dataclass(frozen=True)
class Alert:
    """A country or network converting below ``ALERT_MIN_RATE`` over the last window."""

    by: str
    key: str
    label: str
    sent: int
    converted: int
    rate: float
    window_seconds: float

    @property
    def window_text(self) -> str:
        """The window for people, in the active language ("24 hours")."""
        return duration_text(self.window_seconds)


def quantile(histogram: Sequence[int], q: float) -> float | None:
    """The nearest-rank ``q`` quantile of a time-to-convert histogram (counts per bucket of
    ``SECONDS_TO_CONVERT_FIELDS``): the upper bound of its bucket; None for no conversions."""
    total = sum(histogram)
    if not total:
        return None
    rank = max(math.ceil(q * total), 1)
    cumulative = list(itertools.accumulate(histogram))
    index = bisect.bisect_left(cumulative, rank)
    bounds = SECONDS_TO_CONVERT_BOUNDS
    return float(bounds[index]) if index < len(bounds) else math.inf


def _label(by: str, key: str) -> str:
    if by == "country":
        return geography.country_label(key) if key else "unknown"
    if by == "network":
        return geography.network_label(key) if key else "unknown"
    return key or "none"


def _row(by: str, key: str, counts: Mapping[str, Any]) -> RateRow:
    histogram = [int(counts[name] or 0) for name in SECONDS_TO_CONVERT_FIELDS]
    sent, converted = int(counts["sent"] or 0), int(counts["converted"] or 0)
    return RateRow(
        key=key,
        label=_label(by, key),
        sent=sent,
        delivered=int(counts["delivered"] or 0),
        converted=converted,
        rate=converted / sent if sent else None,
        median_seconds_to_convert=quantile(histogram, 0.5),
        p90_seconds_to_convert=quantile(histogram, 0.9),
    )


def _most_sent_first(rows: Iterable[RateRow]) -> list[RateRow]:
    return sorted(rows, key=lambda row: (-row.sent, row.key))


def _period(since: datetime | None, until: datetime | None) -> QuerySet[ConversionStat]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and (not isinstance(value, datetime) or timezone.is_naive(value)):
            raise ConversionInputError(f"{name} must be a timezone-aware datetime or None.")
    rows = ConversionStat.objects.order_by()
    if since is not None:
        rows = rows.filter(hour__gte=hour_of(since))
    if until is not None:
        rows = rows.filter(hour__lte=hour_of(until))
    return rows


def _sums() -> dict[str, Sum]:
    return {name: Sum(name) for name in _COUNTS}


def conversion_rates(
    *, by: str, since: datetime | None = None, until: datetime | None = None
) -> list[RateRow]:
    """Sent, delivered, converted, rate and time to convert per ``by`` (one of :data:`BY`),
    most sent first (``day``: oldest first, calendar days in the current time zone).

    One query, over the rollups of the period. A long SMS counts once.
    """
    if by not in BY:
        raise ConversionInputError(f"by must be one of {', '.join(BY)}, got {by!r}.")
    rows = _period(since, until)
    if by != "day":
        grouped = rows.values(by).annotate(**_sums())
        return _most_sent_first(_row(by, str(row[by]), row) for row in grouped)
    return _by_day(rows)


def destination_rates(
    *, since: datetime | None = None, until: datetime | None = None
) -> tuple[list[RateRow], list[RateRow]]:
    """:func:`conversion_rates` by country and by network at once (the Insights page's two
    tables): one query grouped by both, summed each way here, where two queries would each
    read every rollup row of the period."""
    totals: dict[str, dict[str, dict[str, int]]] = {"country": {}, "network": {}}
    rows: Iterable[Mapping[str, Any]] = (
        _period(since, until).values("country", "network").annotate(**_sums())
    )
    for row in rows:
        for by in ALERT_BY:
            counts = totals[by].setdefault(str(row[by]), dict.fromkeys(_COUNTS, 0))
            for name in _COUNTS:
                counts[name] += int(row[name] or 0)
    countries, networks = (
        _most_sent_first(_row(by, key, counts) for key, counts in totals[by].items())
        for by in ALERT_BY
    )
    return countries, networks


def _by_day(rows: QuerySet[ConversionStat]) -> list[RateRow]:
    # Days: sum the hours in Python, cut at local midnights (exact in any whole-hour zone).
    days: dict[str, dict[str, int]] = {}
    hours: Iterable[Mapping[str, Any]] = rows.values("hour").annotate(**_sums())
    for row in hours:
        day = timezone.localtime(row["hour"]).date().isoformat()
        totals = days.setdefault(day, dict.fromkeys(_COUNTS, 0))
        for name in _COUNTS:
            totals[name] += int(row[name] or 0)
    return [_row("day", day, counts) for day, counts in sorted(days.items())]


def _low(by: str, rows: Iterable[RateRow], window: float) -> list[Alert]:
    conf = get_settings()
    return [
        Alert(by, row.key, row.label, row.sent, row.converted, row.rate, window)
        for row in rows
        if row.key
        and row.rate is not None
        and row.sent >= conf.alert_min_messages
        and row.rate < conf.alert_min_rate
    ]


def _is_new(alert: Alert, now: datetime) -> bool:
    """Record ``alert`` as active; True for the one caller (of all processes) that raised it."""
    state = {"sent": alert.sent, "converted": alert.converted}
    try:
        with transaction.atomic():
            _row, created = ConversionAlert.objects.get_or_create(
                by=alert.by, key=alert.key, defaults={**state, "raised_at": now}
            )
    except IntegrityError:  # another process created it first: it sent the signal
        return False
    if created:
        return True
    # Raised again after it had cleared: only the UPDATE that flips it counts as new.
    flipped = ConversionAlert.objects.filter(by=alert.by, key=alert.key, active=False).update(
        active=True, raised_at=now, **state
    )
    return bool(flipped)


def active_alerts() -> list[ConversionAlert]:
    """The alerts raised and not cleared at the last look (:func:`low_conversion_alerts`,
    which every sweep of the background reporter and every ``report_conversions`` run takes):
    one small query, for pages that must stay cheap (the dashboard)."""
    return list(ConversionAlert.objects.filter(active=True).order_by("-raised_at"))


def current_alerts(*, now: datetime | None = None) -> list[Alert]:
    """Countries and networks whose rate over the last ``ALERT_WINDOW`` seconds (whole hours,
    the current one included) is below ``ALERT_MIN_RATE`` on ``ALERT_MIN_MESSAGES`` or more
    sends, lowest rate first. Reads only: for pages (a GET must not change anything)."""
    now = now or timezone.now()
    window = get_settings().alert_window
    rates = destination_rates(since=now - timedelta(seconds=window), until=now)
    alerts = [
        alert for by, rows in zip(ALERT_BY, rates, strict=True) for alert in _low(by, rows, window)
    ]
    return sorted(alerts, key=lambda alert: (alert.rate, -alert.sent))


def low_conversion_alerts(*, now: datetime | None = None) -> list[Alert]:
    """:func:`current_alerts`, recorded: ``conversion_rate_low`` is sent once per new alert;
    an alert that no longer holds is cleared, and sent again if it comes back. The sweeps
    call it."""
    now = now or timezone.now()
    alerts = current_alerts(now=now)
    for alert in alerts:
        if _is_new(alert, now):
            signals.conversion_rate_low.send(sender=ConversionAlert, alert=alert)
    keep = Q()
    for alert in alerts:
        keep |= Q(by=alert.by, key=alert.key)
    ConversionAlert.objects.filter(active=True).exclude(keep).update(active=False)
    return alerts


def refresh(*, batch_size: int = 1000) -> int:
    """Bring every counted figure up to date now: count what was recorded, marked or changed
    since the last sweep into the rollups the rates, alerts, dashboard and metrics read.
    Returns how many rows it counted (0 when all were counted already).

    The background reporter's sweeps do this every ``SWEEP_INTERVAL`` seconds; call it in a
    test or a script that reads figures right after writing rows."""
    return rollups.fold(batch_size=batch_size)


def _in_unit(count: int, size: int) -> str:
    if size == 86400:
        return ngettext("%(count)s day", "%(count)s days", count) % {"count": count}
    if size == 3600:
        return ngettext("%(count)s hour", "%(count)s hours", count) % {"count": count}
    if size == 60:
        return ngettext("%(count)s minute", "%(count)s minutes", count) % {"count": count}
    return ngettext("%(count)s second", "%(count)s seconds", count) % {"count": count}


def duration_text(seconds: float) -> str:
    """A duration for people, in the active language: ``3600`` -> "1 hour", ``86400`` ->
    "24 hours", ``172800`` -> "2 days", ``5400`` -> "90 minutes", ``90`` -> "90 seconds".
    The largest unit that gives at least 2 of it (or exactly 1 hour or minute), rounded."""
    if math.isinf(seconds):
        return gettext("forever")
    whole = max(0, round(seconds))
    for size in (86400, 3600, 60):
        if whole >= 2 * size or (whole == size and size != 86400):
            return _in_unit(round(whole / size), size)
    return _in_unit(whole, 1)


@dataclass(frozen=True)
class Freshness:
    """What the counted figures (the rates, the funnel, the charts, the alerts) are current
    to: every message sent and every conversion marked before ``counted_up_to`` is counted;
    ``uncounted`` rows wait for the next sweep (or :func:`refresh`)."""

    counted_up_to: datetime
    checked_at: datetime
    uncounted: int

    @property
    def age_seconds(self) -> float:
        """How far the figures lag behind ``checked_at`` (0 when every row is counted)."""
        return max(0.0, (self.checked_at - self.counted_up_to).total_seconds())

    def __str__(self) -> str:
        """One sentence for people, in the active language and the current time zone, e.g.
        "Counted up to 13:46:05, 12 seconds ago; 7 rows not yet counted."."""
        moment = timezone.localtime(self.counted_up_to)
        local_now = timezone.localtime(self.checked_at)
        fmt = "%H:%M:%S" if moment.date() == local_now.date() else "%Y-%m-%d %H:%M:%S"
        when = moment.strftime(fmt)
        if not self.uncounted:
            return gettext("Counted up to %(time)s: every message and conversion so far.") % {
                "time": when
            }
        return ngettext(
            "Counted up to %(time)s, %(age)s ago; %(count)s row not yet counted.",
            "Counted up to %(time)s, %(age)s ago; %(count)s rows not yet counted.",
            self.uncounted,
        ) % {"time": when, "age": duration_text(self.age_seconds), "count": self.uncounted}


def freshness(*, now: datetime | None = None) -> Freshness:
    """What the counted figures are current to (see :class:`Freshness`): one query on the
    ``counted`` indexes, which hold only the rows written since the last sweep."""
    now = now or timezone.now()

    def waiting(rows: QuerySet[Any], moment: str) -> QuerySet[Any]:
        found: QuerySet[Any] = (
            rows.filter(counted=False)
            .order_by()
            .values(one=Value(1))  # a constant: no GROUP BY, one row of totals
            .annotate(n=Count("pk"), first=Min(moment))
            .values_list("n", "first")
        )
        return found

    parts = waiting(SentMessage.objects.all(), "sent_at").union(
        waiting(Conversion.objects.all(), "created_at"), all=True
    )
    found = [(int(n or 0), first) for n, first in parts]
    uncounted = sum(n for n, _first in found)
    firsts = [first for n, first in found if n and first is not None]
    counted_up_to = min([now, *firsts]) if uncounted else now
    return Freshness(counted_up_to=counted_up_to, checked_at=now, uncounted=uncounted)
