"""The admin of django-nexmo-conversion: sent messages, conversions and their dashboard."""

__all__ = [
    "SHORT_ERROR_LENGTH",
    "ConversionAdmin",
    "ConversionAdminViews",
    "ConversionAttemptInline",
    "ConversionDashboardAdmin",
    "EstimatedCountPaginator",
    "GuardRuleAdmin",
    "InboundMessageAdmin",
    "LastAnswerFilter",
    "MarkedDateFilter",
    "ReadOnlyAdminMixin",
    "ReportPermissionMixin",
    "SentMessageAdmin",
    "can_view_conversions",
    "search_lookups",
    "status_badge",
    "target_link",
]

# Django's autodiscovery imports this package: importing the modules runs their
# @admin.register calls.
from .changelist import EstimatedCountPaginator, search_lookups
from .conversions import (
    ConversionAdmin,
    ConversionAttemptInline,
    LastAnswerFilter,
    MarkedDateFilter,
)
from .dashboard import ConversionDashboardAdmin
from .guard import GuardRuleAdmin
from .messages import InboundMessageAdmin, SentMessageAdmin
from .permissions import ReadOnlyAdminMixin, ReportPermissionMixin, can_view_conversions
from .views import ConversionAdminViews
from .widgets import SHORT_ERROR_LENGTH, status_badge, target_link
