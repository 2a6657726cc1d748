"""Admin for sent messages and conversions. Reported data is read-only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Conversion, ConversionAttempt, SentMessage

# Django's admin classes are generic only in the type stubs, not at run time.
if TYPE_CHECKING:
    AttemptInlineBase = admin.TabularInline[ConversionAttempt, Conversion]
    ConversionAdminBase = admin.ModelAdmin[Conversion]
    SentMessageAdminBase = admin.ModelAdmin[SentMessage]
else:
    AttemptInlineBase = admin.TabularInline
    ConversionAdminBase = SentMessageAdminBase = admin.ModelAdmin


class ConversionAttemptInline(AttemptInlineBase):
    model = ConversionAttempt
    fields = ("started_at", "duration", "http_status", "outcome", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Conversion)
class ConversionAdmin(ConversionAdminBase):
    list_display = (
        "message",
        "delivered",
        "status",
        "attempt_count",
        "last_status_code",
        "timestamp",
        "reported_at",
    )
    list_filter = ("status", "message__channel", "delivered")
    search_fields = ("message__message_id", "message__recipient")
    list_select_related = ("message",)
    readonly_fields = (
        "message",
        "delivered",
        "timestamp",
        "status",
        "attempt_count",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "reported_at",
        "created_at",
    )
    inlines = (ConversionAttemptInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(SentMessage)
class SentMessageAdmin(SentMessageAdminBase):
    list_display = ("message_id", "channel", "recipient", "sent_at", "api_key")
    list_filter = ("channel",)
    search_fields = ("message_id", "recipient")
    date_hierarchy = "sent_at"
