"""The admin's Insights page: alerts on top, the funnel, sortable tables per country and per
network, and the daily rate of one chosen destination as server-rendered SVG."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import insights, queries
from . import chart
from .permissions import ReportPermissionMixin

#: The periods the page offers, in days; the first is the default.
PERIODS = (30, 7, 90)
#: Columns a table can be sorted by (the row attribute), and which way first.
SORTS = {
    "key": False,
    "sent": True,
    "delivered": True,
    "converted": True,
    "rate": True,
    "median_seconds_to_convert": True,
    "p90_seconds_to_convert": True,
}


def duration(seconds: float | None) -> str:
    """A histogram bound for people: ``45`` -> ``"≤ 45 s"``, ``inf`` -> ``"> 1 d"``."""
    if seconds is None:
        return "\u2013"
    if math.isinf(seconds):
        return "> 1 d"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"≤ {seconds / size:g} {unit}"
    return f"≤ {seconds:g} s"


def _sorted(rows: list[insights.RateRow], sort: str, descending: bool) -> list[insights.RateRow]:
    def value(row: insights.RateRow) -> tuple[bool, Any]:
        found = getattr(row, sort)
        return (found is None, found if found is not None else 0)

    present = sorted(rows, key=value, reverse=descending)
    # Rows without a value (no conversions) stay at the bottom either way.
    return [r for r in present if getattr(r, sort) is not None] + [
        r for r in present if getattr(r, sort) is None
    ]


def render_insights(request: HttpRequest, model_admin: ReportPermissionMixin) -> HttpResponse:
    """The Insights page. Every figure is summed from the hourly rollups: the same handful of
    queries, and about the same time, at any number of messages."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    opts = model_admin.opts
    params = request.GET
    days = int(params["days"]) if params.get("days", "").isdigit() else PERIODS[0]
    days = days if days in PERIODS else PERIODS[0]
    sort = params.get("sort", "sent")
    sort = sort if sort in SORTS else "sent"
    descending = params.get("dir", "desc" if SORTS[sort] else "asc") == "desc"
    now = timezone.now()
    since = timezone.localtime(now) - timedelta(days=days - 1)
    since = since.replace(hour=0, minute=0, second=0, microsecond=0)
    tables: list[dict[str, Any]] = [
        {"by": by, "title": title, "rows": _sorted(rows, sort, descending)}
        for (by, title), rows in zip(
            (("country", _("By country")), ("network", _("By network"))),
            insights.destination_rates(since=since, until=now),
            strict=True,
        )
    ]
    countries = tables[0]["rows"]
    funnel = {
        name: sum(getattr(row, name) for row in countries)
        for name in ("sent", "delivered", "converted")
    }
    chosen_by, _sep, chosen_key = params.get("chart", "").partition(":")
    if chosen_by not in insights.ALERT_BY or not chosen_key:
        chosen_by, chosen_key = ("country", countries[0].key) if countries else ("", "")
    svg = None
    if chosen_key:
        # Only sent and converted per day: the chart draws the rate, no time to convert.
        daily = queries.daily_conversion_rates(days=days, now=now, **{chosen_by: chosen_key})
        svg = chart.rate_chart(daily)

    def link(**changes: str) -> str:
        merged = {**params.dict(), **changes}
        return f"?{urlencode(merged)}"

    columns = [
        (name, label, link(sort=name, dir="asc" if sort == name and descending else "desc"))
        for name, label in (
            ("key", _("Destination")),
            ("sent", _("Sent")),
            ("delivered", _("Delivered")),
            ("converted", _("Converted")),
            ("rate", _("Rate")),
            ("median_seconds_to_convert", _("Median time to convert")),
            ("p90_seconds_to_convert", _("90th percentile")),
        )
    ]
    for table in tables:
        table["rows"] = [
            {
                "row": row,
                "rate": chart.percent(row.rate) if row.rate is not None else "\u2013",
                "median": duration(row.median_seconds_to_convert),
                "p90": duration(row.p90_seconds_to_convert),
                "chart_url": link(chart=f"{table['by']}:{row.key}"),
                "chosen": (table["by"], row.key) == (chosen_by, chosen_key),
            }
            for row in table["rows"]
        ]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Conversion insights"),
        "subtitle": None,
        "opts": opts,
        "app_label": opts.app_label,
        "media": model_admin.media,
        "dashboard_url": reverse(
            f"admin:{opts.app_label}_{opts.model_name}_dashboard",
            current_app=model_admin.admin_site.name,
        ),
        # Read only: the sweeps record the alerts and send the signal, never a page view.
        "alerts": insights.current_alerts(now=now),
        "freshness": insights.freshness(now=now),
        "days": days,
        "periods": [(period, link(days=str(period))) for period in PERIODS],
        "tables": tables,
        "columns": columns,
        "sort": sort,
        "descending": descending,
        "funnel": funnel,
        "funnel_delivered": chart.percent(funnel["delivered"] / funnel["sent"])
        if funnel["sent"]
        else None,
        "funnel_converted": chart.percent(funnel["converted"] / funnel["sent"])
        if funnel["sent"]
        else None,
        "chart": svg,
        "chart_by": chosen_by,
        "chart_key": chosen_key,
        "chart_label": next(
            (item["row"].label for table in tables for item in table["rows"] if item["chosen"]),
            chosen_key,
        ),
        "time_zone": timezone.get_current_timezone_name(),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/django_nexmo_conversion/insights.html", context)
