"""Report SMS and voice conversions to the Nexmo (Vonage) Conversion API.

The public functions are imported lazily, so that importing this package (for example to
run ``python -m django_nexmo_conversion.sandbox``) never needs Django settings.

The modules at the root, public ones first (their import paths are kept across releases):

- public: ``models``, ``choices``, ``signals``, ``exceptions`` (the tables and the contract),
  ``insights`` (rates, alerts, ``refresh``), ``links``, ``triggers``, ``privacy``,
  ``retention``, ``geography``, ``tasks`` (Celery and ``django.tasks``), ``urls``, and the
  functions re-exported here (from ``marking`` and the subpackages);
- Django's slots: ``apps``, ``checks``;
- internal: ``marking`` (import its functions from here), ``validation``, ``queries`` and
  ``health`` (the reads behind the admin, the command and the health check).

The subpackages follow the data path (docs/explanation/architecture.md): ``conf``,
``dispatch``, ``reporting``, ``transport``, ``rollups`` are internal; ``backends``,
``contrib``, ``sandbox``, ``testing``, ``webhooks``, ``admin`` and ``views`` are documented
where users meet them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .__about__ import __version__

if TYPE_CHECKING:
    from .links import conversion_link
    from .marking import (
        amark_converted,
        arecord_message,
        arecord_sms_response,
        mark_converted,
        record_message,
        record_sms_response,
    )
    from .reporting.engine import ReportResult, report_pending
    from .reporting.non_conversion import mark_non_conversions
    from .triggers import convert_when

__all__ = [
    "ReportResult",
    "__version__",
    "amark_converted",
    "arecord_message",
    "arecord_sms_response",
    "conversion_link",
    "convert_when",
    "mark_converted",
    "mark_non_conversions",
    "record_message",
    "record_sms_response",
    "report_pending",
]

#: The public names, by the module that defines them (imported on first use).
_LAZY = {
    "ReportResult": "reporting.engine",
    "amark_converted": "marking",
    "arecord_message": "marking",
    "arecord_sms_response": "marking",
    "conversion_link": "links",
    "convert_when": "triggers",
    "mark_converted": "marking",
    "mark_non_conversions": "reporting.non_conversion",
    "record_message": "marking",
    "record_sms_response": "marking",
    "report_pending": "reporting.engine",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
