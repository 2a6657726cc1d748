"""The hourly rollups (``ConversionStat``): kept exact by the write path, rebuilt from rows.

Every change that moves a count is one atomic ``UPDATE ... SET n = n + d`` on the row of its
hour, channel, API key, country and network, made in the same transaction as the change
itself, so concurrent writers never lose an increment and a rolled-back change leaves no
trace. A missing row is created with an insert that ignores conflicts, then updated: two
writers creating the same row both end up adding to the one row.

Only the first part of a long SMS counts (a send counts once), as in every read.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from django.db import connections, models, transaction
from django.db.models import F, Subquery

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
    "count_converted",
    "count_sent",
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


def count_sent(message: SentMessage) -> None:
    """Count a newly recorded message (parts 2..n of a long SMS are not counted)."""
    if message.parent_id is None:
        _bump(key_of(message), {"sent": 1})


def _converted_deltas(message: SentMessage, timestamp: datetime, sign: int = 1) -> Deltas:
    seconds = (timestamp - message.sent_at).total_seconds()
    return {"converted": sign, seconds_field(seconds): sign}


def count_converted(message: SentMessage, timestamp: datetime) -> None:
    """Count a new ``delivered=True`` conversion of ``message`` (converted at ``timestamp``).

    Call it in the transaction that stores the conversion. The network is read from the row,
    not from ``message`` (a receipt may have set it since ``message`` was loaded), and the
    message row must be locked before the rollup row, as :func:`move`'s callers (receipts)
    lock it first too: then a receipt moving the message's counts waits for this transaction
    or is waited for, never interleaves, and the two cannot deadlock. MariaDB's foreign-key
    check on the conversion's INSERT already holds a shared lock on the message; PostgreSQL
    defers that check to COMMIT (Django's foreign keys are ``DEFERRABLE INITIALLY
    DEFERRED``), so there the UPDATE's subquery takes the lock itself (asking MariaDB for it
    too would upgrade its shared lock, which deadlocks against a waiting receipt).
    """
    if message.parent_id is None:
        deltas = _converted_deltas(message, timestamp)
        features = connections[SentMessage.objects.db].features
        network = SentMessage.objects.filter(pk=message.pk)
        if features.has_select_for_update and features.can_defer_constraint_checks:
            network = network.select_for_update(no_key=features.has_select_for_no_key_update)
        key = {**key_of(message), "network": Subquery(network.values("network")[:1])}
        changes = {name: F(name) + delta for name, delta in deltas.items()}
        if not ConversionStat.objects.filter(**key).update(**changes):
            # No row yet (a message counted before the rollups existed): create it.
            fresh = SentMessage.objects.get(pk=message.pk)
            _bump(key_of(fresh), deltas)


def contribution(message: SentMessage) -> Deltas:
    """What ``message`` adds to its rollup row now (reads its conversion: lock it first)."""
    if message.parent_id is not None:
        return {}
    deltas: Deltas = {"sent": 1, "delivered": int(message.delivery_status == "delivered")}
    conversion = (
        Conversion.objects.filter(message_id=message.pk, delivered=True)
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
    Changes committed by other writers while it runs may be missed: run it when the app is
    quiet, or run it again.
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
    totals = _tally(heads.iterator(chunk_size=batch_size))
    rows = [
        ConversionStat(hour=key[0], **dict(zip(KEY_FIELDS, key[1:], strict=True)), **counts)
        for key, counts in totals.items()
    ]
    with transaction.atomic():
        ConversionStat.objects.all().delete()
        ConversionStat.objects.bulk_create(rows, batch_size=batch_size)
    return len(rows)
