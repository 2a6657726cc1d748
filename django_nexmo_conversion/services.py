"""Every write the app makes: record messages, mark conversions, claim and report them.

The reporting engine, top to bottom: :func:`claim` takes a batch of due rows with a lease,
the backend sends them from a bounded thread pool (threads do HTTP only, never SQL), and
:func:`_apply_answer` writes each outcome from the calling thread as it arrives.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from . import dispatch, privacy, signals
from .backends import BaseBackend, get_backend
from .client import Answer, Report
from .conf import ConversionSettings, get_settings
from .exceptions import ConversionInputError
from .models import (
    MESSAGE_ID_MAX_LENGTH,
    Channel,
    Conversion,
    ConversionAttempt,
    Outcome,
    SentMessage,
    Status,
)
from .ratelimit import RateLimiter

logger = logging.getLogger("django_nexmo_conversion")

#: How far ahead of our clock a conversion timestamp may be (clock skew between hosts).
FUTURE_TOLERANCE = timedelta(minutes=5)
_MESSAGE_ID_RE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space, no control chars
_RECIPIENT_RE = re.compile(r"\+?[0-9]{3,20}")
_RECIPIENT_NOISE = re.compile(r"[\s().-]")


# --- validation -------------------------------------------------------------------------------


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
    if not _MESSAGE_ID_RE.fullmatch(message_id):
        raise ConversionInputError(
            f"message_id {message_id!r} contains whitespace, control or non-ASCII characters."
        )
    return message_id


def clean_channel(channel: object) -> str:
    if channel not in Channel.values:
        raise ConversionInputError(
            f"channel must be one of {', '.join(Channel.values)}, got {channel!r}."
        )
    return str(channel)


def clean_recipient(recipient: object) -> str:
    if recipient is None or recipient == "":
        return ""
    if not isinstance(recipient, str):
        raise ConversionInputError(f"recipient must be a string, got {type(recipient).__name__}.")
    compact = _RECIPIENT_NOISE.sub("", recipient)
    if not _RECIPIENT_RE.fullmatch(compact):
        raise ConversionInputError(
            f"recipient {recipient!r} is not a phone number (digits, optionally with a leading +)."
        )
    return compact.lstrip("+")


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
    return value


def clean_api_key(api_key: object) -> str:
    if api_key is None or api_key == "":
        return ""
    if not isinstance(api_key, str) or not _MESSAGE_ID_RE.fullmatch(api_key) or len(api_key) > 64:
        raise ConversionInputError("api_key must be a short string without whitespace.")
    return api_key


# --- recording and marking --------------------------------------------------------------------


def _recipient_fields(recipient: object) -> dict[str, str]:
    """``recipient`` and ``recipient_hash`` as ``RECIPIENT_STORAGE`` says (see ``privacy``)."""
    stored = privacy.store(clean_recipient(recipient))
    return {"recipient": stored.recipient, "recipient_hash": stored.recipient_hash}


def _target_fields(target: models.Model | None) -> dict[str, Any]:
    if target is None:
        return {}
    if not isinstance(target, models.Model) or target.pk is None:
        raise ConversionInputError("target must be a saved model instance.")
    return {
        "target_content_type": ContentType.objects.get_for_model(target),
        "target_object_id": str(target.pk),
    }


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
        **_target_fields(target),
    }
    message, _created = SentMessage.objects.get_or_create(
        channel=clean_channel(channel), message_id=clean_message_id(message_id), defaults=fields
    )
    return message


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


def _sms_response_data(response: object) -> dict[str, Any]:
    """The SMS API's JSON as a dict, from any shape an application holds it in."""
    if isinstance(response, (bytes, str)):
        try:
            response = json.loads(response)
        except ValueError:
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


def record_sms_response(
    response: object, *, target: models.Model | None = None, api_key: str | None = None
) -> RecordedMessages:
    """Record every part the SMS API accepted (``status == "0"``) in its response.

    ``response`` is the SMS API's answer as a dict (Vonage SDK v3 ``sms.send_message``), JSON
    text, a v4 ``vonage_sms.SmsResponse`` or a v4 ``PartialFailureError``. The parts are one
    send: parts 2..n get the first accepted part as ``parent``. Refused parts are not recorded
    and are listed in the result's ``failed``. Bad input raises and stores nothing.
    """
    data = _sms_response_data(response)
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
        **_target_fields(target),
    }
    rows = [
        (
            clean_message_id(part.get("message-id", part.get("message_id"))),
            {**shared, **_recipient_fields(part.get("to"))},
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
            message, _created = SentMessage.objects.get_or_create(
                channel=Channel.SMS, message_id=message_id, defaults=fields
            )
            recorded.append(message)
    if failed:
        logger.warning(
            "SMS API refused %d of %d part(s) (status %s); they were not recorded.",
            len(failed),
            len(failed) + len(recorded),
            ", ".join(sorted({part.status for part in failed})),
        )
    return recorded


def _create_conversion(message: SentMessage, delivered: bool, at: datetime) -> Conversion | None:
    """Insert the conversion, or return None if the message already has one."""
    fields = {
        "message": message,
        "delivered": delivered,
        "timestamp": at,
        "next_attempt_at": timezone.now(),
    }
    try:
        if not connection.in_atomic_block:
            # Autocommit: the INSERT is its own transaction and a duplicate spoils nothing,
            # so no BEGIN/COMMIT pair around it (two fewer queries on the request path).
            return Conversion.objects.create(**fields)
        # A savepoint, so a duplicate does not break the caller's transaction.
        with transaction.atomic():
            return Conversion.objects.create(**fields)
    except IntegrityError:
        return None


def _mark_one(sent: SentMessage, delivered: bool, at: datetime) -> Conversion:
    conversion = _create_conversion(sent, delivered, at)
    if conversion is not None:
        signals.conversion_marked.send(sender=Conversion, conversion=conversion)
        dispatch.schedule(conversion.pk)
        return conversion

    conversion = Conversion.objects.get(message=sent)
    if delivered and not conversion.delivered:
        upgraded = Conversion.objects.filter(
            pk=conversion.pk, delivered=False, status__in=[Status.PENDING, Status.FAILED]
        ).update(
            delivered=True,
            timestamp=at,
            status=Status.PENDING,
            attempt_count=0,
            next_attempt_at=timezone.now(),
        )
        if upgraded:
            conversion.refresh_from_db()
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
    the conversion returned is the one of ``message``.
    """
    if not isinstance(delivered, bool):
        raise ConversionInputError(f"delivered must be True or False, got {delivered!r}.")
    at = clean_timestamp(timestamp)
    if isinstance(message, SentMessage):
        if message.pk is None:
            raise ConversionInputError("message must be a saved SentMessage.")
        sent = message
    elif isinstance(message, str):
        sent = record_message(message, channel=clean_channel(channel))
    else:
        raise ConversionInputError(
            f"message must be a SentMessage or a message id string, got {type(message).__name__}."
        )
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


# --- reporting --------------------------------------------------------------------------------


@dataclass
class ReportResult:
    """What one report run did."""

    reported: int = 0
    retrying: int = 0
    failed: int = 0
    #: True when an account error (401/402) stopped the run; everything left stays pending.
    halted: bool = False
    status_code: int | None = None
    error: str = ""

    @property
    def attempted(self) -> int:
        return self.reported + self.retrying + self.failed

    def merge(self, other: ReportResult) -> None:
        self.reported += other.reported
        self.retrying += other.retrying
        self.failed += other.failed
        if other.halted:
            self.halted, self.status_code, self.error = True, other.status_code, other.error

    def summary(self) -> str:
        text = f"reported {self.reported}, retrying {self.retrying}, failed {self.failed}"
        if self.halted:
            text += f"; HALTED by an account error: {self.error}"
        return text


def retry_delay(attempt: int, retry_after: float | None, conf: ConversionSettings) -> float:
    """Seconds before the next try: ``Retry-After`` when given, else exponential with jitter."""
    if retry_after is not None:
        return min(retry_after, conf.retry_backoff_max)
    ceiling = min(conf.retry_backoff * 2.0 ** (attempt - 1), conf.retry_backoff_max)
    # "Equal jitter": never sooner than half the step, spread so workers do not stampede.
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _lease_rounds(conf: ConversionSettings) -> int:
    # Every row of a batch must go out before the batch's lease ends, or another worker could
    # take it over and send it too. A request may take TIMEOUT to connect plus TIMEOUT to
    # read: this many rounds of requests surely fit in a lease.
    return int(conf.lease_seconds // (2 * conf.timeout + 1))


def _batch_size(concurrency: int, conf: ConversionSettings, *, queued: bool = False) -> int:
    """Rows per claim: no more rounds of ``concurrency`` requests than the lease allows, one
    fewer for a batch ``queued`` behind the one still sending (it may wait that round)."""
    rounds = _lease_rounds(conf) - (1 if queued else 0)
    return concurrency * max(1, min(rounds, max(4, 32 // concurrency)))


def claim(
    size: int,
    *,
    pks: Sequence[int] | None = None,
    due_at: datetime | None = None,
    conf: ConversionSettings | None = None,
) -> tuple[str, list[Conversion]]:
    """Take up to ``size`` due conversions for this worker; returns (claim token, rows).

    Portable compare-and-set: the UPDATE repeats the ``due`` condition, so of two workers
    racing for a row only one changes it. Where the database can skip locked rows we also
    do, so parallel workers pick different rows instead of contending for the same ones.
    ``due_at`` (default now) takes only rows due by then.
    """
    conf = conf or get_settings()
    now = timezone.now()
    due_at = due_at or now
    token = uuid.uuid4().hex
    due = Conversion.objects.due(due_at)
    if pks is not None:
        due = due.filter(pk__in=pks)
    features = connection.features
    chosen: Iterable[int]
    claimed = 0
    with transaction.atomic():
        # One status at a time, oldest due first: each is one range of the (status,
        # next_attempt_at) index read in order, so a claim stops after ``size`` rows however
        # long the queue. Both statuses in one ORDER BY made the database sort every due row
        # on each claim (bench/memory.py: a backlog of 100,000 drained at half the speed of
        # one of 10,000). Rows whose lease ran out have waited longest: they go first.
        for status in (Status.SENDING, Status.PENDING):
            wanted = size - claimed
            if wanted <= 0:
                break
            candidates = due.filter(status=status).order_by("next_attempt_at")
            if features.has_select_for_update_skip_locked:
                # PostgreSQL, MariaDB >= 10.6, MySQL 8: parallel workers skip each other's rows.
                chosen = list(
                    candidates.select_for_update(skip_locked=True).values_list("pk", flat=True)[
                        :wanted
                    ]
                )
            elif features.allow_sliced_subqueries_with_in:
                # SQLite: one statement. A read followed by a write would have to upgrade its
                # lock, which SQLite refuses at once ("database is locked") under contention.
                chosen = candidates.values_list("pk", flat=True)[:wanted]
            else:
                chosen = list(candidates.values_list("pk", flat=True)[:wanted])
            claimed += (
                Conversion.objects.due(due_at)
                .filter(pk__in=chosen)
                .update(
                    status=Status.SENDING,
                    claim_token=token,
                    next_attempt_at=now + timedelta(seconds=conf.lease_seconds),
                )
            )
    if not claimed:
        return token, []
    # status=SENDING narrows the scan to rows in flight (the due index's prefix).
    rows = list(
        Conversion.objects.filter(status=Status.SENDING, claim_token=token)
        .select_related("message")
        .order_by("next_attempt_at", "pk")
    )
    return token, rows


def release(token: str, pks: Iterable[int]) -> int:
    """Give claimed but unsent conversions back, due now and with nothing burned."""
    return Conversion.objects.filter(
        pk__in=list(pks), claim_token=token, status=Status.SENDING
    ).update(status=Status.PENDING, claim_token="", next_attempt_at=timezone.now())


def _report_of(conversion: Conversion) -> Report:
    return Report(
        channel=conversion.message.channel,
        message_id=conversion.message.message_id,
        delivered=conversion.delivered,
        timestamp=conversion.timestamp,
    )


def _planned_changes(
    conversion: Conversion, answer: Answer, conf: ConversionSettings, now: datetime
) -> tuple[str, dict[str, Any]]:
    """The row's new status and the fields to write for one answer (the outcome table)."""
    attempt_count = conversion.attempt_count + 1
    changes: dict[str, Any] = {
        "claim_token": "",
        "last_status_code": answer.status_code,
        "last_error": answer.error,
    }
    if answer.outcome == Outcome.REPORTED:
        status = Status.REPORTED
        changes.update(attempt_count=attempt_count, reported_at=now, next_attempt_at=None)
    elif answer.outcome == Outcome.ACCOUNT_ERROR:
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
    return status, changes


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
    outcomes: Sequence[tuple[Conversion, Answer]],
    plans: Sequence[tuple[str, dict[str, Any]]],
    token: str,
) -> None:
    """One INSERT for every attempt and one UPDATE per distinct set of changes (the 200s of a
    batch all share one), in one transaction: one commit (one fsync) for the lot."""
    groups: dict[tuple[tuple[str, Any], ...], list[int]] = {}
    for (conversion, _answer), (_status, changes) in zip(outcomes, plans, strict=True):
        groups.setdefault(tuple(sorted(changes.items())), []).append(conversion.pk)
    with transaction.atomic():
        ConversionAttempt.objects.bulk_create(_attempt_of(c, a) for c, a in outcomes)
        for key, pks in groups.items():
            updated = Conversion.objects.filter(pk__in=pks, claim_token=token).update(**dict(key))
            if updated != len(pks):
                raise _LeaseLost  # rolls the whole batch back, attempts included


def _write_each(
    outcomes: Sequence[tuple[Conversion, Answer]],
    plans: Sequence[tuple[str, dict[str, Any]]],
    token: str,
) -> list[bool]:
    """Row by row, each UPDATE's count telling whether the row is still ours."""
    owned: list[bool] = []
    for (conversion, answer), (_status, changes) in zip(outcomes, plans, strict=True):
        with transaction.atomic():
            _attempt_of(conversion, answer).save(force_insert=True)
            row = Conversion.objects.filter(pk=conversion.pk, claim_token=token)
            owned.append(bool(row.update(**changes)))
    return owned


def _apply_answers(
    outcomes: Sequence[tuple[Conversion, Answer]], token: str, conf: ConversionSettings
) -> list[str]:
    """Write a batch of attempts and the rows' new states; returns each row's resulting status.

    Every attempt becomes a ``ConversionAttempt`` row. A row's state is written only while
    this claim still owns it (``claim_token``); a row whose lease ran out and was taken over
    keeps the state the new owner gives it, and its status is returned as ``sending``.
    """
    if not outcomes:
        return []
    now = timezone.now()
    plans = [_planned_changes(c, a, conf, now) for c, a in outcomes]
    try:
        _write_grouped(outcomes, plans, token)
        owned = [True] * len(outcomes)
    except _LeaseLost:
        # Rare (a worker slower than its lease): find out row by row which are still ours.
        owned = _write_each(outcomes, plans, token)

    statuses: list[str] = []
    for (conversion, answer), (status, changes), mine in zip(outcomes, plans, owned, strict=True):
        if not mine:
            # Our lease ran out and another worker took the row over; it decides the state now.
            logger.warning(
                "Conversion %s: lease lost before the outcome was written (%s).",
                conversion.pk,
                answer.outcome,
            )
            statuses.append(Status.SENDING)
            continue
        for name, value in changes.items():
            setattr(conversion, name, value)
        _announce(conversion, status, answer)
        statuses.append(status)
    return statuses


def _apply_answer(
    conversion: Conversion, token: str, answer: Answer, conf: ConversionSettings
) -> str:
    """Write one attempt and the row's new state; returns the row's resulting status."""
    return _apply_answers([(conversion, answer)], token, conf)[0]


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


def _send_robust(signal: Any, conversion: Conversion, **extra: Any) -> None:
    # A broken receiver must not stop the run or leave rows half-written.
    for receiver, response in signal.send_robust(sender=Conversion, conversion=conversion, **extra):
        if isinstance(response, Exception):
            logger.error("Receiver %r of %s raised.", receiver, signal, exc_info=response)


_pool_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}


def _executor(size: int) -> ThreadPoolExecutor:
    """A long-lived pool per size, so worker threads (and their keep-alive connections)
    survive from one run to the next: ``--loop`` and on_commit reuse them."""
    with _pool_lock:
        pool = _pools.get(size)
        if pool is None:
            pool = _pools[size] = ThreadPoolExecutor(size, thread_name_prefix="nexmo-conversion")
        return pool


class _Run:
    """One report run's sending side: the backend, the shared rate limit, and the tally."""

    def __init__(self, conf: ConversionSettings) -> None:
        self.conf = conf
        self.result = ReportResult()
        self.limiter = (
            RateLimiter(conf.rate_limit, cache_alias=conf.rate_limit_cache)
            if conf.rate_limit
            else None
        )
        self._backend: BaseBackend | None = None

    def send(self, row: Conversion) -> Answer:
        """One POST (in a worker thread: no SQL here)."""
        if self._backend is None:
            self._backend = get_backend()
        if self.limiter is not None:
            self.limiter.wait()
        answer = self._backend.send(_report_of(row), self.conf.account_for(row.message.api_key))
        if self.limiter is not None and answer.status_code == 429:
            self.limiter.penalize(answer.retry_after if answer.retry_after is not None else 1.0)
        return answer

    def record(self, token: str, answered: list[tuple[Conversion, Answer]]) -> bool:
        """Write answers (in one transaction) and count them; False when the run must halt."""
        result = self.result
        go_on = True
        statuses = _apply_answers(answered, token, self.conf)
        for (_row, answer), status in zip(answered, statuses, strict=True):
            if answer.outcome == Outcome.ACCOUNT_ERROR:
                if not result.halted:
                    logger.error("Reporting halted: %s", answer.error)
                result.halted, result.status_code = True, answer.status_code
                result.error = answer.error
                go_on = False
            elif status == Status.REPORTED:
                result.reported += 1
            elif status == Status.FAILED:
                result.failed += 1
            elif status == Status.PENDING:
                result.retrying += 1
        return go_on


def _send_one_by_one(
    batches: Iterator[tuple[str, list[Conversion]]],
    run: _Run,
    should_stop: Callable[[], bool],
) -> None:
    for token, rows in batches:
        unsent = {row.pk for row in rows}
        try:
            for row in rows:
                if should_stop():
                    break
                answer = run.send(row)
                unsent.discard(row.pk)
                if not run.record(token, [(row, answer)]):
                    break
        finally:
            # Also on an unexpected error (no credentials for a key, a backend that raised,
            # the database): claimed rows must not sit as "sending" until their lease ends.
            if unsent:
                release(token, unsent)
        if run.result.halted:
            return


def _send_concurrently(
    batches: Iterator[tuple[str, list[Conversion]]],
    run: _Run,
    concurrency: int,
    should_stop: Callable[[], bool],
    *,
    queue_ahead: bool,
) -> None:
    """Send from the thread pool and write the answers from this thread as they arrive.

    With ``queue_ahead`` the next batch is claimed as soon as the last queued request of
    this one has started, so the pool never sits idle waiting for a claim.
    """
    pool = _executor(concurrency)
    owner: dict[Future[Answer], tuple[str, Conversion]] = {}
    running: set[Future[Answer]] = set()
    unsent: dict[str, set[int]] = {}  # claim token -> rows not sent (released at the end)

    def queue_next() -> bool:
        batch = next(batches, None)
        if batch is None:
            return False
        token, rows = batch
        unsent[token] = {row.pk for row in rows}
        for row in rows:
            future = pool.submit(run.send, row)
            owner[future] = (token, row)
            running.add(future)
        return True

    stopping = False
    try:
        more = queue_next()
        while running:
            done, still = wait(running, return_when=FIRST_COMPLETED)
            running.intersection_update(still)
            answered: dict[str, list[tuple[Conversion, Answer]]] = {}
            for future in done:
                if future.cancelled():
                    continue
                token, row = owner.pop(future)
                answer = future.result()
                if answer.outcome == Outcome.ACCOUNT_ERROR or should_stop():
                    # Halted or asked to stop: cancel before writing the outcome, so the pool
                    # does not start more sends meanwhile; what has not started is released.
                    stopping = True
                    for other in running:
                        other.cancel()
                answered.setdefault(token, []).append((row, answer))
            # Every answer that came in while the last ones were written goes in one
            # transaction: under load the groups grow and the commits thin out.
            for token, rows_answered in answered.items():
                unsent[token].difference_update(row.pk for row, _answer in rows_answered)
                run.record(token, rows_answered)
            stopping = stopping or run.result.halted
            if more and not stopping and len(running) <= (concurrency if queue_ahead else 0):
                more = queue_next()
    except BaseException:
        # Stop the queued sends; one already on the wire keeps its lease, so no other worker
        # sends it while this request may still succeed.
        for future in running:
            if not future.cancel() and not future.done():
                token, row = owner[future]
                unsent[token].discard(row.pk)
        raise
    finally:
        for token, pks in unsent.items():
            if pks:
                release(token, pks)


def _pending_batches(
    *,
    limit: int | None,
    concurrency: int,
    pks: Sequence[int] | None,
    conf: ConversionSettings,
    should_stop: Callable[[], bool],
    queued: bool = False,
) -> Iterator[tuple[str, list[Conversion]]]:
    # Only rows due when the run started: a row this run reschedules waits for the next run,
    # so one run tries each conversion at most once.
    started = timezone.now()
    remaining = limit
    while remaining is None or remaining > 0:
        if should_stop():
            return
        size = _batch_size(concurrency, conf, queued=queued)
        if remaining is not None:
            size = min(size, remaining)
        token, rows = claim(size, pks=pks, due_at=started, conf=conf)
        if not rows:
            return
        if remaining is not None:
            remaining -= len(rows)
        yield token, rows
        if len(rows) < size:
            # Fewer than asked: nothing else was due when the run started, or another
            # worker is taking it. Another claim would only come back empty (for the one
            # conversion an on_commit dispatch reports, that was a third of its queries).
            return


def report_pending(
    *,
    limit: int | None = None,
    concurrency: int | None = None,
    pks: Sequence[int] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ReportResult:
    """Report every conversion due now (at most ``limit``), ``concurrency`` at a time.

    Stops at the first account error (401/402) and leaves everything not yet sent pending.
    ``pks`` narrows the run to those conversions (the dispatchers use it).
    """
    conf = get_settings()
    conf.raise_for_problems()
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConversionInputError(f"limit must be a whole number >= 0, got {limit!r}.")
    if concurrency is None:
        concurrency = conf.concurrency
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConversionInputError(f"concurrency must be a whole number >= 1, got {concurrency!r}.")
    should_stop = should_stop or (lambda: False)
    run = _Run(conf)
    # Claiming a batch while the previous one still sends needs room for one more round
    # within the lease.
    queue_ahead = concurrency > 1 and _lease_rounds(conf) >= 2
    batches = _pending_batches(
        limit=limit,
        concurrency=concurrency,
        pks=pks,
        conf=conf,
        should_stop=should_stop,
        queued=queue_ahead,
    )
    if concurrency <= 1:
        _send_one_by_one(batches, run, should_stop)
    else:
        _send_concurrently(batches, run, concurrency, should_stop, queue_ahead=queue_ahead)
    return run.result


def report_conversions(pks: Sequence[int]) -> ReportResult:
    """Report these conversions now if they are due (what the dispatchers call)."""
    return report_pending(pks=list(pks), concurrency=min(len(pks), get_settings().concurrency) or 1)
