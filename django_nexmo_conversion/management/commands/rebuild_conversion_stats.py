"""``manage.py rebuild_conversion_stats``: recount the hourly rollups and the status counts
from the rows."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import connections, router
from django.db.models import Model

from ...models import Conversion, ConversionStat, SentMessage, StatusCount, StatusCountChange
from ...rollups import by_status, rates
from ..usage import UsageExitCode

#: What a rebuild rewrites: the counter tables whole, and a flag on every message and
#: conversion.
REWRITTEN: tuple[type[Model], ...] = (
    ConversionStat,
    StatusCount,
    StatusCountChange,
    SentMessage,
    Conversion,
)


def analyze(models: tuple[type[Model], ...] = REWRITTEN) -> None:
    """Fresh planner statistics for ``models``' tables. A rebuild deletes and rewrites the
    counter tables (and every message's and conversion's flag): until autovacuum comes by,
    PostgreSQL plans the dashboard's status-count reads from the old statistics (issue 25:
    37 ms at 200,000 conversions instead of 2). ANALYZE reads a bounded sample whatever the
    table's size, and may run in a transaction."""
    for model in models:
        connection = connections[router.db_for_write(model)]
        table = connection.ops.quote_name(model._meta.db_table)
        statement = {
            "postgresql": f"ANALYZE {table}",
            "sqlite": f"ANALYZE {table}",
            "mysql": f"ANALYZE TABLE {table}",
        }.get(connection.vendor)
        if statement is not None:
            with connection.cursor() as cursor:
                cursor.execute(statement)


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
        rows = rates.rebuild_rates(batch_size=batch_size)
        counts = by_status.rebuild_counts(batch_size=batch_size)
        analyze()
        self.stdout.write(f"Rebuilt {rows} rollup row(s) and {counts} status count row(s).")
