"""The admin's Insights page: alerts on top, the funnel, sortable tables per country and per
network, and the daily rate of one chosen destination as server-rendered SVG.

The view reads its query parameters through :class:`~.forms.InsightsParams` and hands the
template one :class:`InsightsPage`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .. import insights, queries
from ..models import SECONDS_TO_CONVERT_BOUNDS
from . import chart
from .forms import PERIODS, SORTS, InsightsParams
from .permissions import ReportPermissionMixin

__all__ = ["PERIODS", "SORTS", "InsightsPage", "duration", "render_insights"]

#: The tables' columns: the row attribute sorted on, and its heading.
COLUMNS = (
    ("key", _("Destination")),
    ("sent", _("Sent")),
    ("delivered", _("Delivered")),
    ("converted", _("Converted")),
    ("rate", _("Rate")),
    ("median_seconds_to_convert", _("Median time to convert")),
    ("p90_seconds_to_convert", _("90th percentile")),
)
DASH = "\u2013"


def duration(seconds: float | None) -> str:
    """A histogram bound for people, in the active language: ``45`` -> "≤ 45 seconds",
    ``inf`` -> "more than 24 hours" (beyond the last bound)."""
    if seconds is None:
        return DASH
    if math.isinf(seconds):
        last = insights.duration_text(SECONDS_TO_CONVERT_BOUNDS[-1])
        return gettext("more than %(duration)s") % {"duration": last}
    return gettext("≤ %(duration)s") % {"duration": insights.duration_text(seconds)}


@dataclass(frozen=True)
class Funnel:
    """Sent, delivered (receipts that say so) and converted, over the period."""

    sent: int
    delivered: int
    converted: int

    @property
    def receipts(self) -> bool:
        """Whether any delivery receipt said delivered: without, "delivered" means nothing
        yet (receipts not set up), and the page says so rather than show 0 %."""
        return self.delivered > 0

    @property
    def delivered_rate(self) -> str | None:
        return chart.percent(self.delivered / self.sent) if self.sent and self.receipts else None

    @property
    def converted_rate(self) -> str | None:
        return chart.percent(self.converted / self.sent) if self.sent else None


@dataclass(frozen=True)
class Row:
    """One destination of a table, as shown."""

    row: insights.RateRow
    rate: str
    median: str
    p90: str
    chart_url: str
    chosen: bool


@dataclass(frozen=True)
class Table:
    by: str
    title: str
    rows: list[Row]


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    url: str


@dataclass(frozen=True)
class InsightsPage:
    """Everything the Insights template shows."""

    dashboard_url: str
    #: Read only: the sweeps record the alerts and send the signal, never a page view.
    alerts: list[insights.Alert]
    freshness: insights.Freshness
    days: int
    periods: list[tuple[int, str]]
    tables: list[Table]
    columns: list[Column]
    sort: str
    descending: bool
    funnel: Funnel
    chart: SafeString | None
    chart_by: str
    chart_key: str
    chart_label: str
    time_zone: str


def _sorted(rows: list[insights.RateRow], sort: str, descending: bool) -> list[insights.RateRow]:
    def value(row: insights.RateRow) -> tuple[bool, Any]:
        found = getattr(row, sort)
        return (found is None, found if found is not None else 0)

    present = sorted(rows, key=value, reverse=descending)
    # Rows without a value (no conversions) stay at the bottom either way.
    return [r for r in present if getattr(r, sort) is not None] + [
        r for r in present if getattr(r, sort) is None
    ]


def _since(now: datetime, days: int) -> datetime:
    """The first local midnight of a period of ``days`` calendar days ending today."""
    since = timezone.localtime(now) - timedelta(days=days - 1)
    return since.replace(hour=0, minute=0, second=0, microsecond=0)


def build_page(params: dict[str, Any], *, dashboard_url: str, now: datetime) -> InsightsPage:
    """The page for clean ``params`` (:meth:`InsightsParams.values`)."""
    days, sort = params["days"], params["sort"]
    descending = params["dir"] == "desc"

    def link(**changes: str) -> str:
        shown = {"days": str(days), "sort": sort, "dir": params["dir"], "chart": params["chart"]}
        merged = {name: value for name, value in {**shown, **changes}.items() if value}
        return f"?{urlencode(merged)}"

    by_country, by_network = insights.destination_rates(since=_since(now, days), until=now)
    countries = _sorted(by_country, sort, descending)
    chosen_by, _sep, chosen_key = params["chart"].partition(":")
    if not chosen_key:
        chosen_by, chosen_key = ("country", countries[0].key) if countries else ("", "")
    svg = None
    if chosen_key:
        # Only sent and converted per day: the chart draws the rate, no time to convert.
        daily = queries.daily_conversion_rates(days=days, now=now, **{chosen_by: chosen_key})
        svg = chart.rate_chart(daily)

    tables = [
        Table(
            by=by,
            title=str(title),
            rows=[
                Row(
                    row=row,
                    rate=chart.percent(row.rate) if row.rate is not None else DASH,
                    median=duration(row.median_seconds_to_convert),
                    p90=duration(row.p90_seconds_to_convert),
                    chart_url=link(chart=f"{by}:{row.key}"),
                    chosen=(by, row.key) == (chosen_by, chosen_key),
                )
                for row in rows
            ],
        )
        for by, title, rows in (
            ("country", _("By country"), countries),
            ("network", _("By network"), _sorted(by_network, sort, descending)),
        )
    ]
    return InsightsPage(
        dashboard_url=dashboard_url,
        alerts=insights.current_alerts(now=now),
        freshness=insights.freshness(now=now),
        days=days,
        periods=[(period, link(days=str(period))) for period in PERIODS],
        tables=tables,
        columns=[
            Column(
                name,
                str(label),
                link(sort=name, dir="asc" if sort == name and descending else "desc"),
            )
            for name, label in COLUMNS
        ],
        sort=sort,
        descending=descending,
        funnel=Funnel(
            **{
                name: sum(getattr(row, name) for row in countries)
                for name in ("sent", "delivered", "converted")
            }
        ),
        chart=svg,
        chart_by=chosen_by,
        chart_key=chosen_key,
        chart_label=next(
            (item.row.label for table in tables for item in table.rows if item.chosen),
            chosen_key,
        ),
        time_zone=timezone.get_current_timezone_name(),
    )


def render_insights(request: HttpRequest, model_admin: ReportPermissionMixin) -> HttpResponse:
    """The Insights page. Every figure is summed from the hourly rollups: the same handful of
    queries, and about the same time, at any number of messages."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    opts = model_admin.opts
    page = build_page(
        InsightsParams(request.GET).values(),
        dashboard_url=reverse(
            f"admin:{opts.app_label}_{opts.model_name}_dashboard",
            current_app=model_admin.admin_site.name,
        ),
        now=timezone.now(),
    )
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Conversion insights"),
        "subtitle": None,
        "opts": opts,
        "app_label": opts.app_label,
        "media": model_admin.media,
        "page": page,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/django_nexmo_conversion/insights.html", context)
