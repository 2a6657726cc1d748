"""The conversion admin's own URLs and the work behind its actions: *Retry now*, *Report now*,
the dashboard and the Insights page, as :class:`ConversionAdminViews`, a mixin of
``ConversionAdmin``."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy
from django.views.decorators.http import require_POST

from .. import marking
from ..models import Conversion, Status
from ..reporting import engine
from .dashboard import render_dashboard
from .insights import render_insights
from .notices import describe_result
from .permissions import ReportPermissionMixin

#: *Report now* waits for Nexmo's answers inside the request; more than this belongs to a
#: report run (``report_conversions`` or a task), which *Retry now* hands them to.
REPORT_NOW_LIMIT = 100


class ConversionAdminViews(ReportPermissionMixin):
    """The dashboard, the change page's *Retry now* and *Report now* buttons, and the work the
    actions of the same names do.

    Thin adapters: reads come from ``queries``, writes from ``marking`` and ``reporting``.
    Every view is mounted by :meth:`get_urls` through ``admin_site.admin_view`` (staff login,
    CSRF, no caching) and checks the model permission itself.
    """

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        # Before the defaults: their "<path:object_id>/" would swallow "dashboard/".
        return [
            path("dashboard/", wrap(self.dashboard_view), name=f"{info}_dashboard"),
            path("insights/", wrap(self.insights_view), name=f"{info}_insights"),
            path("<path:object_id>/retry/", wrap(self.retry_view), name=f"{info}_retry"),
            path("<path:object_id>/report/", wrap(self.report_view), name=f"{info}_report"),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        return render_dashboard(request, self)

    def insights_view(self, request: HttpRequest) -> HttpResponse:
        return render_insights(request, self)

    @method_decorator(require_POST)
    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The change page's *Retry now* button."""
        conversion = self._reportable_or_404(request, object_id)
        self.retry_conversions(request, Conversion.objects.filter(pk=conversion.pk))
        return self._back_to(conversion)

    @method_decorator(require_POST)
    def report_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The change page's *Report now* button."""
        conversion = self._reportable_or_404(request, object_id)
        self.report_conversions_now(request, Conversion.objects.filter(pk=conversion.pk))
        return self._back_to(conversion)

    def retry_conversions(self, request: HttpRequest, queryset: QuerySet[Conversion]) -> int:
        """Make the failed and pending ones among ``queryset`` due now; say so."""
        # Counted first: the selection may be a filter ("failed") that no longer holds after.
        selected = queryset.count()
        count = marking.retry_now(queryset)
        skipped = selected - count
        if count:
            text = ngettext_lazy(
                "%(count)d conversion is due now. The next report run sends it; "
                "use Report now to send it at once.",
                "%(count)d conversions are due now. The next report run sends them; "
                "use Report now to send them at once.",
                "count",
            ) % {"count": count}
            self.message_user(request, text, messages.SUCCESS)
        if skipped:
            text = ngettext_lazy(
                "%(count)d conversion was left alone: it is already reported or being sent.",
                "%(count)d conversions were left alone: they are already reported or being sent.",
                "count",
            ) % {"count": skipped}
            self.message_user(request, text, messages.WARNING)
        return count

    def report_conversions_now(
        self, request: HttpRequest, queryset: QuerySet[Conversion]
    ) -> engine.ReportResult | None:
        """Report the failed and pending ones among ``queryset`` now, in this request (failed
        ones with a fresh attempt budget, as *Retry now* gives), and say what happened."""
        candidates = queryset.filter(status__in=[Status.PENDING, Status.FAILED]).order_by()
        pks = list(candidates.values_list("pk", flat=True)[: REPORT_NOW_LIMIT + 1])
        if len(pks) > REPORT_NOW_LIMIT:
            text = _(
                "Report now sends at most %(limit)d conversions at a time, while you wait. "
                "Select fewer, or use Retry now and let the next report run send them."
            ) % {"limit": REPORT_NOW_LIMIT}
            self.message_user(request, text, messages.ERROR)
            return None
        if not pks:
            self.message_user(
                request,
                _(
                    "Nothing to report: the selected conversions are already reported or "
                    "being sent."
                ),
                messages.WARNING,
            )
            return None
        marking.retry_now(Conversion.objects.filter(pk__in=pks))
        try:
            result = engine.report_pending(pks=pks)
        except ImproperlyConfigured as exc:
            # The settings' own message: it names the setting to fix and never holds a secret.
            text = _("Nothing was sent: %(problem)s") % {"problem": exc}
            self.message_user(request, text, messages.ERROR)
            return None
        level, text = describe_result(result)
        self.message_user(request, text, level)
        return result

    def _reportable_or_404(self, request: HttpRequest, object_id: str) -> Conversion:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(_("No conversion with this id."))
        if not self.has_report_permission(request, obj):
            raise PermissionDenied
        return obj

    def _back_to(self, conversion: Conversion) -> HttpResponse:
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=[quote(conversion.pk)],
            current_app=self.admin_site.name,
        )
        return HttpResponseRedirect(url)
