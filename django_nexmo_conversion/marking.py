"""The write side users call: record sent messages, mark them converted, retry by hand.

Marking writes in the caller's transaction and hands the new row to ``dispatch``, which
reports it once that transaction commits. The ``a``-prefixed twins are for async views.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.db import IntegrityError, models, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from . import dispatch, geography, privacy, signals
from .choices import Channel, MarkOutcome, Status
from .conf import get_settings
from .exceptions import ConversionInputError
from .models import Conversion, SentMessage
from .validation import (
    canonical_message_id,
    clean_api_key,
    clean_channel,
    clean_conversion_time,
    clean_delivered,
    clean_message_id,
    clean_network,
    clean_price,
    clean_recipient,
    clean_sms_response,
    clean_target,
    clean_timestamp,
    looks_like_a_call_id,
    message_id_forms,
)

logger = logging.getLogger("django_nexmo_conversion")


def _recipient_fields(recipient: object) -> dict[str, str]:
    """``recipient`` and ``recipient_hash`` as ``RECIPIENT_STORAGE`` says (see ``privacy``),
    and the number's ``country`` and ``prefix`` (for the send guard), taken from the full
    number whatever is stored of it."""
    number = clean_recipient(recipient)
    stored = privacy.store(number)
    settings = get_settings()
    country = geography.country_of(number, settings.default_region) if number else ""
    prefix = (
        geography.prefix_of(number, settings.guard.prefix_digits, settings.default_region)
        if number
        else ""
    )
    return {
        "recipient": stored.recipient,
        "recipient_hash": stored.recipient_hash,
        "country": country,
        "prefix": prefix,
    }


def find_message(channel: str, message_id: str) -> SentMessage | None:
    """The recorded message ``message_id`` names, whatever its letter case: stored in
    canonical case (``validation.canonical_message_id``), or, recorded before that, as given."""
    canonical = canonical_message_id(message_id, channel)
    rows = SentMessage.objects.filter(
        channel=channel, message_id__in=message_id_forms(message_id, channel)
    )
    found = sorted(rows[:2], key=lambda row: row.message_id != canonical)
    return found[0] if found else None


def _record(channel: str, message_id: str, fields: dict[str, Any]) -> SentMessage:
    """Get or create the message (the rollups count it at the next sweep: ``folding.fold``)."""
    found = find_message(channel, message_id)
    if found is not None:
        return found
    message_id = canonical_message_id(message_id, channel)
    try:
        with _only_in_a_transaction():
            message = SentMessage.objects.create(channel=channel, message_id=message_id, **fields)
    except IntegrityError:  # recorded by a concurrent caller since the lookup
        return SentMessage.objects.get(channel=channel, message_id=message_id)
    dispatch.recorded()
    return message


def record_message(
    message_id: str,
    *,
    channel: str = Channel.SMS,
    recipient: str | None = None,
    sent_at: datetime | None = None,
    target: models.Model | None = None,
    api_key: str | None = None,
) -> SentMessage:
    """Remember a sent SMS or call (``channel="voice"`` with the call's UUID).

    Idempotent on ``(channel, message_id)``: recording again returns the stored row unchanged.
    ``recipient`` is stored as ``RECIPIENT_STORAGE`` says, plus its keyed hash.
    """
    fields: dict[str, Any] = {
        **_recipient_fields(recipient),
        "sent_at": clean_timestamp(sent_at, name="sent_at"),
        "api_key": clean_api_key(api_key),
        **clean_target(target),
    }
    return _record(clean_channel(channel), clean_message_id(message_id), fields)


@dataclass(frozen=True)
class FailedPart:
    """A part of an SMS API response that was not accepted (``status`` other than ``"0"``).

    Nothing is recorded for it: there is no message to report a conversion for.
    """

    #: Position of the part in the response's ``messages`` list.
    index: int
    status: str
    error_text: str


class RecordedMessages(list[SentMessage]):
    """What :func:`record_sms_response` returns: a ``list`` of the recorded parts, first part
    first, with ``failed`` listing the parts the SMS API refused (empty when all went out).

    For a long SMS sent in several parts, parts 2..n are recorded with ``parent`` set to the
    first: marking any part marks (and reports) every part.
    """

    def __init__(
        self, messages: Iterable[SentMessage] = (), failed: Iterable[FailedPart] = ()
    ) -> None:
        super().__init__(messages)
        self.failed: list[FailedPart] = list(failed)

    @property
    def ok(self) -> bool:
        """True when every part was accepted."""
        return not self.failed


def record_sms_response(
    response: object, *, target: models.Model | None = None, api_key: str | None = None
) -> RecordedMessages:
    """Record every part the SMS API accepted (``status == "0"``) in its response.

    Each part's ``network`` (MCCMNC) is kept for the insights.
    ``response`` is the SMS API's answer as a dict (Vonage SDK v3 ``sms.send_message``), JSON
    text, a v4 ``vonage_sms.SmsResponse`` or a v4 ``PartialFailureError``. The parts are one
    send: parts 2..n get the first accepted part as ``parent``. Refused parts are not recorded
    and are listed in the result's ``failed``. Bad input raises and stores nothing.
    """
    data = clean_sms_response(response)
    accepted: list[dict[str, Any]] = []
    failed: list[FailedPart] = []
    for index, part in enumerate(data["messages"]):
        if not isinstance(part, dict):
            raise ConversionInputError("SMS response 'messages' must hold objects.")
        status = part.get("status")
        if str(status) == "0":
            accepted.append(part)
        else:
            error = part.get("error-text", part.get("error_text")) or ""
            failed.append(FailedPart(index, "" if status is None else str(status), str(error)))
    # Validate every part before storing any, so bad input stores nothing.
    shared = {
        "sent_at": timezone.now(),
        "api_key": clean_api_key(api_key),
        **clean_target(target),
    }
    rows = [
        (
            clean_message_id(part.get("message-id", part.get("message_id"))),
            {
                **shared,
                **_recipient_fields(part.get("to")),
                "network": clean_network(part.get("network")),
                "price": clean_price(part.get("message-price", part.get("message_price"))),
            },
        )
        for part in accepted
    ]
    recorded = RecordedMessages(failed=failed)
    with transaction.atomic():
        for message_id, fields in rows:
            if recorded:
                fields["parent"] = recorded[0]
            else:
                fields["has_parts"] = len(rows) > 1
            recorded.append(_record(Channel.SMS, message_id, fields))
    if failed:
        logger.warning(
            "SMS API refused %d of %d part(s) (status %s); they were not recorded.",
            len(failed),
            len(failed) + len(recorded),
            ", ".join(sorted({part.status for part in failed})),
        )
    return recorded


def _only_in_a_transaction() -> AbstractContextManager[object]:
    """A savepoint inside the caller's transaction, so a duplicate INSERT does not break
    it; nothing in autocommit, where the INSERT is its own transaction and a duplicate
    spoils nothing (no BEGIN/COMMIT pair on the request path)."""
    return transaction.atomic() if transaction.get_connection().in_atomic_block else nullcontext()


def _create_conversion(message: SentMessage, delivered: bool, at: datetime) -> Conversion | None:
    """Insert the conversion, or return None if the message already has one.

    One INSERT: the rollups count it at the next sweep (``folding.fold``); a
    ``delivered=False`` conversion adds nothing to them, so it is born counted.
    """
    fields = {
        "message": message,
        "delivered": delivered,
        "timestamp": at,
        "next_attempt_at": timezone.now(),
        "counted": not delivered,
    }
    try:
        with _only_in_a_transaction():
            return Conversion.objects.create(**fields)
    except IntegrityError:
        # A duplicate, or (in autocommit) a message purged since the caller loaded it: its
        # foreign key fails when the INSERT commits. _mark_one tells the two apart.
        return None


def _gone(message: SentMessage) -> ConversionInputError:
    return ConversionInputError(
        f"message {message.message_id!r} is no longer recorded (purged or deleted?); "
        "nothing was marked."
    )


def _mark_one(sent: SentMessage, delivered: bool, at: datetime) -> Conversion:
    conversion = _create_conversion(sent, delivered, at)
    if conversion is not None:
        conversion.marked = MarkOutcome.CREATED
        signals.conversion_marked.send(sender=Conversion, conversion=conversion)
        dispatch.schedule(conversion.pk)
        return conversion

    try:
        conversion = Conversion.objects.get(message=sent)
    except Conversion.DoesNotExist:
        # The insert failed and there is no conversion: the message itself is gone (purged
        # or deleted from the admin since the caller loaded it).
        raise _gone(sent) from None
    conversion.marked = MarkOutcome.FOUND
    if delivered and not conversion.delivered:
        # One UPDATE, so no report run can write its outcome between two: a row in flight
        # (``sending``) keeps its claim and only changes what is reported; the run that sent
        # ``false`` sees that when it writes its answer and makes ``true`` due next
        # (``reporting.outcomes.upgraded``). Skipping it would lose a real conversion.
        in_flight = Q(status=Status.SENDING)
        upgraded = Conversion.objects.filter(
            pk=conversion.pk,
            delivered=False,
            status__in=[Status.PENDING, Status.FAILED, Status.SENDING],
        ).update(
            delivered=True,
            timestamp=at,
            counted=False,  # now a conversion the rollups count: the next sweep does
            status=Case(When(in_flight, then=F("status")), default=Value(Status.PENDING)),
            attempt_count=Case(When(in_flight, then=F("attempt_count")), default=Value(0)),
            next_attempt_at=Case(
                When(in_flight, then=F("next_attempt_at")), default=Value(timezone.now())
            ),
        )
        if upgraded:
            conversion.refresh_from_db()
            conversion.marked = MarkOutcome.UPGRADED
            dispatch.schedule(conversion.pk)
    return conversion


def _send_of(sent: SentMessage) -> list[SentMessage]:
    """Every part of the send ``sent`` belongs to, ``sent`` itself first."""
    if sent.parent_id is None and not sent.has_parts:
        # A single message, the usual case: nothing to look up on the caller's request path.
        return [sent]
    head_id = sent.parent_id or sent.pk
    others = (
        SentMessage.objects.filter(models.Q(pk=head_id) | models.Q(parent_id=head_id))
        .exclude(pk=sent.pk)
        .order_by("pk")
    )
    return [sent, *others]


def _warn_if_a_call_id(message_id: str, channel: str) -> None:
    """A call's UUID marked as an SMS that was never recorded: most likely a forgotten
    ``channel="voice"`` (it would be reported to the SMS endpoint and never match)."""
    if channel != Channel.SMS or not looks_like_a_call_id(message_id):
        return
    if find_message(Channel.SMS, message_id) is None:
        logger.warning(
            'mark_converted(%r) with channel="sms": this id looks like a call\'s UUID and no '
            'SMS was recorded with it. For a call, pass channel="voice".',
            message_id,
        )


def mark_converted(
    message: SentMessage | str,
    *,
    delivered: bool = True,
    timestamp: datetime | None = None,
    channel: str = Channel.SMS,
) -> Conversion:
    """Mark ``message`` converted; it is reported after the caller's transaction commits.

    One conversion per message: marking again returns the existing one, except that a
    not-yet-reported ``delivered=False`` is upgraded to ``True``. A part of a long SMS
    stands for the whole send: every part is marked alike (Nexmo wants each part's id);
    the conversion returned is the one of ``message``, its ``marked`` telling what this
    call did to it (a :class:`~.choices.MarkOutcome`: created, upgraded or found).
    """
    delivered = clean_delivered(delivered)
    at = clean_timestamp(timestamp)
    if isinstance(message, SentMessage):
        if message.pk is None:
            raise ConversionInputError("message must be a saved SentMessage.")
        sent = message
    elif isinstance(message, str):
        _warn_if_a_call_id(message, clean_channel(channel))
        # Recorded on the fly, the message was sent no later than it converted.
        sent = record_message(
            message, channel=clean_channel(channel), sent_at=min(at, timezone.now())
        )
    else:
        raise ConversionInputError(
            f"message must be a SentMessage or a message id string, got {type(message).__name__}."
        )
    clean_conversion_time(at, sent.sent_at)
    first, *rest = _send_of(sent)
    conversion = _mark_one(first, delivered, at)
    for part in rest:
        _mark_one(part, delivered, at)
    return conversion


def retry_now(conversions: models.QuerySet[Conversion]) -> int:
    """Make failed or pending conversions due now; failed ones get a fresh attempt budget."""
    now = timezone.now()
    with transaction.atomic():
        pending = conversions.filter(status=Status.PENDING).update(next_attempt_at=now)
        failed = conversions.filter(status=Status.FAILED).update(
            status=Status.PENDING, attempt_count=0, next_attempt_at=now
        )
    return pending + failed


# --- for async views: the same functions, run in the thread that owns the connection ---------
# thread_sensitive=True: the ORM (and so the caller's transaction and on_commit) lives there.


async def arecord_message(
    message_id: str,
    *,
    channel: str = Channel.SMS,
    recipient: str | None = None,
    sent_at: datetime | None = None,
    target: models.Model | None = None,
    api_key: str | None = None,
) -> SentMessage:
    """:func:`record_message` for async code: same arguments, same guarantees."""
    return await sync_to_async(record_message, thread_sensitive=True)(
        message_id,
        channel=channel,
        recipient=recipient,
        sent_at=sent_at,
        target=target,
        api_key=api_key,
    )


async def arecord_sms_response(
    response: object, *, target: models.Model | None = None, api_key: str | None = None
) -> RecordedMessages:
    """:func:`record_sms_response` for async code: same arguments, same guarantees."""
    return await sync_to_async(record_sms_response, thread_sensitive=True)(
        response, target=target, api_key=api_key
    )


async def amark_converted(
    message: SentMessage | str,
    *,
    delivered: bool = True,
    timestamp: datetime | None = None,
    channel: str = Channel.SMS,
) -> Conversion:
    """:func:`mark_converted` for async code: same arguments, same guarantees (reported after
    commit, one conversion per message)."""
    return await sync_to_async(mark_converted, thread_sensitive=True)(
        message, delivered=delivered, timestamp=timestamp, channel=channel
    )
