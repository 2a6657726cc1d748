"""Real worker processes for the tests: report runs, Celery workers, task workers, and the
sandbox's command line.

A subprocess reaches the test database by name and the sandbox by URL, both passed in the
environment (tests/settings.py reads them).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def require_service(name: str, host: str, port: int) -> None:
    """Fail in CI (NEXMO_REQUIRE_SERVICES=1), skip with a clear reason elsewhere."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError:
        message = f"{name} is not reachable at {host}:{port}"
        if os.environ.get("NEXMO_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message} (NEXMO_REQUIRE_SERVICES=1)")
        pytest.skip(message)


def worker_env(conversion_settings: dict[str, Any] | None = None, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "NEXMO_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "NEXMO_TEST_CONVERSION_SETTINGS": json.dumps(conversion_settings or {}),
    }
    env.update(extra)
    return env


def django_admin(*args: str) -> list[str]:
    return [sys.executable, "-m", "django", *args]


SANDBOX_CLI = [sys.executable, "-m", "django_nexmo_conversion.sandbox"]


def sandbox_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m django_nexmo_conversion.sandbox *args``, run to its end from the repository
    root, its output captured as text."""
    return subprocess.run(
        [*SANDBOX_CLI, *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@contextmanager
def running(
    command: list[str], env: dict[str, str], *, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command`` in its own process group; kill the whole group on exit."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        if log:
            out.close()  # type: ignore[union-attr]


def wait_until(predicate: Any, *, timeout: float = 30.0, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
