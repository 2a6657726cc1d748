"""Run the whole suite on SQLite, then on each local database server that is reachable.

Without a server (a laptop with no PostgreSQL) the run says so in one line and stays green;
with NEXMO_REQUIRE_SERVICES=1 (set by .ci/run) a missing server fails the run instead.
Extra arguments go to pytest, e.g. ``python tests/run.py -k signing``.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys

SERVERS = {"postgres": ("127.0.0.1", 5432), "mariadb": ("127.0.0.1", 3306)}
#: The driver each server needs, and how to get it.
DRIVERS = {
    "postgres": ("psycopg", "pip install 'psycopg[binary]'"),
    "mariadb": ("MySQLdb", "apt-get install libmariadb-dev pkg-config && pip install mysqlclient"),
}


def missing_driver(db: str) -> str | None:
    module, how = DRIVERS[db]
    if importlib.util.find_spec(module) is None:
        return f"its driver {module} is not installed ({how})"
    return None


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def pytest(db: str, args: list[str]) -> int:
    print(f"\n=== test suite on {db} ===", flush=True)
    env = {**os.environ, "NEXMO_TEST_DB": db}
    return subprocess.call([sys.executable, "-m", "pytest", *args], env=env)


def main() -> int:
    args = sys.argv[1:]
    require = os.environ.get("NEXMO_REQUIRE_SERVICES") == "1"
    failed = []
    if pytest("sqlite", ["--cov", "--cov-report=term:skip-covered", *args]) != 0:
        failed.append("sqlite")
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
                print(f"NOT RUN {line} Start it to test against {db}.", flush=True)
            continue
        if pytest(db, args) != 0:
            failed.append(db)
    if failed:
        print(f"\nFAILED on: {', '.join(failed)}", flush=True)
        return 1
    print("\nAll database runs passed.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
