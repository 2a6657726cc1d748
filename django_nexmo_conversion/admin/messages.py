"""The admin of the messages themselves: the sent messages conversions are marked on, and the
replies the inbound webhook received."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from ..models import InboundMessage, SentMessage
from .changelist import SEARCH_HELP_TEXT, EstimatedCountPaginator, search_lookups
from .permissions import ReadOnlyAdminMixin
from .widgets import status_badge, target_link

# Django's admin classes are generic only in the type stubs, not at run time.
if TYPE_CHECKING:
    SentMessageAdminBase = admin.ModelAdmin[SentMessage]
    InboundMessageAdminBase = admin.ModelAdmin[InboundMessage]
else:
    SentMessageAdminBase = InboundMessageAdminBase = admin.ModelAdmin


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
