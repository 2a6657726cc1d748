"""What an answer does to its conversion — the outcome table — and writing it down.

``client.classify`` says which kind of answer Nexmo gave (an ``Outcome``); :func:`judge` is the
one place that decides what that means for the row and for the run; :func:`write_answers`
stores the attempts and the rows' new states, then signals what was committed.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from .. import signals
from ..choices import Outcome, Status
from ..client import is_endpoint_error
from ..conf import ConversionSettings
from ..models import Conversion, ConversionAttempt
from ..wire import Answer

logger = logging.getLogger("django_nexmo_conversion")


def halts(answer: Answer) -> bool:
    """Whether this answer stops reporting: the cause is the account or the settings, the same
    for every conversion, so sending more would only burn the queue. A 401/402 stops its
    account only (:func:`halts_everything` says when the whole run stops)."""
    return answer.outcome == Outcome.ACCOUNT_ERROR


def halts_everything(answer: Answer) -> bool:
    """Whether this answer stops the whole run, every account: the endpoint or the request's
    shape is wrong (403/404/405/406/415, a redirect), whichever key sends."""
    return halts(answer) and is_endpoint_error(answer.status_code)


def retry_delay(attempt: int, retry_after: float | None, conf: ConversionSettings) -> float:
    """Seconds before the next try: ``Retry-After`` when given, else exponential with jitter."""
    if retry_after is not None:
        return min(retry_after, conf.retry_backoff_max)
    ceiling = min(conf.retry_backoff * 2.0 ** (attempt - 1), conf.retry_backoff_max)
    # "Equal jitter": never sooner than half the step, spread so workers do not stampede.
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class Verdict:
    """The row's new status and every field to write for one answer."""

    status: str
    changes: dict[str, Any]


def judge(
    conversion: Conversion, answer: Answer, conf: ConversionSettings, now: datetime
) -> Verdict:
    """The outcome table (README, "Outcomes of one attempt") for one answer."""
    attempt_count = conversion.attempt_count + 1
    changes: dict[str, Any] = {
        "claim_token": "",
        "last_status_code": answer.status_code,
        "last_error": answer.error,
    }
    if answer.outcome == Outcome.REPORTED:
        status = Status.REPORTED
        changes.update(attempt_count=attempt_count, reported_at=now, next_attempt_at=None)
    elif halts(answer):
        # Not the conversion's fault: no attempt is spent and it is due again once fixed.
        status = Status.PENDING
        changes.update(next_attempt_at=now)
    elif answer.outcome == Outcome.TRANSIENT and attempt_count < conf.max_attempts:
        status = Status.PENDING
        delay = retry_delay(attempt_count, answer.retry_after, conf)
        changes.update(attempt_count=attempt_count, next_attempt_at=now + timedelta(seconds=delay))
    else:
        status = Status.FAILED
        changes.update(attempt_count=attempt_count, next_attempt_at=None)
        if answer.outcome == Outcome.TRANSIENT:
            changes["last_error"] = f"{answer.error} (gave up after {attempt_count} attempts)"
    changes["status"] = status
    return Verdict(status, changes)


def _attempt_of(conversion: Conversion, answer: Answer) -> ConversionAttempt:
    return ConversionAttempt(
        conversion_id=conversion.pk,
        started_at=answer.started_at,
        duration=timedelta(seconds=answer.duration),
        http_status=answer.status_code,
        outcome=answer.outcome,
        error=answer.error,
    )


class _LeaseLost(Exception):
    """A grouped write changed fewer rows than it owns: redo the batch row by row."""


def _write_grouped(
    answered: Sequence[tuple[Conversion, Answer]], verdicts: Sequence[Verdict], token: str
) -> None:
    """One INSERT for every attempt and one UPDATE per distinct set of changes (the 200s of a
    batch all share one), in one transaction: one commit (one fsync) for the lot."""
    groups: dict[tuple[tuple[str, Any], ...], list[int]] = {}
    for (conversion, _answer), verdict in zip(answered, verdicts, strict=True):
        groups.setdefault(tuple(sorted(verdict.changes.items())), []).append(conversion.pk)
    with transaction.atomic():
        ConversionAttempt.objects.bulk_create(_attempt_of(c, a) for c, a in answered)
        for key, pks in groups.items():
            updated = Conversion.objects.filter(pk__in=pks, claim_token=token).update(**dict(key))
            if updated != len(pks):
                raise _LeaseLost  # rolls the whole batch back, attempts included


def _write_each(
    answered: Sequence[tuple[Conversion, Answer]], verdicts: Sequence[Verdict], token: str
) -> list[bool]:
    """Row by row, each UPDATE's count telling whether the row is still ours."""
    owned: list[bool] = []
    for (conversion, answer), verdict in zip(answered, verdicts, strict=True):
        with transaction.atomic():
            _attempt_of(conversion, answer).save(force_insert=True)
            row = Conversion.objects.filter(pk=conversion.pk, claim_token=token)
            owned.append(bool(row.update(**verdict.changes)))
    return owned


def write_answers(
    answered: Sequence[tuple[Conversion, Answer]], token: str, conf: ConversionSettings
) -> list[str]:
    """Write a batch of attempts and the rows' new states; returns each row's resulting status.

    Every attempt becomes a ``ConversionAttempt`` row. A row's state is written only while
    the claim ``token`` still owns it; a row whose lease ran out and was taken over keeps the
    state the new owner gives it, and its status is returned as ``sending``.
    """
    if not answered:
        return []
    now = timezone.now()
    verdicts = [judge(c, a, conf, now) for c, a in answered]
    try:
        _write_grouped(answered, verdicts, token)
        owned = [True] * len(answered)
    except _LeaseLost:
        # Rare (a worker slower than its lease): find out row by row which are still ours.
        owned = _write_each(answered, verdicts, token)

    statuses: list[str] = []
    for (conversion, answer), verdict, mine in zip(answered, verdicts, owned, strict=True):
        if not mine:
            # Our lease ran out and another worker took the row over; it decides the state now.
            logger.warning(
                "Conversion %s: lease lost before the outcome was written (%s).",
                conversion.pk,
                answer.outcome,
            )
            statuses.append(Status.SENDING)
            continue
        for name, value in verdict.changes.items():
            setattr(conversion, name, value)
        _announce(conversion, verdict.status, answer)
        statuses.append(verdict.status)
    return statuses


def _announce(conversion: Conversion, status: str, answer: Answer) -> None:
    """Log and signal an outcome, once it is committed."""
    message_id = conversion.message.message_id
    if status == Status.REPORTED:
        logger.info("Reported conversion for %s.", message_id)
        _send_robust(signals.conversion_reported, conversion)
    elif status == Status.FAILED:
        logger.warning("Conversion for %s failed: %s", message_id, conversion.last_error)
        _send_robust(
            signals.conversion_failed,
            conversion,
            status_code=answer.status_code,
            error=conversion.last_error,
        )
    elif answer.outcome == Outcome.TRANSIENT:
        logger.info("Conversion for %s will be retried: %s", message_id, answer.error)


def _send_robust(signal: Signal, conversion: Conversion, **extra: Any) -> None:
    # A broken receiver must not stop the run or leave rows half-written.
    for receiver, response in signal.send_robust(sender=Conversion, conversion=conversion, **extra):
        if isinstance(response, Exception):
            logger.error("Receiver %r of %s raised.", receiver, signal, exc_info=response)
