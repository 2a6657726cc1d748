"""Run the whole suite on SQLite and on each local database server that is reachable, at once.

The runs are separate pytest processes, each with its own test database (SQLite: a file named
after the process; PostgreSQL and MariaDB: ``NEXMO_TEST_DB_TEST_NAME`` or Django's default),
its own Celery queue and free ports, so they run side by side: SQLite's output streams as it
comes, the others' is printed as each one ends. ``NEXMO_TEST_SERIAL=1`` runs them one after
the other instead, all output live.

Each run has two pytest-xdist workers (``NEXMO_TEST_WORKERS``, 0 for one process): a test
waiting for a process or a lease leaves a core idle that the other worker fills (a third
worker for SQLite, which runs the most tests, cost more CPU than it saved wall time). The
SQLite run runs every test. The PostgreSQL and MariaDB runs leave out the tests that touch no
database, the browser tests and the tests whose processes use a SQLite file of their own
(``NEXMO_TEST_DATABASE_TESTS_ONLY``, see tests/conftest.py): the SQLite run has run them.

``--coverage`` (``make coverage``, and CI's nox ``suite`` session of the newest pair) measures
branch coverage in the SQLite run and holds it to ``fail_under`` in pyproject.toml. It is not
on by default: Python 3.11's tracer was a sixth of the whole run's CPU (110 of 620 s), the
largest single cost of ``make test`` on two cores.

Without a server (a laptop with no PostgreSQL) the run says so in one line and stays green;
with NEXMO_REQUIRE_SERVICES=1 (set by .ci/run) a missing server fails the run instead.
Extra arguments go to every pytest run, e.g. ``python tests/run.py -k signing``.
"""

from __future__ import annotations

import compileall
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVERS = {"postgres": ("127.0.0.1", 5432), "mariadb": ("127.0.0.1", 3306)}
#: The driver each server needs: its module and its package.
DRIVERS = {"postgres": ("psycopg", "psycopg[binary]"), "mariadb": ("MySQLdb", "mysqlclient")}


def mariadb_library_missing() -> str | None:
    """What mysqlclient needs to build that this machine lacks, if anything."""
    if shutil.which("pkg-config") is None:
        return "pkg-config"
    found = subprocess.run(  # fixed arguments
        ["pkg-config", "--exists", "libmariadb"],
        check=False,
    )
    return None if found.returncode == 0 else "libmariadb-dev"


def missing_driver(db: str) -> str | None:
    module, package = DRIVERS[db]
    if importlib.util.find_spec(module) is None:
        why = f"its driver {package} is not installed in {sys.prefix}"
        if db != "mariadb":
            return f"{why} (pip install '{package}')"
        lacking = mariadb_library_missing()
        if lacking:
            return f"{why}: building it needs {lacking} (apt-get install libmariadb-dev pkg-config)"
        return f"{why} (`make test` adds it, EXTRAS left at its default: libmariadb-dev is there)"
    return None


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def wants_one_process(args: list[str]) -> bool:
    """Arguments xdist workers cannot serve (a debugger, live output) or that choose the
    workers themselves: every run then stays in one process."""
    return any(
        arg in ("--pdb", "--trace", "-s", "--capture=no", "no:xdist")
        or arg.startswith(("-n", "--numprocesses", "--dist"))
        for arg in args
    )


def command(db: str, args: list[str], *, coverage: bool) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "NEXMO_TEST_DB": db}
    # The workers, and the processes the tests start, import the package from its byte code
    # (compiled once by ``compile_once``) and pytest keeps its rewritten test modules: with
    # PYTHONDONTWRITEBYTECODE (set on CI's machines) each of some 200 Django processes
    # compiled the package again, 0.1 s of CPU each.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    workers = os.environ.get("NEXMO_TEST_WORKERS", "2")
    if workers != "0" and not wants_one_process(args):
        args = ["-n", workers, "--dist", "loadfile", *args]
    if db == "sqlite":
        if coverage:
            args = ["--cov", "--cov-report=term:skip-covered", *args]
    else:
        env.setdefault("NEXMO_TEST_DATABASE_TESTS_ONLY", "1")
    return [sys.executable, "-m", "pytest", *args], env


def compile_once() -> None:
    """Byte-compile the package, the tests and the example project, once for every run."""
    for folder in ("django_nexmo_conversion", "tests", "example_project"):
        compileall.compile_dir(ROOT / folder, quiet=2, workers=0)


def run_serially(dbs: list[str], args: list[str], *, coverage: bool) -> list[str]:
    failed = []
    for db in dbs:
        print(f"\n=== test suite on {db} ===", flush=True)
        argv, env = command(db, args, coverage=coverage)
        if subprocess.call(argv, env=env) != 0:  # this interpreter, our args
            failed.append(db)
    return failed


def run_together(dbs: list[str], args: list[str], *, coverage: bool) -> list[str]:
    """SQLite in the foreground, the servers' runs beside it with their output in a file."""
    logs = Path(tempfile.mkdtemp(prefix="nexmo-test-runs-"))
    started = time.monotonic()
    background = {}
    for db in dbs:
        if db == "sqlite":
            continue
        argv, env = command(db, args, coverage=coverage)
        log = logs / f"{db}.log"
        # Output to a file, read when the run ends: nothing interleaves with SQLite's.
        with log.open("wb") as out:
            process = subprocess.Popen(  # this interpreter, our args
                argv, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        background[db] = (process, log)
        print(f"=== test suite on {db}: started beside SQLite (output: {log}) ===", flush=True)
    failed = []
    if "sqlite" in dbs:
        print("\n=== test suite on sqlite ===", flush=True)
        argv, env = command("sqlite", args, coverage=coverage)
        if subprocess.call(argv, env=env) != 0:  # this interpreter, our args
            failed.append("sqlite")
        print(f"=== sqlite: ended after {time.monotonic() - started:.0f} s ===", flush=True)
    for db, (process, log) in background.items():
        code = process.wait()
        print(f"\n=== test suite on {db} (ran beside SQLite) ===", flush=True)
        print(log.read_text(errors="replace"), end="", flush=True)
        print(f"=== {db}: ended after {time.monotonic() - started:.0f} s ===", flush=True)
        if code != 0:
            failed.append(db)
    return failed


def main() -> int:
    args = sys.argv[1:]
    coverage = "--coverage" in args
    args = [arg for arg in args if arg != "--coverage"]
    require = os.environ.get("NEXMO_REQUIRE_SERVICES") == "1"
    failed = []
    not_run = []
    dbs = ["sqlite"]
    for db, (host, port) in SERVERS.items():
        why = missing_driver(db)
        if why is None and not reachable(host, port):
            why = f"no server at {host}:{port}"
        if why:
            line = f"{db}: {why}, so the {db} run did not happen."
            if require:
                print(f"FAILED {line} (NEXMO_REQUIRE_SERVICES=1)", flush=True)
                failed.append(db)
            else:
                print(f"NOT RUN {line}", flush=True)
                not_run.append(line)
            continue
        dbs.append(db)
    compile_once()
    if os.environ.get("NEXMO_TEST_SERIAL") == "1":
        failed += run_serially(dbs, args, coverage=coverage)
    else:
        failed += run_together(dbs, args, coverage=coverage)
    for line in not_run:
        print(f"\nNOT RUN {line}", flush=True)
    if failed:
        print(f"\nFAILED on: {', '.join(failed)}", flush=True)
        return 1
    print(f"\nAll database runs passed: {', '.join(dbs)}.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
