"""What every benchmark shares: arguments, the database, bulk loading, the TLS certificate,
child processes and the figures table.

Each benchmark prints its figures next to a baseline measured in the same run, as ratios.
``--json PATH`` also writes them for ``run_all.py``; ``--check`` makes a missed target exit 1
(ratios only: wall-clock figures vary with the machine and are reported, never asserted).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from django_nexmo_conversion.sandbox import DEFAULT_API_KEY, DEFAULT_API_SECRET

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATABASES = ("sqlite", "postgres")
PG_NAME = os.environ.get("NEXMO_BENCH_PG_NAME", "nexmo_bench")
WORK_DIR = Path(os.environ.get("NEXMO_BENCH_DIR", Path(tempfile.gettempdir()) / "nexmo-bench"))
APP_TABLES = (
    "django_nexmo_conversion_conversionattempt",
    "django_nexmo_conversion_conversion",
    "django_nexmo_conversion_sentmessage",
    "django_nexmo_conversion_conversionstat",
    "django_nexmo_conversion_conversionalert",
    "django_nexmo_conversion_statuscount",
    "django_nexmo_conversion_statuscountchange",
)


# --- arguments and figures --------------------------------------------------------------------


def parser(
    description: str, *, databases: Sequence[str] = ("postgres",)
) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a small, fast smoke run")
    p.add_argument(
        "--db",
        choices=DATABASES,
        action="append",
        help=f"database(s) to run on (default: {', '.join(databases)}); repeat for several",
    )
    p.add_argument("--json", type=Path, help="also write the figures to this file (run_all.py)")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    p.set_defaults(default_dbs=list(databases))
    return p


def databases_of(args: argparse.Namespace) -> list[str]:
    return list(args.db or args.default_dbs)


@dataclass
class Figure:
    """One line of a results table."""

    bench: str
    figure: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    #: value / baseline (or the figure itself when there is no baseline), against ``target``.
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 100 or value == int(value):
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def print_table(figures: Iterable[Figure]) -> None:
    rows = [("figure", "value", "baseline", "ratio", "target", "met")]
    for f in figures:
        met = "-" if f.met is None else ("yes" if f.met else "NO")
        baseline = f"{fmt(f.baseline, f.unit)} ({f.baseline_label})" if f.baseline_label else "-"
        rows.append((f.figure, fmt(f.value, f.unit), baseline, fmt(f.ratio), f.target, met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    for f in figures:
        if f.note:
            print(f"  note ({f.figure}): {f.note}")


def finish(args: argparse.Namespace, figures: list[Figure]) -> None:
    print()
    print_table(figures)
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in figures], indent=2))
    missed = [f for f in figures if f.met is False]
    if args.check and missed:
        print(f"\nMISSED: {', '.join(f.figure for f in missed)}", file=sys.stderr)
        sys.exit(1)


def run_self_for(
    db: str, script: str, args: argparse.Namespace, extra: Sequence[str]
) -> list[Figure]:
    """Run ``script`` again for one database (Django is configured once per process) and
    return its figures; its output is shown as it goes."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    command = [sys.executable, script, "--db", db, "--json", str(out), *extra]
    if args.quick:
        command.append("--quick")
    subprocess.run(command, cwd=ROOT, check=True)
    figures = [Figure(**item) for item in json.loads(out.read_text())]
    out.unlink()
    return figures


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median_time(func: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- Django and the database ------------------------------------------------------------------


def child_env(db: str, conversion: dict[str, Any] | None = None, **extra: str) -> dict[str, str]:
    """The environment of a Django process working on the benchmark database."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "NEXMO_BENCH_DB": db,
        "NEXMO_BENCH_DIR": str(WORK_DIR),
        "NEXMO_BENCH_CONVERSION": json.dumps(conversion or {}),
    }
    env.update(extra)
    return env


def setup_settings_only(db: str = "sqlite") -> None:
    """Point Django at the bench settings without touching a database (run_all.py)."""
    os.environ.update(child_env(db))


def setup(db: str, conversion: dict[str, Any] | None = None) -> None:
    """Configure Django for ``db`` in this process, create the database if needed, migrate."""
    os.environ.update(child_env(db, conversion))
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    if db == "postgres":
        _create_pg_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _create_pg_database() -> None:
    import psycopg

    with psycopg.connect(
        host=os.environ.get("NEXMO_BENCH_PG_HOST", "127.0.0.1"),
        port=os.environ.get("NEXMO_BENCH_PG_PORT", "5432"),
        user=os.environ.get("NEXMO_BENCH_PG_USER", "postgres"),
        dbname="postgres",
        autocommit=True,
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{PG_NAME}"')


def reset() -> None:
    """Empty the app's tables (identities restart at 1)."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(APP_TABLES)} RESTART IDENTITY CASCADE")
        else:
            for table in APP_TABLES:
                cursor.execute(f"DELETE FROM {table}")
            placeholders = ",".join("%s" for _ in APP_TABLES)
            cursor.execute(
                f"DELETE FROM sqlite_sequence WHERE name IN ({placeholders})", list(APP_TABLES)
            )


def analyze() -> None:
    """Fresh planner statistics after a bulk load (autovacuum would get there, later)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")


def bulk_insert(model: Any, rows: Iterable[dict[str, Any]], *, chunk: int = 50_000) -> int:
    """Insert rows fast: COPY on PostgreSQL, executemany in one transaction on SQLite.

    Columns come from the model, with each field's default where a row does not say, so
    fields other engineers add later still get their values.
    """
    from django.db import connection, transaction

    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return 0
    rows = itertools.chain([first], rows)
    pk = model._meta.pk
    # Rows without an id get the database's (the sequence moves on as usual).
    fields = [f for f in model._meta.concrete_fields if f is not pk or pk.attname in first]
    columns = [f.column for f in fields]
    defaults = {f.attname: f.get_default() for f in fields if f is not pk}
    table = model._meta.db_table
    count = 0

    def prepared(row: dict[str, Any]) -> list[Any]:
        values = {**defaults, **row}
        return [f.get_db_prep_save(values.get(f.attname), connection) for f in fields]

    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            raw = cursor.cursor  # the psycopg cursor under Django's wrapper
            with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(prepared(row))
                    count += 1
            if pk in fields:
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"
                )
        else:
            sql = (
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('%s' for _ in columns)})"
            )
            batch: list[list[Any]] = []
            for row in rows:
                batch.append(prepared(row))
                if len(batch) >= chunk:
                    cursor.executemany(sql, batch)
                    count += len(batch)
                    batch = []
            if batch:
                cursor.executemany(sql, batch)
                count += len(batch)
    return count


def message_id(n: int, prefix: str = "B") -> str:
    return f"{prefix}{n:015X}"


def load_pending(count: int, *, prefix: str = "B", start: int = 1) -> None:
    """``count`` sent messages, each with a pending conversion due now (ids from ``start``)."""
    from django_nexmo_conversion.models import Conversion, SentMessage

    now = datetime.now(timezone.utc)
    ids = range(start, start + count)
    bulk_insert(
        SentMessage,
        (
            {"id": n, "message_id": message_id(n, prefix), "channel": "sms", "sent_at": now}
            for n in ids
        ),
    )
    bulk_insert(
        Conversion,
        (
            {
                "id": n,
                "message_id": n,
                "delivered": True,
                "timestamp": now,
                "status": "pending",
                "next_attempt_at": now - timedelta(seconds=1),
                "created_at": now,
            }
            for n in ids
        ),
    )


# --- TLS and processes ------------------------------------------------------------------------


def certificate() -> tuple[str, str]:
    """A fresh self-signed certificate for 127.0.0.1 (made per run, never committed)."""
    directory = Path(tempfile.mkdtemp(prefix="nexmo-bench-tls-"))
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def https_settings(sandbox: Any, **overrides: Any) -> dict[str, Any]:
    """``NEXMO_CONVERSION`` for a report process talking to ``sandbox`` over HTTPS."""
    return {
        "BACKEND": "bench.tls.TrustingHttpBackend",
        "BASE_URL": sandbox.base_url,
        "API_KEY": DEFAULT_API_KEY,
        "API_SECRET": DEFAULT_API_SECRET,
        **overrides,
    }


def manage(*args: str) -> list[str]:
    return [sys.executable, "-m", "django", *args]


def bench_script(name: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / name), *args]


def run_child(
    command: list[str], env: dict[str, str], *, timeout: float = 3600
) -> tuple[float, str]:
    """Run ``command``; return (wall seconds, output). Fails loudly on a non-zero exit."""
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        output = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{output}")
    return wall, done.stdout + done.stderr


# --- the machine ------------------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    import django

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        uptime = subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False, env={**os.environ, "TZ": "UTC"}
        ).stdout
    except OSError:
        uptime = ""
    pg = ""
    try:
        out = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", "SHOW server_version"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        pg = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    import sqlite3

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "django": django.get_version(),
        "postgresql": pg or "?",
        "sqlite": sqlite3.sqlite_version,
        "load": uptime.strip(),
    }
