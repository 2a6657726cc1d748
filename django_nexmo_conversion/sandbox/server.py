"""The sandbox's HTTP side: :class:`Sandbox` (start, stop, URLs, the record of requests) and
the request handler, which reads a request, asks :class:`~.rules.Rules` for the answer and
sends it. What the API accepts and answers is decided in :mod:`.rules`, not here.

Standard library only, so importing it never pulls in Django.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeAlias
from urllib.parse import urlencode, urlsplit

from .rules import (
    CHANNELS,
    DEFAULT_API_KEY,
    AccountSpec,
    Answer,
    Fault,
    Rules,
    ScriptItem,
    basic_credentials,
    body_length,
    check_rate,
    coerce_account,
    parse_form,
    parse_params,
)

__all__ = ["ReceivedRequest", "Sandbox"]

logger = logging.getLogger(__name__)

_SECRET_PARAMS = frozenset({"api_secret", "sig"})
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})
_HANDSHAKE_TIMEOUT = 10.0


# --------------------------------------------------------------------------- records


def _mask(params: Mapping[str, str], names: frozenset[str]) -> dict[str, str]:
    return {k: ("***" if k.lower() in names else v) for k, v in params.items()}


@dataclass(frozen=True, repr=False)
class ReceivedRequest:
    """One request the sandbox received, as it arrived, and how it was answered.

    ``headers`` has lower-cased names (clients differ in header casing). ``form`` holds the
    body parameters only; ``query`` is the raw query string, kept so tests can assert that
    nothing (least of all a credential) travelled in the URL. ``status`` is ``None`` when the
    sandbox dropped the connection or hung instead of answering; ``fault`` then says which.
    ``connection`` numbers the TCP connections the server accepted, so requests that share a
    value were sent over one kept-alive connection.
    """

    method: str
    path: str
    channel: str | None
    query: str
    headers: dict[str, str]
    form: dict[str, str]
    status: int | None
    received_at: float
    message_id: str | None
    fault: Fault | None = None
    connection: int = 0

    @property
    def params(self) -> dict[str, str]:
        """Query and body parameters merged as the sandbox read them (the body wins)."""
        return {**parse_params(self.query), **self.form}

    @property
    def api_key(self) -> str | None:
        """The API key the request came with: from ``Authorization: Basic`` (the default) or
        from the body's ``api_key`` (``AUTH="params"`` and signed requests)."""
        basic = basic_credentials(self.headers.get("authorization", ""))
        return basic[0] if basic is not None else self.params.get("api_key")

    def __repr__(self) -> str:
        query = urlencode(_mask(parse_params(self.query), _SECRET_PARAMS))
        return (
            f"ReceivedRequest(method={self.method!r}, path={self.path!r}, "
            f"channel={self.channel!r}, query={query!r}, "
            f"headers={_mask(self.headers, _SECRET_HEADERS)!r}, "
            f"form={_mask(self.form, _SECRET_PARAMS)!r}, status={self.status!r}, "
            f"received_at={self.received_at!r}, message_id={self.message_id!r}, "
            f"fault={self.fault!r}, connection={self.connection!r})"
        )


# --------------------------------------------------------------------------- the sandbox


class Sandbox:
    """A local Conversion API. Use as a context manager or call :meth:`start` / :meth:`stop`.

    Every keyword argument is also a public attribute that may be changed while the server
    runs (``sandbox.latency = 0.05``, ``sandbox.accounts["k"] = AccountSpec(...)``); each
    request reads the current values.
    """

    def __init__(
        self,
        *,
        accounts: Mapping[str, AccountSpec | Mapping[str, Any]] | None = None,
        latency: float = 0.0,
        error_rate: float = 0.0,
        throttle_rate: float = 0.0,
        drop_rate: float = 0.0,
        hang_rate: float = 0.0,
        hang_seconds: float = 30.0,
        retry_after: int = 1,
        signature_max_age: float | None = None,
        key_statuses: Mapping[str, int] | None = None,
        html_402: bool = False,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        on_request: Callable[[ReceivedRequest], None] | None = None,
    ) -> None:
        if accounts is None:
            accounts = {DEFAULT_API_KEY: AccountSpec()}
        self.accounts: dict[str, AccountSpec] = {
            key: coerce_account(spec) for key, spec in accounts.items()
        }
        self.latency = latency
        self.error_rate = check_rate("error_rate", error_rate)
        self.throttle_rate = check_rate("throttle_rate", throttle_rate)
        self.drop_rate = check_rate("drop_rate", drop_rate)
        self.hang_rate = check_rate("hang_rate", hang_rate)
        self.hang_seconds = hang_seconds
        self.retry_after = retry_after
        #: Seconds a signed request's ``timestamp`` may be from now (None: not checked), to
        #: rehearse the timestamp collision (docs, "Signed requests and the timestamp
        #: collision").
        self.signature_max_age = signature_max_age
        #: API key -> the status every request with that key is answered (a 401 for one
        #: account only); ``sandbox.key_statuses["k"] = 401`` works while it runs.
        self.key_statuses: dict[str, int] = dict(key_statuses or {})
        #: Answer 402 with Jetty's HTML page "Bad Account Credentials" (as the real API has
        #: been seen to) instead of the OpenAPI file's JSON body.
        self.html_402 = html_402
        self.host = host
        self.port = port
        if keyfile is not None and certfile is None:
            raise ValueError("keyfile needs a certfile.")
        self.certfile = certfile
        self.keyfile = keyfile
        self.on_request = on_request
        #: Decides each answer; reads the attributes above on every request.
        self.rules = Rules(self, seed)

        self._records: list[ReceivedRequest] = []
        self._records_changed = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "stopped"
        return f"<Sandbox {where} accounts={sorted(self.accounts)!r}>"

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Sandbox:
        """Bind and serve in a background thread; returns ``self`` for chaining."""
        if self._server is not None:
            raise RuntimeError("The sandbox is already running.")
        server = _Server((self.host, self.port), self, self._ssl_context())
        thread = threading.Thread(
            target=server.serve_forever,
            # serve_forever only notices shutdown() between polls: a short interval keeps stop()
            # (and so every test using a sandbox) fast, for ~100 idle wake-ups a second.
            kwargs={"poll_interval": 0.01},
            name=f"nexmo-conversion-sandbox:{server.server_address[1]}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every open connection, hanging ones included."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.stop()
        if thread is not None:
            thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        """``scheme://host:port`` of the running server, the value for ``BASE_URL``."""
        if self._server is None:
            raise RuntimeError("The sandbox is not running; call start() first.")
        host, port = self._server.server_address[:2]
        host = str(host)
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if isinstance(self._server.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://{host}:{port}"

    def url(self, channel: str = "sms") -> str:
        """The full endpoint URL for ``channel`` (``"sms"`` or ``"voice"``)."""
        if channel not in CHANNELS.values():
            raise ValueError(f"Unknown channel {channel!r}.")
        return f"{self.base_url}/conversions/{channel}"

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.certfile is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certfile, self.keyfile)
        return context

    # ----------------------------------------------------------------- scripting

    def script(self, *items: ScriptItem, message_id: str | None = None) -> None:
        """Queue the next answers: HTTP statuses, ``"drop"`` or ``"hang"``, used in order.

        With ``message_id`` they apply only to requests for that message id (and take
        precedence); without, to the next conversion requests whatever their message id.
        Scripted answers override everything else, credentials and parameters included.
        """
        self.rules.script(*items, message_id=message_id)

    # ----------------------------------------------------------------- records

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._records_changed:
            return list(self._records)

    def reported(self) -> list[ReceivedRequest]:
        """The requests that were answered 200, i.e. the conversions "Nexmo" accepted."""
        return [request for request in self.requests if request.status == 200]

    def clear(self) -> None:
        """Forget the recorded requests and any scripted answers not used yet."""
        with self._records_changed:
            self._records.clear()
        self.rules.clear_scripts()

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` requests were received; ``False`` on timeout."""
        with self._records_changed:
            return self._records_changed.wait_for(lambda: len(self._records) >= count, timeout)

    def record(self, request: ReceivedRequest) -> None:
        """Add ``request`` to :attr:`requests` and pass it to ``on_request``.

        The request handler calls this once per request, just before it answers.
        """
        with self._records_changed:
            self._records.append(request)
            self._records_changed.notify_all()
        callback = self.on_request
        if callback is not None:
            callback(request)


# --------------------------------------------------------------------------- HTTP plumbing


_Request: TypeAlias = socket.socket | tuple[bytes, socket.socket]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Do not join handler threads on close: a hanging handler must not hold up stop().
    block_on_close = False
    # The default backlog of 5 makes the kernel drop SYNs under benchmark concurrency, which
    # clients then see as one-second connect stalls.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        sandbox: Sandbox,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.sandbox = sandbox
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._connection_count = 0
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        if ssl_context is not None:
            # The handshake happens in the handler thread (see _Handler.setup), so a slow or
            # broken client cannot stall the accept loop.
            self.socket = ssl_context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) that can take seconds in
        # some sandboxes and CI; the name is unused here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: _Request, client_address: Any) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: _Request) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.discard(request)
        super().shutdown_request(request)

    def next_connection_number(self) -> int:
        with self._connections_lock:
            self._connection_count += 1
            return self._connection_count

    def stop(self) -> None:
        """Wake sleeping handlers, stop serving, and drop every open connection."""
        self._stopping.set()  # wakes handlers sleeping for latency or a hang
        self.shutdown()
        self.server_close()
        # Kept-alive clients must not keep talking to a dead sandbox.
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # the client may have closed it already
                connection.shutdown(socket.SHUT_RDWR)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the sandbox stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def handle_error(self, request: _Request, client_address: Any) -> None:
        # Clients that vanish, time out or fail the TLS handshake are routine here (the sandbox
        # provokes them on purpose); anything else is a sandbox bug worth a traceback.
        if isinstance(sys.exc_info()[1], OSError):
            return
        logger.exception("Unexpected error in the Conversion API sandbox")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can reuse connections
    # Headers and body go out in two writes; with Nagle on, the second waits for the client's
    # delayed ACK and every answer with a body takes ~40 ms.
    disable_nagle_algorithm = True
    server_version = "NexmoConversionSandbox/1.0"

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(_HANDSHAKE_TIMEOUT)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()
        self.connection_number = self.server.next_connection_number()

    def version_string(self) -> str:
        return self.server_version  # without the Python version the default appends

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default access log; the CLI prints its own line without secrets."""

    def do_POST(self) -> None:
        self._handle()

    do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_TRACE = do_POST

    def __getattr__(self, name: str) -> Any:
        # Any other method (PROPFIND, BREW...) is answered like the ones above, 405 with JSON,
        # rather than http.server's 501 HTML page, which the real API never sends.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def _handle(self) -> None:
        sandbox = self.server.sandbox
        received_at = time.monotonic()
        body = self._read_body()
        if body is None:
            return
        self.server.pause(sandbox.latency)
        if self.server.stopping:
            self.close_connection = True
            return
        target = urlsplit(self.path)
        form = parse_form(body, self.headers.get("Content-Type", ""))
        params = {**parse_params(target.query), **form}
        authorization = self.headers.get("Authorization", "")
        answer = sandbox.rules.answer(self.command, target.path, params, authorization)
        sandbox.record(
            ReceivedRequest(
                method=self.command,
                path=target.path,
                channel=CHANNELS.get(target.path),
                query=target.query,
                headers={name.lower(): value for name, value in self.headers.items()},
                form=form,
                status=answer.status,
                received_at=received_at,
                message_id=params.get("message-id"),
                fault=answer.fault,
                connection=self.connection_number,
            )
        )
        self._respond(answer)

    def _read_body(self) -> bytes | None:
        """Read the whole body (keep-alive needs it consumed); ``None`` if already answered."""
        length = body_length(
            self.headers.get("Transfer-Encoding", ""), self.headers.get("Content-Length", "0")
        )
        if isinstance(length, Answer):
            self.close_connection = True
            self._respond(length, extra_headers=(("Connection", "close"),))
            return None
        body = self.rfile.read(length)
        if len(body) < length:  # the client went away mid-body
            self.close_connection = True
            return None
        return body

    def _respond(self, answer: Answer, extra_headers: Iterable[tuple[str, str]] = ()) -> None:
        if answer.status is None:
            if answer.fault == "hang":
                self.server.pause(self.server.sandbox.hang_seconds)
            self.close_connection = True  # for "drop" and after a hang: no answer at all
            return
        self.send_response(answer.status, answer.reason)
        if answer.content_type:
            self.send_header("Content-Type", answer.content_type)
        # Always a Content-Length, even for an empty body, or keep-alive cannot work.
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in (*answer.headers, *extra_headers):
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)
