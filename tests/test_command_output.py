"""What ``manage.py report_conversions`` prints: verbosity, colours, the progress line on a
terminal (a real pseudo-terminal), ``--dry-run --count``."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import textwrap
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_nexmo_conversion.management.progress import Progress, format_seconds
from django_nexmo_conversion.models import Conversion, Status
from django_nexmo_conversion.reporting.engine import ReportResult
from django_nexmo_conversion.sandbox import Sandbox

from .helpers import mark_many
from .test_command import (
    REPO_ROOT,
    SUBPROCESS_CONVERSIONS,
    SUBPROCESS_TIMEOUT,
    Project,
    make_project,
    migrated_db,
)

__all__ = ["migrated_db"]  # the fixture, shared with test_command

pytestmark = [pytest.mark.django_db, pytest.mark.sandbox]

ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run(*args: str, **options: Any) -> str:
    out = StringIO()
    call_command("report_conversions", *args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


# --------------------------------------------------------------------------- verbosity


def test_verbosity_0_prints_nothing_and_still_reports(nexmo_sandbox: Sandbox) -> None:
    mark_many(3, prefix="QUIET")
    assert run("-v", "0") == ""
    assert len(nexmo_sandbox.reported()) == 3
    assert run("--dry-run", "-v", "0") == ""


def test_verbosity_0_still_fails_on_an_account_error(nexmo_sandbox: Sandbox, settings: Any) -> None:
    from .helpers import configure

    configure(settings, API_SECRET="wrong-secret-Qv0")
    mark_many(1, prefix="QUIET")
    with pytest.raises(CommandError, match="HTTP 401"):
        run("-v", "0")


def test_verbosity_2_prints_a_line_per_conversion(nexmo_sandbox: Sandbox) -> None:
    mark_many(2, prefix="LOUD")
    nexmo_sandbox.script(503, message_id="LOUD0001")

    lines = run("-v", "2").splitlines()

    assert len(lines) == 3
    assert any(line.endswith("INFO Reported conversion for LOUD0000.") for line in lines)
    assert any("INFO Conversion for LOUD0001 will be retried" in line for line in lines)
    assert lines[-1] == "reported 1, retrying 1, failed 0"


def test_verbosity_2_leaves_the_app_logger_as_it_found_it(nexmo_sandbox: Sandbox) -> None:
    import logging

    logger = logging.getLogger("django_nexmo_conversion")
    level, handlers = logger.level, list(logger.handlers)
    run("-v", "3")
    assert (logger.level, logger.handlers) == (level, handlers)


# --------------------------------------------------------------------------- --dry-run --count


def test_dry_run_count_prints_one_number(nexmo_sandbox: Sandbox) -> None:
    _pending, failed, _other = mark_many(3, prefix="CNT")
    Conversion.objects.filter(pk=failed.pk).update(status=Status.FAILED, next_attempt_at=None)

    assert run("--dry-run", "--count") == "2\n"
    assert run("--dry-run", "--count", "--retry-failed") == "3\n"
    assert run("--dry-run", "--count", "--limit", "1") == "1\n"
    assert run("--dry-run", "--count", "-v", "0") == "2\n"  # the answer, not chatter
    assert nexmo_sandbox.requests == []
    assert Conversion.objects.filter(status=Status.FAILED).count() == 1


def test_count_without_dry_run_is_refused(nexmo_sandbox: Sandbox) -> None:
    mark_many(1, prefix="CNT")
    with pytest.raises(CommandError, match="--count goes with --dry-run"):
        run("--count")
    assert nexmo_sandbox.requests == []


# --------------------------------------------------------------------------- the progress line


@pytest.mark.parametrize(
    ("done", "total", "elapsed", "expected"),
    [
        (10, 100, 2.0, "10/100 · reported 10, retrying 0, failed 0 · 5/s · ETA 18s"),
        (30, 10_000, 1.0, "30/10000 · reported 30, retrying 0, failed 0 · 30/s · ETA 5m32s"),
        (12, 10, 1.0, "12/12 · reported 12, retrying 0, failed 0 · 12/s · ETA 0s"),
        (0, 10, 1.0, "0/10 · reported 0, retrying 0, failed 0 · 0/s · ETA ?"),
    ],
)
def test_progress_line(done: int, total: int, elapsed: float, expected: str) -> None:
    assert Progress(StringIO(), total).line(ReportResult(reported=done), elapsed) == expected


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0s"), (59, "59s"), (61, "1m01s"), (3600, "1h00m"), (7325, "2h02m")]
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def on_a_terminal(project: Project, *args: str) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as stdout; its return code and what it drew."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        project.command(*args),
        cwd=REPO_ROOT,
        env=project.env,
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the command exited and closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    returncode = process.wait(timeout=SUBPROCESS_TIMEOUT)
    assert process.stderr is not None
    process.stderr.close()
    return returncode, b"".join(chunks).decode()


def logging_info_to_the_console(project: Project) -> None:
    """The project logs the app's INFO lines to the console, as many do."""
    settings = project.root / "command_test_settings.py"
    settings.write_text(
        settings.read_text()
        + textwrap.dedent(
            """
            LOGGING = {
                "version": 1,
                "handlers": {"console": {"class": "logging.StreamHandler",
                                         "stream": "ext://sys.stdout"}},
                "loggers": {"django_nexmo_conversion": {"handlers": ["console"],
                                                        "level": "INFO"}},
            }
            """
        )
    )


def test_a_terminal_shows_done_total_rate_and_eta_then_a_coloured_summary(
    nexmo_sandbox: Sandbox, tmp_path: Path, migrated_db: Path
) -> None:
    project = make_project(tmp_path, migrated_db, nexmo_sandbox)
    logging_info_to_the_console(project)

    returncode, drawn = on_a_terminal(project)

    assert returncode == 0
    total = SUBPROCESS_CONVERSIONS
    # Redrawn in place after each answer (CONCURRENCY=1): 1/5 ... 5/5.
    frames = re.findall(r"\r(\d+)/(\d+) · reported \d+, retrying 0, failed 0 · \d+/s · ETA ", drawn)
    assert [(int(d), int(t)) for d, t in frames] == [(i, total) for i in range(1, total + 1)]
    # The per-conversion INFO lines the project logs would tear the line: held back meanwhile.
    assert "Reported conversion for" not in drawn
    # Then the line is erased, and the summary is written for good, in the success colour.
    summary = drawn.rsplit("\r\x1b[K", 1)[1]
    assert ESCAPE.sub("", summary).strip() == f"reported {total}, retrying 0, failed 0"
    assert ESCAPE.search(summary)


def test_no_color_on_a_terminal(nexmo_sandbox: Sandbox, tmp_path: Path, migrated_db: Path) -> None:
    project = make_project(tmp_path, migrated_db, nexmo_sandbox)
    returncode, drawn = on_a_terminal(project, "--no-color")
    assert returncode == 0
    summary = drawn.rsplit("\r\x1b[K", 1)[1]
    assert summary.strip() == f"reported {SUBPROCESS_CONVERSIONS}, retrying 0, failed 0"


def test_not_a_terminal_gets_one_line_and_keeps_the_project_log(
    nexmo_sandbox: Sandbox, tmp_path: Path, migrated_db: Path
) -> None:
    project = make_project(tmp_path, migrated_db, nexmo_sandbox)
    logging_info_to_the_console(project)

    done = project.run()

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # No progress line and no colour; the project's own logging is left alone.
    assert lines[-1] == f"reported {SUBPROCESS_CONVERSIONS}, retrying 0, failed 0"
    assert sum("Reported conversion for" in line for line in lines) == SUBPROCESS_CONVERSIONS
    assert "\r" not in done.stdout
    assert "\x1b" not in done.stdout
