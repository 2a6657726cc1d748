"""What the Conversion API accepts and how it answers, with no HTTP server code.

Credentials and signatures, parameter checks, the documented status codes and error bodies,
scripted answers and injected faults. The request handler in :mod:`.server` reads a request,
asks :meth:`Rules.answer` and sends the :class:`Answer` it gets back. Standard library only,
plus :mod:`django_nexmo_conversion.transport.signing` (itself stdlib-only).
"""

from __future__ import annotations

import base64
import binascii
import collections
import hmac
import random
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol, TypeAlias
from urllib.parse import parse_qsl

from ..transport.signing import LEGACY_METHOD, SIGNATURE_METHODS, verify
from ..transport.wire import TIMESTAMP_FORMAT, TIMESTAMP_SHAPE
from .answers import (
    JETTY_402_REASON,
    Answer,
    Fault,
    answer_for_status,
    bad_credentials,
    conversions_disabled,
    generic_error,
    invalid_params,
    jetty_page,
    json_error,
    not_found,
    ok,
    throttled,
    wrong_verb,
)

__all__ = [
    "CHANNELS",
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "FAULTS",
    "TIMESTAMP_FORMAT",
    "AccountSpec",
    "Answer",
    "Fault",
    "Rules",
    "ScriptItem",
    "Settings",
    "basic_credentials",
    "body_length",
    "check_rate",
    "coerce_account",
    "parse_form",
    "parse_params",
    "signed_time",
]

DEFAULT_API_KEY = "sandbox-key"
DEFAULT_API_SECRET = "sandbox-secret"  # noqa: S105 - a well-known sandbox credential, not a secret

#: URL path -> channel; the only two routes the Conversion API has.
CHANNELS: Mapping[str, str] = {"/conversions/sms": "sms", "/conversions/voice": "voice"}

#: What :meth:`Rules.script` accepts: an HTTP status to answer with, or a fault.
ScriptItem: TypeAlias = int | Fault
FAULTS: tuple[Fault, ...] = ("drop", "hang")

# Compared case-insensitively: both Python SDKs send str(True) == "True", and the API takes it.
_DELIVERED_VALUES = frozenset({"true", "false", "0", "1"})
# Nexmo's signing scheme reads ``timestamp`` as a UNIX time (Vonage's Ruby SDK sends one).
_UNIX_TIME = re.compile(r"\d{1,12}")
_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_MAX_BODY_BYTES = 1 << 20


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


def coerce_account(value: AccountSpec | Mapping[str, Any]) -> AccountSpec:
    """An :class:`AccountSpec` as given, or built from a mapping of its fields."""
    return value if isinstance(value, AccountSpec) else AccountSpec(**value)


def check_rate(name: str, value: float) -> float:
    """``value`` if it is a probability, else :class:`ValueError` naming the setting."""
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


class Settings(Protocol):
    """The knobs :class:`Rules` reads on every request (a :class:`Sandbox` has them all).

    Read at each request rather than copied, so changing them while the server runs takes
    effect at once.
    """

    @property
    def accounts(self) -> Mapping[str, AccountSpec]: ...

    @property
    def error_rate(self) -> float: ...

    @property
    def throttle_rate(self) -> float: ...

    @property
    def drop_rate(self) -> float: ...

    @property
    def hang_rate(self) -> float: ...

    @property
    def retry_after(self) -> int: ...

    @property
    def signature_max_age(self) -> float | None: ...

    @property
    def key_statuses(self) -> Mapping[str, int]: ...

    @property
    def html_402(self) -> bool: ...


# --------------------------------------------------------------------------- reading requests


def parse_params(text: str) -> dict[str, str]:
    """Form-encoded ``text`` (a query string or a body) as a dict."""
    # Repeated names: the last one wins, which is what most form parsers do.
    return dict(parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace"))


def parse_form(body: bytes, content_type: str) -> dict[str, str]:
    """The body's parameters, or none when the body is not form-encoded."""
    # Only a form-encoded body counts, as the API documents; a client that posts JSON or
    # text/plain then fails authentication here instead of passing by accident.
    if content_type.split(";", 1)[0].strip().lower() != _FORM_CONTENT_TYPE:
        return {}
    return parse_params(body.decode("utf-8", errors="replace"))


def body_length(transfer_encoding: str, content_length: str) -> int | Answer:
    """How many body bytes to read, or the answer refusing the request's framing."""
    if "chunked" in transfer_encoding.lower():
        detail = "Send a Content-Length; chunked bodies are not supported."
        return json_error(411, "length-required", "Length Required", detail)
    try:
        length = int(content_length)
    except ValueError:
        length = -1
    if length < 0:
        return json_error(400, "bad-request", "Bad Request", "Content-Length is not a number.")
    if length > _MAX_BODY_BYTES:
        return json_error(413, "too-large", "Content Too Large", "The body is too large.")
    return length


# --------------------------------------------------------------------------- the API's checks


def _secrets_equal(given: str, expected: str) -> bool:
    # compare_digest refuses non-ASCII str, and a client may well send any bytes.
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def basic_credentials(authorization: str) -> tuple[str, str] | None:
    """``(api_key, api_secret)`` from an ``Authorization: Basic`` header; None if there is none
    or it does not decode."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        pair = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, colon, secret = pair.partition(":")
    return (key, secret) if colon else None


def signed_time(value: str) -> float | None:
    """The moment a signed request's ``timestamp`` names: a UNIX time (the signing scheme's
    meaning) or, failing that, a Conversion API time in UTC. None when it is neither."""
    if _UNIX_TIME.fullmatch(value):
        return float(value)
    if _is_timestamp(value):
        moment = datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
        return moment.timestamp()
    return None


def _authenticate(
    params: Mapping[str, str],
    account: AccountSpec | None,
    basic: tuple[str, str] | None,
    max_age: float | None,
) -> Answer | None:
    """Return the error answer for bad credentials, or ``None`` when they are good."""
    if account is None:
        return bad_credentials()
    if basic is not None:
        # Authorization: Basic, as Vonage's current SDKs send it: the header is the credential.
        if not _secrets_equal(basic[1], account.api_secret):
            return bad_credentials()
    elif "sig" in params:
        # A signed request proves knowledge of the signature secret; api_secret is not needed.
        secret = account.signature_secret
        if not secret or not verify(params, secret=secret, method=account.signature_method):
            return bad_credentials()
        if max_age is not None:
            # The replay check, switched on to rehearse the timestamp collision: the signing
            # scheme's ``timestamp`` must be near now, whatever the Conversion API means by it.
            moment = signed_time(params.get("timestamp", ""))
            if moment is None or abs(time.time() - moment) > max_age:
                return bad_credentials()
    elif not _secrets_equal(params.get("api_secret", ""), account.api_secret):
        return bad_credentials()
    if not account.conversions_enabled:
        return conversions_disabled()
    return None


def _validate(params: Mapping[str, str]) -> Answer | None:
    """Return the error answer for invalid conversion parameters, or ``None``."""
    if not params.get("message-id"):
        return invalid_params(420, "Parameter 'message-id' is required.")
    if params.get("delivered", "").lower() not in _DELIVERED_VALUES:
        return invalid_params(423, "Parameter 'delivered' must be one of true, false, 0, 1.")
    timestamp = params.get("timestamp")
    # In a signed request a UNIX time is the signing scheme's timestamp, which the gateway
    # takes for itself (Vonage's Ruby SDK signs every conversion that way).
    signing_time = "sig" in params and timestamp is not None and _UNIX_TIME.fullmatch(timestamp)
    if timestamp is not None and not signing_time and not _is_timestamp(timestamp):
        return invalid_params(423, "Parameter 'timestamp' must look like 'yyyy-MM-dd HH:mm:ss'.")
    return None


def _is_timestamp(value: str) -> bool:
    # strptime alone accepts unpadded fields ("2024-1-2 3:4:5"); the API documents the padded form,
    # so the sandbox insists on it to catch a client that formats timestamps loosely.
    if not TIMESTAMP_SHAPE.fullmatch(value):
        return False
    try:
        datetime.strptime(value, TIMESTAMP_FORMAT)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- deciding an answer


class Rules:
    """Decides the answer to each request: scripted answers first, then injected faults,
    then the real API's checks. Safe to call from many handler threads at once."""

    def __init__(self, settings: Settings, seed: int | None = None) -> None:
        self.settings = settings
        self._random = random.Random(seed)
        self._lock = threading.Lock()  # guards the random generator and the scripts
        self._global_script: collections.deque[ScriptItem] = collections.deque()
        self._message_scripts: dict[str, collections.deque[ScriptItem]] = {}

    def script(self, *items: ScriptItem, message_id: str | None = None) -> None:
        """Queue the next answers (see :meth:`Sandbox.script`); checks every item first."""
        checked = [_check_script_item(item) for item in items]
        with self._lock:
            if message_id is None:
                self._global_script.extend(checked)
            else:
                self._message_scripts.setdefault(message_id, collections.deque()).extend(checked)

    def clear_scripts(self) -> None:
        """Forget every scripted answer not used yet."""
        with self._lock:
            self._global_script.clear()
            self._message_scripts.clear()

    def answer(
        self, method: str, path: str, params: Mapping[str, str], authorization: str = ""
    ) -> Answer:
        """The answer to ``method path`` with ``params`` (query and form merged) and the
        ``Authorization`` header, if any."""
        answer = self._decide(method, path, params, authorization)
        if answer.status == 402 and self.settings.html_402:
            return jetty_page(402, JETTY_402_REASON, path)
        return answer

    def _decide(
        self, method: str, path: str, params: Mapping[str, str], authorization: str
    ) -> Answer:
        if path not in CHANNELS:
            return not_found(path)
        if method != "POST":
            return wrong_verb(method)
        scripted = self._next_scripted(params.get("message-id"))
        if scripted is not None:
            return self._scripted_answer(scripted)
        basic = basic_credentials(authorization)
        api_key = basic[0] if basic is not None else params.get("api_key", "")
        forced = self.settings.key_statuses.get(api_key)
        if forced is not None:
            # The per-key switch: one account answered as told (a 401 for one key only).
            return answer_for_status(forced, self.settings.retry_after)
        injected = self._random_fault()
        if injected is not None:
            return injected
        account = self.settings.accounts.get(api_key)
        max_age = self.settings.signature_max_age
        return _authenticate(params, account, basic, max_age) or _validate(params) or ok()

    def _next_scripted(self, message_id: str | None) -> ScriptItem | None:
        with self._lock:
            queue = self._message_scripts.get(message_id) if message_id else None
            if queue:
                return queue.popleft()
            if self._global_script:
                return self._global_script.popleft()
            return None

    def _scripted_answer(self, item: ScriptItem) -> Answer:
        if isinstance(item, int):
            return answer_for_status(item, self.settings.retry_after)
        return Answer(status=None, fault=item)

    def _random_fault(self) -> Answer | None:
        settings = self.settings
        # One roll against cumulative edges, so each rate is the probability of its fault.
        with self._lock:
            roll = self._random.random()
            server_error = 503 if self._random.random() < 0.5 else 500
        edge = settings.drop_rate
        if roll < edge:
            return Answer(status=None, fault="drop")
        edge += settings.hang_rate
        if roll < edge:
            return Answer(status=None, fault="hang")
        edge += settings.error_rate
        if roll < edge:
            return generic_error(server_error)
        edge += settings.throttle_rate
        if roll < edge:
            return throttled(settings.retry_after)
        return None
