"""``manage.py rebuild_conversion_stats``: recount the hourly rollups and the status counts
from the rows."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from ... import rollups
from ..usage import UsageExitCode


class Command(UsageExitCode):
    help = (
        "Recount the insights' and the dashboard's hourly rollups and status counts from the "
        "sent messages and conversions: after an import, a restore or rows changed behind "
        "the app's back."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size", type=int, default=5000, help="Rows read per batch (default 5000)."
        )

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        rows, counts = rollups.rebuild(batch_size=batch_size)
        self.stdout.write(f"Rebuilt {rows} rollup row(s) and {counts} status count row(s).")
