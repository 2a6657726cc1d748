"""The admin's own views and the actions' logic: the dashboard, *Retry now* and *Report now*.

Thin adapters: reads come from ``selectors``, writes from ``services``. Every view here is
mounted by ``ConversionAdmin.get_urls`` through ``admin_site.admin_view`` (staff login,
CSRF, no caching) and checks the model permission itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy
from django.views.decorators.http import require_POST

from . import selectors, services
from .admin import chart
from .admin.notices import describe_result, halt_context
from .models import Conversion, Status

if TYPE_CHECKING:
    from .admin import ConversionAdmin

#: *Report now* waits for Nexmo's answers inside the request; more than this belongs to a
#: report run (``report_conversions`` or a task), which *Retry now* hands them to.
REPORT_NOW_LIMIT = 100
#: Days in the dashboard's chart.
CHART_DAYS = 30
#: Failure reasons listed on the dashboard.
TOP_FAILURES = 5


# --- Retry now / Report now -------------------------------------------------------------------


def retry_conversions(
    request: HttpRequest, model_admin: ConversionAdmin, queryset: QuerySet[Conversion]
) -> int:
    """Make the failed and pending ones among ``queryset`` due now; say so."""
    # Counted first: the selection may be a filter ("failed") that no longer holds after.
    selected = queryset.count()
    count = services.retry_now(queryset)
    skipped = selected - count
    if count:
        text = ngettext_lazy(
            "%(count)d conversion is due now. The next report run sends it; "
            "use Report now to send it at once.",
            "%(count)d conversions are due now. The next report run sends them; "
            "use Report now to send them at once.",
            "count",
        ) % {"count": count}
        model_admin.message_user(request, text, messages.SUCCESS)
    if skipped:
        text = ngettext_lazy(
            "%(count)d conversion was left alone: it is already reported or being sent.",
            "%(count)d conversions were left alone: they are already reported or being sent.",
            "count",
        ) % {"count": skipped}
        model_admin.message_user(request, text, messages.WARNING)
    return count


def report_conversions_now(
    request: HttpRequest, model_admin: ConversionAdmin, queryset: QuerySet[Conversion]
) -> services.ReportResult | None:
    """Report the failed and pending ones among ``queryset`` now, in this request (failed
    ones with a fresh attempt budget, as *Retry now* gives), and say what happened."""
    candidates = queryset.filter(status__in=[Status.PENDING, Status.FAILED]).order_by()
    pks = list(candidates.values_list("pk", flat=True)[: REPORT_NOW_LIMIT + 1])
    if len(pks) > REPORT_NOW_LIMIT:
        text = _(
            "Report now sends at most %(limit)d conversions at a time, while you wait. "
            "Select fewer, or use Retry now and let the next report run send them."
        ) % {"limit": REPORT_NOW_LIMIT}
        model_admin.message_user(request, text, messages.ERROR)
        return None
    if not pks:
        model_admin.message_user(
            request,
            _("Nothing to report: the selected conversions are already reported or being sent."),
            messages.WARNING,
        )
        return None
    services.retry_now(Conversion.objects.filter(pk__in=pks))
    try:
        result = services.report_pending(pks=pks)
    except ImproperlyConfigured as exc:
        # The settings' own message: it names the setting to fix and never holds a secret.
        text = _("Nothing was sent: %(problem)s") % {"problem": exc}
        model_admin.message_user(request, text, messages.ERROR)
        return None
    level, text = describe_result(result)
    model_admin.message_user(request, text, level)
    return result


def _object_or_404(model_admin: ConversionAdmin, request: HttpRequest, object_id: str) -> Any:
    obj = model_admin.get_object(request, unquote(object_id))
    if obj is None:
        raise Http404(_("No conversion with this id."))
    if not model_admin.has_report_permission(request, obj):
        raise PermissionDenied
    return obj


def _back_to(model_admin: ConversionAdmin, conversion: Conversion) -> HttpResponse:
    url = reverse(
        f"admin:{model_admin.opts.app_label}_{model_admin.opts.model_name}_change",
        args=[quote(conversion.pk)],
        current_app=model_admin.admin_site.name,
    )
    return HttpResponseRedirect(url)


@require_POST
def retry_one(request: HttpRequest, model_admin: ConversionAdmin, object_id: str) -> HttpResponse:
    """The change page's *Retry now* button."""
    conversion = _object_or_404(model_admin, request, object_id)
    retry_conversions(request, model_admin, Conversion.objects.filter(pk=conversion.pk))
    return _back_to(model_admin, conversion)


@require_POST
def report_one(request: HttpRequest, model_admin: ConversionAdmin, object_id: str) -> HttpResponse:
    """The change page's *Report now* button."""
    conversion = _object_or_404(model_admin, request, object_id)
    report_conversions_now(request, model_admin, Conversion.objects.filter(pk=conversion.pk))
    return _back_to(model_admin, conversion)


# --- dashboard --------------------------------------------------------------------------------


def dashboard(request: HttpRequest, model_admin: ConversionAdmin) -> HttpResponse:
    """Counts by status, recent periods, the daily conversion rate, top failure reasons and
    the halt banner. Seven queries, each bounded by an index, whatever the table size."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    opts = model_admin.opts
    changelist = reverse(
        f"admin:{opts.app_label}_{opts.model_name}_changelist",
        current_app=model_admin.admin_site.name,
    )

    def filtered(**params: str) -> str:
        return f"{changelist}?{urlencode(params)}"

    counts = selectors.status_counts()
    statuses = [
        {
            "value": status.value,
            "label": status.label,
            "count": counts[status.value],
            "url": filtered(status__exact=status.value),
        }
        for status in Status
    ]
    days = selectors.daily_conversion_rates(days=CHART_DAYS)
    average = chart.overall_rate(days)
    failures = [
        {
            "reason": reason,
            "url": filtered(
                status__exact=Status.FAILED, answer=selectors.last_answer_kind(reason.status_code)
            ),
        }
        for reason in selectors.top_failure_reasons(limit=TOP_FAILURES)
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
        "windows": selectors.window_counts(),
        "chart": chart.rate_chart(days),
        "days": days,
        "chart_days": CHART_DAYS,
        "days_sent": sum(day.sent for day in days),
        "days_converted": sum(day.converted for day in days),
        "overall_rate": chart.percent(average) if average is not None else None,
        "failures": failures,
        "time_zone": timezone.get_current_timezone_name(),
        "can_report": model_admin.has_report_permission(request),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/django_nexmo_conversion/dashboard.html", context)
