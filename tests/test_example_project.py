"""The example project end to end, the way ``make demo`` runs it, driven over HTTP.

``example_project/demo.py`` runs in a subprocess on free ports with its own SQLite file; the
test sends codes through the home page's forms (CSRF included), marks them converted, and
waits until the page shows them reported and the sandbox has logged the requests.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "example_project" / "demo.py"
STARTUP_DEADLINE = 60.0  # upper bounds only; the run takes a few seconds
REPORT_DEADLINE = 30.0
#: One sweep of the demo (5 s), plus room for a slow machine.
SWEEP_DEADLINE = 20.0
DASHBOARD = "/admin/django_nexmo_conversion/conversion/dashboard/"
INSIGHTS = "/admin/django_nexmo_conversion/conversion/insights/"

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
MESSAGE_ROW = re.compile(r'<tr id="message-([0-9A-F]{16})" data-status="(\w+)">')


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class DemoProcess:
    """``demo.py`` in its own process group, its merged output collected line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(DEMO)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # so teardown can end it and anything it started
            # As `make demo &` from a shell does: the demo must still stop on Ctrl-C.
            preexec_fn=_ignore_sigint,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def interrupt(self, timeout: float = 15.0) -> int:
        """Ctrl-C, as a user would; returns the exit status."""
        self.process.send_signal(signal.SIGINT)
        status = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._reader.join(timeout=5)


def demo_env(tmp_path: Path, *, site_port: int, sandbox_port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "DEMO_PORT": str(site_port),
        "DEMO_SANDBOX_PORT": str(sandbox_port),
        "DEMO_DB_PATH": str(tmp_path / "demo.sqlite3"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)  # pytest-django exports the suite's settings
    return env


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[DemoProcess, int, int]]:
    site_port, sandbox_port = free_port(), free_port()
    process = DemoProcess(demo_env(tmp_path, site_port=site_port, sandbox_port=sandbox_port))
    try:
        yield process, site_port, sandbox_port
    finally:
        process.kill()  # a no-op after a clean Ctrl-C; never leave a server behind


def wait_for_site(process: DemoProcess, url: str) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            pytest.fail(f"demo.py exited with {process.process.returncode}:\n{process.output}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    pytest.fail(f"The demo site did not come up at {url}:\n{process.output}")


def csrf_token(page: str) -> str:
    match = CSRF_INPUT.search(page)
    assert match, "no CSRF token in the page"
    return match.group(1)


def statuses(page: str) -> dict[str, str]:
    return dict(MESSAGE_ROW.findall(page))


def pk_of(page: str, message_id: str) -> str:
    row = page[page.index(f'id="message-{message_id}"') :]
    match = re.search(r'action="/messages/(\d+)/converted/"', row)
    assert match, f"no 'Mark converted' button for {message_id}"
    return match.group(1)


def test_demo_sends_marks_and_reports_to_the_sandbox(demo: tuple[DemoProcess, int, int]) -> None:
    process, site_port, sandbox_port = demo
    site = f"http://127.0.0.1:{site_port}"
    wait_for_site(process, site + "/")
    browser = requests.Session()

    home = browser.get(site + "/", timeout=5)
    assert home.status_code == 200
    assert "csrftoken" in browser.cookies
    assert f"http://127.0.0.1:{sandbox_port}" in home.text  # the page names its sandbox

    # Without the CSRF token the form is refused: the page's forms really are protected.
    refused = browser.post(site + "/send/", data={"to": "447700900123"}, timeout=5)
    assert refused.status_code == 403

    # Bad input: a clear error, and nothing recorded.
    bad = browser.post(
        site + "/send/",
        data={"csrfmiddlewaretoken": csrf_token(home.text), "to": "call me maybe"},
        timeout=5,
    )
    assert bad.status_code == 400
    assert "is not a phone number" in bad.text
    assert statuses(bad.text) == {}

    # One message the sandbox accepts at once, one it throttles (429) before accepting.
    ids = {}
    for answer in ("ok", "throttle"):
        sent = browser.post(
            site + "/send/",
            data={
                "csrfmiddlewaretoken": csrf_token(home.text),
                "to": "+44 7700 900123",
                "sandbox_answer": answer,
            },
            timeout=5,
        )
        assert sent.status_code == 200  # followed the redirect home
        new = set(statuses(sent.text)) - set(ids.values())
        assert len(new) == 1, sent.text
        ids[answer] = new.pop()
        assert statuses(sent.text)[ids[answer]] == "none"
        home = sent

    for message_id in ids.values():
        marked = browser.post(
            f"{site}/messages/{pk_of(home.text, message_id)}/converted/",
            data={"csrfmiddlewaretoken": csrf_token(home.text)},
            timeout=10,
        )
        assert marked.status_code == 200
        assert f"Message {message_id} marked converted." in marked.text
        home = marked

    deadline = time.monotonic() + REPORT_DEADLINE
    while True:
        page = browser.get(site + "/", timeout=5).text
        current = statuses(page)
        if all(current[message_id] == "reported" for message_id in ids.values()):
            break
        assert time.monotonic() < deadline, f"not reported in time: {current}\n{process.output}"
        time.sleep(0.25)

    # What "Nexmo" saw, from the sandbox's own log lines in the demo's console.
    ok, throttled = ids["ok"], ids["throttle"]
    log = process.output
    assert f"[sandbox] POST /conversions/sms message-id={ok} -> 200" in log
    assert f"[sandbox] POST /conversions/sms message-id={throttled} -> 429" in log
    assert f"[sandbox] POST /conversions/sms message-id={throttled} -> 200" in log
    assert log.count(f"message-id={ok} ->") == 1  # reported once, never again
    assert "sandbox-secret" not in log  # the API secret is never printed
    # The page's sandbox panel shows the same requests.
    assert page.count(f'<td class="mono">{throttled}</td>') >= 3  # its row + 429 + 200

    # The admin works with the demo's superuser and lists the reported conversions.
    login_page = browser.get(site + "/admin/login/", timeout=5)
    logged_in = browser.post(
        site + "/admin/login/?next=/admin/",
        data={
            "csrfmiddlewaretoken": csrf_token(login_page.text),
            "username": "admin",
            "password": "admin",
            "next": "/admin/",
        },
        timeout=5,
    )
    assert logged_in.url.endswith("/admin/"), logged_in.url
    changelist = browser.get(site + "/admin/django_nexmo_conversion/conversion/", timeout=5)
    assert changelist.status_code == 200
    assert ok in changelist.text
    assert throttled in changelist.text

    # The flagship pages fill within one sweep (SWEEP_INTERVAL is 5 s in the demo's settings):
    # the dashboard's chart and the Insights funnel count both messages, both converted.
    deadline = time.monotonic() + SWEEP_DEADLINE
    while True:
        dashboard = browser.get(site + DASHBOARD, timeout=5).text
        insights = browser.get(site + INSIGHTS, timeout=5).text
        if "2 of 2 sent messages converted" in dashboard and 'data-step="sent">2<' in insights:
            break
        assert time.monotonic() < deadline, f"the pages stayed empty:\n{process.output}"
        time.sleep(0.5)
    assert "No messages were sent in this period" not in dashboard + insights
    assert 'data-step="converted">2<' in insights
    assert "every message and conversion so far" in dashboard  # counted up to now

    # Ctrl-C stops the site, the report loop and the sandbox, cleanly.
    assert process.interrupt() == 0
    assert "Demo stopped" in process.output
    assert not listening(site_port)
    assert not listening(sandbox_port)


def test_demo_refuses_a_busy_sandbox_port(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        env = demo_env(tmp_path, site_port=free_port(), sandbox_port=busy)
        result = subprocess.run(
            [sys.executable, str(DEMO)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {busy} on 127.0.0.1 (the Conversion API sandbox) is already in use" in (
        result.stderr
    )
    assert "DEMO_SANDBOX_PORT=" in result.stderr
    assert not (tmp_path / "demo.sqlite3").exists()  # it stopped before touching anything
