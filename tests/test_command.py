"""``manage.py report_conversions``, in process and as a real subprocess, against the sandbox."""

from __future__ import annotations

import itertools
import os
import queue
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from django_nexmo_conversion.models import Conversion, ConversionAttempt, Status
from django_nexmo_conversion.sandbox import DEFAULT_API_KEY, AccountSpec, ReceivedRequest, Sandbox

from .helpers import configure, mark_many, sandbox_settings

pytestmark = [pytest.mark.django_db, pytest.mark.sandbox]

REPO_ROOT = Path(__file__).resolve().parent.parent
SUBPROCESS_TIMEOUT = 30


def run(*args: str) -> str:
    out = StringIO()
    call_command("report_conversions", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def snapshot() -> list[tuple[Any, ...]]:
    return list(
        Conversion.objects.order_by("pk").values_list(
            "status", "attempt_count", "next_attempt_at", "claim_token", "last_error"
        )
    )


# --------------------------------------------------------------------------- in process


def test_one_summary_line_when_not_a_tty(nexmo_sandbox: Sandbox) -> None:
    mark_many(4, prefix="CMD")
    nexmo_sandbox.script(503, message_id="CMD0001")
    nexmo_sandbox.script(422, message_id="CMD0002")

    output = run()

    assert output == "reported 2, retrying 1, failed 1\n"
    assert len(nexmo_sandbox.requests) == 4


def test_nothing_due_still_prints_the_summary(nexmo_sandbox: Sandbox) -> None:
    assert run() == "reported 0, retrying 0, failed 0\n"
    assert nexmo_sandbox.requests == []


def test_limit(nexmo_sandbox: Sandbox) -> None:
    mark_many(5, prefix="CMD")

    assert run("--limit", "2") == "reported 2, retrying 0, failed 0\n"

    assert len(nexmo_sandbox.requests) == 2
    assert Conversion.objects.filter(status=Status.PENDING).count() == 3


def test_concurrency_flag_overrides_the_setting(nexmo_sandbox: Sandbox, settings: Any) -> None:
    configure(settings, CONCURRENCY=8)
    answered: dict[int, float] = {}

    def on_request(request: ReceivedRequest) -> None:
        answered[id(request)] = time.monotonic()

    nexmo_sandbox.on_request = on_request
    nexmo_sandbox.latency = 0.03
    mark_many(6, prefix="CMD")

    assert run("--concurrency", "1") == "reported 6, retrying 0, failed 0\n"

    windows = sorted((r.received_at, answered[id(r)]) for r in nexmo_sandbox.requests)
    # One at a time: each request arrived after the previous one was answered.
    assert all(start >= prev_end for (_, prev_end), (start, _) in itertools.pairwise(windows))


def test_dry_run_lists_and_changes_nothing(nexmo_sandbox: Sandbox, settings: Any) -> None:
    configure(settings, MAX_ATTEMPTS=1)
    _pending, failed, reported, later = mark_many(4, prefix="CMD")
    Conversion.objects.filter(pk=failed.pk).update(
        status=Status.FAILED, attempt_count=1, next_attempt_at=None
    )
    Conversion.objects.filter(pk=reported.pk).update(
        status=Status.REPORTED, attempt_count=1, reported_at=timezone.now()
    )
    Conversion.objects.filter(pk=later.pk).update(
        next_attempt_at=timezone.now() + timedelta(hours=1)
    )
    before = snapshot()

    output = run("--dry-run")

    assert output.splitlines() == [
        "would report sms CMD0000 delivered=true (attempts so far: 0)",
        "1 conversion(s) due; nothing sent (--dry-run).",
    ]
    with_failed = run("--dry-run", "--retry-failed").splitlines()
    assert sorted(line.split()[3] for line in with_failed[:-1]) == ["CMD0000", "CMD0001"]
    assert with_failed[-1] == "2 conversion(s) due; nothing sent (--dry-run)."
    assert run("--dry-run", "--retry-failed", "--limit", "1").splitlines()[-1].startswith("1 ")
    assert nexmo_sandbox.requests == []
    assert snapshot() == before
    assert ConversionAttempt.objects.count() == 0


def test_retry_failed_resets_the_attempt_budget(nexmo_sandbox: Sandbox, settings: Any) -> None:
    configure(settings, MAX_ATTEMPTS=2)
    [conversion] = mark_many(1, prefix="CMD")
    Conversion.objects.filter(pk=conversion.pk).update(
        status=Status.FAILED, attempt_count=2, next_attempt_at=None, last_error="HTTP 503"
    )
    assert run() == "reported 0, retrying 0, failed 0\n"  # failed is left alone
    nexmo_sandbox.script(503)

    output = run("--retry-failed")

    assert output.splitlines() == [
        "1 failed conversion(s) made pending again.",
        "reported 0, retrying 1, failed 0",
    ]
    row = Conversion.objects.get(pk=conversion.pk)
    # A fresh budget: one transient failure leaves it pending (2 of 2 would have failed it).
    assert (row.status, row.attempt_count) == (Status.PENDING, 1)

    Conversion.objects.filter(pk=conversion.pk).update(next_attempt_at=timezone.now())
    assert run() == "reported 1, retrying 0, failed 0\n"
    assert Conversion.objects.get(pk=conversion.pk).status == Status.REPORTED
    assert [r.status for r in nexmo_sandbox.requests] == [503, 200]


@pytest.mark.parametrize(
    ("status", "fix"),
    [(401, "API_SECRET"), (402, "enable")],
)
def test_account_error_is_a_command_error_saying_what_to_fix(
    nexmo_sandbox: Sandbox, settings: Any, status: int, fix: str
) -> None:
    if status == 401:
        configure(settings, API_SECRET="wrong-secret-Uy6")
    else:
        nexmo_sandbox.accounts[DEFAULT_API_KEY] = AccountSpec(conversions_enabled=False)
    mark_many(3, prefix="CMD")
    out = StringIO()

    with pytest.raises(CommandError) as caught:
        call_command("report_conversions", "--concurrency", "1", stdout=out)

    assert caught.value.returncode != 0
    message = str(caught.value)
    assert f"HTTP {status}" in message
    assert fix in message
    assert "wrong-secret-Uy6" not in message + out.getvalue()
    assert "HALTED" in out.getvalue()
    assert len(nexmo_sandbox.requests) == 1
    assert set(Conversion.objects.values_list("status", "attempt_count")) == {(Status.PENDING, 0)}


@pytest.mark.parametrize(
    "args",
    [
        ["--limit=-1"],
        ["--concurrency=0"],
        ["--concurrency=-3"],
        ["--interval=0"],
        ["--limit=many"],
        ["--concurrency=1.5"],
    ],
)
def test_bad_arguments_are_command_errors(nexmo_sandbox: Sandbox, args: list[str]) -> None:
    mark_many(1, prefix="CMD")
    option = args[0].split("=")[0]

    with pytest.raises(CommandError, match=option.lstrip("-")):
        run(*args)

    assert nexmo_sandbox.requests == []
    assert Conversion.objects.get().status == Status.PENDING


def test_bad_arguments_as_keywords_are_command_errors(nexmo_sandbox: Sandbox) -> None:
    with pytest.raises(CommandError, match="limit"):
        call_command("report_conversions", limit=-1, stdout=StringIO())
    with pytest.raises(CommandError, match="concurrency"):
        call_command("report_conversions", concurrency=0, stdout=StringIO())


# --------------------------------------------------------------------------- subprocess


SUBPROCESS_CONVERSIONS = 5


class Project:
    """A file-backed SQLite database and a settings module for ``python -m django``."""

    def __init__(self, root: Path, base_url: str, **nexmo: Any) -> None:
        self.root = root
        self.db = root / "db.sqlite3"
        conf = sandbox_settings(base_url, DISPATCH="manual", CONCURRENCY=1, **nexmo)
        (root / "command_test_settings.py").write_text(
            textwrap.dedent(
                f"""
                from tests.settings import *  # noqa: F403

                DATABASES = {{
                    "default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {str(self.db)!r}}}
                }}
                NEXMO_CONVERSION = {{**NEXMO_CONVERSION, **{conf!r}}}
                """
            )
        )
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(root), str(REPO_ROOT)]),
            "DJANGO_SETTINGS_MODULE": "command_test_settings",
            "PYTHONUNBUFFERED": "1",
        }

    def setup(self, count: int) -> None:
        """Migrate and mark ``count`` conversions, in a separate process."""
        script = textwrap.dedent(
            f"""
            import django
            django.setup()
            from django.core.management import call_command
            from django_nexmo_conversion import mark_converted
            call_command("migrate", verbosity=0)
            for i in range({count}):
                mark_converted(f"SUB{{i:04d}}")
            """
        )
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO_ROOT,
            env=self.env,
            check=True,
            timeout=SUBPROCESS_TIMEOUT,
        )

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "django", "report_conversions", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the command to its end; its output as text."""
        return subprocess.run(
            self.command(*args),
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
        )

    def rows(self) -> list[tuple[str, str, int, str]]:
        # closing(): sqlite3's own context manager commits but never closes the connection.
        with closing(sqlite3.connect(self.db)) as db:
            return db.execute(
                "SELECT m.message_id, c.status, c.attempt_count, c.claim_token "
                "FROM django_nexmo_conversion_conversion c "
                "JOIN django_nexmo_conversion_sentmessage m ON m.id = c.message_id "
                "ORDER BY m.message_id"
            ).fetchall()


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database holding pending conversions SUB0000..SUB0004, made once (migrating
    a file-backed database is the slow part) and copied for each test."""
    template = Project(tmp_path_factory.mktemp("template"), "http://127.0.0.1:9")
    template.setup(SUBPROCESS_CONVERSIONS)
    return template.db


def make_project(tmp_path: Path, migrated_db: Path, sandbox: Sandbox, **nexmo: Any) -> Project:
    made = Project(tmp_path, sandbox.base_url, **nexmo)
    shutil.copyfile(migrated_db, made.db)
    return made


def test_subprocess_reports_and_exits_zero(
    nexmo_sandbox: Sandbox, tmp_path: Path, migrated_db: Path
) -> None:
    project = make_project(tmp_path, migrated_db, nexmo_sandbox)

    done = project.run()

    assert done.returncode == 0, done.stderr
    assert done.stdout == "reported 5, retrying 0, failed 0\n"
    assert {row[1] for row in project.rows()} == {"reported"}
    assert sorted(r.message_id or "" for r in nexmo_sandbox.reported()) == [
        f"SUB{i:04d}" for i in range(SUBPROCESS_CONVERSIONS)
    ]


def test_subprocess_exit_status_is_non_zero_on_halt(
    nexmo_sandbox: Sandbox, tmp_path: Path, migrated_db: Path
) -> None:
    project = make_project(tmp_path, migrated_db, nexmo_sandbox, API_SECRET="wrong-secret-Pz3")

    done = project.run()

    assert done.returncode != 0
    assert "CommandError" in done.stderr
    assert "HTTP 401" in done.stderr
    assert "API_SECRET" in done.stderr
    assert "HALTED" in done.stdout
    assert "wrong-secret-Pz3" not in done.stdout + done.stderr
    assert [r.status for r in nexmo_sandbox.requests] == [401]
    assert {(row[1], row[2]) for row in project.rows()} == {("pending", 0)}


def test_loop_stops_on_sigterm_after_the_request_in_flight(
    nexmo_sandbox: Sandbox, tmp_path: Path, migrated_db: Path
) -> None:
    # The first answer is held while the test signals and reads the output: a TIMEOUT far
    # above that, so only the signal decides what happens.
    project = make_project(tmp_path, migrated_db, nexmo_sandbox, TIMEOUT=20)
    arrived, answer = threading.Event(), threading.Event()

    def hold_the_first_answer(request: ReceivedRequest) -> None:
        arrived.set()
        answer.wait(SUBPROCESS_TIMEOUT)  # the sandbox answers once the test says so

    nexmo_sandbox.on_request = hold_the_first_answer
    stdout_path = tmp_path / "stdout.txt"
    with stdout_path.open("w") as stdout:
        process = subprocess.Popen(
            project.command("--loop", "--interval", "0.2", "--concurrency", "1"),
            cwd=REPO_ROOT,
            env=project.env,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stderr is not None
    stderr = process.stderr

    def read_stderr() -> None:
        for line in stderr:
            lines.put(line)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert arrived.wait(SUBPROCESS_TIMEOUT), "the loop never sent anything"
        process.send_signal(signal.SIGTERM)
        # Wait until the command has seen the signal, then let the answer through.
        seen: list[str] = []
        while not any("Stopping" in line for line in seen):
            seen.append(lines.get(timeout=SUBPROCESS_TIMEOUT))
        answer.set()
        returncode = process.wait(timeout=SUBPROCESS_TIMEOUT)
    finally:
        answer.set()
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)

    assert returncode == 0, "".join(seen)
    # The request in flight was finished and recorded; nothing else was sent, and the rest of
    # the claimed batch went back to pending with nothing burned.
    assert [r.message_id for r in nexmo_sandbox.requests] == ["SUB0000"]
    assert project.rows() == [
        ("SUB0000", "reported", 1, ""),
        *[(f"SUB{i:04d}", "pending", 0, "") for i in range(1, SUBPROCESS_CONVERSIONS)],
    ]
    # One line, stamped with the local time and its offset (a journal's lines say when).
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d reported 1, retrying 0, failed 0\n",
        stdout_path.read_text(),
    )
