"""Delivery receipts (DLRs): parse the webhook and record the status on the message it is for,
among the messages of the account the receipt came to (its ``api-key``, whose secret signed it).

Idempotent and order-proof: a receipt already recorded changes nothing, and a late
intermediate status never overwrites a final one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from .. import marking, validation
from ..conf import ConversionSettings, get_settings
from ..exceptions import ConversionInputError
from ..models import Channel, SentMessage
from ..rollups import rates
from ..transport.wire import FAILED_STATUSES, FINAL_STATUSES, RECEIPT_STATUSES
from .errors import BadWebhook
from .inbound import sent_with
from .params import (
    read_api_key,
    read_message_id,
    read_required,
    read_vonage_time,
)
from .verify import signing_required

logger = logging.getLogger("django_nexmo_conversion")

_STATUS_RE = re.compile(r"[a-z_]{1,16}")
_ERROR_CODE_RE = re.compile(r"[0-9A-Za-z]{0,8}")


@dataclass(frozen=True)
class DeliveryReceipt:
    """A delivery receipt (DLR) for one sent message (one part of a long SMS)."""

    message_id: str
    status: str
    error_code: str
    api_key: str
    #: Vonage's ``message-timestamp`` (aware, UTC): orders receipts that arrive out of turn.
    received_at: datetime
    #: The ``network-code`` (MCCMNC) of the network that took the message, if given.
    network: str = ""


def parse_receipt(params: Mapping[str, str]) -> DeliveryReceipt:
    """The delivery receipt in ``params``; :class:`BadWebhook` names what is wrong."""
    message_id = read_message_id(params)
    status = read_required(params, "status").lower()
    if not _STATUS_RE.fullmatch(status):
        raise BadWebhook(
            _("status must be a delivery status such as %(examples)s.")
            % {"examples": ", ".join(sorted(RECEIPT_STATUSES))}
        )
    error_code = params.get("err-code", "")
    if not _ERROR_CODE_RE.fullmatch(error_code):
        raise BadWebhook(_("err-code must be a short code such as 0 or 5."))
    try:
        network = validation.clean_network(params.get("network-code", ""))
    except ConversionInputError:
        raise BadWebhook(_("network-code must be an MCCMNC code (5 or 6 digits).")) from None
    return DeliveryReceipt(
        network=network,
        message_id=message_id,
        status=status,
        error_code=error_code,
        api_key=read_api_key(params),
        received_at=read_vonage_time(params),
    )


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


def _recount(
    message: SentMessage, old_key: rates.Key, was_delivered: bool, old: rates.Deltas
) -> None:
    """Move what the rollups count of the message (``old``, when its network changed) to
    its new network and delivery status. Called with the message row locked, so no sweep is
    folding it or its conversion meanwhile; what is not counted yet moves with nothing: the
    sweep counts it as it is then."""
    if message.parent_id is not None:
        return  # parts 2..n are not counted
    is_delivered = message.delivery_status == "delivered"
    if old:  # the network changed: the whole counted contribution moves to the new row
        new = {**old, "delivered": int(is_delivered)} if message.counted else old
        rates.move(old_key, rates.key_of(message), old, new)
    elif message.counted and is_delivered != was_delivered:
        key = rates.key_of(message)
        rates.move(key, key, {"delivered": int(was_delivered)}, {"delivered": int(is_delivered)})


def _of_its_account(receipt: DeliveryReceipt, conf: ConversionSettings) -> Q:
    """The messages ``receipt`` may touch: those of the account it came to (its ``api-key``,
    whose secret signed it), so another account's receipt about the same id never touches
    them. An unsigned receipt naming no account (no secret configured, nothing to tell the
    accounts apart by) may touch any."""
    if receipt.api_key or signing_required(conf):
        return sent_with(receipt.api_key, conf)
    return Q()


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
            .filter(
                _of_its_account(receipt, conf),
                channel=Channel.SMS,
                message_id__in=validation.message_id_forms(receipt.message_id, Channel.SMS),
            )
            .order_by("pk")
            .first()
        )
        if message is None:
            logger.info(
                "Delivery receipt for unknown message %s (of this API key); ignored.",
                receipt.message_id,
            )
            return None
        old_key, was_delivered = rates.key_of(message), message.delivery_status == "delivered"
        # The network fills in once: the SMS response's, when it gave one, stands.
        network_news = bool(receipt.network) and not message.network
        old = rates.contribution(message) if network_news else {}
        changed = []
        if network_news:
            message.network = receipt.network
            changed.append("network")
        if _supersedes(receipt, message):
            message.delivery_status = receipt.status
            message.delivery_error_code = receipt.error_code
            message.delivery_updated_at = receipt.received_at
            changed += ["delivery_status", "delivery_error_code", "delivery_updated_at"]
        if changed:
            message.save(update_fields=changed)
            _recount(message, old_key, was_delivered, old)
        if "delivery_status" in changed:
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
            # Dated by the receipt, but never before the send: clocks (ours, Vonage's, the
            # carrier's) disagree, and a conversion may not precede its message.
            at = message.delivery_updated_at
            if validation.precedes_send(at, message.sent_at):
                at = message.sent_at
            marking.mark_converted(message, delivered=False, timestamp=at)
    return message


def handle_receipt(params: Mapping[str, str]) -> SentMessage | None:
    """Parse and apply a delivery-receipt webhook's (verified) parameters."""
    return record_receipt(parse_receipt(params))
