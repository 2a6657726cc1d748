from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from django_nexmo_conversion.sandbox import Sandbox

pytest_plugins = ["django_nexmo_conversion.testing.pytest_plugin"]

#: Set by tests/run.py and the nox sessions for their PostgreSQL and MariaDB runs: those runs
#: leave out the tests that never touch a database, the browser tests and the tests on a
#: SQLite file of their own (``runs_on_servers``), since the SQLite run (which always runs
#: everything) already ran them. Unset, every run runs every test.
DATABASE_TESTS_ONLY = "NEXMO_TEST_DATABASE_TESTS_ONLY"
#: The browser tests (tests/browser) check what the admin's pages show and do in Chromium.
#: The reads behind those pages run on every database in tests/test_admin*.py,
#: tests/test_dashboard.py and the insights tests; what a browser adds (layout, clicks,
#: scripts) does not depend on the database. They were a sixth of each server run.
BROWSER_TESTS = os.path.join(os.path.dirname(__file__), "browser")
#: Fixtures of tests whose processes use a SQLite file of their own whatever the run's
#: database (tests/test_command.py's ``migrated_db``): a server run would repeat the SQLite
#: run's test exactly. The ``own_database`` marker says the same of a test without one.
OWN_DATABASE_FIXTURES = frozenset({"migrated_db"})
#: pytest-django's fixtures that open the test database (``admin_client``, ``live_server`` and
#: the rest depend on one of them, so they are in a test's fixture closure too).
DATABASE_FIXTURES = frozenset(
    {
        "db",
        "transactional_db",
        "django_db_reset_sequences",
        "django_db_serialized_rollback",
        "django_db_setup",
        "live_server",
    }
)


def touches_database(item: pytest.Item) -> bool:
    """Whether a test can reach the test database: pytest-django refuses any query from a test
    without the ``django_db`` marker or a database fixture, and the worker subprocesses reach
    the test database only by the name such a test sets up."""
    if item.get_closest_marker("django_db") or item.get_closest_marker("every_database"):
        return True
    return bool(DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ())))


def runs_on_servers(item: pytest.Item) -> bool:
    """Whether the PostgreSQL and MariaDB runs keep ``item`` (see ``DATABASE_TESTS_ONLY``)."""
    if item.get_closest_marker("own_database"):
        return False
    if OWN_DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return False
    return touches_database(item) and not str(item.path).startswith(BROWSER_TESTS + os.sep)


_LEFT_OUT = pytest.StashKey[tuple[int, str]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from django.conf import settings

    if os.environ.get(DATABASE_TESTS_ONLY) != "1" or settings.DB == "sqlite":
        return
    kept: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    for item in items:
        (kept if runs_on_servers(item) else left_out).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
    config.stash[_LEFT_OUT] = (len(left_out), settings.DB)


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    if _LEFT_OUT not in config.stash:
        return None
    count, db = config.stash[_LEFT_OUT]
    return (
        f"{count} tests deselected on {db}: they touch no database (no django_db marker, no "
        f"database fixture), drive a browser or start processes on a SQLite file of their "
        f"own, and the SQLite run runs them; "
        f"{DATABASE_TESTS_ONLY}=0 runs them here"
    )


@pytest.fixture(autouse=True)
def _clean_backend():
    """Each test starts with a fresh backend and an empty outbox, and leaves no background
    reporter running (its sweeps would work on the next test's rows)."""
    from django_nexmo_conversion.backends import reset_backend
    from django_nexmo_conversion.backends.locmem import outbox
    from django_nexmo_conversion.dispatch import background

    reset_backend()
    outbox.clear()
    yield
    background.shutdown(timeout=5)
    reset_backend()


@pytest.fixture
def on_commit(settings: Any, nexmo_sandbox: Sandbox) -> Sandbox:
    """The sandbox, with ``DISPATCH="on_commit"``: a conversion goes out as its transaction
    commits."""
    from .helpers import configure

    configure(settings, DISPATCH="on_commit")
    return nexmo_sandbox


@pytest.fixture
def no_env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credential from the environment (``NEXMO_API_KEY`` and the rest): the developer's
    shell must not leak into a test about what the settings alone give."""
    from django_nexmo_conversion.conf import ENV_FALLBACKS

    for names in ENV_FALLBACKS.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key: a sandbox serving HTTPS with a CA
    that only the tests trust."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed (apt-get install openssl)")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1"
    command += " -addext subjectAltName=IP:127.0.0.1"
    subprocess.run(
        [*command.split(), "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key
