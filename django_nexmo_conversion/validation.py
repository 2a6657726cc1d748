"""Input checks for every public entry point: a clear ``ConversionInputError`` naming what is
wrong, raised before anything is stored or sent."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone

from .choices import Channel
from .exceptions import ConversionInputError
from .models import MESSAGE_ID_MAX_LENGTH, SentMessage
from .transport import wire

#: How far ahead of our clock a conversion timestamp may be (clock skew between hosts).
FUTURE_TOLERANCE = timedelta(minutes=5)
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")  # no space, no control or non-ASCII characters
_MSISDN = re.compile(r"[0-9]{3,20}")
#: The column a target's primary key is kept in (``SentMessage.target_object_id``).
TARGET_ID_MAX_LENGTH: int = SentMessage._meta.get_field("target_object_id").max_length or 64
_MCCMNC = re.compile(r"[0-9]{5,6}")


def clean_message_id(message_id: object) -> str:
    if not isinstance(message_id, str):
        raise ConversionInputError(f"message_id must be a string, got {type(message_id).__name__}.")
    if not message_id:
        raise ConversionInputError("message_id must not be empty.")
    if len(message_id) > MESSAGE_ID_MAX_LENGTH:
        raise ConversionInputError(
            f"message_id is {len(message_id)} characters long; at most "
            f"{MESSAGE_ID_MAX_LENGTH} are allowed."
        )
    if not _PRINTABLE_ASCII.fullmatch(message_id):
        raise ConversionInputError(
            f"message_id {message_id!r} contains whitespace, control or non-ASCII characters."
        )
    return message_id


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def canonical_message_id(message_id: str, channel: str) -> str:
    """``message_id`` in Vonage's own letter case: SMS message ids are upper-case hex, call
    ids lower-case UUIDs. Ids are stored and looked up in this case, so an id that differs
    from a recorded one only in letter case finds that one, never a second row."""
    return message_id.upper() if channel == Channel.SMS else message_id.lower()


def message_id_forms(message_id: str, channel: str) -> list[str]:
    """The ids a lookup matches: the canonical one, ``message_id`` as given and in either
    case (a row recorded before ids were stored in canonical case keeps the case it was
    recorded in). A few exact values, so the unique index serves the lookup."""
    return sorted(
        {
            canonical_message_id(message_id, channel),
            message_id,
            message_id.upper(),
            message_id.lower(),
        }
    )


def looks_like_a_call_id(message_id: str) -> bool:
    """A UUID: what the Voice API calls are named by (SMS message ids are 16 hex digits)."""
    return bool(_UUID.fullmatch(message_id))


def clean_channel(channel: object) -> str:
    if channel not in Channel.values:
        raise ConversionInputError(
            f"channel must be one of {', '.join(Channel.values)}, got {channel!r}."
        )
    return str(channel)


def clean_recipient(recipient: object) -> str:
    """The number as Vonage writes it (digits only), or ``""`` for none."""
    if recipient is None or recipient == "":
        return ""
    if not isinstance(recipient, str):
        raise ConversionInputError(f"recipient must be a string, got {type(recipient).__name__}.")
    digits = wire.msisdn(recipient)
    # msisdn() takes off one leading +: anything but digits left over is refused.
    if not _MSISDN.fullmatch(digits):
        raise ConversionInputError(
            f"recipient {recipient!r} is not a phone number (digits, optionally with a leading +)."
        )
    return digits


def clean_network(network: object) -> str:
    """An MCCMNC (5 or 6 digits) as the SMS API's ``network`` or a receipt's
    ``network-code`` gives it, or ``""`` for none."""
    if network is None or network == "":
        return ""
    if not isinstance(network, str) or not _MCCMNC.fullmatch(network):
        raise ConversionInputError(
            f"network must be an MCCMNC code (5 or 6 digits), got {network!r}."
        )
    return network


def clean_price(price: object) -> Decimal | None:
    """The SMS API's ``message-price`` (a decimal string such as ``"0.03330000"``) as a
    Decimal, or None when absent or unreadable: a price is informative, never a reason to
    refuse a response."""
    if price is None or price == "" or isinstance(price, bool):
        return None
    try:
        value = Decimal(str(price))
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite() or value < 0 or value >= 10**6:
        return None
    return value.quantize(Decimal("0.00000001"))


def clean_timestamp(value: object, *, name: str = "timestamp") -> datetime:
    """An aware datetime, not in the future (beyond clock skew); ``None`` means now."""
    now = timezone.now()
    if value is None:
        return now
    if not isinstance(value, datetime):
        raise ConversionInputError(f"{name} must be a datetime, got {type(value).__name__}.")
    if timezone.is_naive(value):
        raise ConversionInputError(
            f"{name} must be timezone-aware (a naive datetime's zone is unknown); "
            "use django.utils.timezone.now() or attach a tzinfo."
        )
    if value > now + FUTURE_TOLERANCE:
        raise ConversionInputError(f"{name} {value.isoformat()} is in the future.")
    if value < wire.EARLIEST_TIMESTAMP:
        # Year 1 with an offset would overflow converting to UTC; 1970 is an unset clock.
        raise ConversionInputError(
            f"{name} {value.isoformat()} is before {wire.EARLIEST_TIMESTAMP:%Y-%m-%d}: "
            "not a moment a message was sent or converted."
        )
    return value


def precedes_send(at: datetime, sent_at: datetime) -> bool:
    """Whether ``at`` is before ``sent_at`` by more than clock skew between hosts allows."""
    return at < sent_at - FUTURE_TOLERANCE


def clean_conversion_time(at: datetime, sent_at: datetime) -> datetime:
    """``at``, unless it is before the message it converts was sent (beyond clock skew)."""
    if precedes_send(at, sent_at):
        raise ConversionInputError(
            f"timestamp {at.isoformat()} is before the message was sent "
            f"({sent_at.isoformat()}): a conversion cannot precede its message."
        )
    return at


def clean_api_key(api_key: object) -> str:
    if api_key is None or api_key == "":
        return ""
    if not isinstance(api_key, str) or not _PRINTABLE_ASCII.fullmatch(api_key) or len(api_key) > 64:
        raise ConversionInputError("api_key must be a short string without whitespace.")
    return api_key


def clean_delivered(delivered: object) -> bool:
    if not isinstance(delivered, bool):
        raise ConversionInputError(f"delivered must be True or False, got {delivered!r}.")
    return delivered


def clean_target(target: object) -> dict[str, Any]:
    """The ``SentMessage`` fields that point at ``target`` (none for ``None``)."""
    if target is None:
        return {}
    if not isinstance(target, models.Model) or target.pk is None:
        raise ConversionInputError("target must be a saved model instance.")
    object_id = str(target.pk)
    limit = TARGET_ID_MAX_LENGTH
    if len(object_id) > limit or "\x00" in object_id:
        # PostgreSQL would refuse it (DataError) and SQLite store it whole: refuse it alike.
        raise ConversionInputError(
            f"target's primary key is {len(object_id)} characters long or holds a NUL; at "
            f"most {limit} printable characters can be stored."
        )
    return {
        "target_content_type": ContentType.objects.get_for_model(target),
        "target_object_id": object_id,
    }


def clean_sms_response(response: object) -> dict[str, Any]:
    """The SMS API's JSON as a dict, from any shape an application holds it in."""
    if isinstance(response, (bytes, str)):
        try:
            response = json.loads(response)
        # RecursionError: JSON nested deeper than the parser can walk.
        except (ValueError, RecursionError):
            raise ConversionInputError("SMS response text is not JSON.") from None
    if isinstance(response, BaseException):
        # The Vonage SDK v4 raises PartialFailureError when some parts of a long SMS fail;
        # the exception keeps the API's answer (the accepted parts too) in ``.response``.
        response = getattr(response, "response", None)
    dump = getattr(response, "model_dump", None)
    if callable(dump):  # the Vonage SDK v4 SmsResponse (pydantic)
        response = dump(by_alias=True)
    if not isinstance(response, dict) or not isinstance(response.get("messages"), list):
        raise ConversionInputError(
            "SMS response must be the SMS API's answer: a dict, JSON text or SDK response "
            "with a 'messages' list."
        )
    return response


def clean_count(value: object, *, name: str, minimum: int) -> int:
    """A whole number >= ``minimum`` (``limit``, ``concurrency``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConversionInputError(f"{name} must be a whole number >= {minimum}, got {value!r}.")
    return value
