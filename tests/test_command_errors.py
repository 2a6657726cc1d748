"""Clean errors and exit codes from the commands.

A mistyped option exits with the command's documented usage code — 1, or 3 (UNKNOWN) for
``conversion_status`` — never argparse's 2, which means "halted" for ``report_conversions``
and CRITICAL for a monitor. Missing credentials give one ``CommandError`` line, no traceback,
and the reporter thread logs one line without a stack.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError

from django_nexmo_conversion import mark_converted
from django_nexmo_conversion.models import Conversion, Status
from django_nexmo_conversion.testing import wait_for_reports

from .helpers import replace_configuration
from .processes import django_admin, worker_env

HTTP_BACKEND = "django_nexmo_conversion.backends.http.HttpBackend"
CREDENTIAL_VARIABLES = ("NEXMO_API_KEY", "VONAGE_API_KEY", "NEXMO_API_SECRET", "VONAGE_API_SECRET")

#: Every command of the app, a mistyped option, and the exit status its docs promise.
TYPOS = [
    (["report_conversions", "--limt", "5"], 1, "--limt"),
    (["report_conversions", "--limit", "five"], 1, "--limit"),
    (["conversion_status", "--jsn"], 3, "--jsn"),
    (["purge_conversions", "--older-than", "90", "--stauts", "failed"], 1, "--stauts"),
    (["apply_recipient_storage", "--dryrun"], 1, "--dryrun"),
    (["rebuild_conversion_stats", "--batchsize", "10"], 1, "--batchsize"),
    (["replay_send_guard", "--dyas", "7"], 1, "--dyas"),
]


def run_from_the_command_line(*argv: str) -> int:
    """``manage.py *argv`` in this process: the code it would exit with."""
    with pytest.raises(SystemExit) as exited:
        execute_from_command_line(["manage.py", *argv])
    code = exited.value.code
    return code if isinstance(code, int) else 1


@pytest.mark.parametrize(("argv", "code", "named"), TYPOS, ids=lambda v: str(v))
def test_a_mistyped_option_exits_with_the_documented_usage_code(
    argv: list[str], code: int, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_from_the_command_line(*argv) == code

    err = capsys.readouterr().err
    assert "usage:" in err
    assert named in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("argv", "code", "named"), TYPOS, ids=lambda v: str(v))
def test_a_mistyped_option_through_call_command_carries_the_same_code(
    argv: list[str], code: int, named: str
) -> None:
    with pytest.raises(CommandError, match=named) as raised:
        call_command(*argv)
    assert raised.value.returncode == code


def test_help_still_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_from_the_command_line("conversion_status", "--help") == 0
    assert "--json" in capsys.readouterr().out


@pytest.fixture
def no_credentials(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh project: the real http backend and no key anywhere."""
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    replace_configuration(settings, {"BACKEND": HTTP_BACKEND, "DISPATCH": "manual"})


NO_CREDENTIALS_LINE = (
    "CommandError: No Nexmo credentials: NEXMO_CONVERSION['API_KEY'] is not set and "
    "neither are the NEXMO_API_KEY / VONAGE_API_KEY environment variables."
)


@pytest.mark.parametrize("loop", [False, True], ids=["once", "loop"])
def test_no_credentials_is_one_command_error_line_without_a_traceback(
    tmp_path: Path, loop: bool
) -> None:
    """``python -m django report_conversions`` in a project with no key anywhere."""
    env = worker_env({"API_KEY": "", "API_SECRET": "", "BACKEND": HTTP_BACKEND})
    env["NEXMO_TEST_DB_NAME"] = str(tmp_path / "db.sqlite3")
    for name in CREDENTIAL_VARIABLES:
        env.pop(name, None)
    done = subprocess.run(
        django_admin("report_conversions", *(["--loop"] if loop else [])),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    # The system checks' warning (W005) may come first; the error is the last line, alone.
    assert done.stderr.strip().splitlines()[-1] == NO_CREDENTIALS_LINE
    assert done.stderr.count("CommandError") == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("dispatch", ["background", "on_commit"])
def test_the_reporter_logs_one_line_without_a_stack_for_missing_credentials(
    no_credentials: None, settings: Any, dispatch: str, caplog: pytest.LogCaptureFixture
) -> None:
    replace_configuration(
        settings, {**settings.NEXMO_CONVERSION, "DISPATCH": dispatch, "SWEEP_INTERVAL": 0}
    )
    with caplog.at_level(logging.DEBUG, logger="django_nexmo_conversion"):
        mark_converted("0A0000000000NC03")
        mark_converted("0A0000000000NC04")
        if dispatch == "background":
            wait_for_reports(timeout=10)

    about_it = [r for r in caplog.records if "No Nexmo credentials" in r.getMessage()]
    assert len(about_it) == 1, [r.getMessage() for r in about_it]
    [line] = about_it
    assert line.levelno == logging.ERROR
    assert line.exc_info is None
    assert line.stack_info is None
    assert "\n" not in line.getMessage()
    assert set(Conversion.objects.values_list("status", flat=True)) == {Status.PENDING}
