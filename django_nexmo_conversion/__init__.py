"""Report SMS and voice conversions to the Nexmo (Vonage) Conversion API.

The public functions are imported lazily, so that importing this package (for example to
run ``python -m django_nexmo_conversion.sandbox``) never needs Django settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .__about__ import __version__

if TYPE_CHECKING:
    from .services import (
        ReportResult,
        mark_converted,
        record_message,
        record_sms_response,
        report_pending,
    )

__all__ = [
    "ReportResult",
    "__version__",
    "mark_converted",
    "record_message",
    "record_sms_response",
    "report_pending",
]

_LAZY = {
    "ReportResult",
    "mark_converted",
    "record_message",
    "record_sms_response",
    "report_pending",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import services

        return getattr(services, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
