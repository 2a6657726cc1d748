"""The hourly rollups (``ConversionStat``): counted by the sweeps, rebuilt from rows.

Recording a message or marking a conversion only inserts its row, flagged ``counted=False``:
a request never waits on a counter row that every other request wants too. Each sweep then
folds the uncounted rows in (:func:`fold`), a batch per transaction, so the counts and the
flags commit together. A receipt that changes a counted message's network or delivery
status moves its counts in its own transaction (:func:`move`).

Every change is an atomic ``UPDATE ... SET n = n + d`` on the row of its hour, channel, API
key, country and network, so concurrent writers never lose an increment; a missing row is
created with an upsert (``INSERT ... ON CONFLICT DO UPDATE``).

Only the first part of a long SMS counts (a send counts once), as in every read.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from django.db import connections, models, transaction
from django.db.models import F

from .models import (
    SECONDS_TO_CONVERT_BOUNDS,
    SECONDS_TO_CONVERT_FIELDS,
    Conversion,
    ConversionStat,
    SentMessage,
)

__all__ = [
    "COUNT_FIELDS",
    "KEY_FIELDS",
    "contribution",
    "fold",
    "hour_of",
    "key_of",
    "move",
    "rebuild",
    "seconds_field",
]

#: The columns that name a rollup row besides its hour.
KEY_FIELDS = ("channel", "api_key", "country", "network")
#: The columns that count.
COUNT_FIELDS = ("sent", "delivered", "converted", *SECONDS_TO_CONVERT_FIELDS)

Key = dict[str, Any]
Deltas = dict[str, int]


def hour_of(moment: datetime) -> datetime:
    """The UTC hour ``moment`` falls in (rollups are cut at UTC hours, so any whole-hour
    time zone reads exact calendar days from them)."""
    return moment.astimezone(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)


def seconds_field(seconds: float) -> str:
    """The histogram column a time to convert of ``seconds`` is counted in."""
    return SECONDS_TO_CONVERT_FIELDS[bisect.bisect_left(SECONDS_TO_CONVERT_BOUNDS, seconds)]


def key_of(message: SentMessage) -> Key:
    """The rollup row ``message`` counts in."""
    return {"hour": hour_of(message.sent_at), **{f: getattr(message, f) for f in KEY_FIELDS}}


def _bump(key: Mapping[str, Any], deltas: Mapping[str, int]) -> None:
    changes = {name: delta for name, delta in deltas.items() if delta}
    if not changes:
        return
    rows = ConversionStat.objects.filter(**key)
    if not rows.update(**{name: F(name) + delta for name, delta in changes.items()}):
        # The first change of this hour and destination: create the row and count in one
        # statement. (An INSERT IGNORE and then an UPDATE would leave InnoDB holding a shared
        # lock on a row a concurrent creator inserted, which the UPDATE must upgrade: two
        # such writers deadlock.)
        _upsert(key, changes)


def _column(name: str) -> models.Field[Any, Any]:
    field = ConversionStat._meta.get_field(name)
    assert isinstance(field, models.Field)  # the rollups have no relations
    return field


def _quoted_column(name: str) -> str:
    column = _column(name).column
    assert column is not None  # every rollup field has a column
    return connections[ConversionStat.objects.db].ops.quote_name(column)


def _upsert(key: Mapping[str, Any], changes: Mapping[str, int]) -> None:
    """``INSERT ... ON CONFLICT DO UPDATE SET n = n + d`` (``ON DUPLICATE KEY UPDATE`` on
    MySQL/MariaDB): the row with ``changes`` as its counts, or ``changes`` added to it."""
    connection = connections[ConversionStat.objects.db]
    quote = connection.ops.quote_name
    meta = ConversionStat._meta
    table = quote(meta.db_table)
    # Every count column is given: the table has no database defaults.
    totals = {name: changes.get(name, 0) for name in COUNT_FIELDS}
    fields = [_column(name) for name in [*key, *totals]]
    values = [*key.values(), *totals.values()]
    params = [
        field.get_db_prep_save(value, connection)
        for field, value in zip(fields, values, strict=True)
    ]
    columns = ", ".join(_quoted_column(name) for name in [*key, *totals])
    holes = ", ".join(["%s"] * len(fields))
    counts = [_quoted_column(name) for name in changes]
    if connection.vendor == "mysql":
        assign = ", ".join(f"{c} = {c} + %s" for c in counts)
        conflict = f"ON DUPLICATE KEY UPDATE {assign}"
    else:  # PostgreSQL, SQLite (3.24+)
        unique = ", ".join(_quoted_column(name) for name in ("hour", *KEY_FIELDS))
        assign = ", ".join(f"{c} = {table}.{c} + %s" for c in counts)
        conflict = f"ON CONFLICT ({unique}) DO UPDATE SET {assign}"
    sql = f"INSERT INTO {table} ({columns}) VALUES ({holes}) {conflict}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *changes.values()])


def _converted_deltas(message: SentMessage, timestamp: datetime) -> Deltas:
    seconds = (timestamp - message.sent_at).total_seconds()
    return {"converted": 1, seconds_field(seconds): 1}


def _add(totals: dict[tuple[Any, ...], Deltas], key: Key, deltas: Mapping[str, int]) -> None:
    counts = totals.setdefault(tuple(key.items()), {})
    for name, delta in deltas.items():
        counts[name] = counts.get(name, 0) + delta


def _bump_all(totals: dict[tuple[Any, ...], Deltas]) -> None:
    # In key order, as ``move`` does: two writers touching the same rows cannot deadlock.
    for key in sorted(totals):
        _bump(dict(key), totals[key])


def _take_write_lock(model: type[SentMessage] | type[Conversion]) -> None:
    """On SQLite, make the transaction a writer before it reads: a transaction that reads
    and then writes cannot wait for another connection's write lock and fails at once
    ("database is locked"). Other databases lock rows, not the file."""
    connection = connections[model.objects.db]
    if connection.vendor == "sqlite":
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET counted = counted WHERE 0")  # noqa: S608


def _locked(rows: models.QuerySet[Any]) -> models.QuerySet[Any]:
    """``rows`` locked for this transaction; rows another transaction holds (a receipt
    moving a message's counts, another sweep) are skipped and left for the next fold."""
    features = connections[rows.db].features
    if features.has_select_for_update_skip_locked:
        return rows.select_for_update(skip_locked=True)
    return rows.select_for_update()  # SQLite: ignored; the write lock above serialises


def _fold_messages(batch_size: int) -> int:
    with transaction.atomic():
        _take_write_lock(SentMessage)
        messages = list(_locked(SentMessage.objects.filter(counted=False)).order_by()[:batch_size])
        totals: dict[tuple[Any, ...], Deltas] = {}
        for message in messages:
            if message.parent_id is None:  # parts 2..n of a long SMS are not counted
                delivered = int(message.delivery_status == "delivered")
                _add(totals, key_of(message), {"sent": 1, "delivered": delivered})
        _bump_all(totals)
        SentMessage.objects.filter(pk__in=[m.pk for m in messages]).update(counted=True)
    return len(messages)


def _fold_conversions(batch_size: int) -> int:
    with transaction.atomic():
        _take_write_lock(Conversion)
        # The message row is locked too (the join's FOR UPDATE locks both): a receipt moving
        # its counts to another network waits for this fold, or this fold skips it.
        conversions = list(
            _locked(Conversion.objects.filter(counted=False).select_related("message")).order_by()[
                :batch_size
            ]
        )
        totals: dict[tuple[Any, ...], Deltas] = {}
        for conversion in conversions:
            message = conversion.message
            if conversion.delivered and message.parent_id is None:
                _add(totals, key_of(message), _converted_deltas(message, conversion.timestamp))
        _bump_all(totals)
        Conversion.objects.filter(pk__in=[c.pk for c in conversions]).update(counted=True)
    return len(conversions)


def fold(*, batch_size: int = 1000) -> int:
    """Count what was recorded and marked since the last fold into the rollups; returns how
    many rows it counted. Each sweep calls it (``report_due``).

    Batches of ``batch_size`` rows, one transaction each: a batch's counts and its rows'
    ``counted`` flags commit together, so a crash loses nothing and counts nothing twice,
    and concurrent sweeps take disjoint rows.
    """
    folded = 0
    for step in (_fold_messages, _fold_conversions):
        while True:
            done = step(batch_size)
            folded += done
            if done < batch_size:
                break
    return folded


def contribution(message: SentMessage) -> Deltas:
    """What ``message`` adds to its rollup row now: what the folds have counted of it and of
    its conversion (reads the conversion: lock the message first)."""
    if message.parent_id is not None:
        return {}
    deltas: Deltas = {}
    if message.counted:
        deltas = {"sent": 1, "delivered": int(message.delivery_status == "delivered")}
    conversion = (
        Conversion.objects.filter(message_id=message.pk, delivered=True, counted=True)
        .values_list("timestamp", flat=True)
        .first()
    )
    if conversion is not None:
        deltas.update(_converted_deltas(message, conversion))
    return deltas


def move(before: Key, after: Key, old: Deltas, new: Deltas) -> None:
    """Replace a message's contribution ``old`` on row ``before`` by ``new`` on ``after``
    (a receipt changed its delivery status or network). Rows are touched in key order, so
    two moves between the same rows cannot deadlock."""
    if before == after:
        _bump(after, {name: new.get(name, 0) - old.get(name, 0) for name in {*old, *new}})
        return
    changes = [(before, {n: -d for n, d in old.items()}), (after, new)]
    for key, deltas in sorted(changes, key=lambda change: sorted(change[0].items())):
        _bump(key, deltas)


def _tally(heads: Iterable[dict[str, Any]]) -> dict[tuple[Any, ...], Deltas]:
    totals: dict[tuple[Any, ...], Deltas] = {}
    for row in heads:
        key = (hour_of(row["sent_at"]), *(row[f] for f in KEY_FIELDS))
        counts = totals.setdefault(key, {})
        counts["sent"] = counts.get("sent", 0) + 1
        if row["delivery_status"] == "delivered":
            counts["delivered"] = counts.get("delivered", 0) + 1
        if row["conversion__delivered"]:
            seconds = (row["conversion__timestamp"] - row["sent_at"]).total_seconds()
            for name in ("converted", seconds_field(seconds)):
                counts[name] = counts.get(name, 0) + 1
    return totals


def rebuild(*, batch_size: int = 5000) -> int:
    """Recount every rollup row from the messages and conversions; returns the rows written.

    For data that arrived behind the app's back (an import, a restore, rows deleted by
    hand). One transaction: readers see the old numbers until the new ones are complete.
    Every row counts as folded afterwards. Changes committed by other writers while it
    runs may be missed: run it when the app is quiet, or run it again.
    """
    heads = (
        SentMessage.objects.filter(parent__isnull=True)
        .order_by()
        .values(
            "sent_at",
            *KEY_FIELDS,
            "delivery_status",
            "conversion__delivered",
            "conversion__timestamp",
        )
    )
    with transaction.atomic():
        # Flagged first: on SQLite that takes the write lock before the long read.
        SentMessage.objects.filter(counted=False).update(counted=True)
        Conversion.objects.filter(counted=False).update(counted=True)
        totals = _tally(heads.iterator(chunk_size=batch_size))
        rows = [
            ConversionStat(hour=key[0], **dict(zip(KEY_FIELDS, key[1:], strict=True)), **counts)
            for key, counts in totals.items()
        ]
        ConversionStat.objects.all().delete()
        ConversionStat.objects.bulk_create(rows, batch_size=batch_size)
    return len(rows)
