"""The app's tables. Models stay thin: writes live in ``marking`` and ``reporting``, reads in
``queries`` and ``insights``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .choices import Channel, MarkOutcome, Outcome, ReplyOutcome, Status

if TYPE_CHECKING:
    from django.db.models.fields.related_descriptors import RelatedManager

__all__ = [
    "Channel",
    "Conversion",
    "ConversionAlert",
    "ConversionAttempt",
    "ConversionDashboard",
    "ConversionStat",
    "GuardEvent",
    "GuardRule",
    "GuardTally",
    "InboundMessage",
    "MarkOutcome",
    "Outcome",
    "ReplyOutcome",
    "SentMessage",
    "Status",
    "StatusCount",
    "StatusCountChange",
]

#: Nexmo's SMS message ids are 16-18 hex characters and call ids are UUIDs; 64 leaves room.
MESSAGE_ID_MAX_LENGTH = 64


class SentMessage(models.Model):
    message_id = models.CharField(_("message id"), max_length=MESSAGE_ID_MAX_LENGTH)
    channel = models.CharField(
        _("channel"), max_length=8, choices=Channel.choices, default=Channel.SMS
    )
    #: Stored as RECIPIENT_STORAGE says: the full number, masked to its last digits, or "".
    recipient = models.CharField(_("recipient"), max_length=32, blank=True, default="")
    #: Keyed hash of the full number, so a reply can be matched without storing the number.
    recipient_hash = models.CharField(max_length=64, blank=True, default="", editable=False)
    api_key = models.CharField(_("API key"), max_length=64, blank=True, default="")
    sent_at = models.DateTimeField(_("sent at"), default=timezone.now)
    target_content_type = models.ForeignKey(
        ContentType, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    target_object_id = models.CharField(max_length=64, blank=True, default="")
    target = GenericForeignKey("target_content_type", "target_object_id")
    #: For parts 2..n of a long (multipart) SMS: the first part, which stands for the send.
    parent = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="parts",
        verbose_name=_("first part"),
    )
    #: True on the first part of a long SMS, so marking a single message need not look for
    #: parts (one query less on the request path).
    has_parts = models.BooleanField(default=False, editable=False)
    #: From the latest delivery receipt: delivered, failed, expired, rejected, ...
    delivery_status = models.CharField(_("delivery status"), max_length=16, blank=True, default="")
    delivery_error_code = models.CharField(
        _("delivery error code"), max_length=8, blank=True, default=""
    )
    delivery_updated_at = models.DateTimeField(_("receipt received at"), null=True, blank=True)
    #: ISO 3166-1 alpha-2, from the full number when recorded (so whatever RECIPIENT_STORAGE
    #: keeps of the number, the country stays for the insights).
    country = models.CharField(_("country"), max_length=2, blank=True, default="")
    #: MCCMNC of the network that took the message: the SMS response's ``network``, or a
    #: delivery receipt's ``network-code``.
    network = models.CharField(_("network"), max_length=6, blank=True, default="")
    #: The number's country calling code plus ``GUARD["PREFIX_DIGITS"]`` digits, kept
    #: whatever RECIPIENT_STORAGE says (like ``country``): what the send guard counts by.
    prefix = models.CharField(_("prefix"), max_length=16, blank=True, default="")
    #: What the SMS API said the message cost (its ``message-price``), when it said.
    price = models.DecimalField(_("price"), max_digits=14, decimal_places=8, null=True, blank=True)
    #: Whether the rollups (``ConversionStat``) count this message yet: recording only
    #: inserts the row, and the next sweep counts it (``folding.fold``), so no request waits
    #: on a shared counter row.
    counted = models.BooleanField(default=False, editable=False)

    if TYPE_CHECKING:
        conversion: Conversion

    class Meta:
        verbose_name = _("sent message")
        verbose_name_plural = _("sent messages")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["channel", "message_id"], name="nexmo_conv_unique_message"
            ),
        ]
        indexes: ClassVar = [
            # Lookups by id alone (admin search, webhooks) without knowing the channel.
            models.Index(fields=["message_id"], name="nexmo_conv_message_id_idx"),
            models.Index(fields=["sent_at"], name="nexmo_conv_sent_at_idx"),
            # Matching a reply to the latest message sent to that number.
            models.Index(fields=["recipient_hash", "sent_at"], name="nexmo_conv_recipient_idx"),
            # The sweep's fold finds the few uncounted rows among millions.
            models.Index(fields=["counted"], name="nexmo_conv_msg_counted_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.message_id}"


class ConversionQuerySet(models.QuerySet["Conversion"]):
    def due(self, now: datetime | None = None) -> ConversionQuerySet:
        """Conversions a worker may take now: pending and due, or claimed by a worker whose
        lease has run out (while a row is ``sending``, ``next_attempt_at`` is its lease expiry).
        """
        now = now or timezone.now()
        return self.filter(status__in=[Status.PENDING, Status.SENDING], next_attempt_at__lte=now)


class Conversion(models.Model):
    message = models.OneToOneField(
        SentMessage, on_delete=models.CASCADE, related_name="conversion", verbose_name=_("message")
    )
    delivered = models.BooleanField(_("delivered"), default=True)
    timestamp = models.DateTimeField(_("converted at"))
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    attempt_count = models.PositiveIntegerField(_("attempts"), default=0)
    #: When pending: when it is due. When sending: when the worker's lease expires.
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    #: Which claim owns the row while ``sending``; outcomes are written only by that claim.
    claim_token = models.CharField(max_length=32, blank=True, default="", editable=False)
    last_status_code = models.PositiveSmallIntegerField(
        _("last HTTP status"), null=True, blank=True
    )
    last_error = models.TextField(_("last error"), blank=True, default="")
    reported_at = models.DateTimeField(_("reported at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    #: Whether the rollups count this conversion yet (see ``SentMessage.counted``): False
    #: only on a ``delivered=True`` conversion the next sweep has still to count.
    counted = models.BooleanField(default=False, editable=False)
    #: The status this row is counted under in ``StatusCount`` ("" before the first sweep):
    #: status changes write only ``status``, and the next sweep moves the count.
    counted_status = models.CharField(max_length=10, blank=True, default="", editable=False)

    objects = ConversionQuerySet.as_manager()

    #: Not a column: what the ``mark_converted`` call that returned this instance did to it
    #: (a :class:`~.choices.MarkOutcome`), so a caller need not read the row again.
    marked: str = ""

    if TYPE_CHECKING:
        attempts: RelatedManager[ConversionAttempt]
        message_id: int

    class Meta:
        verbose_name = _("conversion")
        verbose_name_plural = _("conversions")
        indexes: ClassVar = [
            # Serves due(): equality on status, range on next_attempt_at.
            models.Index(fields=["status", "next_attempt_at"], name="nexmo_conv_due_idx"),
            models.Index(fields=["reported_at"], name="nexmo_conv_reported_at_idx"),
            models.Index(fields=["created_at"], name="nexmo_conv_created_at_idx"),
            models.Index(fields=["counted"], name="nexmo_conv_counted_idx"),
            # The rows whose status changed since the last sweep: a handful of equality
            # ranges, (counted_status, status) with the two unequal.
            models.Index(fields=["counted_status", "status"], name="nexmo_conv_status_moved_idx"),
        ]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in Status]), name="nexmo_conv_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.message} ({self.get_status_display()})"


class ConversionAttempt(models.Model):
    conversion = models.ForeignKey(
        Conversion, on_delete=models.CASCADE, related_name="attempts", verbose_name=_("conversion")
    )
    started_at = models.DateTimeField(_("started at"))
    duration = models.DurationField(_("duration"))
    http_status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    error = models.TextField(_("error"), blank=True, default="")

    class Meta:
        verbose_name = _("attempt")
        verbose_name_plural = _("attempts")
        ordering: ClassVar = ["started_at", "pk"]
        indexes: ClassVar = [
            # The newest halt (an account or endpoint error) in one probe: the halt banner,
            # the status command and the metrics ask on every view and scrape.
            models.Index(fields=["outcome", "started_at"], name="nexmo_conv_attempt_outcome_idx"),
        ]

    def __str__(self) -> str:
        code = self.http_status if self.http_status is not None else "-"
        return f"{self.get_outcome_display()} ({code}) at {self.started_at:%Y-%m-%d %H:%M:%S}"


class ConversionDashboard(Conversion):
    """No table of its own: it gives the dashboard an entry on the admin index, which lists
    models only. Its admin delegates permissions to :class:`Conversion`'s."""

    class Meta:
        proxy = True
        default_permissions = ()
        verbose_name = _("dashboard")
        verbose_name_plural = _("dashboard")


class InboundMessage(models.Model):
    """One inbound SMS the webhook received, and what it did: the audit trail of replies.

    ``message_id`` (Vonage's ``messageId``) is unique, so a webhook Vonage sends again changes
    nothing. Neither the sender's number nor the text is kept: only the keyed hash of the
    number (as ``SentMessage.recipient_hash``), enough to tell replies from one number apart.
    """

    message_id = models.CharField(_("message id"), max_length=MESSAGE_ID_MAX_LENGTH, unique=True)
    sender_hash = models.CharField(max_length=64, blank=True, default="", editable=False)
    api_key = models.CharField(_("API key"), max_length=64, blank=True, default="")
    #: When Vonage says the reply came in (its ``message-timestamp``): the conversion's time.
    replied_at = models.DateTimeField(_("replied at"))
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    #: The message the reply answers (the first part of a long SMS), if one matched.
    matched = models.ForeignKey(
        SentMessage,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="replies",
        verbose_name=_("answers"),
    )
    outcome = models.CharField(_("outcome"), max_length=20, choices=ReplyOutcome.choices)

    class Meta:
        verbose_name = _("inbound message")
        verbose_name_plural = _("inbound messages")
        indexes: ClassVar = [
            models.Index(fields=["received_at"], name="nexmo_conv_inbound_recv_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.message_id} ({self.get_outcome_display()})"


#: Upper bounds (seconds) of the time-to-convert buckets the rollups count; the last bucket
#: is everything longer. Roughly x1.5 steps: a quantile read from them is within a step.
SECONDS_TO_CONVERT_BOUNDS: tuple[int, ...] = (
    5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1200, 1800, 2700,
    3600, 5400, 7200, 10800, 14400, 21600, 43200, 86400,
)  # fmt: skip
#: The bucket columns of :class:`ConversionStat`: ``ttc_0`` ... ``ttc_26``.
SECONDS_TO_CONVERT_FIELDS: tuple[str, ...] = tuple(
    f"ttc_{index}" for index in range(len(SECONDS_TO_CONVERT_BOUNDS) + 1)
)


class ConversionStat(models.Model):
    """One hour of sends with the same channel, API key, country and network: how many were
    sent, delivered (by receipt) and converted (``delivered=True``), and how long converting
    took (a histogram). Kept exact by the sweeps, which fold in what was recorded or marked
    since (``folding.fold``); rebuilt from the rows by ``manage.py rebuild_conversion_stats``.

    Reads sum these rows, so their cost follows the number of hours and destinations, not
    the number of messages. A long SMS counts once (its first part).
    """

    #: The hour (UTC) the message was sent in.
    hour = models.DateTimeField(_("hour"))
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    api_key = models.CharField(_("API key"), max_length=64, blank=True, default="")
    country = models.CharField(_("country"), max_length=2, blank=True, default="")
    network = models.CharField(_("network"), max_length=6, blank=True, default="")
    sent = models.BigIntegerField(_("sent"), default=0)
    delivered = models.BigIntegerField(_("delivered"), default=0)
    converted = models.BigIntegerField(_("converted"), default=0)

    class Meta:
        verbose_name = _("conversion statistic")
        verbose_name_plural = _("conversion statistics")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["hour", "channel", "api_key", "country", "network"],
                name="nexmo_conv_stat_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.channel} {self.country} {self.network}"


for _field in SECONDS_TO_CONVERT_FIELDS:
    # Columns rather than rows: one UPDATE bumps a conversion's count and its bucket.
    ConversionStat.add_to_class(_field, models.BigIntegerField(default=0, editable=False))


class HourStatus(models.Model):
    """The key status counts share: conversions marked in one hour (UTC), in one status."""

    #: The hour (UTC) the conversions were marked in (``created_at``).
    hour = models.DateTimeField(_("hour"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)

    class Meta:
        abstract = True

    def _label(self, number: str) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.status}: {number}"


class StatusCount(HourStatus):
    """How many conversions marked in one hour (UTC) are in one status now. Counted by the
    sweeps and on deletion (``statuses``), so the dashboard and the Prometheus gauge read
    hours x statuses, not the conversions."""

    conversions = models.BigIntegerField(_("conversions"), default=0)

    class Meta:
        verbose_name = _("status count")
        verbose_name_plural = _("status counts")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["hour", "status"], name="nexmo_conv_status_count_unique"
            ),
        ]

    def __str__(self) -> str:
        return self._label(str(self.conversions))


class StatusCountChange(HourStatus):
    """A change to a :class:`StatusCount` not counted in yet: deleting a conversion leaves its
    -1 here, an INSERT that waits for no counter row, and the next sweep adds it in."""

    change = models.IntegerField(_("change"))

    class Meta:
        verbose_name = _("status count change")
        verbose_name_plural = _("status count changes")

    def __str__(self) -> str:
        return self._label(f"{self.change:+d}")


class ConversionAlert(models.Model):
    """A low-conversion alert's state, one row per country or network ever alerted, so the
    ``conversion_rate_low`` signal is sent once per new alert across every process."""

    by = models.CharField(_("by"), max_length=8)
    key = models.CharField(_("key"), max_length=8)
    active = models.BooleanField(_("active"), default=True)
    raised_at = models.DateTimeField(_("raised at"), default=timezone.now)
    sent = models.BigIntegerField(_("sent"), default=0)
    converted = models.BigIntegerField(_("converted"), default=0)

    class Meta:
        verbose_name = _("low-conversion alert")
        verbose_name_plural = _("low-conversion alerts")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["by", "key"], name="nexmo_conv_alert_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.by} {self.key}"


# --- the send guard (``guard``): its rules, the checks it saw, and its counts -------------------


class GuardRule(models.Model):
    """A person's decision for a destination: allow or block a number, a prefix or a
    country, until ``expires_at`` (never when empty). A rule always wins over the signals;
    the most specific rule wins (number, then the longest prefix, then country), and
    ``allow`` wins a tie. A number is kept as its keyed hash, never in clear."""

    class Action(models.TextChoices):
        ALLOW = "allow", _("allow")
        BLOCK = "block", _("block")

    class Kind(models.TextChoices):
        NUMBER = "number", _("number")
        PREFIX = "prefix", _("prefix")
        COUNTRY = "country", _("country")

    action = models.CharField(_("action"), max_length=5, choices=Action.choices)
    kind = models.CharField(_("applies to"), max_length=7, choices=Kind.choices)
    #: A prefix's digits, a country's ISO code, or a number's keyed hash.
    value = models.CharField(_("value"), max_length=64)
    #: What a person sees of the value (a number's last digits only).
    label = models.CharField(_("destination"), max_length=32, blank=True, default="")
    note = models.CharField(_("note"), max_length=200, blank=True, default="")
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    created_by = models.CharField(_("created by"), max_length=150, blank=True, default="")
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)

    class Meta:
        verbose_name = _("send guard rule")
        verbose_name_plural = _("send guard rules")
        indexes: ClassVar = [
            models.Index(fields=["kind", "value"], name="nexmo_conv_guard_rule_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.kind} {self.label or self.value}"


class GuardEvent(models.Model):
    """One check the guard made: short-lived (the sweeps delete it after two days), for the
    windows the bursts, sequences and velocity are counted in, and for the decisions shown.
    Numbers and requesters are kept as keyed hashes only."""

    at = models.DateTimeField(_("checked at"))
    prefix = models.CharField(_("prefix"), max_length=16, blank=True, default="")
    country = models.CharField(_("country"), max_length=2, blank=True, default="")
    number_hash = models.CharField(max_length=32, editable=False)
    #: Keyed hash of the number without its last two digits: its block of a hundred.
    block_hash = models.CharField(max_length=32, editable=False)
    client_hash = models.CharField(max_length=32, blank=True, default="", editable=False)
    action = models.CharField(_("action"), max_length=5)
    #: The first reason's code ("" for a plain allow).
    reason = models.CharField(_("reason"), max_length=20, blank=True, default="")

    class Meta:
        verbose_name = _("send guard decision")
        verbose_name_plural = _("send guard decisions")
        indexes: ClassVar = [
            models.Index(fields=["at"], name="nexmo_conv_guard_at_idx"),
            models.Index(fields=["prefix", "at"], name="nexmo_conv_guard_prefix_idx"),
            models.Index(fields=["country", "at"], name="nexmo_conv_guard_country_idx"),
            models.Index(fields=["block_hash", "at"], name="nexmo_conv_guard_block_idx"),
            models.Index(fields=["client_hash", "at"], name="nexmo_conv_guard_client_idx"),
            models.Index(fields=["action", "at"], name="nexmo_conv_guard_action_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.prefix}"


class GuardTally(models.Model):
    """Sends and conversions per destination and ten minutes of sending, counted by the
    sweeps' fold (``rollups.guard``) so a check reads a few hundred small rows at most.
    ``kind``: ``p`` a prefix (split by network), ``c`` a country, ``n`` a network, ``*``
    the whole site."""

    kind = models.CharField(max_length=1)
    name = models.CharField(max_length=16, blank=True, default="")
    network = models.CharField(max_length=6, blank=True, default="")
    bucket = models.DateTimeField()
    sent = models.BigIntegerField(default=0)
    converted = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("send guard count")
        verbose_name_plural = _("send guard counts")
        constraints: ClassVar = [
            models.UniqueConstraint(
                # (kind, name) then a range of buckets: what a check reads.
                fields=["kind", "name", "bucket", "network"],
                name="nexmo_conv_guard_tally_unique",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["bucket"], name="nexmo_conv_guard_bucket_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.name} {self.bucket:%Y-%m-%d %H:%M} {self.converted}/{self.sent}"


class GuardReplay(models.Model):
    """The figures of one ``replay_send_guard`` run (``guard.replay``), for the Send guard
    page; only the newest few are kept."""

    ran_at = models.DateTimeField(_("ran at"), default=timezone.now, db_index=True)
    days = models.FloatField(_("days replayed"))
    summary = models.JSONField(_("summary"))

    class Meta:
        verbose_name = _("send guard replay")
        verbose_name_plural = _("send guard replays")

    def __str__(self) -> str:
        return f"replay of {self.days:g} day(s) at {self.ran_at:%Y-%m-%d %H:%M:%S}"
