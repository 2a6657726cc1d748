"""Who may do what in the admin: nobody edits rows, and viewing or reporting conversions takes
Django's ``view``/``change`` permissions on ``Conversion``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.auth import get_permission_codename
from django.http import HttpRequest

from ..models import Conversion

# Django's admin classes are generic only in the type stubs, not at run time. The mixin is a
# ModelAdmin to the type checker, so that it may use the admin's attributes, and a plain class
# at run time, so that it can come before ModelAdmin in a subclass's bases.
if TYPE_CHECKING:
    ConversionMixinBase = admin.ModelAdmin[Conversion]
else:
    ConversionMixinBase = object


def can_view_conversions(request: HttpRequest) -> bool:
    """Django's rule for viewing conversions (the view or the change permission)."""
    opts = Conversion._meta
    return any(
        request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")
        for action in ("view", "change")
    )


class ReadOnlyAdminMixin:
    """Nothing here is edited by hand: rows are written by the app only (marking, reporting).

    Reported data is a record, not a form, and saving a stale copy of a row would race the
    workers that own it.
    """

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReportPermissionMixin(ConversionMixinBase):
    """The ``report`` permission that *Retry now*, *Report now* and their buttons ask for."""

    def has_report_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """May retry and report: the ``change`` permission on conversions. (The change *form*
        stays read-only whatever the permissions: see :class:`ReadOnlyAdminMixin`.)"""
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")
