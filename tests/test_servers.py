"""The default dispatch under the servers Django sites run on: runserver with its
autoreloader, gunicorn's sync and gthread workers, and uvicorn (ASGI, an async view).

Each server serves the test project on a free loopback port; a request marks a conversion
and answers at once, and the server's own reporter thread reports it to the sandbox.
"""

from __future__ import annotations

import socket
import sys
import urllib.request

import pytest

from django_nexmo_conversion.models import Conversion, Status
from django_nexmo_conversion.sandbox import Sandbox

from .helpers import free_port, sandbox_settings
from .processes import running, wait_until, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


def serving(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


PYTHON = [sys.executable, "-m"]
SERVERS = {
    "runserver": lambda port: [*PYTHON, "django", "runserver", f"127.0.0.1:{port}"],
    "gunicorn-sync": lambda port: [
        *PYTHON, "gunicorn", "tests.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2", "--preload"
    ],
    "gunicorn-gthread": lambda port: [
        *PYTHON, "gunicorn", "tests.wsgi", "-b", f"127.0.0.1:{port}", "-k", "gthread",
        "--threads", "4",
    ],
    "uvicorn": lambda port: [
        *PYTHON, "uvicorn", "tests.asgi:application", "--host", "127.0.0.1", "--port", str(port)
    ],
}  # fmt: skip


@pytest.mark.parametrize("server", list(SERVERS))
def test_the_server_reports_in_the_background(server: str, tmp_path) -> None:
    port = free_port()
    path = "amark" if server == "uvicorn" else "mark"
    with Sandbox() as sandbox:
        env = worker_env(sandbox_settings(sandbox, DISPATCH="background", SWEEP_INTERVAL=1))
        with running(SERVERS[server](port), env, log=tmp_path / "server.log"):
            assert wait_until(lambda: serving(port), timeout=30), tmp_path / "server.log"
            message_id = f"0S{abs(hash(server)) % 10**14:014d}"
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/{path}/{message_id}/", method="POST", data=b""
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
                assert response.read() == b"created"
            # Reported by the server's own thread, and the answer written, while it runs.
            assert wait_until(
                lambda: Conversion.objects.filter(status=Status.REPORTED).exists(), timeout=30
            ), (tmp_path / "server.log").read_text()
        assert [r.message_id for r in sandbox.reported()] == [message_id]
