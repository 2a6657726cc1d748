"""Usage errors (an unknown or mistyped option, a bad value) exit with each command's
documented code, not argparse's 2: 2 means "halted" for ``report_conversions`` and CRITICAL
for ``conversion_status``, so a typo in a cron line or a monitor would page someone."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser


class UsageExitCode(BaseCommand):
    """A command whose usage errors exit with :attr:`usage_exit_code` (1 by default), from the
    command line (usage and message on stderr, as argparse prints them) and through
    ``call_command`` (a ``CommandError`` with that ``returncode``)."""

    usage_exit_code = 1

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        code = self.usage_exit_code

        def error(message: str) -> NoReturn:
            if parser.called_from_command_line:
                parser.print_usage(sys.stderr)
                parser.exit(code, f"{parser.prog}: error: {message}\n")
            raise CommandError(f"Error: {message}", returncode=code)

        parser.error = error  # type: ignore[method-assign]
        return parser
