"""A local HTTP server that behaves like the Nexmo (Vonage) Conversion API.

It checks what the real API checks (credentials or a request signature, ``message-id``,
``delivered``, ``timestamp``), answers with the documented status codes, and can add latency
or inject faults, either at random (seedable) or scripted response by response. Every request
is recorded so tests can assert on exactly what reached "Nexmo".

Standard library only, plus :mod:`django_nexmo_conversion.signing` (itself stdlib-only), so
importing it never pulls in Django.
"""

from __future__ import annotations

import collections
import contextlib
import hmac
import json
import logging
import os
import random
import re
import secrets
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..signing import LEGACY_METHOD, SIGNATURE_METHODS, verify

__all__ = [
    "CHANNELS",
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "FAULTS",
    "AccountSpec",
    "ReceivedRequest",
    "Sandbox",
    "ScriptItem",
]

logger = logging.getLogger(__name__)

DEFAULT_API_KEY = "sandbox-key"
DEFAULT_API_SECRET = "sandbox-secret"  # noqa: S105 - a well-known sandbox credential, not a secret

#: URL path -> channel; the only two routes the Conversion API has.
CHANNELS: Mapping[str, str] = {"/conversions/sms": "sms", "/conversions/voice": "voice"}

Fault: TypeAlias = Literal["drop", "hang"]
#: What :meth:`Sandbox.script` accepts: an HTTP status to answer with, or a fault.
ScriptItem: TypeAlias = int | Fault
FAULTS: tuple[Fault, ...] = ("drop", "hang")

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
# strptime alone accepts unpadded fields ("2024-1-2 3:4:5"); the API documents the padded form,
# so the sandbox insists on it to catch a client that formats timestamps loosely.
_TIMESTAMP_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
# Case-sensitive on purpose: str(True) == "True" is a classic client bug the sandbox should expose.
_DELIVERED_VALUES = frozenset({"true", "false", "0", "1"})
_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_SECRET_PARAMS = frozenset({"api_secret", "sig"})
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})
_MAX_BODY_BYTES = 1 << 20
_HANDSHAKE_TIMEOUT = 10.0
_ERROR_DOCS = "https://developer.nexmo.com/api-errors#"
# http.HTTPStatus has no 420 and calls 423 "Locked"; the Conversion API means "invalid parameters".
_REASONS = {420: "Invalid Parameters", 423: "Invalid Parameters"}


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True, repr=False)
class AccountSpec:
    """One sandbox account, keyed by its ``api_key`` in :attr:`Sandbox.accounts`."""

    api_secret: str = DEFAULT_API_SECRET
    signature_secret: str | None = None
    signature_method: str = LEGACY_METHOD
    conversions_enabled: bool = True

    def __post_init__(self) -> None:
        if self.signature_method not in SIGNATURE_METHODS:
            raise ValueError(
                f"Unknown signature method {self.signature_method!r}; "
                f"expected one of {', '.join(SIGNATURE_METHODS)}."
            )

    def __repr__(self) -> str:
        # Secrets are shown only as set / not set: reprs end up in logs and test failure output.
        signature = "'***'" if self.signature_secret else "None"
        return (
            f"AccountSpec(api_secret='***', signature_secret={signature}, "
            f"signature_method={self.signature_method!r}, "
            f"conversions_enabled={self.conversions_enabled!r})"
        )


def _coerce_account(value: AccountSpec | Mapping[str, Any]) -> AccountSpec:
    return value if isinstance(value, AccountSpec) else AccountSpec(**value)


def _check_rate(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, not {value!r}.")
    return value


def _check_script_item(item: object) -> ScriptItem:
    if isinstance(item, bool) or not isinstance(item, int | str):
        raise TypeError(f"Script items are HTTP statuses or one of {FAULTS}, not {item!r}.")
    if isinstance(item, int):
        if not 100 <= item <= 599:
            raise ValueError(f"{item} is not an HTTP status code.")
        return item
    for fault in FAULTS:
        if item == fault:
            return fault
    raise ValueError(f"Unknown fault {item!r}; expected one of {FAULTS}.")


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
        return {**_parse_params(self.query), **self.form}

    def __repr__(self) -> str:
        query = urlencode(_mask(_parse_params(self.query), _SECRET_PARAMS))
        return (
            f"ReceivedRequest(method={self.method!r}, path={self.path!r}, "
            f"channel={self.channel!r}, query={query!r}, "
            f"headers={_mask(self.headers, _SECRET_HEADERS)!r}, "
            f"form={_mask(self.form, _SECRET_PARAMS)!r}, status={self.status!r}, "
            f"received_at={self.received_at!r}, message_id={self.message_id!r}, "
            f"fault={self.fault!r}, connection={self.connection!r})"
        )


def _parse_params(text: str) -> dict[str, str]:
    # Repeated names: the last one wins, which is what most form parsers do.
    return dict(parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace"))


def _parse_form(body: bytes, content_type: str) -> dict[str, str]:
    # Only a form-encoded body counts, as the API documents; a client that posts JSON or
    # text/plain then fails authentication here instead of passing by accident.
    if content_type.split(";", 1)[0].strip().lower() != _FORM_CONTENT_TYPE:
        return {}
    return _parse_params(body.decode("utf-8", errors="replace"))


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class _Answer:
    """What to send back: a status with a body, or a fault (``status`` is then ``None``)."""

    status: int | None
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    fault: Fault | None = None


def _fault(kind: Fault) -> _Answer:
    return _Answer(status=None, fault=kind)


def _ok() -> _Answer:
    # The reference says the reply "is not in JSON or XML format": an empty 200 it is.
    return _Answer(status=200)


def _json_error(
    status: int, slug: str, title: str, detail: str, headers: tuple[tuple[str, str], ...] = ()
) -> _Answer:
    """A JSON error body shaped like common_errors.yml (type, title, detail, instance)."""
    document = {
        "type": _ERROR_DOCS + slug,
        "title": title,
        "detail": detail,
        "instance": secrets.token_hex(16),
    }
    body = json.dumps(document).encode("utf-8")
    return _Answer(status, body, "application/json", headers)


def _bad_credentials() -> _Answer:
    return _json_error(
        401,
        "unauthorized",
        "Invalid credentials supplied",
        "You did not provide correct credentials.",
    )


def _conversions_disabled() -> _Answer:
    # The real API has been seen answering 402 with an HTML page, so clients must not assume
    # every error body is JSON.
    body = (
        b"<!DOCTYPE html>\n<html><head><title>402 Payment Required</title></head>"
        b"<body><h1>Payment Required</h1>"
        b"<p>Conversion has not been enabled for your account.</p></body></html>\n"
    )
    return _Answer(402, body, "text/html; charset=utf-8")


def _invalid_params(status: int, detail: str) -> _Answer:
    return _json_error(status, "invalid-params", "Invalid parameters", detail)


def _throttled(retry_after: int) -> _Answer:
    return _json_error(
        429,
        "throttled",
        "Too Many Requests",
        "You have exceeded the rate limit; retry later.",
        (("Retry-After", str(retry_after)),),
    )


def _not_found(path: str) -> _Answer:
    return _json_error(404, "not-found", "Not Found", f"Path {path!r} does not exist.")


def _wrong_verb(method: str) -> _Answer:
    return _json_error(
        405,
        "wrong-verb",
        "Request method not allowed",
        f"Request method {method!r} not supported",
        (("Allow", "POST"),),
    )


def _generic_error(status: int) -> _Answer:
    phrase = _reason(status)
    slug = phrase.lower().replace(" ", "-") or str(status)
    return _json_error(status, slug, phrase, f"The sandbox answered {status} as scripted.")


def _reason(status: int) -> str:
    if status in _REASONS:
        return _REASONS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _answer_for_status(status: int, retry_after: int) -> _Answer:
    """A scripted status, answered the way the real API would answer it."""
    if status == 200:
        return _ok()
    if status == 401:
        return _bad_credentials()
    if status == 402:
        return _conversions_disabled()
    if status in (420, 422, 423):
        return _invalid_params(status, "Invalid parameters (scripted).")
    if status == 429:
        return _throttled(retry_after)
    return _generic_error(status)


# --------------------------------------------------------------------------- the API's rules


def _secrets_equal(given: str, expected: str) -> bool:
    # compare_digest refuses non-ASCII str, and a client may well send any bytes.
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _authenticate(params: Mapping[str, str], account: AccountSpec | None) -> _Answer | None:
    """Return the error answer for bad credentials, or ``None`` when they are good."""
    if account is None:
        return _bad_credentials()
    if "sig" in params:
        # A signed request proves knowledge of the signature secret; api_secret is not needed.
        secret = account.signature_secret
        if not secret or not verify(params, secret=secret, method=account.signature_method):
            return _bad_credentials()
    elif not _secrets_equal(params.get("api_secret", ""), account.api_secret):
        return _bad_credentials()
    if not account.conversions_enabled:
        return _conversions_disabled()
    return None


def _validate(params: Mapping[str, str]) -> _Answer | None:
    """Return the error answer for invalid conversion parameters, or ``None``."""
    if not params.get("message-id"):
        return _invalid_params(420, "Parameter 'message-id' is required.")
    if params.get("delivered") not in _DELIVERED_VALUES:
        return _invalid_params(423, "Parameter 'delivered' must be one of true, false, 0, 1.")
    timestamp = params.get("timestamp")
    if timestamp is not None and not _is_timestamp(timestamp):
        return _invalid_params(423, "Parameter 'timestamp' must look like 'yyyy-MM-dd HH:mm:ss'.")
    return None


def _is_timestamp(value: str) -> bool:
    if not _TIMESTAMP_SHAPE.fullmatch(value):
        return False
    try:
        datetime.strptime(value, TIMESTAMP_FORMAT)
    except ValueError:
        return False
    return True


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
            key: _coerce_account(spec) for key, spec in accounts.items()
        }
        self.latency = latency
        self.error_rate = _check_rate("error_rate", error_rate)
        self.throttle_rate = _check_rate("throttle_rate", throttle_rate)
        self.drop_rate = _check_rate("drop_rate", drop_rate)
        self.hang_rate = _check_rate("hang_rate", hang_rate)
        self.hang_seconds = hang_seconds
        self.retry_after = retry_after
        self.host = host
        self.port = port
        if keyfile is not None and certfile is None:
            raise ValueError("keyfile needs a certfile.")
        self.certfile = certfile
        self.keyfile = keyfile
        self.on_request = on_request

        self._random = random.Random(seed)
        self._lock = threading.Lock()  # guards the random generator and the scripts
        self._global_script: collections.deque[ScriptItem] = collections.deque()
        self._message_scripts: dict[str, collections.deque[ScriptItem]] = {}
        self._records: list[ReceivedRequest] = []
        self._records_changed = threading.Condition()
        self._stopping = threading.Event()
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
        self._stopping.clear()
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
        self._stopping.set()  # wakes handlers sleeping for latency or a hang
        server.shutdown()
        server.server_close()
        server.close_connections()  # kept-alive clients must not keep talking to a dead sandbox
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
        checked = [_check_script_item(item) for item in items]
        with self._lock:
            if message_id is None:
                self._global_script.extend(checked)
            else:
                self._message_scripts.setdefault(message_id, collections.deque()).extend(checked)

    def _next_scripted(self, message_id: str | None) -> ScriptItem | None:
        with self._lock:
            queue = self._message_scripts.get(message_id) if message_id else None
            if queue:
                return queue.popleft()
            if self._global_script:
                return self._global_script.popleft()
            return None

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
        with self._lock:
            self._global_script.clear()
            self._message_scripts.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` requests were received; ``False`` on timeout."""
        with self._records_changed:
            return self._records_changed.wait_for(lambda: len(self._records) >= count, timeout)

    def _record(self, request: ReceivedRequest) -> None:
        with self._records_changed:
            self._records.append(request)
            self._records_changed.notify_all()
        callback = self.on_request
        if callback is not None:
            callback(request)

    # ----------------------------------------------------------------- deciding an answer

    def _answer(self, method: str, path: str, params: Mapping[str, str]) -> _Answer:
        if path not in CHANNELS:
            return _not_found(path)
        if method != "POST":
            return _wrong_verb(method)
        scripted = self._next_scripted(params.get("message-id"))
        if scripted is not None:
            return self._scripted_answer(scripted)
        injected = self._random_fault()
        if injected is not None:
            return injected
        account = self.accounts.get(params.get("api_key", ""))
        return _authenticate(params, account) or _validate(params) or _ok()

    def _scripted_answer(self, item: ScriptItem) -> _Answer:
        if isinstance(item, int):
            return _answer_for_status(item, self.retry_after)
        return _fault(item)

    def _random_fault(self) -> _Answer | None:
        # One roll against cumulative edges, so each rate is the probability of its fault.
        with self._lock:
            roll = self._random.random()
            server_error = 503 if self._random.random() < 0.5 else 500
        edge = self.drop_rate
        if roll < edge:
            return _fault("drop")
        edge += self.hang_rate
        if roll < edge:
            return _fault("hang")
        edge += self.error_rate
        if roll < edge:
            return _generic_error(server_error)
        edge += self.throttle_rate
        if roll < edge:
            return _throttled(self.retry_after)
        return None

    def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the sandbox stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    @property
    def _is_stopping(self) -> bool:
        return self._stopping.is_set()


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

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # the client may have closed it already
                connection.shutdown(socket.SHUT_RDWR)

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

    def _handle(self) -> None:
        sandbox = self.server.sandbox
        received_at = time.monotonic()
        body = self._read_body()
        if body is None:
            return
        sandbox._pause(sandbox.latency)
        if sandbox._is_stopping:
            self.close_connection = True
            return
        target = urlsplit(self.path)
        form = _parse_form(body, self.headers.get("Content-Type", ""))
        params = {**_parse_params(target.query), **form}
        answer = sandbox._answer(self.command, target.path, params)
        sandbox._record(
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
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            detail = "Send a Content-Length; chunked bodies are not supported."
            self._respond_and_close(_json_error(411, "length-required", "Length Required", detail))
            return None
        raw_length = self.headers.get("Content-Length", "0")
        try:
            length = int(raw_length)
        except ValueError:
            length = -1
        if length < 0:
            detail = "Content-Length is not a number."
            self._respond_and_close(_json_error(400, "bad-request", "Bad Request", detail))
            return None
        if length > _MAX_BODY_BYTES:
            detail = "The body is too large."
            self._respond_and_close(_json_error(413, "too-large", "Content Too Large", detail))
            return None
        body = self.rfile.read(length)
        if len(body) < length:  # the client went away mid-body
            self.close_connection = True
            return None
        return body

    def _respond_and_close(self, answer: _Answer) -> None:
        self.close_connection = True
        self._respond(answer, extra_headers=(("Connection", "close"),))

    def _respond(self, answer: _Answer, extra_headers: Iterable[tuple[str, str]] = ()) -> None:
        if answer.status is None:
            if answer.fault == "hang":
                self.server.sandbox._pause(self.server.sandbox.hang_seconds)
            self.close_connection = True  # for "drop" and after a hang: no answer at all
            return
        self.send_response(answer.status, _reason(answer.status))
        if answer.content_type:
            self.send_header("Content-Type", answer.content_type)
        # Always a Content-Length, even for an empty body, or keep-alive cannot work.
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in (*answer.headers, *extra_headers):
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)
