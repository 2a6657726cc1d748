"""Vonage's SMS API webhooks: a reply marks the message it answers converted, and a delivery
receipt records what reached the handset.

The views in ``views/webhooks.py`` are adapters: they take the parameters out of any of the
three shapes Vonage sends (GET query, POST form, POST JSON) and choose the HTTP answer;
:func:`verify` checks the signature and its freshness, then :func:`handle_inbound` or
:func:`handle_receipt` parses and applies them.

Vonage sends a webhook again until it gets a 200, for up to a day, so both are idempotent:
an inbound ``messageId`` is recorded once (:class:`~.models.InboundMessage`, unique), a
receipt already recorded changes nothing, and marking goes through ``mark_converted``, which
never marks a message twice. Neither makes a network call itself: the report goes out through
the normal ``DISPATCH``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from . import privacy, services, signing
from .conf import Account, ConversionSettings, get_settings
from .exceptions import ConversionInputError, NexmoConversionError
from .models import Channel, Conversion, InboundMessage, ReplyOutcome, SentMessage

logger = logging.getLogger("django_nexmo_conversion")

#: ``message-timestamp`` in inbound messages and receipts: UTC, as Vonage writes it.
VONAGE_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
#: A receipt that says the message never reached the handset.
FAILED_STATUSES = frozenset({"failed", "expired", "rejected"})
#: The last word on a message; ``accepted``, ``buffered`` and ``unknown`` may still change.
FINAL_STATUSES = FAILED_STATUSES | {"delivered"}
#: The statuses Vonage documents. Another well-formed word is recorded as it comes, so a
#: status Vonage adds later is not refused (and retried for a day).
RECEIPT_STATUSES = FINAL_STATUSES | {"accepted", "buffered", "unknown"}
#: How far our clock and Vonage's may disagree when matching a reply to the message before it.
CLOCK_SKEW = timedelta(minutes=1)

_SIGNATURE_RE = re.compile(r"[0-9a-fA-F]{32,128}")
_UNIX_TIME_RE = re.compile(r"[0-9]{1,12}")
_STATUS_RE = re.compile(r"[a-z_]{1,16}")
_ERROR_CODE_RE = re.compile(r"[0-9A-Za-z]{0,8}")
_TIMESTAMP_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


class WebhookError(NexmoConversionError):
    """A webhook that is not applied; the message says why (never a secret)."""


class BadWebhook(WebhookError, ConversionInputError):
    """The parameters are not a Vonage webhook's: nothing is recorded."""


class WebhookRefused(WebhookError):
    """Missing, wrong or stale signature while a signature secret is configured."""


# --- verifying ----------------------------------------------------------------------------------


def _signing_accounts(conf: ConversionSettings) -> list[Account]:
    everyone = [conf.default_account, *conf.accounts.values()]
    return [account for account in everyone if account is not None and account.signed]


def signing_required(conf: ConversionSettings | None = None) -> bool:
    """True when any account has a signature secret: every webhook must then be signed."""
    return bool(_signing_accounts(conf or get_settings()))


def verify(params: Mapping[str, str], *, now: float | None = None) -> None:
    """Raise :class:`WebhookRefused` unless ``params`` carry a valid, fresh signature.

    With no signature secret configured at all, every webhook passes (the endpoints are then
    unauthenticated: the deploy check ``W003`` says so). Otherwise the webhook must be signed
    with the secret of the account its ``api-key`` names (the default account when it names
    none we know), by that account's ``SIGNATURE_METHOD``, and its ``timestamp`` must be within
    ``WEBHOOK_MAX_AGE`` seconds of now, either way, so a captured webhook cannot be replayed
    later.
    """
    conf = get_settings()
    if not signing_required(conf):
        return
    api_key = params.get("api-key", "")
    account = conf.accounts.get(api_key) or conf.default_account
    if account is None or not account.signature_secret:
        raise WebhookRefused(
            _("No signature secret is configured for this webhook's api-key; it is refused.")
        )
    sig = params.get("sig", "")
    if not sig:
        raise WebhookRefused(_("The webhook is not signed (no sig parameter)."))
    # signing.verify compares in constant time, which needs ASCII: check the shape first.
    if not _SIGNATURE_RE.fullmatch(sig) or not signing.verify(
        params, secret=account.signature_secret, method=account.signature_method
    ):
        raise WebhookRefused(_("The webhook's signature is not valid."))
    raw_time = params.get("timestamp", "")
    if not _UNIX_TIME_RE.fullmatch(raw_time):
        raise WebhookRefused(_("The signed webhook has no valid timestamp (unix seconds)."))
    age = (time.time() if now is None else now) - int(raw_time)
    if abs(age) > conf.webhook_max_age:
        raise WebhookRefused(
            _("The webhook's timestamp is %(age)d seconds away from now; at most %(max)d allowed.")
            % {"age": abs(age), "max": conf.webhook_max_age}
        )


# --- parsing ------------------------------------------------------------------------------------


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise BadWebhook(_("The %(name)s parameter is missing.") % {"name": name})
    return value


def _message_id(params: Mapping[str, str]) -> str:
    try:
        return services.clean_message_id(_required(params, "messageId"))
    except BadWebhook:
        raise
    except ConversionInputError as exc:
        raise BadWebhook(f"messageId: {exc}") from None


def _api_key(params: Mapping[str, str]) -> str:
    try:
        return services.clean_api_key(params.get("api-key", ""))
    except ConversionInputError:
        raise BadWebhook(_("The api-key parameter is not an API key.")) from None


def _vonage_time(params: Mapping[str, str]) -> datetime:
    """When Vonage pushed the webhook: ``message-timestamp``, else ``timestamp``, else now.

    Never in the future: a conversion may not be dated later than now.
    """
    now = timezone.now()
    raw = params.get("message-timestamp", "")
    if raw:
        try:
            if not _TIMESTAMP_SHAPE.fullmatch(raw):
                raise ValueError(raw)
            value = datetime.strptime(raw, VONAGE_TIMESTAMP_FORMAT).replace(tzinfo=dt_timezone.utc)
        except ValueError:
            raise BadWebhook(
                _("message-timestamp must look like YYYY-MM-DD HH:MM:SS (UTC).")
            ) from None
    elif _UNIX_TIME_RE.fullmatch(params.get("timestamp", "")):
        value = datetime.fromtimestamp(int(params["timestamp"]), tz=dt_timezone.utc)
    else:
        value = now
    return min(value, now)


@dataclass(frozen=True)
class InboundReply:
    """An inbound SMS, as ``REPLY_FILTER`` receives it (with the message it answers).

    The sender's number and the text are here for the filter to read; they are never stored
    and stay out of the repr (they are personal data).
    """

    message_id: str
    msisdn: str = field(repr=False)
    to: str
    text: str = field(repr=False)
    keyword: str = field(repr=False)
    type: str
    api_key: str
    #: Vonage's ``message-timestamp`` (aware, UTC): the conversion is dated by it.
    replied_at: datetime
    #: Every parameter as received, ``sig`` left out.
    params: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True)
class DeliveryReceipt:
    """A delivery receipt (DLR) for one sent message (one part of a long SMS)."""

    message_id: str
    status: str
    error_code: str
    api_key: str
    #: Vonage's ``message-timestamp`` (aware, UTC): orders receipts that arrive out of turn.
    received_at: datetime


def parse_inbound(params: Mapping[str, str]) -> InboundReply:
    """The inbound SMS in ``params``; :class:`BadWebhook` names what is missing or wrong."""
    return InboundReply(
        message_id=_message_id(params),
        msisdn=_required(params, "msisdn"),
        to=params.get("to", ""),
        text=params.get("text", ""),
        keyword=params.get("keyword", ""),
        type=params.get("type", ""),
        api_key=_api_key(params),
        replied_at=_vonage_time(params),
        params={name: value for name, value in params.items() if name != "sig"},
    )


def parse_receipt(params: Mapping[str, str]) -> DeliveryReceipt:
    """The delivery receipt in ``params``; :class:`BadWebhook` names what is wrong."""
    message_id = _message_id(params)
    status = _required(params, "status").lower()
    if not _STATUS_RE.fullmatch(status):
        raise BadWebhook(
            _("status must be a delivery status such as %(examples)s.")
            % {"examples": ", ".join(sorted(RECEIPT_STATUSES))}
        )
    error_code = params.get("err-code", "")
    if not _ERROR_CODE_RE.fullmatch(error_code):
        raise BadWebhook(_("err-code must be a short code such as 0 or 5."))
    return DeliveryReceipt(
        message_id=message_id,
        status=status,
        error_code=error_code,
        api_key=_api_key(params),
        received_at=_vonage_time(params),
    )


# --- inbound replies ----------------------------------------------------------------------------


def find_replied_message(sender_hash: str, at: datetime, *, window: float) -> SentMessage | None:
    """The message a reply sent at ``at`` from the number hashed ``sender_hash`` answers.

    The latest SMS sent to that number in the ``window`` seconds before the reply (the first
    part, for a long SMS); matched through the keyed hash, so it works whatever
    ``RECIPIENT_STORAGE`` keeps. Served by the ``(recipient_hash, sent_at)`` index.
    """
    if not sender_hash:
        return None
    return (
        SentMessage.objects.filter(
            recipient_hash=sender_hash,
            channel=Channel.SMS,
            parent__isnull=True,
            sent_at__gte=at - timedelta(seconds=window),
            sent_at__lte=at + CLOCK_SKEW,
        )
        .order_by("-sent_at", "-pk")
        .first()
    )


def _reply_filter(conf: ConversionSettings) -> Callable[[InboundReply, SentMessage], object] | None:
    if conf.reply_filter is None:
        return None
    accept: Callable[[InboundReply, SentMessage], object] = import_string(conf.reply_filter)
    return accept


def _convert(message: SentMessage, at: datetime) -> str:
    """Mark ``message`` converted at ``at``; which outcome that was."""
    before = Conversion.objects.filter(message=message).values_list("delivered", flat=True).first()
    conversion = services.mark_converted(message, timestamp=at)
    # New, or an unreported delivered=False upgraded: this reply converted it.
    if conversion.delivered and before is not True:
        return ReplyOutcome.CONVERTED
    return ReplyOutcome.ALREADY_CONVERTED


def receive_inbound(reply: InboundReply) -> InboundMessage | None:
    """Record ``reply`` and mark the message it answers converted (dated by the reply).

    Returns the new :class:`~.models.InboundMessage`, or ``None`` when this ``messageId`` was
    handled before (Vonage sending it again): nothing changes then. A reply that matches no
    message, or that ``REPLY_FILTER`` refuses, is recorded with that outcome and marks nothing.
    One transaction: if the filter raises, nothing is recorded and Vonage will send it again.
    """
    conf = get_settings()
    with transaction.atomic():
        try:
            with transaction.atomic():  # a savepoint: the duplicate must not break the outer one
                row = InboundMessage.objects.create(
                    message_id=reply.message_id,
                    sender_hash=privacy.recipient_hash(reply.msisdn),
                    api_key=reply.api_key,
                    replied_at=reply.replied_at,
                    outcome=ReplyOutcome.UNMATCHED,
                )
        except IntegrityError:
            logger.info("Inbound message %s was already received; ignored.", reply.message_id)
            return None
        message = find_replied_message(row.sender_hash, reply.replied_at, window=conf.reply_window)
        if message is not None:
            accept = _reply_filter(conf)
            if accept is not None and not accept(reply, message):
                row.outcome = ReplyOutcome.FILTERED
            else:
                row.outcome = _convert(message, reply.replied_at)
            row.matched = message
            row.save(update_fields=["matched", "outcome"])
    logger.info(
        "Inbound message %s: %s%s.",
        reply.message_id,
        row.outcome,
        f" (message {message.message_id})" if message is not None else "",
    )
    return row


def handle_inbound(params: Mapping[str, str]) -> InboundMessage | None:
    """Parse and apply an inbound-SMS webhook's (verified) parameters."""
    return receive_inbound(parse_inbound(params))


# --- delivery receipts --------------------------------------------------------------------------


def _supersedes(receipt: DeliveryReceipt, message: SentMessage) -> bool:
    """Whether ``receipt`` is news for ``message`` (receipts may arrive again or out of turn)."""
    current = message.delivery_status
    if (current, message.delivery_error_code) == (receipt.status, receipt.error_code):
        return False  # the same receipt again
    if current in FINAL_STATUSES and receipt.status not in FINAL_STATUSES:
        return False  # a late "buffered" after "delivered"
    if receipt.status in FINAL_STATUSES and current not in FINAL_STATUSES:
        return True  # a final word beats an intermediate one, however late it arrives
    updated = message.delivery_updated_at
    return updated is None or receipt.received_at >= updated


def record_receipt(receipt: DeliveryReceipt) -> SentMessage | None:
    """Record ``receipt`` on the message (the part) it is for; ``None`` for an unknown id.

    With ``REPORT_FAILED_RECEIPTS``, a message whose receipt says it never arrived (failed,
    expired, rejected) is marked ``delivered=False`` at once, dated by the receipt; a message
    already converted keeps its conversion.
    """
    conf = get_settings()
    with transaction.atomic():
        message = (
            SentMessage.objects.select_for_update()
            .filter(channel=Channel.SMS, message_id=receipt.message_id)
            .first()
        )
        if message is None:
            logger.info("Delivery receipt for unknown message %s; ignored.", receipt.message_id)
            return None
        if _supersedes(receipt, message):
            message.delivery_status = receipt.status
            message.delivery_error_code = receipt.error_code
            message.delivery_updated_at = receipt.received_at
            message.save(
                update_fields=["delivery_status", "delivery_error_code", "delivery_updated_at"]
            )
            logger.info(
                "Delivery receipt for %s: %s (err-code %s).",
                message.message_id,
                receipt.status,
                receipt.error_code or "-",
            )
        if (
            conf.report_failed_receipts
            and message.delivery_status in FAILED_STATUSES
            and message.delivery_updated_at is not None
        ):
            services.mark_converted(message, delivered=False, timestamp=message.delivery_updated_at)
    return message


def handle_receipt(params: Mapping[str, str]) -> SentMessage | None:
    """Parse and apply a delivery-receipt webhook's (verified) parameters."""
    return record_receipt(parse_receipt(params))
