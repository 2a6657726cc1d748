"""The conversions' admin: their list, its filters and actions (*Retry now*, *Report now*),
and the read-only change page with each conversion's attempts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from .. import queries
from ..models import Conversion, ConversionAttempt, Status
from .changelist import SEARCH_HELP_TEXT, EstimatedCountPaginator, search_lookups
from .notices import halt_context
from .permissions import ReadOnlyAdminMixin, can_view_conversions
from .views import ConversionAdminViews
from .widgets import error_excerpt, moment, status_badge, target_link

# Django's admin classes are generic only in the type stubs, not at run time.
if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

    AttemptInlineBase = admin.TabularInline[ConversionAttempt, Conversion]
    ConversionAdminBase = admin.ModelAdmin[Conversion]
else:
    AttemptInlineBase = admin.TabularInline
    ConversionAdminBase = admin.ModelAdmin


# --- filters ----------------------------------------------------------------------------------


class MarkedDateFilter(admin.DateFieldListFilter):
    """The date filter on ``created_at``, under the name people use for it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = _("date marked")


class LastAnswerFilter(admin.SimpleListFilter):
    """Nexmo's last answer, by kind (fixed choices: no query to build the filter)."""

    title = _("last answer")
    parameter_name = "answer"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, StrOrPromise]]:
        return [
            ("ok", _("200 reported")),
            ("account", _("401/402 account error")),
            ("endpoint", _("Wrong endpoint (403/404/405/406/415, redirect)")),
            ("rejected", _("Other answers: parameters rejected")),
            ("throttled", _("429 too many requests")),
            ("server", _("5xx server error, 408 timeout")),
            ("none", _("No HTTP answer (timeout, connection)")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        query = queries.last_answer_query(self.value())
        return queryset if query is None else queryset.filter(query)


# --- the attempts inline ----------------------------------------------------------------------


class ConversionAttemptInline(ReadOnlyAdminMixin, AttemptInlineBase):
    model = ConversionAttempt
    fields = ("started", "duration_ms", "http_status", "outcome", "error")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name_plural = _("attempts (oldest first)")

    @admin.display(description=_("started at"))
    def started(self, attempt: ConversionAttempt) -> str:
        # Written as every moment of the page is (the locale time formats stop at the minute).
        return moment(attempt.started_at)

    @admin.display(description=_("duration"))
    def duration_ms(self, attempt: ConversionAttempt) -> str:
        return str(
            _("%(ms)s ms") % {"ms": round(attempt.duration.total_seconds() * 1000)}
            if attempt.duration is not None
            else "-"
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Attempts are part of the conversion's story: whoever may view it sees them.
        return can_view_conversions(request)


# --- conversions ------------------------------------------------------------------------------


@admin.register(Conversion)
class ConversionAdmin(ReadOnlyAdminMixin, ConversionAdminViews, ConversionAdminBase):
    """Built for large tables: the list makes the same number of queries whatever its size
    (``list_select_related``, nothing computed per row), its filters need no queries of their
    own, it sorts on indexed columns only, and :class:`EstimatedCountPaginator` counts it.

    The only state changes are the two actions, which need the ``report`` permission
    (:meth:`has_report_permission`); the custom URLs come from :class:`ConversionAdminViews`.
    """

    list_display = (
        "message_id_column",
        "channel_column",
        "delivered",
        "status_column",
        "attempt_count",
        "last_status_code",
        "timestamp",
        "reported_at",
        "short_error",
    )
    list_display_links = ("message_id_column",)
    list_filter = (
        "status",
        ("message__channel", admin.ChoicesFieldListFilter),
        "delivered",
        LastAnswerFilter,
        ("created_at", MarkedDateFilter),
    )
    search_fields = ("message__message_id",)  # shows the box; see get_search_results
    search_help_text = SEARCH_HELP_TEXT
    list_select_related = ("message",)
    # Only indexed columns sort; the default order (newest first) is the primary key's.
    sortable_by = ("reported_at",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    actions = ("retry_now", "report_now")
    _message_fields = (
        "message_link",
        "channel_column",
        "recipient_column",
        "api_key_column",
        "target_column",
        "delivered",
        "converted_at",
        "marked_at",
    )
    _reporting_fields = (
        "status_column",
        "attempts_column",
        "next_attempt_column",
        "last_status_code",
        "last_error",
        "reported_at_column",
    )
    fieldsets = (
        (
            None,
            {
                "fields": _message_fields,
                "description": _(
                    "Converted at: when the person acted on the message (the time your code "
                    "passed to mark_converted(), now by default); Nexmo receives this one. "
                    "Marked at: when the conversion was recorded here."
                ),
            },
        ),
        (_("Reporting"), {"fields": _reporting_fields}),
    )
    # Everything shown is read-only: reported data is a record, not a form.
    readonly_fields = _message_fields + _reporting_fields
    inlines = (ConversionAttemptInline,)

    class Media:
        css = {"all": ("django_nexmo_conversion/admin.css",)}

    # -- columns

    @admin.display(description=_("message id"))
    def message_id_column(self, conversion: Conversion) -> str:
        return conversion.message.message_id

    @admin.display(description=_("message"))
    def message_link(self, conversion: Conversion) -> str:
        url = reverse(
            f"admin:{self.opts.app_label}_sentmessage_change",
            args=[quote(conversion.message_id)],
            current_app=self.admin_site.name,
        )
        return format_html('<a href="{}">{}</a>', url, conversion.message.message_id)

    @admin.display(description=_("channel"))
    def channel_column(self, conversion: Conversion) -> str:
        return conversion.message.get_channel_display()

    @admin.display(description=_("recipient"))
    def recipient_column(self, conversion: Conversion) -> str:
        return conversion.message.recipient or "-"

    @admin.display(description=_("API key"))
    def api_key_column(self, conversion: Conversion) -> str:
        return conversion.message.api_key or str(_("(the default account)"))

    @admin.display(description=_("target"))
    def target_column(self, conversion: Conversion) -> str:
        return target_link(conversion.message, self.admin_site.name)

    @admin.display(description=_("converted at"))
    def converted_at(self, conversion: Conversion) -> str:
        return moment(conversion.timestamp)

    @admin.display(description=_("marked at"))
    def marked_at(self, conversion: Conversion) -> str:
        return moment(conversion.created_at)

    @admin.display(description=_("next attempt at"))
    def next_attempt_column(self, conversion: Conversion) -> str:
        return moment(conversion.next_attempt_at)

    @admin.display(description=_("reported at"))
    def reported_at_column(self, conversion: Conversion) -> str:
        return moment(conversion.reported_at)

    @admin.display(description=_("attempts"))
    def attempts_column(self, conversion: Conversion) -> str:
        # attempt_count is the budget spent since the last Retry now / Report now (which give
        # a fresh one); the table below lists every attempt ever made.
        made = conversion.attempts.count()
        if made == conversion.attempt_count:
            return str(made)
        return str(
            _(
                "%(budget)s since the last Retry now or Report now (of MAX_ATTEMPTS); "
                "%(made)s in all, listed below"
            )
            % {"budget": conversion.attempt_count, "made": made}
        )

    @admin.display(description=_("status"))
    def status_column(self, conversion: Conversion) -> str:
        return status_badge(conversion.status, conversion.get_status_display())

    @admin.display(description=_("last error"))
    def short_error(self, conversion: Conversion) -> str:
        return error_excerpt(conversion.last_error)

    # -- search

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Conversion], search_term: str
    ) -> tuple[QuerySet[Conversion], bool]:
        query = search_lookups(search_term, prefix="message__")
        return (queryset if query is None else queryset.filter(query)), False

    # -- actions

    @admin.action(description=_("Retry now"), permissions=["report"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Conversion]) -> None:
        self.retry_conversions(request, queryset)

    @admin.action(description=_("Report now"), permissions=["report"])
    def report_now(self, request: HttpRequest, queryset: QuerySet[Conversion]) -> None:
        self.report_conversions_now(request, queryset)

    # -- Django's own views

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        action = request.POST.get("action", "") if request.method == "POST" else ""
        if action and action not in self.get_actions(request):
            # Django would answer a forbidden action with "No action selected." and a 200;
            # a state-changing request the user may not make deserves a plain refusal.
            raise PermissionDenied
        context = {**halt_context(), **(extra_context or {})}
        return super().changelist_view(request, extra_context=context)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Conversion | None = None,
    ) -> HttpResponse:
        context["nexmo_can_report"] = (
            obj is not None
            and obj.status in (Status.PENDING, Status.FAILED)
            and self.has_report_permission(request, obj)
        )
        return super().render_change_form(request, context, add, change, form_url, obj)
