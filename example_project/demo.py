#!/usr/bin/env python
"""``make demo``: the demo site and the Conversion API sandbox, in one process.

1. migrate the SQLite database and create the superuser admin / admin if missing;
2. start the sandbox (a local stand-in for the Conversion API) in a background thread;
3. run the site with ``runserver`` in the foreground. Ctrl-C (or SIGTERM) stops both.

Reporting needs nothing more: the app's default dispatch, ``background``, reports each mark
right after it commits from the site's own reporter thread, retries at the due time, and
sweeps every ``SWEEP_INTERVAL`` seconds (5 in the demo's settings) from the first request on,
counting the figures the dashboard's chart and the Insights page show. No command, no cron.

Environment: ``DEMO_PORT`` (default 8000), ``DEMO_SANDBOX_PORT`` (default 8787),
``DEMO_DB_PATH`` (default ``example_project/db.sqlite3``).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
ADMIN_USERNAME = ADMIN_PASSWORD = "admin"


def port_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SystemExit(f"demo: {name} must be a port number (1-65535), got {raw!r}.")
    return int(raw)


def port_in_use(port: int) -> bool:
    # SO_REUSEADDR, as both servers set it: a port in TIME_WAIT is free, a listener is not.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def port_busy_message(what: str, port: int, variable: str) -> str:
    return (
        f"demo: port {port} on {HOST} ({what}) is already in use; is another demo running?\n"
        f"      Stop it, or choose another port: {variable}=<port> make demo"
    )


def ensure_superuser() -> bool:
    """Create admin / admin unless a user named admin exists; True when created."""
    from django.contrib.auth import get_user_model

    users = get_user_model()._default_manager
    if users.filter(username=ADMIN_USERNAME).exists():
        return False
    users.create_superuser(ADMIN_USERNAME, "admin@example.com", ADMIN_PASSWORD)
    return True


def banner(site_url: str, sandbox_url: str, db_path: str) -> str:
    rule = "=" * 72
    return "\n".join(
        [
            rule,
            "  django-nexmo-conversion demo",
            "",
            f"  Site:     {site_url}",
            f"  Admin:    {site_url}admin/   (login: {ADMIN_USERNAME} / {ADMIN_PASSWORD})",
            f"  Sandbox:  {sandbox_url}   (the pretend Conversion API)",
            f"  Database: {db_path}",
            "",
            "  Requests the sandbox receives are logged below as [sandbox] lines.",
            "  Press Ctrl-C to stop.",
            rule,
        ]
    )


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both end runserver with KeyboardInterrupt, so everything after it
    shuts down cleanly. Set explicitly: a shell starting us in the background hands down
    SIGINT ignored, and Python would then never raise KeyboardInterrupt."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def main() -> int:
    site_port = port_from_env("DEMO_PORT", 8000)
    sandbox_port = port_from_env("DEMO_SANDBOX_PORT", 8787)
    if site_port == sandbox_port:
        print("demo: DEMO_PORT and DEMO_SANDBOX_PORT must differ.", file=sys.stderr)
        return 1
    for what, port, variable in (
        ("the Conversion API sandbox", sandbox_port, "DEMO_SANDBOX_PORT"),
        ("the demo site", site_port, "DEMO_PORT"),
    ):
        if port_in_use(port):
            print(port_busy_message(what, port, variable), file=sys.stderr)
            return 1

    sandbox_url = f"http://{HOST}:{sandbox_port}"
    site_url = f"http://{HOST}:{site_port}/"
    # The settings read these; the demo's own sandbox is the one to report to.
    os.environ["DEMO_SANDBOX_URL"] = sandbox_url
    # Forced, not defaulted: a DJANGO_SETTINGS_MODULE left exported for another project
    # must not hijack the demo.
    os.environ["DJANGO_SETTINGS_MODULE"] = "demo_site.settings"
    # The settings and app live beside this file; the repository root makes a plain checkout
    # work before `pip install -e .` (with it installed, both name the same package).
    sys.path[:0] = [str(HERE), str(HERE.parent)]

    import django

    django.setup()

    from django.conf import settings
    from django.core.management import call_command
    from sms_demo import sandbox_link

    from django_nexmo_conversion.sandbox import ReceivedRequest, Sandbox
    from django_nexmo_conversion.sandbox.cli import format_request

    db_path = str(settings.DATABASES["default"]["NAME"])
    print(f"Preparing the database {db_path} ...", flush=True)
    call_command("migrate", interactive=False, verbosity=0)
    if ensure_superuser():
        print(f"Created the superuser {ADMIN_USERNAME} / {ADMIN_PASSWORD}.", flush=True)

    print_lock = threading.Lock()

    def log_request(request: ReceivedRequest) -> None:
        # format_request prints an allow-list of fields: never the api_secret.
        with print_lock:
            print(f"[sandbox] {format_request(request)}", flush=True)

    sandbox = Sandbox(host=HOST, port=sandbox_port, on_request=log_request)
    try:
        sandbox.start()
    except OSError as exc:  # taken between the check above and now
        message = port_busy_message("the Conversion API sandbox", sandbox_port, "DEMO_SANDBOX_PORT")
        print(message, file=sys.stderr)
        print(f"      ({exc})", file=sys.stderr)
        return 1
    sandbox_link.attach(sandbox)
    stop_on_signals()
    print(banner(site_url, sandbox.base_url, db_path), flush=True)
    try:
        # call_command skips system checks unless told otherwise: show the app's checks.
        call_command("runserver", f"{HOST}:{site_port}", use_reloader=False, skip_checks=False)
    except (KeyboardInterrupt, SystemExit):
        pass  # runserver turns Ctrl-C into SystemExit(0); either way, shut down below
    finally:
        sandbox_link.attach(None)
        sandbox.stop()
        print("Demo stopped: site and sandbox are down.", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C while the database was being prepared
        print("Demo interrupted before it started.", file=sys.stderr)
        sys.exit(130)
