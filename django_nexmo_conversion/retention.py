"""Retention: delete old sent messages with their conversions and attempts, in bounded batches,
and the inbound messages (replies) that answer nothing kept; keep no more of the numbers
already stored than ``RECIPIENT_STORAGE`` says now.

A send is judged by its first part (parts 2..n go with it). By default only what is
finished is purged: reported or failed conversions, and messages that never converted.
``pending`` must be asked for explicitly, and a conversion being sent (``sending``) is never
purged, so nothing marked is lost behind a worker's back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, models, transaction
from django.utils import timezone

from . import privacy
from .conf import get_settings
from .exceptions import ConversionInputError
from .models import Conversion, ConversionAttempt, InboundMessage, SentMessage, Status
from .rollups import fold
from .rollups.by_status import settled_deletion
from .rollups.counters import lock_conflict, take_write_lock

#: Messages with no conversion at all.
UNCONVERTED = "unconverted"
#: What ``purge`` may be asked to delete, and what it deletes by default.
PURGEABLE = (Status.REPORTED.value, Status.FAILED.value, Status.PENDING.value, UNCONVERTED)
DEFAULT_STATUSES = (Status.REPORTED.value, Status.FAILED.value, UNCONVERTED)


@dataclass
class PurgeResult:
    """Rows deleted (or, for a dry run, that would be)."""

    messages: int = 0
    conversions: int = 0
    attempts: int = 0
    batches: int = 0
    inbound: int = 0

    def summary(self) -> str:
        return (
            f"{self.messages} message(s), {self.conversions} conversion(s), "
            f"{self.attempts} attempt(s), {self.inbound} inbound message(s)"
        )


def _clean_statuses(statuses: Iterable[str] | None) -> tuple[str, ...]:
    if statuses is None:
        return DEFAULT_STATUSES
    chosen = tuple(dict.fromkeys(statuses))
    wrong = [s for s in chosen if s not in PURGEABLE]
    if wrong or not chosen:
        raise ConversionInputError(
            f"status must be among {', '.join(PURGEABLE)}; got {', '.join(map(repr, wrong))}."
            if wrong
            else "Give at least one status to purge."
        )
    return chosen


def _check_batch_size(batch_size: object) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConversionInputError(f"batch_size must be a whole number >= 1, got {batch_size!r}.")


def purgeable(cutoff: datetime, statuses: tuple[str, ...]) -> models.QuerySet[SentMessage]:
    """First parts (and single messages) sent before ``cutoff`` whose send is in ``statuses``."""
    kept = [s.value for s in Status if s.value not in statuses]
    wanted = models.Q(conversion__status__in=[s for s in statuses if s != UNCONVERTED])
    if UNCONVERTED in statuses:
        wanted |= models.Q(conversion__isnull=True)
    return (
        SentMessage.objects.filter(parent__isnull=True, sent_at__lt=cutoff)
        .filter(wanted)
        # A send goes whole or not at all: keep it while any part is in a kept status.
        .exclude(parts__conversion__status__in=kept)
    )


def unanswered_replies(cutoff: datetime) -> models.QuerySet[InboundMessage]:
    """Inbound messages received before ``cutoff`` that answer no message still kept (never
    matched, or their message purged): the audit of replies goes with what they converted."""
    return InboundMessage.objects.filter(received_at__lt=cutoff, matched__isnull=True)


def _counts(heads: models.QuerySet[SentMessage], cutoff: datetime) -> PurgeResult:
    messages = SentMessage.objects.filter(models.Q(pk__in=heads) | models.Q(parent__in=heads))
    replies = InboundMessage.objects.filter(received_at__lt=cutoff, matched__in=heads)
    return PurgeResult(
        messages=messages.count(),
        conversions=Conversion.objects.filter(message__in=messages).count(),
        attempts=ConversionAttempt.objects.filter(conversion__message__in=messages).count(),
        inbound=unanswered_replies(cutoff).count() + replies.count(),
    )


def purge(
    *,
    older_than: timedelta | datetime,
    statuses: Iterable[str] | None = None,
    batch_size: int = 1000,
    dry_run: bool = False,
) -> PurgeResult:
    """Delete sends older than ``older_than`` (an age, or a cut-off datetime) in ``statuses``.

    Inbound messages received before the cut-off go too once they answer nothing kept
    (:func:`unanswered_replies`). Each batch of at most ``batch_size`` sends (or replies) is
    deleted in its own transaction, so locks stay short and an interrupted purge keeps what it
    did. ``dry_run`` only counts.
    """
    chosen = _clean_statuses(statuses)
    _check_batch_size(batch_size)
    if isinstance(older_than, timedelta):
        if older_than < timedelta(0):
            raise ConversionInputError("older_than must not be negative.")
        try:
            cutoff = timezone.now() - older_than
        except OverflowError:
            raise ConversionInputError(
                f"older_than is {older_than.days} days: that reaches before year 1."
            ) from None
    elif isinstance(older_than, datetime) and not timezone.is_naive(older_than):
        cutoff = older_than
    else:
        raise ConversionInputError("older_than must be a timedelta or an aware datetime.")

    if dry_run:
        return _counts(purgeable(cutoff, chosen), cutoff)
    # The rollups keep the history of what is purged: count whatever the sweeps have not
    # counted yet before it goes (what is recorded or marked from now on stays this time).
    started = timezone.now()
    fold()
    result = PurgeResult()
    _delete_sends(purgeable(cutoff, chosen), batch_size, result, chosen, started)
    # Then the replies left answering nothing (deleting their messages set them to NULL).
    _delete_replies(unanswered_replies(cutoff), batch_size, result)
    return result


def _key_batches(rows: models.QuerySet[Any], batch_size: int) -> Iterator[list[int]]:
    """The keys of ``rows``, ``batch_size`` at a time in key order, each batch in its own
    transaction: the caller's work on a batch runs inside it (an exception rolls that batch
    back), so locks stay short and an interrupted run keeps what it did. The walk only goes
    forward, so it ends whatever the caller does to the rows."""
    last = 0
    while True:
        with transaction.atomic():
            keys = rows.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)
            batch = list(keys[:batch_size])
            if not batch:
                return
            yield batch
        last = batch[-1]


def _still_purgeable(ids: list[int], statuses: tuple[str, ...], started: datetime) -> list[int]:
    """Of the sends ``ids`` chosen a moment ago, those still to delete, judged again with
    their rows locked until the batch commits.

    Live traffic may have changed them since they were chosen: a conversion marked (its
    message must stay, whatever ``statuses`` says: nothing marked is lost), a part claimed, a
    send recorded after the purge's count (it goes once a sweep has counted it). The messages
    are locked first: a conversion inserted for one of them now waits for this batch (its
    foreign key locks the message), so no mark can slip in between this check and the delete
    — nor fail it with a foreign-key error at commit. The conversions are read with a locking
    read, which sees every committed row, even under MariaDB's REPEATABLE READ snapshot.
    """
    take_write_lock(SentMessage, "counted")  # SQLite: a writer before it reads
    # The heads, then their parts: each by its own index (an OR of the two would scan, and
    # InnoDB would lock every row scanned).
    locked = SentMessage.objects.select_for_update().order_by("pk")
    fields = ("pk", "parent_id", "counted")
    messages = list(locked.filter(pk__in=ids).values_list(*fields))
    messages += locked.filter(parent_id__in=ids).values_list(*fields)
    conversions = {
        message_id: (status, counted, created_at)
        for message_id, status, counted, created_at in Conversion.objects.select_for_update()
        .filter(message_id__in=[pk for pk, _parent, _counted in messages])
        .order_by("pk")
        .values_list("message_id", "status", "counted", "created_at")
    }
    kept = {s.value for s in Status if s.value not in statuses}
    spoiled: set[int] = set()
    for pk, parent, counted in messages:
        head = parent or pk
        conversion = conversions.get(pk)
        if not counted:
            spoiled.add(head)  # recorded since the purge's count: not counted yet
        if conversion is None:
            if pk == head and UNCONVERTED not in statuses:
                spoiled.add(head)
            continue
        status, conversion_counted, created_at = conversion
        fresh = created_at >= started or not conversion_counted
        if fresh or status in kept or (pk == head and status not in statuses):
            spoiled.add(head)
    return [pk for pk in ids if pk not in spoiled]


def _delete_sends(
    heads: models.QuerySet[SentMessage],
    batch_size: int,
    result: PurgeResult,
    statuses: tuple[str, ...],
    started: datetime,
) -> None:
    last = 0
    while True:
        # Chosen outside the batch's transaction: a batch that meets live traffic's locks
        # (a deadlock, a lock wait timeout) is tried again whole, on rows judged afresh.
        chosen = list(
            heads.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:batch_size]
        )
        if not chosen:
            return
        for attempt in range(1, PURGE_TRIES + 1):
            try:
                with transaction.atomic():
                    deleted = _delete_batch(chosen, statuses, started)
                break
            except DatabaseError as exc:
                if attempt == PURGE_TRIES or not lock_conflict(exc):
                    raise
        result.batches += 1
        result.messages += deleted.get(SentMessage._meta.label, 0)
        result.conversions += deleted.get(Conversion._meta.label, 0)
        result.attempts += deleted.get(ConversionAttempt._meta.label, 0)
        last = chosen[-1]


#: How many times a batch that met live traffic's locks is tried.
PURGE_TRIES = 5


def _delete_batch(
    chosen: list[int], statuses: tuple[str, ...], started: datetime
) -> dict[str, int]:
    """Delete what of the sends ``chosen`` is still to go, in the caller's transaction;
    returns the rows deleted per model."""
    ids = _still_purgeable(chosen, statuses, started)
    if not ids:
        return {}
    sends = models.Q(pk__in=ids) | models.Q(parent_id__in=ids)
    conversions = Conversion.objects.filter(message__in=SentMessage.objects.filter(sends))
    with settled_deletion(conversions):
        _total, per_model = SentMessage.objects.filter(sends).delete()
    return per_model


def _delete_replies(
    replies: models.QuerySet[InboundMessage], batch_size: int, result: PurgeResult
) -> None:
    for ids in _key_batches(replies, batch_size):
        InboundMessage.objects.filter(pk__in=ids).delete()
        result.batches += 1
        result.inbound += len(ids)


def apply_recipient_storage(*, batch_size: int = 1000, dry_run: bool = False) -> int:
    """Make the numbers stored before ``RECIPIENT_STORAGE`` was tightened follow it now: under
    ``"masked"`` a full number is masked, under ``"none"`` every number is blanked (the keyed
    hash stays: replies still match). Returns how many messages changed (or would, for a dry
    run). Nothing can bring back what was not kept, so under ``"full"`` nothing changes.

    Batches of at most ``batch_size`` messages, each in its own transaction.
    """
    _check_batch_size(batch_size)
    mode = get_settings().recipient_storage
    if mode == "full":
        return 0
    kept = SentMessage.objects.exclude(recipient="")
    if mode == "masked":
        kept = kept.exclude(recipient__contains=privacy.MASK_CHAR)
    if dry_run:
        return kept.count()
    changed = 0
    for keys in _key_batches(kept, batch_size):
        batch = list(SentMessage.objects.filter(pk__in=keys).only("pk", "recipient"))
        for message in batch:
            message.recipient = privacy.store(message.recipient, mode=mode).recipient
        SentMessage.objects.bulk_update(batch, ["recipient"])
        changed += len(batch)
    return changed
