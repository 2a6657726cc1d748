"""The send guard's counts (``GuardTally``): sends and conversions per prefix (and its
network), country, network and the whole site, per ten minutes of sending.

Counted with the hourly rollups, in the same fold transactions (``rates.fold_messages`` and
``rates.fold_conversions`` hand their batches here), so a send or a conversion is counted
once and a check only reads these rows. :func:`prune` deletes the guard's short-lived rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.utils import timezone

from ..conf import get_settings
from ..models import Conversion, GuardEvent, GuardTally, SentMessage
from . import counters

__all__ = [
    "BUCKET_SECONDS",
    "bucket_of",
    "keys_of",
    "prune",
    "rebuild_tallies",
    "tally_conversions",
    "tally_sends",
]

#: The width of a count's time slice.
BUCKET_SECONDS = 600
#: How long the guard's checks are kept (the admin page and the health check read a day).
EVENTS_KEPT = timedelta(days=2)
COUNTS = ("sent", "converted")


def bucket_of(moment: datetime) -> datetime:
    """The start (UTC) of the ten minutes ``moment`` falls in."""
    moment = moment.astimezone(dt_timezone.utc)
    return moment.replace(minute=moment.minute - moment.minute % 10, second=0, microsecond=0)


def keys_of(message: SentMessage) -> list[dict[str, object]]:
    """The tally rows ``message`` counts in."""
    return _keys(message.sent_at, message.prefix, message.country, message.network)


def _keys(sent_at: datetime, prefix: str, country: str, network: str) -> list[dict[str, object]]:
    bucket = bucket_of(sent_at)
    keys: list[dict[str, object]] = [{"kind": "*", "name": "", "network": ""}]
    if prefix:
        keys.append({"kind": "p", "name": prefix, "network": network})
    keys.append({"kind": "c", "name": country, "network": ""})
    if network:
        keys.append({"kind": "n", "name": network, "network": network})
    return [{**key, "bucket": bucket} for key in keys]


def tally_sends(messages: Iterable[SentMessage]) -> None:
    """Count a fold's batch of messages (first parts only: a send counts once)."""
    totals: dict[counters.FrozenKey, dict[str, int]] = {}
    for message in messages:
        if message.parent_id is None:
            for key in keys_of(message):
                counters.tally(totals, key, {"sent": 1})
    counters.add_all(GuardTally, totals, counts=COUNTS)


def tally_conversions(conversions: Iterable[Conversion]) -> None:
    """Count a fold's batch of ``delivered=True`` conversions against their send's rows."""
    totals: dict[counters.FrozenKey, dict[str, int]] = {}
    for conversion in conversions:
        message = conversion.message
        if conversion.delivered and message.parent_id is None:
            for key in keys_of(message):
                counters.tally(totals, key, {"converted": 1})
    counters.add_all(GuardTally, totals, counts=COUNTS)


def _tallies_kept_since(now: datetime) -> datetime:
    """The oldest moment whose counts are kept: the rate window and a day."""
    return now - timedelta(seconds=get_settings().guard.rate_window, days=1)


def rebuild_tallies(*, batch_size: int = 5000) -> int:
    """Recount every tally row the guard still keeps from the messages and conversions;
    returns the rows written. Called inside ``rates.rebuild_rates``' transaction, which marks
    every row counted."""
    since = _tallies_kept_since(timezone.now())
    heads = (
        SentMessage.objects.filter(parent__isnull=True, sent_at__gt=since)
        .order_by()
        .values_list("sent_at", "prefix", "country", "network", "conversion__delivered")
    )
    totals: dict[counters.FrozenKey, dict[str, int]] = {}
    for sent_at, prefix, country, network, delivered in heads.iterator(chunk_size=batch_size):
        for key in _keys(sent_at, prefix, country, network):
            counters.tally(totals, key, {"sent": 1, "converted": int(delivered is True)})
    rows = [GuardTally(**dict(key), **counts) for key, counts in totals.items()]
    GuardTally.objects.all().delete()
    GuardTally.objects.bulk_create(rows, batch_size=batch_size)
    return len(rows)


def prune(*, batch_size: int) -> int:
    """Delete one batch of checks older than two days and of counts older than the rate
    window (and a day); returns how many rows went."""
    now = timezone.now()
    done = 0
    for model, field, before in (
        (GuardEvent, "at", now - EVENTS_KEPT),
        (GuardTally, "bucket", _tallies_kept_since(now)),
    ):
        old = list(
            model._default_manager.filter(**{f"{field}__lt": before})
            .order_by()
            .values_list("pk", flat=True)[:batch_size]
        )
        if old:
            done += model._default_manager.filter(pk__in=old).delete()[0]
    return done
