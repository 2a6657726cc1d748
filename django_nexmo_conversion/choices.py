"""The enumerations stored in the tables (importable without the app registry)."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Channel(models.TextChoices):
    SMS = "sms", _("SMS")
    VOICE = "voice", _("Voice")


class Status(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    REPORTED = "reported", _("Reported")
    FAILED = "failed", _("Failed")


class Outcome(models.TextChoices):
    """What one attempt came to: one value per row of the outcome table ("Outcomes of one
    attempt" in docs/explanation/reporting.md; ``transport.answers`` files each answer)."""

    REPORTED = "reported", _("Reported")
    ACCOUNT_ERROR = "account_error", _("Account error")
    ENDPOINT_ERROR = "endpoint_error", _("Endpoint error")
    REJECTED = "rejected", _("Rejected (parameters)")
    TRANSIENT = "transient", _("Transient error")


class ReplyOutcome(models.TextChoices):
    """What an inbound SMS came to (see docs/howto/webhooks.md)."""

    CONVERTED = "converted", _("Marked its message converted")
    ALREADY_CONVERTED = "already_converted", _("Its message was already converted")
    FILTERED = "filtered", _("Refused by REPLY_FILTER")
    UNMATCHED = "unmatched", _("No message to that number in the reply window")


class MarkOutcome(models.TextChoices):
    """What one ``mark_converted`` call did to the conversion it returns (never stored)."""

    CREATED = "created", _("Created")
    UPGRADED = "upgraded", _("Upgraded to delivered=True")
    FOUND = "found", _("Already marked")
