"""Admin for sent messages and conversions, plus the dashboard's entry on the admin index.

Reported data is read-only: the change pages show, never edit (saving a stale copy of a
row would race the workers that own it). The only state changes are the two actions,
*Retry now* and *Report now*, which need the ``change`` permission on conversions (see
:meth:`ConversionAdmin.has_report_permission`) and, like every custom URL here, go through
``admin_site.admin_view`` (login, staff, CSRF). The logic lives in ``services`` and
``selectors``; the views in ``admin_views``.

Built for large tables: list pages make the same number of queries whatever their size
(``list_select_related``, nothing computed per row), filters need no queries of their own,
sorting is limited to indexed columns, and the unfiltered count is PostgreSQL's estimate
once a table is large (:class:`EstimatedCountPaginator`).
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth import get_permission_codename
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.text import Truncator
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
from ..privacy import recipient_hash

# Django's admin classes are generic only in the type stubs, not at run time.
if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

    AttemptInlineBase = admin.TabularInline[ConversionAttempt, Conversion]
    ConversionAdminBase = admin.ModelAdmin[Conversion]
    SentMessageAdminBase = admin.ModelAdmin[SentMessage]
    DashboardAdminBase = admin.ModelAdmin[ConversionDashboard]
    InboundMessageAdminBase = admin.ModelAdmin[InboundMessage]
    PaginatorBase = Paginator[Any]
else:
    PaginatorBase = Paginator
    AttemptInlineBase = admin.TabularInline
    ConversionAdminBase = SentMessageAdminBase = DashboardAdminBase = admin.ModelAdmin
    InboundMessageAdminBase = admin.ModelAdmin

#: How long the "last error" column may get before it is cut (the full text is its tooltip).
SHORT_ERROR_LENGTH = 120
_PHONE_LIKE = re.compile(r"\+?[0-9][0-9\s().-]{4,}")


# --- shared pieces ----------------------------------------------------------------------------


class EstimatedCountPaginator(PaginatorBase):
    """Counts exactly, except an *unfiltered* list on PostgreSQL over :attr:`ESTIMATE_ABOVE`
    rows, which takes the planner's estimate (``pg_class.reltuples``, kept fresh by
    autovacuum): ``COUNT(*)`` of a whole table of millions of rows reads all of it.
    Filtered lists count exactly, through the filter's index.
    """

    ESTIMATE_ABOVE = 10_000

    @cached_property
    def count(self) -> int:
        object_list = self.object_list
        if isinstance(object_list, QuerySet) and not object_list.query.where:
            estimate = self._estimate(object_list)
            if estimate is not None and estimate > self.ESTIMATE_ABOVE:
                return estimate
        return super().count

    @staticmethod
    def _estimate(queryset: QuerySet[Any]) -> int | None:
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [connection.ops.quote_name(queryset.model._meta.db_table)],
            )
            row = cursor.fetchone()
        # -1 until the table was first analysed.
        return int(row[0]) if row and row[0] is not None and row[0] >= 0 else None


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


def search_lookups(term: str, prefix: str = "") -> Q | None:
    """A search the indexes can serve: a message id (exact, as typed or upper/lower case) or
    a phone number in any format (through the recipient's keyed hash, so it works whatever
    ``RECIPIENT_STORAGE`` keeps). ``icontains`` over millions of rows would scan them all."""
    term = term.strip()
    if not term:
        return None
    query = Q(**{f"{prefix}message_id__in": sorted({term, term.upper(), term.lower()})})
    if _PHONE_LIKE.fullmatch(term):
        query |= Q(**{f"{prefix}recipient_hash": recipient_hash(term)})
    return query


def status_badge(status: str, label: StrOrPromise) -> str:
    return format_html('<span class="nexmo-badge nexmo-badge--{}">{}</span>', status, label)


def can_view_conversions(request: HttpRequest) -> bool:
    """Django's rule for viewing conversions (the view or the change permission)."""
    opts = Conversion._meta
    return any(
        request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")
        for action in ("view", "change")
    )


class ReadOnlyAdminMixin:
    """Nothing here is edited by hand: rows are written by the services only."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
class ConversionAdmin(ReadOnlyAdminMixin, ConversionAdminBase):
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
    search_help_text = _(
        "An exact message id, or a recipient's phone number in international format "
        "(spaces, dashes, brackets and a leading + are ignored)."
    )
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

    # -- permissions

    def has_report_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """May retry and report: the ``change`` permission on conversions. (The change *form*
        stays read-only whatever the permissions: see :class:`ReadOnlyAdminMixin`.)"""
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

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
        if not conversion.last_error:
            return "-"
        # Cut to a line by CSS (with an ellipsis) and here to a bound; the tooltip has it all.
        short = Truncator(conversion.last_error).chars(SHORT_ERROR_LENGTH)
        return format_html(
            '<span class="nexmo-error" title="{}">{}</span>', conversion.last_error, short
        )

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
        context = {**admin_views.halt_context(), **(extra_context or {})}
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


def target_link(message: SentMessage, site_name: str) -> str:
    """A link to the admin page of the message's target, without loading the target itself
    (the content type comes with the row); plain text where the target has no admin."""
    content_type = message.target_content_type
    if content_type is None or not message.target_object_id:
        return "-"
    label = f"{content_type.name} #{message.target_object_id}"
    try:
        url = reverse(
            f"admin:{content_type.app_label}_{content_type.model}_change",
            args=[quote(message.target_object_id)],
            current_app=site_name,
        )
    except NoReverseMatch:
        return label
    return format_html('<a href="{}">{}</a>', url, label)


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
    search_help_text = ConversionAdmin.search_help_text
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
