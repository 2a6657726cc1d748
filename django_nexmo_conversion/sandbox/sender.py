"""Play Vonage's part the other way round: post sample SMS API webhooks to a URL.

An inbound message (someone replying "YES") or a delivery receipt, in any of the three shapes
Vonage's dashboard offers (``GET``, ``POST`` form, ``POST-JSON``), signed as Vonage signs them
when given a signature secret (``timestamp`` + ``nonce`` + ``sig`` over every parameter, the
same :mod:`~django_nexmo_conversion.transport.signing` code the app verifies with)::

    sender = WebhookSender(signature_secret="...", signature_method="sha256")
    posted = sender.inbound("http://127.0.0.1:8000/nexmo/webhooks/inbound/",
                            msisdn="447700900001", text="YES")
    assert posted.status == 200

``WebhookSender.for_sandbox(sandbox)`` signs with the account a :class:`Sandbox` holds, and
``python -m django_nexmo_conversion.sandbox post-inbound --url ... --from ... --text YES``
(or ``post-receipt``, see :mod:`.cli`) does it from a shell. Standard library only, like the
sandbox.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from ..transport.signing import LEGACY_METHOD, SIGNATURE_METHODS, sign
from ..transport.wire import TIMESTAMP_FORMAT
from .rules import DEFAULT_API_KEY

if TYPE_CHECKING:
    from .server import Sandbox

__all__ = [
    "DEFAULT_HANDSET",
    "DEFAULT_VIRTUAL_NUMBER",
    "RECEIPT_STATUSES",
    "WEBHOOK_FORMATS",
    "PostedWebhook",
    "WebhookSender",
]

#: The dashboard's "webhook format" choices.
WEBHOOK_FORMATS = ("GET", "POST", "POST-JSON")
#: Ofcom's drama range: numbers that are never anyone's.
DEFAULT_VIRTUAL_NUMBER = "447700900000"
DEFAULT_HANDSET = "447700900001"
#: Every status a delivery receipt may carry, as Vonage documents them.
RECEIPT_STATUSES = ("delivered", "expired", "failed", "rejected", "accepted", "buffered", "unknown")
#: Vonage's ``err-code`` 0 is "delivered"; 1 is "unknown" (the sample for a failure).
_OK_STATUSES = frozenset({"delivered", "accepted", "buffered"})
_BODY_LIMIT = 300


@dataclass(frozen=True, repr=False)
class PostedWebhook:
    """One webhook as it was sent, and the answer (``status`` is the HTTP status code)."""

    method: str
    url: str
    params: dict[str, str]
    status: int
    body: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def __repr__(self) -> str:
        shown = {k: ("***" if k == "sig" else v) for k, v in self.params.items()}
        return (
            f"PostedWebhook(method={self.method!r}, url={self.url!r}, params={shown!r}, "
            f"status={self.status!r})"
        )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # Vonage does not follow redirects either: a 301 (say, a missing slash) is the answer.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(
    # Webhooks go straight to the URL given (loopback, mostly): never through a proxy.
    urllib.request.ProxyHandler({}),
    _NoRedirects(),
)


def _utc(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(timezone.utc)
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("at must be timezone-aware.")
    return at.astimezone(timezone.utc)


def _message_id() -> str:
    # Vonage's SMS message ids are 16 upper-case hex characters.
    return secrets.token_hex(8).upper()


@dataclass(frozen=True, repr=False)
class WebhookSender:
    """Sends webhooks as Vonage would for the account ``api_key``.

    With a ``signature_secret``, each webhook gets ``timestamp`` (unix seconds, now), a
    ``nonce`` and ``sig`` by ``signature_method``; without, it goes unsigned.
    """

    api_key: str = DEFAULT_API_KEY
    signature_secret: str | None = field(default=None, repr=False)
    signature_method: str = LEGACY_METHOD
    webhook_format: str = "POST"
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.signature_method not in SIGNATURE_METHODS:
            raise ValueError(
                f"Unknown signature method {self.signature_method!r}; "
                f"expected one of {', '.join(SIGNATURE_METHODS)}."
            )
        if self.webhook_format not in WEBHOOK_FORMATS:
            raise ValueError(
                f"Unknown webhook format {self.webhook_format!r}; "
                f"expected one of {', '.join(WEBHOOK_FORMATS)}."
            )

    def __repr__(self) -> str:
        signed = f"signed ({self.signature_method})" if self.signature_secret else "unsigned"
        return f"WebhookSender(api_key={self.api_key!r}, {signed}, {self.webhook_format})"

    @classmethod
    def for_sandbox(
        cls, sandbox: Sandbox, api_key: str = DEFAULT_API_KEY, *, webhook_format: str = "POST"
    ) -> WebhookSender:
        """Webhooks for the sandbox account ``api_key``, signed with its signature secret
        (if it has one), as Vonage signs the webhooks of an account set up that way."""
        account = sandbox.accounts[api_key]
        return cls(
            api_key=api_key,
            signature_secret=account.signature_secret,
            signature_method=account.signature_method,
            webhook_format=webhook_format,
        )

    # ----------------------------------------------------------------- payloads

    def inbound_params(
        self,
        *,
        msisdn: str = DEFAULT_HANDSET,
        text: str = "YES",
        to: str = DEFAULT_VIRTUAL_NUMBER,
        message_id: str | None = None,
        at: datetime | None = None,
    ) -> dict[str, str]:
        """An inbound SMS from ``msisdn`` to our number ``to``, unsigned."""
        words = text.split()
        return {
            "msisdn": msisdn,
            "to": to,
            "messageId": message_id or _message_id(),
            "text": text,
            "type": "text" if text.isascii() else "unicode",
            "keyword": words[0].upper() if words else "",
            "message-timestamp": _utc(at).strftime(TIMESTAMP_FORMAT),
            "api-key": self.api_key,
        }

    def receipt_params(
        self,
        *,
        message_id: str,
        status: str = "delivered",
        err_code: str | None = None,
        msisdn: str = DEFAULT_HANDSET,
        to: str = DEFAULT_VIRTUAL_NUMBER,
        at: datetime | None = None,
    ) -> dict[str, str]:
        """A delivery receipt for our message ``message_id`` to the handset ``msisdn``."""
        when = _utc(at)
        return {
            "msisdn": msisdn,
            "to": to,
            "network-code": "23410",
            "messageId": message_id,
            "price": "0.03330000",
            "status": status,
            "scts": when.strftime("%y%m%d%H%M"),
            "err-code": err_code
            if err_code is not None
            else ("0" if status in _OK_STATUSES else "1"),
            "api-key": self.api_key,
            "message-timestamp": when.strftime(TIMESTAMP_FORMAT),
        }

    def sign(self, params: Mapping[str, str], *, now: float | None = None) -> dict[str, str]:
        """``params`` with ``timestamp``, ``nonce`` and ``sig`` added (unchanged if unsigned)."""
        signed = dict(params)
        if not self.signature_secret:
            return signed
        signed.setdefault("timestamp", str(int(time.time() if now is None else now)))
        signed.setdefault("nonce", secrets.token_hex(16))
        signed.pop("sig", None)
        signed["sig"] = sign(signed, secret=self.signature_secret, method=self.signature_method)
        return signed

    # ----------------------------------------------------------------- sending

    def inbound(
        self,
        url: str,
        *,
        msisdn: str = DEFAULT_HANDSET,
        text: str = "YES",
        to: str = DEFAULT_VIRTUAL_NUMBER,
        message_id: str | None = None,
        at: datetime | None = None,
    ) -> PostedWebhook:
        """Post an inbound SMS (see :meth:`inbound_params`) to ``url``."""
        params = self.inbound_params(msisdn=msisdn, text=text, to=to, message_id=message_id, at=at)
        return self.post(url, params)

    def receipt(
        self,
        url: str,
        *,
        message_id: str,
        status: str = "delivered",
        err_code: str | None = None,
        msisdn: str = DEFAULT_HANDSET,
        to: str = DEFAULT_VIRTUAL_NUMBER,
        at: datetime | None = None,
    ) -> PostedWebhook:
        """Post a delivery receipt (see :meth:`receipt_params`) to ``url``."""
        params = self.receipt_params(
            message_id=message_id, status=status, err_code=err_code, msisdn=msisdn, to=to, at=at
        )
        return self.post(url, params)

    def post(self, url: str, params: Mapping[str, str]) -> PostedWebhook:
        """Sign ``params`` (when there is a secret) and send them to ``url`` in
        ``webhook_format``. Raises :class:`OSError` when nothing answers."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL.")
        signed = self.sign(params)
        method = "GET" if self.webhook_format == "GET" else "POST"
        data: bytes | None = None
        target = url
        headers = {"User-Agent": "Nexmo/MessagingHUB/v1.0 (django-nexmo-conversion sandbox)"}
        if self.webhook_format == "GET":
            target = f"{url}{'&' if parts.query else '?'}{urlencode(signed)}"
        elif self.webhook_format == "POST":
            data = urlencode(signed).encode("utf-8")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(signed).encode("utf-8")
            headers["Content-Type"] = "application/json"
        # The scheme was checked above: http(s) only.
        request = urllib.request.Request(target, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with _opener.open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read(_BODY_LIMIT)
        except urllib.error.HTTPError as error:  # a 4xx/5xx (or 3xx) is an answer too
            status, raw = error.code, error.read(_BODY_LIMIT)
            error.close()
        return PostedWebhook(
            method=method,
            url=url,
            params=signed,
            status=status,
            body=raw.decode("utf-8", errors="replace"),
        )
