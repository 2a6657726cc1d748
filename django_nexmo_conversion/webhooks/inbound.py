"""Inbound SMS: parse the webhook, find the message a reply answers and mark it converted.

Idempotent: an inbound ``messageId`` is recorded once (:class:`~.models.InboundMessage`,
unique), and marking goes through ``mark_converted``, which never marks a message twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.module_loading import import_string

from .. import marking, privacy
from ..choices import Channel, MarkOutcome, ReplyOutcome
from ..conf import ConversionSettings, get_settings
from ..models import InboundMessage, SentMessage
from .params import read_api_key, read_message_id, read_required, read_vonage_time

logger = logging.getLogger("django_nexmo_conversion")

#: How far our clock and Vonage's may disagree when matching a reply to the message before it.
CLOCK_SKEW = timedelta(minutes=1)


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


def parse_inbound(params: Mapping[str, str]) -> InboundReply:
    """The inbound SMS in ``params``; :class:`BadWebhook` names what is missing or wrong."""
    return InboundReply(
        message_id=read_message_id(params),
        msisdn=read_required(params, "msisdn"),
        to=params.get("to", ""),
        text=params.get("text", ""),
        keyword=params.get("keyword", ""),
        type=params.get("type", ""),
        api_key=read_api_key(params),
        replied_at=read_vonage_time(params),
        params={name: value for name, value in params.items() if name != "sig"},
    )


def sent_with(api_key: str, conf: ConversionSettings | None = None) -> Q:
    """Messages sent through the account ``api_key`` names: recorded with that key, or, for
    the default account (``API_KEY``, also meant by an empty key), recorded with none."""
    default_key = (conf or get_settings()).api_key or ""
    key = api_key or default_key
    account = Q(api_key=key)
    if key == default_key:
        account |= Q(api_key="")
    return account


def find_replied_message(
    sender_hash: str, at: datetime, *, window: float, api_key: str
) -> SentMessage | None:
    """The message a reply sent at ``at`` from the number hashed ``sender_hash`` answers.

    The latest SMS sent to that number in the ``window`` seconds before the reply (the first
    part, for a long SMS), through the account the reply came to (its ``api-key``): a reply
    to one account never converts another's message. Matched through the keyed hash, so it
    works whatever ``RECIPIENT_STORAGE`` keeps. Served by the ``(recipient_hash, sent_at)``
    index.
    """
    if not sender_hash:
        return None
    return (
        SentMessage.objects.filter(
            sent_with(api_key),
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
    # Matched within CLOCK_SKEW of the send, so never dated before it beyond skew.
    conversion = marking.mark_converted(message, timestamp=at)
    # New, or an unreported delivered=False upgraded: this reply converted it.
    if conversion.marked in (MarkOutcome.CREATED, MarkOutcome.UPGRADED):
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
        message = find_replied_message(
            row.sender_hash, reply.replied_at, window=conf.reply_window, api_key=reply.api_key
        )
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
