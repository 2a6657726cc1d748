"""``manage.py apply_recipient_storage``: keep no more of the stored numbers than
``RECIPIENT_STORAGE`` says now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from ...conf import get_settings, setting
from ...exceptions import ConversionInputError
from ...retention import apply_recipient_storage
from ..usage import UsageExitCode


class Command(UsageExitCode):
    help = (
        "Mask or blank the recipient numbers stored before RECIPIENT_STORAGE was tightened "
        "(full -> masked or none, masked -> none), in bounded batches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size", type=int, default=1000, help="Messages per batch (default 1000)."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would change; change nothing."
        )

    def handle(self, *args: Any, batch_size: int, dry_run: bool, **options: Any) -> None:
        try:
            changed = apply_recipient_storage(batch_size=batch_size, dry_run=dry_run)
        except ConversionInputError as exc:
            raise CommandError(str(exc).replace("batch_size", "--batch-size")) from exc
        mode = get_settings().recipient_storage
        where = f"{setting('RECIPIENT_STORAGE')} is {mode!r}"
        if dry_run:
            self.stdout.write(f"Would change {changed} message(s) ({where}); nothing changed.")
        else:
            self.stdout.write(f"Changed {changed} message(s) ({where}).")
