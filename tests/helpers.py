"""What several test modules need: the app's settings for one test, a sandbox to point at,
conversions to report, threads that race.

The fixtures built on these live in ``tests/conftest.py``.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import connections

from django_nexmo_conversion import mark_converted
from django_nexmo_conversion.models import Conversion
from django_nexmo_conversion.sandbox import DEFAULT_API_KEY, DEFAULT_API_SECRET, Sandbox


def sandbox_settings(sandbox: Sandbox | str, **overrides: Any) -> dict[str, Any]:
    """NEXMO_CONVERSION overrides that point the http backend at ``sandbox`` (or its base URL),
    with the sandbox's default account."""
    return {
        "BACKEND": "django_nexmo_conversion.backends.http.HttpBackend",
        "BASE_URL": sandbox if isinstance(sandbox, str) else sandbox.base_url,
        "API_KEY": DEFAULT_API_KEY,
        "API_SECRET": DEFAULT_API_SECRET,
        **overrides,
    }


def configure(settings: Any, *, sandbox: Sandbox | None = None, **values: Any) -> None:
    """Merge ``values`` into NEXMO_CONVERSION for this test, keeping the rest as it is.

    ``settings`` is pytest-django's fixture: assigning through it sends ``setting_changed``
    (which rebuilds the app's cached settings and backend) and restores the setting after the
    test. With ``sandbox``, the http backend is pointed at it too (``values`` still win).
    """
    pointed = sandbox_settings(sandbox) if sandbox is not None else {}
    settings.NEXMO_CONVERSION = {**settings.NEXMO_CONVERSION, **pointed, **values}


def replace_configuration(settings: Any, value: object) -> None:
    """Make NEXMO_CONVERSION exactly ``value``: nothing of ``tests/settings.py``'s is kept.

    Any object, not only a dict: the system checks are tested with broken ones.
    """
    settings.NEXMO_CONVERSION = value


def mark_many(count: int, prefix: str = "MSG") -> list[Conversion]:
    """``count`` pending conversions, of messages ``{prefix}0000``, ``{prefix}0001``, ..."""
    return [mark_converted(f"{prefix}{i:04d}") for i in range(count)]


def requests_per_message(sandbox: Sandbox) -> Counter[str | None]:
    """How many requests the sandbox has received for each message id."""
    return Counter(r.message_id for r in sandbox.requests)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


T = TypeVar("T")


def run_together(threads: int, work: Callable[[], T]) -> tuple[list[T], list[BaseException]]:
    """Run ``work`` in ``threads`` threads let go at the same instant; wait for them all.

    Returns what the threads returned and what they raised. Each thread closes its own
    database connections when it is done.
    """
    barrier = threading.Barrier(threads)
    returned: list[T] = []
    raised: list[BaseException] = []
    lock = threading.Lock()

    def thread() -> None:
        try:
            barrier.wait()
            result = work()
            with lock:
                returned.append(result)
        except BaseException as exc:  # pragma: no cover - the caller asserts there is none
            with lock:
                raised.append(exc)
        finally:
            connections.close_all()

    started = [threading.Thread(target=thread) for _ in range(threads)]
    for each in started:
        each.start()
    for each in started:
        each.join()
    return returned, raised
