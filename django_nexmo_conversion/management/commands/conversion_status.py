"""``manage.py conversion_status [--json]``: is reporting healthy? For cron and monitors.

Exits 0 (healthy), 1 (warning) or 2 (critical), the Nagios / monitoring-plugins convention,
so it drops into any check runner as it is; 3 (UNKNOWN) for a usage error such as a
mistyped option. The findings are :func:`health.findings`'s.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from ...health import EXIT_CODES, findings, summary, worst
from ..usage import UsageExitCode


class Command(UsageExitCode):
    #: UNKNOWN in the monitoring-plugins convention: a typo must not read as CRITICAL (2).
    usage_exit_code = 3

    help = (
        "Report whether conversion reporting is healthy: halted accounts, the oldest due "
        "conversion, expired leases, failures in the last hour, low-conversion alerts. "
        "Exits 0 (ok), 1 (warning), 2 (critical) or 3 (unknown: a usage error)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the findings as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        found = findings(now)
        level = worst(found)
        if options["json"]:
            document = {
                "status": level,
                "exit_code": EXIT_CODES[level],
                "checked_at": now.isoformat(),
                "findings": [f.as_dict() for f in found],
            }
            self.stdout.write(json.dumps(document, indent=2))
        else:
            # First line: what a monitor shows (the plugin convention); then one per finding.
            self.stdout.write(f"CONVERSIONS {level.upper()} - {summary(found)}")
            for finding in found:
                self.stdout.write(f"{finding.level.upper():8} {finding.check}: {finding.message}")
        if EXIT_CODES[level]:
            # Not CommandError: a warning is not an error, and monitors read the code alone.
            raise SystemExit(EXIT_CODES[level])
