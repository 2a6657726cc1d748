"""``manage.py purge_conversions --older-than DAYS``: delete old messages and conversions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser

from ...exceptions import ConversionInputError
from ...retention import DEFAULT_STATUSES, PURGEABLE, purge
from ..usage import UsageExitCode

#: Longer ago than this reaches before year 1: no message is that old.
MAX_DAYS = 700_000


class Command(UsageExitCode):
    help = (
        "Delete sent messages older than --older-than days, with their conversions and "
        "attempts, and the replies from then that answer no message kept, in bounded batches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            required=True,
            metavar="DAYS",
            help="Delete messages sent more than DAYS days ago (at least 1).",
        )
        parser.add_argument(
            "--status",
            action="append",
            choices=PURGEABLE,
            help=(
                "Only sends in this state; repeat for several "
                f"(default: {', '.join(DEFAULT_STATUSES)}). 'sending' is never purged."
            ),
        )
        parser.add_argument(
            "--batch-size", type=int, default=1000, help="Sends per batch (default 1000)."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["older_than"]
        if days < 1:
            raise CommandError("--older-than must be at least 1 (day).")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be >= 1.")
        try:
            if days > MAX_DAYS:
                # timedelta itself overflows past 999999999 days; say so in days.
                raise ConversionInputError(f"--older-than must be at most {MAX_DAYS} (days).")
            result = purge(
                older_than=timedelta(days=days),
                statuses=options["status"],
                batch_size=options["batch_size"],
                dry_run=options["dry_run"],
            )
        except ConversionInputError as exc:
            raise CommandError(str(exc)) from exc
        if options["dry_run"]:
            self.stdout.write(f"Would delete {result.summary()}; nothing deleted (--dry-run).")
        else:
            self.stdout.write(f"Deleted {result.summary()} in {result.batches} batch(es).")
