"""The conversion dashboard: its page (counts, the rate chart, top failures, the halt banner)
and its "Dashboard" entry on the admin index. The view reads ``?days=`` through
:class:`~.forms.DashboardParams` and hands the template one :class:`DashboardPage`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import get_template
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from .. import geography, insights, queries
from ..models import Conversion, ConversionAlert, ConversionDashboard, Status
from . import chart
from .forms import PERIODS, DashboardParams
from .notices import halt_context
from .permissions import ReportPermissionMixin, can_view_conversions

# Django's admin classes are generic only in the type stubs, not at run time.
if TYPE_CHECKING:
    DashboardAdminBase = admin.ModelAdmin[ConversionDashboard]
else:
    DashboardAdminBase = admin.ModelAdmin

#: Days in the dashboard's chart by default (``?days=`` picks another of ``forms.PERIODS``).
CHART_DAYS = PERIODS[0]
#: Failure reasons listed on the dashboard.
TOP_FAILURES = 5


@lru_cache(maxsize=1)
def breadcrumbs_are_a_list() -> bool:
    """Whether the running admin writes its breadcrumbs as ``<ol class="breadcrumbs">`` with
    an ``<li>`` per step (Django >= 6.1) rather than ``<div class="breadcrumbs">``.

    Read from the admin's own ``admin/base.html`` (the project's override, if any), not from
    Django's version: its CSS styles only the element it writes, so a dashboard trail in the
    other markup shows unstyled.
    """
    template = get_template("admin/base.html")
    source = getattr(getattr(template, "template", None), "source", "")
    return '<ol class="breadcrumbs">' in source


@dataclass(frozen=True)
class StatusCard:
    value: str
    label: str
    count: int
    url: str


@dataclass(frozen=True)
class FailureRow:
    reason: queries.FailureReason
    url: str


@dataclass(frozen=True)
class AlertRow:
    alert: ConversionAlert
    label: str


@dataclass(frozen=True)
class DashboardPage:
    """Everything the dashboard's template shows."""

    changelist_url: str
    insights_url: str
    statuses: list[StatusCard]
    total: int
    windows: list[queries.WindowCounts]
    #: The rate chart's period, in days (``?days=``), its days, and their sums.
    chart_days: int
    periods: list[tuple[int, str]]
    days: list[queries.DayRate]
    chart: SafeString
    days_sent: int
    days_converted: int
    overall_rate: str | None
    #: What the chart and the alerts are current to (the sweeps count them).
    freshness: insights.Freshness
    failures: list[FailureRow]
    alerts: list[AlertRow]
    time_zone: str
    can_report: bool
    breadcrumbs_list: bool


def build_page(
    *, chart_days: int, changelist_url: str, insights_url: str, can_report: bool
) -> DashboardPage:
    """The dashboard for a chart of ``chart_days`` days (a clean ``?days=``)."""

    def filtered(**params: str) -> str:
        return f"{changelist_url}?{urlencode(params)}"

    counts = queries.status_counts()
    days = queries.daily_conversion_rates(days=chart_days)
    average = chart.overall_rate(days)
    return DashboardPage(
        changelist_url=changelist_url,
        insights_url=insights_url,
        statuses=[
            StatusCard(
                status.value,
                str(status.label),
                counts[status.value],
                filtered(status__exact=status.value),
            )
            for status in Status
        ],
        total=sum(counts.values()),
        windows=queries.window_counts(),
        chart_days=chart_days,
        periods=[(period, f"?{urlencode({'days': period})}") for period in PERIODS],
        days=days,
        chart=chart.rate_chart(days),
        days_sent=sum(day.sent for day in days),
        days_converted=sum(day.converted for day in days),
        overall_rate=chart.percent(average) if average is not None else None,
        freshness=insights.freshness(),
        failures=[
            FailureRow(
                reason,
                filtered(
                    status__exact=Status.FAILED,
                    answer=queries.last_answer_kind(reason.status_code),
                ),
            )
            for reason in queries.top_failure_reasons(limit=TOP_FAILURES)
        ],
        alerts=[
            AlertRow(
                alert,
                geography.country_label(alert.key)
                if alert.by == "country"
                else geography.network_label(alert.key),
            )
            for alert in insights.active_alerts()
        ],
        time_zone=timezone.get_current_timezone_name(),
        can_report=can_report,
        breadcrumbs_list=breadcrumbs_are_a_list(),
    )


def render_dashboard(request: HttpRequest, model_admin: ReportPermissionMixin) -> HttpResponse:
    """Counts by status, recent periods, the daily conversion rate, top failure reasons and
    the halt banner, the active low-conversion alerts. A bounded number of queries, each
    bounded by an index or read from the hourly rollups, whatever the table size.

    ``model_admin`` is the conversions' admin, which mounts the page (``ConversionAdmin``).
    """
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    opts = model_admin.opts
    site = model_admin.admin_site.name
    page = build_page(
        chart_days=DashboardParams(request.GET).values()["days"],
        changelist_url=reverse(
            f"admin:{opts.app_label}_{opts.model_name}_changelist", current_app=site
        ),
        insights_url=reverse(
            f"admin:{opts.app_label}_{opts.model_name}_insights", current_app=site
        ),
        can_report=model_admin.has_report_permission(request),
    )
    context = {
        **model_admin.admin_site.each_context(request),
        **halt_context(),
        "title": _("Conversion dashboard"),
        "subtitle": None,
        "opts": opts,
        "app_label": opts.app_label,
        "media": model_admin.media,
        "page": page,
    }
    request.current_app = site
    return TemplateResponse(request, "admin/django_nexmo_conversion/dashboard.html", context)


@admin.register(ConversionDashboard)
class ConversionDashboardAdmin(DashboardAdminBase):
    """Lists "Dashboard" under the app on the admin index and sends it to the dashboard.

    Whoever may view conversions may view it; it has no permissions of its own.
    """

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_view_conversions(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        return [path("", self.admin_site.admin_view(self.redirect_view), name=name)]

    def redirect_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return HttpResponseRedirect(
            reverse(
                f"admin:{Conversion._meta.app_label}_conversion_dashboard",
                current_app=self.admin_site.name,
            )
        )
