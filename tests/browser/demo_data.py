"""A month of plausible traffic for the browser tests and the README screenshots.

Deterministic (seeded) apart from "now": sends every day, most of them converted and
reported, a few rejected by Nexmo (420), a few given up after repeated 503s, some still
pending, one day with no sends at all.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from django_nexmo_conversion.models import (
    Conversion,
    ConversionAttempt,
    Outcome,
    SentMessage,
    Status,
)
from django_nexmo_conversion.privacy import recipient_hash
from django_nexmo_conversion.rollups.rates import rebuild_rates

DAYS = 30
QUIET_DAY = 11  # days ago: nothing sent (the chart shows it as a dashed stub)
INVALID = "HTTP 420: Invalid Parameters — message-id is not a message sent from this account"
UNAVAILABLE = "HTTP 503: Service Unavailable"


@dataclass
class DemoData:
    messages: int = 0
    conversions: dict[str, int] = field(default_factory=dict)
    gave_up: Conversion | None = None


def build(*, now: datetime | None = None, seed: int = 7, max_attempts: int = 8) -> DemoData:
    rng = random.Random(seed)
    now = now or timezone.now()
    data = DemoData()
    messages: list[SentMessage] = []
    for days_ago in range(DAYS - 1, -1, -1):
        if days_ago == QUIET_DAY:
            continue
        day_start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
        day_start -= timedelta(days=days_ago)
        count = rng.randint(18, 34) if days_ago else 16
        for _ in range(count):
            sent_at = day_start + timedelta(seconds=rng.randint(7 * 3600, 21 * 3600))
            if sent_at > now:
                sent_at = now - timedelta(minutes=rng.randint(1, 120))
            number = f"4477009{rng.randint(0, 99999):05d}"
            messages.append(
                SentMessage(
                    message_id=f"0B{rng.getrandbits(56):014X}",
                    channel="voice" if rng.random() < 0.15 else "sms",
                    recipient=number,
                    recipient_hash=recipient_hash(number),
                    api_key="demo-2fa" if rng.random() < 0.7 else "demo-marketing",
                    sent_at=sent_at,
                )
            )
    SentMessage.objects.bulk_create(messages)
    data.messages = len(messages)

    conversions: list[Conversion] = []
    plans: list[tuple[Conversion, list[tuple[int | None, str, str]]]] = []
    for message in SentMessage.objects.order_by("sent_at"):
        age_days = (now - message.sent_at).days
        # A rate that drifts upwards over the month, with day-to-day noise.
        rate = 0.52 + 0.2 * (DAYS - age_days) / DAYS + rng.uniform(-0.08, 0.08)
        if rng.random() > rate:
            continue
        converted_at = message.sent_at + timedelta(seconds=rng.randint(20, 600))
        if converted_at > now:
            converted_at = now
        roll = rng.random()
        # A rough last day, so the newest rows (the top of the list) show every status.
        scale = 4 if converted_at > now - timedelta(hours=24) else 1
        attempts: list[tuple[int | None, str, str]]
        if converted_at > now - timedelta(minutes=20) and roll < 0.5:
            status, attempts = Status.PENDING, [(503, Outcome.TRANSIENT, UNAVAILABLE)]
        elif roll < 0.025 * scale:
            status, attempts = Status.FAILED, [(420, Outcome.REJECTED, INVALID)]
        elif roll < 0.04 * scale:
            status = Status.FAILED
            attempts = [(503, Outcome.TRANSIENT, UNAVAILABLE)] * max_attempts
        else:
            status = Status.REPORTED
            attempts = [(503, Outcome.TRANSIENT, UNAVAILABLE)] if roll < 0.1 else []
            attempts.append((200, Outcome.REPORTED, ""))
        last_code, _outcome, last_error = attempts[-1]
        if status == Status.FAILED and len(attempts) > 1:
            last_error = f"{UNAVAILABLE} (gave up after {len(attempts)} attempts)"
        conversion = Conversion(
            message=message,
            delivered=True,
            timestamp=converted_at,
            created_at=converted_at,
            status=status,
            attempt_count=len(attempts),
            last_status_code=last_code,
            last_error=last_error,
            next_attempt_at=converted_at + timedelta(minutes=2)
            if status == Status.PENDING
            else None,
            reported_at=converted_at + timedelta(seconds=len(attempts) * 61)
            if status == Status.REPORTED
            else None,
        )
        conversions.append(conversion)
        plans.append((conversion, attempts))
    # The top of the list must show a pending row whatever the time of day: today's sends
    # fall between 07:00 and 21:00, so early in the day nothing may be 20 minutes old.
    newest = sorted(range(len(plans)), key=lambda i: plans[i][0].created_at, reverse=True)[:5]
    if not any(plans[i][0].status == Status.PENDING for i in newest):
        for i in [i for i in newest if plans[i][0].status == Status.REPORTED][:2]:
            conversion = plans[i][0]
            conversion.status = Status.PENDING
            conversion.attempt_count = 1
            conversion.last_status_code = 503
            conversion.last_error = UNAVAILABLE
            conversion.next_attempt_at = conversion.timestamp + timedelta(minutes=2)
            conversion.reported_at = None
            plans[i] = (conversion, [(503, Outcome.TRANSIENT, UNAVAILABLE)])
    Conversion.objects.bulk_create(conversions)

    rows: list[ConversionAttempt] = []
    for conversion, attempts in plans:
        started = conversion.timestamp + timedelta(seconds=1)
        for number, (code, outcome, error) in enumerate(attempts):
            rows.append(
                ConversionAttempt(
                    conversion=conversion,
                    started_at=started + timedelta(seconds=60 * 2**number - 60),
                    duration=timedelta(milliseconds=rng.randint(38, 240)),
                    http_status=code,
                    outcome=outcome,
                    error=error,
                )
            )
        if conversion.status == Status.FAILED and len(attempts) > 1:
            data.gave_up = conversion
    ConversionAttempt.objects.bulk_create(rows)
    data.conversions = {
        status: sum(1 for c in conversions if c.status == status) for status in Status.values
    }
    # Written in bulk, behind the write path: count them in the rollups the dashboard reads.
    rebuild_rates()
    return data
