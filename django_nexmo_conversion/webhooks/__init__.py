"""Vonage's SMS API webhooks: a reply marks the message it answers converted, and a delivery
receipt records what reached the handset.

The views in ``views/webhooks.py`` are adapters: they take the parameters out of any of the
three shapes Vonage sends (GET query, POST form, POST JSON) and choose the HTTP answer;
:func:`verify_webhook` checks the signature and its freshness, then :func:`handle_inbound` or
:func:`handle_receipt` parses and applies them.

Vonage sends a webhook again until it gets a 200, for up to a day, so both are idempotent:
an inbound ``messageId`` is recorded once (:class:`~.models.InboundMessage`, unique), a
receipt already recorded changes nothing, and marking goes through ``mark_converted``, which
never marks a message twice. Neither makes a network call itself: the report goes out through
the normal ``DISPATCH``.

| module        | job                                                               |
|---------------|-------------------------------------------------------------------|
| ``verify``    | ``verify_webhook``: the signature and freshness check             |
| ``inbound``   | inbound SMS: replies become conversions                           |
| ``receipts``  | delivery receipts recorded on the message they are for            |
| ``params``    | reading the parameters both carry (ids, api-key, timestamps)      |
| ``errors``    | the exceptions (no HTTP status: the views choose it)              |
"""

from __future__ import annotations

from ..transport.wire import FAILED_STATUSES, FINAL_STATUSES, RECEIPT_STATUSES
from ..transport.wire import TIMESTAMP_FORMAT as VONAGE_TIMESTAMP_FORMAT
from .errors import BadWebhook, WebhookError, WebhookRefused
from .inbound import (
    CLOCK_SKEW,
    InboundReply,
    find_replied_message,
    handle_inbound,
    parse_inbound,
    receive_inbound,
)
from .receipts import DeliveryReceipt, handle_receipt, parse_receipt, record_receipt
from .verify import signing_required, verify_webhook

__all__ = [
    "CLOCK_SKEW",
    "FAILED_STATUSES",
    "FINAL_STATUSES",
    "RECEIPT_STATUSES",
    "VONAGE_TIMESTAMP_FORMAT",
    "BadWebhook",
    "DeliveryReceipt",
    "InboundReply",
    "WebhookError",
    "WebhookRefused",
    "find_replied_message",
    "handle_inbound",
    "handle_receipt",
    "parse_inbound",
    "parse_receipt",
    "receive_inbound",
    "record_receipt",
    "signing_required",
    "verify_webhook",
]
