"""The "Send guard" page: the destinations the guard blocked or flagged lately, and its
rules (add, expire) — the changelist of ``GuardRule``, with Django's own permissions
(``add``/``change`` on the rule) and POST for every change."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..exceptions import ConversionInputError
from ..guard import newest_replays, refused_since
from ..models import GuardRule
from ..privacy import mask, recipient_hash
from ..validation import clean_recipient

# Django's admin and form classes are generic only in the type stubs, not at run time.
if TYPE_CHECKING:
    GuardRuleAdminBase = admin.ModelAdmin[GuardRule]
    GuardRuleFormBase = forms.ModelForm[GuardRule]
else:
    GuardRuleAdminBase = admin.ModelAdmin
    GuardRuleFormBase = forms.ModelForm

#: How far back the page lists refused destinations.
REFUSED_WINDOW = timedelta(hours=24)


class GuardRuleForm(GuardRuleFormBase):
    """A person types a number, a prefix or a country; a number is kept as its keyed hash."""

    destination = forms.CharField(
        label=_("destination"),
        max_length=32,
        help_text=_("A phone number, leading digits (a prefix) or a two-letter country code."),
    )

    class Meta:
        model = GuardRule
        fields = ("action", "kind", "destination", "expires_at", "note")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind, raw = data.get("kind"), (data.get("destination") or "").strip()
        if kind == GuardRule.Kind.COUNTRY:
            if len(raw) != 2 or not raw.isalpha():
                self.add_error("destination", _("Enter a two-letter country code, e.g. NG."))
            data["value"] = data["label"] = raw.upper()
        elif kind in (GuardRule.Kind.NUMBER, GuardRule.Kind.PREFIX):
            try:
                digits = clean_recipient(raw)
            except ConversionInputError:
                digits = ""
            if not digits:
                self.add_error("destination", _("Enter digits, optionally with a leading +."))
            elif kind == GuardRule.Kind.NUMBER:
                data["value"], data["label"] = recipient_hash(digits), mask(digits)
            else:
                data["value"] = data["label"] = digits
        return data

    def save(self, commit: bool = True) -> GuardRule:
        self.instance.value = self.cleaned_data["value"]
        self.instance.label = self.cleaned_data["label"]
        return super().save(commit)


@admin.register(GuardRule)
class GuardRuleAdmin(GuardRuleAdminBase):
    form = GuardRuleForm
    list_display = ("action", "kind", "label", "note", "created_at", "created_by", "expires_at")
    list_filter = ("action", "kind")
    actions = ("expire_now",)
    change_list_template = "admin/django_nexmo_conversion/guardrule/change_list.html"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A rule is added or expired, never edited: what it blocked stays explained.
        return obj is None and super().has_change_permission(request)

    def save_model(self, request: HttpRequest, obj: GuardRule, form: Any, change: bool) -> None:
        obj.created_by = str(request.user.get_username())[:150]
        super().save_model(request, obj, form, change)

    @admin.action(description=_("Expire the selected rules now"), permissions=["change"])
    def expire_now(self, request: HttpRequest, queryset: QuerySet[GuardRule]) -> None:
        now = timezone.now()
        expired = queryset.exclude(expires_at__lte=now).update(expires_at=now)
        self.message_user(
            request,
            ngettext("%(n)d rule expired.", "%(n)d rules expired.", expired) % {"n": expired},
            messages.SUCCESS,
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {
            "title": _("Send guard"),
            "refused": refused_since(timezone.now() - REFUSED_WINDOW),
            "last_replay": newest_replays().first(),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)
