"""A django-health-check (>= 4) check: the same findings as ``manage.py conversion_status``.

Install the ``[health]`` extra and list it in your ``HealthCheckView``'s ``checks``::

    path("ht/", HealthCheckView.as_view(checks=[
        "health_check.checks.Database",
        "django_nexmo_conversion.contrib.health_check.ConversionHealthCheck",
    ])),

A warning finding raises ``ServiceWarning``, a critical one ``ServiceUnavailable``; the
message is the findings' summary (never a secret, never a phone number).
"""

from __future__ import annotations

import dataclasses

from django.db import DatabaseError, connection
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable, ServiceWarning

from ..health import CRITICAL, WARNING, findings, summary, worst


@dataclasses.dataclass
class ConversionHealthCheck(HealthCheck):
    """Reporting to Nexmo: halts, backlog age, expired leases, failures, low conversion."""

    def run(self) -> None:
        # django-health-check runs a sync check in an executor thread, where no request ends
        # to close the connection it opens: a temporary connection closes after use.
        try:
            with connection.temporary_connection():
                # Health pages are usually anonymous: a halt never names the account.
                found = findings(public=True)
        except DatabaseError as exc:
            # The type only: a database error's text can quote the query and its values.
            raise ServiceUnavailable(f"Cannot read the conversions: {type(exc).__name__}") from exc
        level = worst(found)
        if level == CRITICAL:
            raise ServiceUnavailable(summary(found))
        if level == WARNING:
            raise ServiceWarning(summary(found))
