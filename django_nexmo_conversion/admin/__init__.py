"""Admin for sent messages and conversions, plus the dashboard's entry on the admin index.

Reported data is read-only: the change pages show, never edit (saving a stale copy of a
row would race the workers that own it). The only state changes are the two actions,
*Retry now* and *Report now*, which need the ``change`` permission on conversions (see
:meth:`ConversionAdmin.has_report_permission`) and, like every custom URL here, go through
``admin_site.admin_view`` (login, staff, CSRF). The logic lives in ``services`` and
``selectors``; the views in ``admin_views``. Shared pieces live in this package's modules.

Built for large tables: list pages make the same number of queries whatever their size
(``list_select_related``, nothing computed per row), filters need no queries of their own,
sorting is limited to indexed columns, and the unfiltered count is PostgreSQL's estimate
once a table is large (:class:`EstimatedCountPaginator`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from .. import admin_views, selectors
from ..models import (
    Conversion,
    ConversionAttempt,
    ConversionDashboard,
    InboundMessage,
    SentMessage,
    Status,
)
from .changelist import SEARCH_HELP_TEXT, EstimatedCountPaginator, search_lookups
from .notices import halt_context
from .permissions import ReadOnlyAdminMixin, ReportPermissionMixin, can_view_conversions
from .widgets import error_excerpt, status_badge, target_link

# Django's admin classes are generic only in the type stubs, not at run time.
if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

    AttemptInlineBase = admin.TabularInline[ConversionAttempt, Conversion]
    ConversionAdminBase = admin.ModelAdmin[Conversion]
    SentMessageAdminBase = admin.ModelAdmin[SentMessage]
    DashboardAdminBase = admin.ModelAdmin[ConversionDashboard]
    InboundMessageAdminBase = admin.ModelAdmin[InboundMessage]
else:
    AttemptInlineBase = admin.TabularInline
    ConversionAdminBase = SentMessageAdminBase = DashboardAdminBase = admin.ModelAdmin
    InboundMessageAdminBase = admin.ModelAdmin


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
            ("rejected", _("Other 4xx: parameters rejected")),
            ("throttled", _("429 too many requests")),
            ("server", _("5xx server error")),
            ("none", _("No HTTP answer (timeout, connection)")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        query = selectors.last_answer_query(self.value())
        return queryset if query is None else queryset.filter(query)


# --- conversions ------------------------------------------------------------------------------


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
        # To the second: attempts minutes apart are the point of this table.
        return formats.date_format(timezone.localtime(attempt.started_at), "j M Y, H:i:s")

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


@admin.register(Conversion)
class ConversionAdmin(ReadOnlyAdminMixin, ReportPermissionMixin, ConversionAdminBase):
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
        "timestamp",
        "marked_at",
    )
    _reporting_fields = (
        "status_column",
        "attempt_count",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "reported_at",
    )
    fieldsets = (
        (None, {"fields": _message_fields}),
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

    @admin.display(description=_("marked at"))
    def marked_at(self, conversion: Conversion) -> str:
        return formats.date_format(timezone.localtime(conversion.created_at), "DATETIME_FORMAT")

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
        admin_views.retry_conversions(request, self, queryset)

    @admin.action(description=_("Report now"), permissions=["report"])
    def report_now(self, request: HttpRequest, queryset: QuerySet[Conversion]) -> None:
        admin_views.report_conversions_now(request, self, queryset)

    # -- views

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        # Before the defaults: their "<path:object_id>/" would swallow "dashboard/".
        return [
            path("dashboard/", wrap(self.dashboard_view), name=f"{info}_dashboard"),
            path("<path:object_id>/retry/", wrap(self.retry_view), name=f"{info}_retry"),
            path("<path:object_id>/report/", wrap(self.report_view), name=f"{info}_report"),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        return admin_views.dashboard(request, self)

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return admin_views.retry_one(request, self, object_id)

    def report_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return admin_views.report_one(request, self, object_id)

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


# --- sent messages ----------------------------------------------------------------------------


@admin.register(SentMessage)
class SentMessageAdmin(ReadOnlyAdminMixin, SentMessageAdminBase):
    list_display = (
        "message_id",
        "channel",
        "recipient",
        "sent_at",
        "api_key",
        "conversion_column",
        "target_column",
    )
    list_filter = ("channel", ("sent_at", admin.DateFieldListFilter))
    search_fields = ("message_id",)  # shows the box; see get_search_results
    search_help_text = SEARCH_HELP_TEXT
    list_select_related = ("conversion", "target_content_type")
    ordering = ("-sent_at",)  # served by its index
    sortable_by = ("sent_at",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    fields = (
        "message_id",
        "channel",
        "recipient",
        "api_key",
        "sent_at",
        "parent",
        "target_column",
        "conversion_column",
        "delivery_status",
        "delivery_error_code",
        "delivery_updated_at",
    )
    readonly_fields = fields

    class Media:
        css = {"all": ("django_nexmo_conversion/admin.css",)}

    @admin.display(description=_("conversion"))
    def conversion_column(self, message: SentMessage) -> str:
        try:
            conversion = message.conversion
        except ObjectDoesNotExist:
            return "-"
        url = reverse(
            f"admin:{self.opts.app_label}_conversion_change",
            args=[quote(conversion.pk)],
            current_app=self.admin_site.name,
        )
        return format_html(
            '<a href="{}">{}</a>',
            url,
            status_badge(conversion.status, conversion.get_status_display()),
        )

    @admin.display(description=_("target"))
    def target_column(self, message: SentMessage) -> str:
        return target_link(message, self.admin_site.name)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[SentMessage], search_term: str
    ) -> tuple[QuerySet[SentMessage], bool]:
        query = search_lookups(search_term)
        return (queryset if query is None else queryset.filter(query)), False


# --- the dashboard's entry on the admin index -------------------------------------------------


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


__all__ = [
    "ConversionAdmin",
    "ConversionAttemptInline",
    "ConversionDashboardAdmin",
    "EstimatedCountPaginator",
    "SentMessageAdmin",
]


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyAdminMixin, InboundMessageAdminBase):
    """The audit trail of replies the inbound webhook received (no number, no text is kept)."""

    list_display = ("message_id", "outcome", "matched", "replied_at", "received_at", "api_key")
    list_filter = ("outcome",)
    list_select_related = ("matched",)
    search_fields = ("=message_id",)
    show_full_result_count = False
    # No date_hierarchy: on MySQL/MariaDB it needs the server's time zone tables loaded.
    fields = ("message_id", "outcome", "matched", "replied_at", "received_at", "api_key")
    readonly_fields = fields
