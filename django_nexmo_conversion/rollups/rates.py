"""The hourly rollups (``ConversionStat``): counted by the sweeps, rebuilt from rows.

Recording a message or marking a conversion only inserts its row, flagged ``counted=False``;
each sweep counts the uncounted rows (:func:`fold_messages`, :func:`fold_conversions`, run by
``folding.fold``). A receipt that changes a counted message's network or delivery status
moves its counts in its own transaction (:func:`move`). Rows are counter rows
(``counters``): one per hour, channel, API key, country and network.

Only the first part of a long SMS counts (a send counts once), as in every read.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from django.db import transaction

from ..models import (
    SECONDS_TO_CONVERT_BOUNDS,
    SECONDS_TO_CONVERT_FIELDS,
    Conversion,
    ConversionStat,
    SentMessage,
)
from . import counters, guard

__all__ = [
    "COUNT_FIELDS",
    "KEY_FIELDS",
    "contribution",
    "fold_conversions",
    "fold_messages",
    "forget_conversion",
    "forget_message",
    "hour_of",
    "key_of",
    "move",
    "rebuild_rates",
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


def _add(key: Mapping[str, Any], deltas: Mapping[str, int]) -> None:
    counters.add(ConversionStat, key, deltas, counts=COUNT_FIELDS)


def _sent_deltas(delivery_status: str) -> Deltas:
    """What a send adds to its rollup row (its first part; parts 2..n add nothing)."""
    return {"sent": 1, "delivered": int(delivery_status == "delivered")}


def _converted_deltas(sent_at: datetime, timestamp: datetime) -> Deltas:
    """What a ``delivered=True`` conversion at ``timestamp`` adds to its send's row."""
    seconds = (timestamp - sent_at).total_seconds()
    return {"converted": 1, seconds_field(seconds): 1}


def fold_messages(*, batch_size: int) -> int:
    """Count one batch of uncounted messages (sent, delivered) in one transaction; returns
    how many it took (``folding.fold`` runs the batches)."""
    with transaction.atomic():
        counters.take_write_lock(SentMessage, "counted")
        rows = counters.locked(SentMessage.objects.filter(counted=False))
        messages = list(rows.order_by()[:batch_size])
        totals: dict[counters.FrozenKey, Deltas] = {}
        for message in messages:
            if message.parent_id is None:  # parts 2..n of a long SMS are not counted
                counters.tally(totals, key_of(message), _sent_deltas(message.delivery_status))
        counters.add_all(ConversionStat, totals, counts=COUNT_FIELDS)
        guard.tally_sends(messages)
        SentMessage.objects.filter(pk__in=[m.pk for m in messages]).update(counted=True)
    return len(messages)


def fold_conversions(*, batch_size: int) -> int:
    """Count one batch of uncounted ``delivered=True`` conversions (converted, time to
    convert) in one transaction; returns how many it took."""
    with transaction.atomic():
        counters.take_write_lock(Conversion, "counted")
        # The message row is locked too (the join's FOR UPDATE locks both): a receipt moving
        # its counts to another network waits for this fold, or this fold skips it.
        rows = counters.locked(Conversion.objects.filter(counted=False).select_related("message"))
        conversions = list(rows.order_by()[:batch_size])
        totals: dict[counters.FrozenKey, Deltas] = {}
        for conversion in conversions:
            message = conversion.message
            if conversion.delivered and message.parent_id is None:
                deltas = _converted_deltas(message.sent_at, conversion.timestamp)
                counters.tally(totals, key_of(message), deltas)
        counters.add_all(ConversionStat, totals, counts=COUNT_FIELDS)
        guard.tally_conversions(conversions)
        Conversion.objects.filter(pk__in=[c.pk for c in conversions]).update(counted=True)
    return len(conversions)


def contribution(message: SentMessage) -> Deltas:
    """What ``message`` adds to its rollup row now: what the folds have counted of it and of
    its conversion (reads the conversion: lock the message first)."""
    if message.parent_id is not None:
        return {}
    deltas: Deltas = {}
    if message.counted:
        deltas = _sent_deltas(message.delivery_status)
    conversion = (
        Conversion.objects.filter(message_id=message.pk, delivered=True, counted=True)
        .values_list("timestamp", flat=True)
        .first()
    )
    if conversion is not None:
        deltas.update(_converted_deltas(message.sent_at, conversion))
    return deltas


def forget_message(pk: int) -> None:
    """A counted send is being deleted by hand (the admin, your code; not a purge, whose
    history the rollups keep): take it out of its row, as a recount would. In the deleting
    transaction; the message row is locked, so no fold or receipt moves it meanwhile."""
    message = SentMessage.objects.select_for_update().filter(pk=pk).first()
    if message is None or not message.counted or message.parent_id is not None:
        return
    _add(key_of(message), {n: -d for n, d in _sent_deltas(message.delivery_status).items()})


def forget_conversion(pk: int) -> None:
    """A counted ``delivered=True`` conversion is being deleted by hand: take it out of its
    send's row, so marking the message again counts it once (what a recount says)."""
    message_pk = Conversion.objects.filter(pk=pk).values_list("message_id", flat=True).first()
    if message_pk is None:
        return
    # The message first, then the conversion: the order the folds and receipts lock them in.
    message = SentMessage.objects.select_for_update().filter(pk=message_pk).first()
    conversion = (
        Conversion.objects.select_for_update()
        .filter(pk=pk, counted=True, delivered=True)
        .values_list("timestamp", flat=True)
        .first()
    )
    if message is None or conversion is None or message.parent_id is not None:
        return
    deltas = _converted_deltas(message.sent_at, conversion)
    _add(key_of(message), {n: -d for n, d in deltas.items()})


def move(before: Key, after: Key, old: Deltas, new: Deltas) -> None:
    """Replace a message's contribution ``old`` on row ``before`` by ``new`` on ``after``
    (a receipt changed its delivery status or network). Rows are touched in key order, so
    two moves between the same rows cannot deadlock."""
    if before == after:
        _add(after, {name: new.get(name, 0) - old.get(name, 0) for name in {*old, *new}})
        return
    changes = [(before, {n: -d for n, d in old.items()}), (after, new)]
    for key, deltas in sorted(changes, key=lambda change: sorted(change[0].items())):
        _add(key, deltas)


def _tally(heads: Iterable[dict[str, Any]]) -> dict[counters.FrozenKey, Deltas]:
    """The rollup rows of every send in ``heads``, counted as the folds count them."""
    totals: dict[counters.FrozenKey, Deltas] = {}
    for row in heads:
        key = {"hour": hour_of(row["sent_at"]), **{f: row[f] for f in KEY_FIELDS}}
        counters.tally(totals, key, _sent_deltas(row["delivery_status"]))
        if row["conversion__delivered"]:
            deltas = _converted_deltas(row["sent_at"], row["conversion__timestamp"])
            counters.tally(totals, key, deltas)
    return totals


def rebuild_rates(*, batch_size: int = 5000) -> int:
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
        rows = [ConversionStat(**dict(key), **counts) for key, counts in totals.items()]
        ConversionStat.objects.all().delete()
        ConversionStat.objects.bulk_create(rows, batch_size=batch_size)
        # The guard's counts come from the same rows, which are all counted now.
        guard.rebuild_tallies(batch_size=batch_size)
    return len(rows)
