"""``manage.py replay_send_guard [--days N] [--json]``: what the send guard would have
blocked in the recorded history, with the current settings (``guard.replay``)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from ...guard import replay
from ..usage import UsageExitCode


class Command(UsageExitCode):
    help = (
        "Replay the recorded sends through the send guard with the current settings: what "
        "it would have blocked, how many of those converted, and what they cost."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=float, default=7, help="how far back (default 7)")
        parser.add_argument("--json", action="store_true", help="print the figures as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] <= 0:
            raise CommandError("--days must be a positive number.")
        result = replay(days=options["days"])
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
            return
        share = result.blocked / result.checked if result.checked else 0.0
        lines = [
            f"Sends replayed: {result.checked} ({result.since:%Y-%m-%d %H:%M} to "
            f"{result.until:%Y-%m-%d %H:%M} UTC)",
            f"Would have blocked: {result.blocked} ({share:.2%})",
            f"  of which converted (false positives): {result.blocked_converted}",
            f"  cost of the blocked sends: {result.blocked_cost.normalize():f}"
            + (f" (+{result.blocked_unpriced} without a price)" if result.blocked_unpriced else ""),
        ]
        for code, count in result.by_reason.most_common():
            lines.append(f"  {code}: {count}")
        for prefix, count in result.by_prefix.most_common(10):
            lines.append(f"  +{prefix or '?'}: {count} blocked")
        if result.skipped_signals:
            lines.append(
                "Not replayed (the rows do not tell): " + ", ".join(result.skipped_signals)
            )
        self.stdout.write("\n".join(lines))
