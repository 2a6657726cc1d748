"""What travels between the app and Vonage: a report, the answer to it, the form fields,
credentials, and Vonage's own formats (timestamps, phone numbers, receipt statuses).

Each format is defined here once. Standard library only (plus the stdlib-only ``signing`` and
``exceptions``), so the sandbox, the client and the webhooks share it without Django.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..exceptions import ConversionInputError
from .signing import LEGACY_METHOD, sign

#: Vonage's timestamps: the Conversion API's ``timestamp`` and the webhooks'
#: ``message-timestamp``, always UTC.
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
TIMESTAMP_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
#: The earliest moment any timestamp of ours may name. Nexmo started in 2010; a date before
#: 2000 is a bug (an unset clock, a zero epoch, year 1) and would overflow arithmetic and
#: time-zone conversions downstream, so it is refused where it comes in.
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=timezone.utc)
#: The latest a parsed timestamp may name: far enough for any clock skew, near enough that
#: adding a day or converting to any time zone never overflows ``datetime``.
LATEST_TIMESTAMP = datetime(9000, 1, 1, tzinfo=timezone.utc)
#: Unix seconds as the webhooks' ``timestamp`` parameter carries them.
UNIX_TIME_SHAPE = re.compile(r"[0-9]{1,12}")

#: A delivery receipt that says the message never reached the handset.
FAILED_STATUSES = frozenset({"failed", "expired", "rejected"})
#: The last word on a message; ``accepted``, ``buffered`` and ``unknown`` may still change.
FINAL_STATUSES = FAILED_STATUSES | {"delivered"}
#: The receipt statuses Vonage documents. Another well-formed word is recorded as it comes, so
#: a status Vonage adds later is not refused (and retried for a day).
RECEIPT_STATUSES = FINAL_STATUSES | {"accepted", "buffered", "unknown"}

#: How ``API_SECRET`` travels (``AUTH``): in the form body, as the API reference shows, or in
#: an ``Authorization: Basic`` header, as Vonage's current SDKs send it.
AUTH_MODES = ("params", "basic")

#: How old (or how far ahead) a conversion's time may be and still be signed as it is. Nexmo's
#: signing scheme reads ``timestamp`` as a UNIX time against replays, while the Conversion API
#: reads it as the conversion time (docs, "Signed requests and the timestamp collision").
#: Inside this window both readings are near enough the same instant; beyond it the request
#: is signed with the current UNIX time instead, as Vonage's Ruby SDK does for every signed
#: conversion. Three minutes sits inside the five-minute window Vonage documents for signed
#: webhooks, leaving room for clock skew.
SIGNED_TIMESTAMP_MAX_AGE = 180.0

#: What people put between a phone number's digits.
_NUMBER_NOISE = re.compile(r"[\s().-]")


class Secret(str):
    """A secret string: equal to and used as the plain one, but its repr hides it.

    Error reporters that dump a frame's locals (Django's technical 500 page with ``DEBUG``,
    Sentry, ``traceback`` with locals) show values by repr, so a secret held in a local, a
    dict of form fields or an argument stays hidden in every frame it passes through, even
    where ``sensitive_variables`` does not reach (it only acts when ``DEBUG`` is off, and only
    in the frames it decorates).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')"


def secret(value: str | None) -> Secret | None:
    """``value`` as a :class:`Secret` (``None`` and ``""`` stay ``None``)."""
    return Secret(value) if value else None


@dataclass(frozen=True)
class Account:
    """Credentials for one API key. The repr never shows a secret, and the secrets are
    :class:`Secret` strings, so nothing derived by reference shows them either."""

    api_key: str
    api_secret: str | None = field(default=None, repr=False)
    signature_secret: str | None = field(default=None, repr=False)
    signature_method: str = LEGACY_METHOD
    #: ``basic`` (the default) or ``params`` (see ``AUTH_MODES``); ignored for signed requests.
    auth: str = "basic"

    def __post_init__(self) -> None:
        # Frozen: set through object. Wrapped here so every Account, however built, holds
        # its secrets as Secret.
        object.__setattr__(self, "api_secret", secret(self.api_secret))
        object.__setattr__(self, "signature_secret", secret(self.signature_secret))

    @property
    def signed(self) -> bool:
        return bool(self.signature_secret)

    def __repr__(self) -> str:
        if self.signed:
            auth = f"signed ({self.signature_method})"
        else:
            auth = "basic auth" if self.auth == "basic" else "key+secret"
        return f"Account(api_key={self.api_key!r}, {auth})"


@dataclass(frozen=True)
class Report:
    """One conversion as Nexmo receives it."""

    channel: str
    message_id: str
    delivered: bool
    timestamp: datetime


@dataclass(frozen=True)
class Answer:
    """The outcome of one attempt, free of secrets."""

    outcome: str
    status_code: int | None = None
    error: str = ""
    #: Seconds Nexmo asked us to wait (``Retry-After``), when it said.
    retry_after: float | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    duration: float = 0.0


def format_timestamp(value: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC; a naive datetime is ambiguous and refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConversionInputError(
            "timestamp must be timezone-aware (a naive datetime's zone is unknown); "
            "use django.utils.timezone.now() or attach a tzinfo."
        )
    return value.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)


def in_range(value: datetime) -> bool:
    """Whether the aware ``value`` lies between the earliest and latest timestamps we accept."""
    return EARLIEST_TIMESTAMP <= value <= LATEST_TIMESTAMP


def parse_timestamp(text: str) -> datetime:
    """An aware UTC datetime from Vonage's ``YYYY-MM-DD HH:MM:SS``; ``ValueError`` otherwise
    (a date that does not exist, or one outside ``EARLIEST_TIMESTAMP``..``LATEST_TIMESTAMP``)."""
    if not TIMESTAMP_SHAPE.fullmatch(text):
        raise ValueError(f"not a Vonage timestamp: {text!r}")
    value = datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
    if not in_range(value):
        raise ValueError(f"timestamp out of range: {text!r}")
    return value


def parse_unix_time(text: str) -> datetime:
    """An aware UTC datetime from unix seconds (the webhooks' ``timestamp``); ``ValueError``
    for anything else, or a moment outside ``EARLIEST_TIMESTAMP``..``LATEST_TIMESTAMP``."""
    if not UNIX_TIME_SHAPE.fullmatch(text):
        raise ValueError(f"not unix seconds: {text!r}")
    # Checked as a number first: datetime.fromtimestamp overflows on 12-digit values.
    seconds = int(text)
    if not EARLIEST_TIMESTAMP.timestamp() <= seconds <= LATEST_TIMESTAMP.timestamp():
        raise ValueError(f"unix time out of range: {text!r}")
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def msisdn(number: str) -> str:
    """A phone number as Vonage writes it (``to``, ``msisdn``): ``"+44 7700-900 123"`` ->
    ``"447700900123"``. No validation: see ``validation.clean_recipient``."""
    return _NUMBER_NOISE.sub("", number).removeprefix("+")


def signs_conversion_time(report: Report, now: datetime | None = None) -> bool:
    """Whether a signed request for ``report`` carries its conversion time as ``timestamp``:
    only while that time is within ``SIGNED_TIMESTAMP_MAX_AGE`` of ``now``."""
    now = now or datetime.now(timezone.utc)
    return abs((now - report.timestamp).total_seconds()) <= SIGNED_TIMESTAMP_MAX_AGE


def build_params(
    report: Report, account: Account, *, now: datetime | None = None
) -> dict[str, str]:
    """The form fields for ``report``, with the account's credentials or signature.

    Under ``AUTH="basic"`` (unsigned) neither ``api_key`` nor ``api_secret`` is in the form:
    they travel in the header :func:`authorization` gives.
    """
    params = {
        "api_key": account.api_key,
        "message-id": report.message_id,
        "delivered": "true" if report.delivered else "false",
        "timestamp": format_timestamp(report.timestamp),
    }
    if account.signature_secret:
        if not signs_conversion_time(report, now):
            # The timestamp collision: an old conversion time would read as a replay to a
            # signature check with a freshness window (401, and the account halts on every
            # run). Vonage's Ruby SDK signs every conversion with the current UNIX time; an
            # old conversion loses its exact time, but it can never be stuck.
            moment = now or datetime.now(timezone.utc)
            params["timestamp"] = str(int(moment.timestamp()))
        # Signed requests never carry the secret itself.
        params["sig"] = sign(
            params, secret=account.signature_secret, method=account.signature_method
        )
    elif account.auth == "basic":
        del params["api_key"]
    else:
        params["api_secret"] = account.api_secret or ""
    return params


def authorization(account: Account) -> str | None:
    """The ``Authorization`` header for ``account``: ``Basic base64(key:secret)`` under
    ``AUTH="basic"`` for unsigned requests, else ``None`` (credentials are in the form)."""
    if account.signature_secret or account.auth != "basic":
        return None
    pair = f"{account.api_key}:{account.api_secret or ''}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def endpoint(base_url: str, channel: str) -> str:
    return f"{base_url.rstrip('/')}/conversions/{channel}"
