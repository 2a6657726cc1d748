"""Why a webhook is not applied: the exceptions parsing and the signature check raise.

They carry no HTTP status; the views (``views/webhooks.py``) choose it.
"""

from __future__ import annotations

from ..exceptions import ConversionInputError, NexmoConversionError


class WebhookError(NexmoConversionError):
    """A webhook that is not applied; the message says why (never a secret)."""


class BadWebhook(WebhookError, ConversionInputError):
    """The parameters are not a Vonage webhook's: nothing is recorded."""


class WebhookRefused(WebhookError):
    """Missing, wrong or stale signature while a signature secret is configured."""
