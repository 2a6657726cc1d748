"""The conversion dashboard: its page (counts, the rate chart, top failures, the halt banner)
and its "Dashboard" entry on the admin index."""

from __future__ import annotations

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
from django.utils.translation import gettext_lazy as _

from .. import geography, insights, queries
from ..models import Conversion, ConversionDashboard, Status
from . import chart
from .notices import halt_context
from .permissions import ReportPermissionMixin, can_view_conversions

# Django's admin classes are generic only in the type stubs, not at run time.
if TYPE_CHECKING:
    DashboardAdminBase = admin.ModelAdmin[ConversionDashboard]
else:
    DashboardAdminBase = admin.ModelAdmin

#: Days in the dashboard's chart.
CHART_DAYS = 30
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


def render_dashboard(request: HttpRequest, model_admin: ReportPermissionMixin) -> HttpResponse:
    """Counts by status, recent periods, the daily conversion rate, top failure reasons and
    the halt banner, the active low-conversion alerts. Eight queries, each bounded by an
    index or read from the hourly rollups, whatever the table size.

    ``model_admin`` is the conversions' admin, which mounts the page (``ConversionAdmin``).
    """
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    opts = model_admin.opts
    changelist = reverse(
        f"admin:{opts.app_label}_{opts.model_name}_changelist",
        current_app=model_admin.admin_site.name,
    )

    def filtered(**params: str) -> str:
        return f"{changelist}?{urlencode(params)}"

    counts = queries.status_counts()
    statuses = [
        {
            "value": status.value,
            "label": status.label,
            "count": counts[status.value],
            "url": filtered(status__exact=status.value),
        }
        for status in Status
    ]
    days = queries.daily_conversion_rates(days=CHART_DAYS)
    average = chart.overall_rate(days)
    failures = [
        {
            "reason": reason,
            "url": filtered(
                status__exact=Status.FAILED, answer=queries.last_answer_kind(reason.status_code)
            ),
        }
        for reason in queries.top_failure_reasons(limit=TOP_FAILURES)
    ]
    context = {
        **model_admin.admin_site.each_context(request),
        **halt_context(),
        "title": _("Conversion dashboard"),
        "subtitle": None,
        "opts": opts,
        "app_label": opts.app_label,
        "media": model_admin.media,
        "changelist_url": changelist,
        "statuses": statuses,
        "total": sum(counts.values()),
        "windows": queries.window_counts(),
        "chart": chart.rate_chart(days),
        # The chart and the alerts are counted by the sweeps: say what they are current to.
        "freshness": insights.freshness(),
        "days": days,
        "chart_days": CHART_DAYS,
        "days_sent": sum(day.sent for day in days),
        "days_converted": sum(day.converted for day in days),
        "overall_rate": chart.percent(average) if average is not None else None,
        "failures": failures,
        "time_zone": timezone.get_current_timezone_name(),
        "can_report": model_admin.has_report_permission(request),
        "breadcrumbs_list": breadcrumbs_are_a_list(),
        "insights_url": reverse(
            f"admin:{opts.app_label}_{opts.model_name}_insights",
            current_app=model_admin.admin_site.name,
        ),
        "alerts": [
            {
                "alert": alert,
                "label": geography.country_label(alert.key)
                if alert.by == "country"
                else geography.network_label(alert.key),
            }
            for alert in insights.active_alerts()
        ],
    }
    request.current_app = model_admin.admin_site.name
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
