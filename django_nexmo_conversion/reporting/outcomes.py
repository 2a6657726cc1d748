"""What an answer does to its conversion — the outcome table — and writing it down.

``transport.answers`` says which kind of answer Nexmo gave (an ``Outcome``); :func:`judge` is the
one place that decides what that means for the row and for the run; :func:`write_answers`
stores the attempts and the rows' new states, then signals what was committed.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import DataError, IntegrityError, connections, router, transaction
from django.dispatch import Signal
from django.utils import timezone

from .. import signals
from ..choices import Outcome, Status
from ..conf import ConversionSettings
from ..models import Conversion, ConversionAttempt
from ..transport.wire import Answer

logger = logging.getLogger("django_nexmo_conversion")


def halts(answer: Answer) -> bool:
    """Whether this answer stops reporting: the cause is the account or the settings, the same
    for every conversion, so sending more would only burn the queue. A 401/402 stops its
    account only (:func:`halts_everything` says when the whole run stops)."""
    return answer.outcome in (Outcome.ACCOUNT_ERROR, Outcome.ENDPOINT_ERROR)


def halts_everything(answer: Answer) -> bool:
    """Whether this answer stops the whole run, every account: the endpoint or the request's
    shape is wrong (403/404/405/406/415, a redirect), whichever key sends."""
    return answer.outcome == Outcome.ENDPOINT_ERROR


#: The most of an error text stored (``last_error``, an attempt's ``error``) and logged.
ERROR_TEXT_MAX = 1000
#: C0 and C1 control characters (NUL included: PostgreSQL refuses it in text) and DEL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def storable(text: str, limit: int = ERROR_TEXT_MAX) -> str:
    """An error text every database accepts and every log shows on one line: control
    characters become spaces (or U+FFFD), lone surrogates are escaped, at most ``limit``
    characters. An error text comes from a remote body: one NUL must not spoil the batch."""
    if not text:
        return text  # a 200's: nothing to clean (two calls per answer)
    text = _CONTROL.sub(lambda m: " " if m.group() in "\t\r\n" else "\ufffd", text)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def retry_delay(attempt: int, retry_after: float | None, conf: ConversionSettings) -> float:
    """Seconds before the next try: ``Retry-After`` when given, else exponential with jitter;
    never more than ``RETRY_BACKOFF_MAX`` (nor anything a ``timedelta`` cannot hold)."""
    if retry_after is not None and math.isfinite(retry_after):
        return min(max(retry_after, 0.0), conf.retry_backoff_max)
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
    """The outcome table (docs, "Outcomes of one attempt") for one answer."""
    attempt_count = conversion.attempt_count + 1
    changes: dict[str, Any] = {
        "claim_token": "",
        "last_status_code": answer.status_code,
        "last_error": storable(answer.error),
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
            changes["last_error"] = storable(
                f"{answer.error} (gave up after {attempt_count} attempts)"
            )
    changes["status"] = status
    return Verdict(status, changes)


def _attempt_values(conversion: Conversion, answer: Answer) -> dict[str, Any]:
    return {
        "conversion_id": conversion.pk,
        "started_at": answer.started_at,
        "duration": timedelta(seconds=answer.duration),
        "http_status": answer.status_code,
        "outcome": answer.outcome,
        "error": storable(answer.error),
    }


def _attempt_of(conversion: Conversion, answer: Answer) -> ConversionAttempt:
    return ConversionAttempt(**_attempt_values(conversion, answer))


def _insert_attempts(answered: Sequence[tuple[Conversion, Answer]]) -> None:
    """Every attempt of a batch in one multi-row INSERT, as ``bulk_create`` sends it, without
    a model instance per row and the ORM's compiling (which cost more CPU than the
    database's work: bench/cpu_per_conversion.py). Values go through each field's
    ``get_db_prep_save``, as the ORM's would; a field not set here gets its default."""
    connection = connections[router.db_for_write(ConversionAttempt)]
    head, row_sql, columns = _attempt_insert(connection.alias)
    rows = []
    for conversion, answer in answered:
        values = _attempt_values(conversion, answer)
        rows.append(
            [
                prepared(values[name] if name in values else field.get_default(), connection)
                if prepared is not None
                else values[name]
                for name, field, prepared in columns
            ]
        )
    fields = [field for _name, field, _prepared in columns]
    size = max(1, connection.ops.bulk_batch_size(fields, rows))
    with connection.cursor() as cursor:
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            params = [value for row in chunk for value in row]
            cursor.execute(head + ", ".join([row_sql] * len(chunk)), params)


#: Columns whose values the driver takes as Python holds them (ints, strings, None).
_PLAIN_COLUMNS = frozenset({"conversion_id", "http_status", "outcome", "error"})


@functools.cache
def _attempt_insert(alias: str) -> tuple[str, str, list[tuple[str, Any, Any]]]:
    """The INSERT of attempts on database ``alias``: its head, one row's placeholders, and
    per column (attname, field, the field's ``get_db_prep_save`` or None for a value passed
    as it is)."""
    connection = connections[alias]
    meta = ConversionAttempt._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    names = ", ".join(quote(f.column or f.attname) for f in fields)
    head = f"INSERT INTO {quote(meta.db_table)} ({names}) VALUES "  # noqa: S608 (names quoted)
    columns = [
        (f.attname, f, None if f.attname in _PLAIN_COLUMNS else f.get_db_prep_save) for f in fields
    ]
    return head, f"({', '.join(['%s'] * len(fields))})", columns


@functools.cache
def _owned_update(alias: str, names: tuple[str, ...]) -> tuple[str, list[Any]]:
    """``Conversion.objects.filter(claim_token=..., delivered=..., pk__in=...).update(...)`` of
    the columns ``names`` on database ``alias``, compiled once: the SQL up to the pk list's
    opening parenthesis (parameters: the values, the token, ``delivered``, the pks) and each
    column's ``get_db_prep_save``, as the ORM's ``update`` prepares them. The ORM compiled the
    statement again for every group of answers: a third of a group's CPU on PostgreSQL, a
    fifth on SQLite, where the commit costs most (bench/cpu_per_conversion.py). The row count
    says whether every row was still ours (MySQL's driver counts the rows matched, not those
    changed: Django connects with ``FOUND_ROWS``)."""
    connection = connections[alias]
    meta = Conversion._meta
    by_name = {field.name: field for field in meta.concrete_fields}

    def column(name: str) -> str:
        field = by_name[name]
        return connection.ops.quote_name(field.column or field.attname)

    fields = [by_name[name] for name in names]
    pk = meta.pk.name
    assignments = ", ".join(f"{column(name)} = %s" for name in names)
    where = f"{column('claim_token')} = %s AND {column('delivered')} = %s AND {column(pk)} IN ("
    # Names quoted; every value a parameter.
    table = connection.ops.quote_name(meta.db_table)
    sql = f"UPDATE {table} SET {assignments} WHERE {where}"  # noqa: S608
    return sql, [field.get_db_prep_save for field in fields]


def upgraded(verdict: Verdict, now: datetime) -> Verdict:
    """The verdict for a row ``mark_converted`` upgraded to ``delivered=True`` while this
    attempt sent ``false``: whatever Nexmo answered to ``false``, ``true`` goes next, with a
    fresh attempt budget like any upgrade. A transient answer's wait still holds (Nexmo asked
    us to slow down); otherwise it is due at once."""
    waits = verdict.status == Status.PENDING
    changes = {
        **verdict.changes,
        "status": Status.PENDING,
        "attempt_count": 0,
        "reported_at": None,
        "next_attempt_at": verdict.changes["next_attempt_at"] if waits else now,
        "delivered": True,  # already so in the row; keeps the caller's instance right
    }
    return Verdict(Status.PENDING, changes)


#: What the database says when it refuses one row's values: that row's fault, not the
#: batch's. Anything else (a lost connection, a lock timeout) is raised to the run, which
#: reconnects and writes the whole batch again.
ROW_FAULTS = (DataError, IntegrityError)


class _Unwritten(Exception):
    """A grouped write changed fewer rows than it owns: redo the batch row by row."""


def _write_grouped(
    answered: Sequence[tuple[Conversion, Answer]], verdicts: Sequence[Verdict], token: str
) -> None:
    """One UPDATE per distinct set of changes (the 200s of a batch all share one) and one
    INSERT for every attempt, in one transaction: one commit (one fsync) for the lot."""
    groups: dict[tuple[bool, tuple[tuple[str, Any], ...]], list[int]] = {}
    for (conversion, _answer), verdict in zip(answered, verdicts, strict=True):
        key = (conversion.delivered, tuple(sorted(verdict.changes.items())))
        groups.setdefault(key, []).append(conversion.pk)
    connection = connections[router.db_for_write(Conversion)]
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        for (delivered, changes), pks in groups.items():
            # ``delivered`` as sent: a row upgraded meanwhile does not match (row by row then).
            head, prepare = _owned_update(connection.alias, tuple(name for name, _ in changes))
            values = [p(value, connection) for p, (_, value) in zip(prepare, changes, strict=True)]
            sql = f"{head}{', '.join(['%s'] * len(pks))})"
            cursor.execute(sql, [*values, token, delivered, *pks])
            if cursor.rowcount != len(pks):
                raise _Unwritten  # rolls the whole batch back
        # After the UPDATEs, which lock the rows: none can be deleted under the attempts'
        # foreign keys, and a row deleted before is caught above rather than at COMMIT.
        _insert_attempts(answered)


def _write_one(
    conversion: Conversion, answer: Answer, verdict: Verdict, token: str, now: datetime
) -> Verdict | None:
    """Write one row's answer; None when the row is no longer ours (lease lost, deleted)."""
    mine = Conversion.objects.filter(pk=conversion.pk, claim_token=token)
    with transaction.atomic():
        if not mine.filter(delivered=conversion.delivered).update(**verdict.changes):
            if _already_written(conversion, answer):
                # Our own earlier write committed though its connection died before saying
                # so (the run writes again after reconnecting): done, nothing twice.
                return verdict if conversion.delivered else _as_stored(conversion, verdict, now)
            if conversion.delivered or not mine.exists():
                # Taken over by another worker: the attempt happened, so it is recorded. A
                # row deleted meanwhile (from the admin) is skipped, attempt and all.
                if Conversion.objects.filter(pk=conversion.pk).exists():
                    _attempt_of(conversion, answer).save(force_insert=True)
                return None
            # Upgraded to delivered=True while ``false`` was on the wire: never lose that.
            verdict = upgraded(verdict, now)
            mine.update(**verdict.changes)
            logger.info(
                "Conversion %s was upgraded to delivered=true while false was being sent; "
                "true goes next.",
                conversion.pk,
            )
        _attempt_of(conversion, answer).save(force_insert=True)
    return verdict


def _already_written(conversion: Conversion, answer: Answer) -> bool:
    """Whether this very attempt is recorded (its start is unique to the microsecond)."""
    return ConversionAttempt.objects.filter(
        conversion_id=conversion.pk, started_at=answer.started_at, outcome=answer.outcome
    ).exists()


def _as_stored(conversion: Conversion, verdict: Verdict, now: datetime) -> Verdict:
    """Which of ``verdict`` and its upgrade an earlier write of a ``false`` report stored."""
    upgraded_row = Conversion.objects.filter(pk=conversion.pk, delivered=True).exists()
    return upgraded(verdict, now) if upgraded_row else verdict


def _write_each(
    answered: Sequence[tuple[Conversion, Answer]],
    verdicts: Sequence[Verdict],
    token: str,
    now: datetime,
) -> list[Verdict | None]:
    """Row by row, so that a row the database refuses spoils no other row's outcome."""
    written: list[Verdict | None] = []
    for (conversion, answer), verdict in zip(answered, verdicts, strict=True):
        try:
            written.append(_write_one(conversion, answer, verdict, token, now))
            continue
        except ROW_FAULTS as exc:
            refused = exc
        # The database refuses something of this answer (its text, a status code out of the
        # column's range from an odd backend): keep the outcome, drop what came from outside.
        note = f"(the answer could not be stored as it came: {type(refused).__name__})"
        plain = Answer(
            answer.outcome,
            None,
            note,
            retry_after=answer.retry_after,
            started_at=answer.started_at,
            duration=answer.duration,
        )
        try:
            written.append(
                _write_one(
                    conversion,
                    plain,
                    Verdict(
                        verdict.status,
                        {**verdict.changes, "last_error": note, "last_status_code": None},
                    ),
                    token,
                    now,
                )
            )
        except ROW_FAULTS:
            # Left claimed: once its lease ends it alone is tried again.
            logger.exception("Conversion %s: the outcome could not be written.", conversion.pk)
            written.append(None)
    return written


def write_answers(
    answered: Sequence[tuple[Conversion, Answer]], token: str, conf: ConversionSettings
) -> list[str]:
    """Write a batch of attempts and the rows' new states; returns each row's resulting status.

    Every attempt becomes a ``ConversionAttempt`` row. A row's state is written only while
    the claim ``token`` still owns it; a row whose lease ran out and was taken over, or that
    was deleted meanwhile, is skipped and its status returned as ``sending``. A row upgraded
    to ``delivered=True`` while ``false`` was on the wire goes back to pending (see
    :func:`upgraded`). A row whose answer the database refuses is written without the
    answer's text, and never spoils the others. Any other database error is raised.
    """
    if not answered:
        return []
    now = timezone.now()
    verdicts = [judge(c, a, conf, now) for c, a in answered]
    written: list[Verdict | None]
    try:
        _write_grouped(answered, verdicts, token)
        written = list(verdicts)
    except (_Unwritten, *ROW_FAULTS):
        # Rare (a worker slower than its lease, a row deleted or upgraded meanwhile, a value
        # the database refuses): row by row, each row on its own.
        written = _write_each(answered, verdicts, token, now)

    statuses: list[str] = []
    for (conversion, answer), verdict in zip(answered, written, strict=True):
        if verdict is None:
            # Our lease ran out and another worker took the row over (it decides the state
            # now), or the row was deleted.
            logger.warning(
                "Conversion %s: no longer ours (lease lost or deleted); outcome %s not written.",
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
