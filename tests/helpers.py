"""What several test modules need: the app's settings for one test, a sandbox to point at,
conversions to report, threads that race.

The fixtures built on these live in ``tests/conftest.py``.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from django.db import connection, connections
from django.urls import reverse
from django.utils import timezone

from django_nexmo_conversion import mark_converted
from django_nexmo_conversion.models import Conversion
from django_nexmo_conversion.sandbox import DEFAULT_API_KEY, DEFAULT_API_SECRET, Sandbox
from django_nexmo_conversion.sandbox.sender import WebhookSender

#: The handset the webhook builders' messages come from.
HANDSET = "447700900123"


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


def halted(code: int = 401, at: datetime | None = None, **fields: Any) -> Conversion:
    """What a run halted by an account or endpoint error leaves: the conversion pending with
    the answer, due since the halt, and its attempt (factory-made; needs factory-boy)."""
    from django_nexmo_conversion.testing.factories import (
        ConversionAttemptFactory,
        ConversionFactory,
    )
    from django_nexmo_conversion.transport.answers import outcome_of

    at = at or timezone.now()
    error = f"HTTP {code}: refused"
    conversion = ConversionFactory(
        last_status_code=code, last_error=error, next_attempt_at=at, **fields
    )
    ConversionAttemptFactory(
        conversion=conversion,
        outcome=outcome_of(code),
        http_status=code,
        error=error,
        started_at=at,
    )
    return conversion


def reply_params(
    text: str = "YES",
    *,
    msisdn: str = HANDSET,
    at: datetime | None = None,
    message_id: str | None = None,
    **fields: str,
) -> dict[str, str]:
    """An inbound SMS's webhook parameters, unsigned, as Vonage posts them; ``fields`` replace
    or add parameters by their wire names."""
    params = WebhookSender().inbound_params(msisdn=msisdn, text=text, at=at, message_id=message_id)
    return {**params, **fields}


def receipt_params(
    status: str = "delivered",
    *,
    message_id: str,
    err_code: str | None = None,
    at: datetime | None = None,
    **fields: str,
) -> dict[str, str]:
    """A delivery receipt's webhook parameters, unsigned; ``fields`` replace or add
    parameters by their wire names."""
    sender = WebhookSender()
    params = sender.receipt_params(message_id=message_id, status=status, err_code=err_code, at=at)
    return {**params, **fields}


def post_webhook(client: Any, kind: str, params: dict[str, str]) -> Any:
    """POST ``params`` to the app's ``inbound`` or ``receipt`` webhook URL."""
    return client.post(reverse(f"django_nexmo_conversion:{kind}"), params)


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


def one_at_a_time(items: Iterator[T]) -> Callable[[], T]:
    """The next of ``items`` per call, from any thread: how each of :func:`run_together`'s
    threads takes its own number, or its own share of the work."""
    lock = threading.Lock()

    def take() -> T:
        with lock:
            return next(items)

    return take


TestFunction = TypeVar("TestFunction", bound=Callable[..., None])


def concurrent_writers(test: TestFunction) -> TestFunction:
    """For a test whose threads write at once: on PostgreSQL and MariaDB, where writers really
    overlap and row locks decide, with committed rows (each thread has its own connection).
    SQLite has one writer at a time and answers a second thread's write in a deferred
    transaction with "database is locked" rather than waiting: not a set-up the app supports
    there, and each such test's sequential twin checks the same on it."""
    only_servers = pytest.mark.skipif(
        connection.vendor == "sqlite", reason="SQLite has one writer at a time"
    )
    return pytest.mark.django_db(transaction=True)(only_servers(test))


S = TypeVar("S", bound="LoopbackServer")


class LoopbackServer:
    """A threaded HTTP server on a free loopback port, serving ``handler``, as a context
    manager (started on enter, shut down on exit)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self: S) -> S:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class ForwardingProxy(LoopbackServer):
    """A plain HTTP forwarding proxy on loopback (no CONNECT: the sandbox is plain http), as a
    context manager. It forwards each absolute-URI request and keeps what it forwarded in
    ``forwarded`` (method and URL), so a test can tell the request went through it."""

    def __init__(self) -> None:
        self.forwarded: list[tuple[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                target = urlsplit(self.path)  # absolute: http://host:port/path
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
                try:
                    path = target.path + (f"?{target.query}" if target.query else "")
                    upstream.request(self.command, path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    content = answer.read()
                finally:
                    upstream.close()
                proxy.forwarded.append((self.command, self.path))
                self.send_response(answer.status, answer.reason)
                for name, value in answer.getheaders():
                    if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        super().__init__(Handler)


class FixedAnswerServer(LoopbackServer):
    """A loopback HTTP server answering every POST with one fixed answer (``status``, raw
    ``body`` bytes, ``content_type`` exactly as given, however odd), as a context manager;
    ``posts`` counts the requests. ``body`` may be a function of the request's form body."""

    def __init__(
        self, status: int, body: bytes | Callable[[bytes], bytes], content_type: str
    ) -> None:
        self.posts = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                request = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                server.posts += 1
                data = body(request) if callable(body) else body
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)


def static_checks(**options: Any) -> list[Any]:
    """``checks.run_checks(**options)`` without the database (``databases=[]``): on Django
    6.1 a JSONField's model check asks the database what it supports, which a test with no
    database fixture may not do. It passed only where an earlier test had asked first."""
    from django.core import checks

    return checks.run_checks(databases=[], **options)


def sent_history(
    numbers: list[str],
    *,
    sent_at: datetime,
    converted: int = 0,
    network: str = "",
    price: str | None = None,
    fold: bool = True,
    id_prefix: str = "H",
) -> list[Any]:
    """Sends to ``numbers`` at ``sent_at`` (recorded as ``record_sms_response`` records
    them, with ``network`` and ``price``), the first ``converted`` of them converted a minute
    later; folded into the counts unless ``fold=False`` (the send guard's history)."""
    from datetime import timedelta

    from django_nexmo_conversion import record_message
    from django_nexmo_conversion.models import SentMessage
    from django_nexmo_conversion.rollups import fold as fold_counts

    messages = []
    start = SentMessage.objects.count()
    for index, number in enumerate(numbers):
        message = record_message(
            f"{id_prefix}{start + index:08d}", recipient=number, sent_at=sent_at
        )
        if network or price is not None:
            SentMessage.objects.filter(pk=message.pk).update(network=network, price=price)
            message.network = network
            message.price = None if price is None else Decimal(price)
        messages.append(message)
    for message in messages[:converted]:
        mark_converted(message, timestamp=sent_at + timedelta(minutes=1))
    if fold:
        fold_counts()
    return messages
