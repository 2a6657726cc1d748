"""Non-conversion reports: ``NON_CONVERSION_AFTER`` seconds after a send with no conversion,
the message is marked ``delivered=False`` so Nexmo also learns about the routes that fail.

Run by ``manage.py report_conversions`` before each report run (and the periodic task);
the rows it creates are pending and due at once, so the same run reports them.

Exactly once per message, however many runs overlap: a conversion is one row per message
(a one-to-one, so a unique index), and the rows are inserted with
``bulk_create(ignore_conflicts=True)``: of two runs inserting for the same message, the
database keeps one row and silently drops the other. Work is done in batches in ``sent_at``
order, served by the index on ``SentMessage.sent_at``.

Only windows that closed within ``lookback`` (default: one day) are considered. That bounds
each run's scan to recent messages however long the history grows (older ones all have
their conversion already), and turning the setting on for a table with years of history
does not flood Nexmo with stale reports, which it would have no use for: it judges routes
on the last minutes of traffic. A message whose window closed while no report run ran for
longer than ``lookback`` is not reported as a non-conversion.

The reported timestamp is the moment the window closed, ``sent_at + NON_CONVERSION_AFTER``:
that is when the message became a non-conversion, it never lies in the future, and it is
the same whichever run (or how late a run) marks it. A message marked converted later is
still upgraded to ``delivered=True`` if the non-conversion was not reported yet.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from .. import signals
from ..conf import get_settings
from ..exceptions import ConversionInputError
from ..models import Conversion, SentMessage

#: How long after a window closed a run still marks the message (see the module docstring).
DEFAULT_LOOKBACK = timedelta(days=1)


def _batch(cutoff: datetime, window: timedelta, size: int, since: datetime | None) -> int | None:
    """Mark one batch; returns how many conversions this run inserted, None when none is left."""
    heads = SentMessage.objects.filter(
        parent__isnull=True, sent_at__lte=cutoff, conversion__isnull=True
    )
    if since is not None:
        heads = heads.filter(sent_at__gt=since)
    batch = list(heads.order_by("sent_at", "pk").values_list("pk", "sent_at")[:size])
    if not batch:
        return None
    closed_at = {pk: sent_at + window for pk, sent_at in batch}
    # Parts 2..n of a long SMS follow their first part, with the same timestamp.
    parts = SentMessage.objects.filter(
        parent_id__in=list(closed_at), conversion__isnull=True
    ).values_list("pk", "parent_id")
    timestamps = {**closed_at, **{pk: closed_at[parent] for pk, parent in parts}}

    # The rows this run inserts carry its token until the end of the transaction, so the run
    # can tell them from rows a concurrent run (or mark_converted) inserted; no one else
    # ever sees the token, and a pending row's token means nothing to claim() anyway.
    token = uuid.uuid4().hex
    now = timezone.now()
    with transaction.atomic():
        Conversion.objects.bulk_create(
            [
                Conversion(
                    message_id=pk,
                    delivered=False,
                    timestamp=at,
                    next_attempt_at=now,
                    claim_token=token,
                )
                # In primary key order, the same in every run: overlapping inserts then
                # wait on each other in one order and cannot deadlock.
                for pk, at in sorted(timestamps.items())
            ],
            ignore_conflicts=True,
        )
        # By message (the unique index), not by token alone (claim_token has no index).
        mine = Conversion.objects.filter(message_id__in=list(timestamps), claim_token=token)
        created = list(mine.select_related("message"))
        mine.update(claim_token="")
        for conversion in created:
            conversion.claim_token = ""
            signals.conversion_marked.send(sender=Conversion, conversion=conversion)
    return len(created)


def mark_non_conversions(
    *,
    now: datetime | None = None,
    batch_size: int = 500,
    lookback: timedelta | None = DEFAULT_LOOKBACK,
) -> int:
    """Mark every message older than ``NON_CONVERSION_AFTER`` without a conversion
    ``delivered=False``; returns how many conversions this call created (parts included).

    Does nothing (returns 0) when the setting is ``None``. Only windows that closed within
    ``lookback`` are considered (``None``: no limit; see the module docstring). The rows
    are left pending and due: the report run that follows sends them.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConversionInputError(f"batch_size must be a whole number >= 1, got {batch_size!r}.")
    if now is not None and (not isinstance(now, datetime) or timezone.is_naive(now)):
        raise ConversionInputError("now must be a timezone-aware datetime.")
    if lookback is not None and (not isinstance(lookback, timedelta) or lookback <= timedelta(0)):
        raise ConversionInputError(
            f"lookback must be a positive timedelta or None, got {lookback!r}."
        )
    window_seconds = get_settings().non_conversion_after
    if window_seconds is None:
        return 0
    window = timedelta(seconds=window_seconds)
    # Never later than the real now: a window must not be closed ahead of time.
    real_now = timezone.now()
    now = min(now, real_now) if now is not None else real_now
    cutoff = now - window
    since = cutoff - lookback if lookback is not None else None
    total = 0
    while True:
        created = _batch(cutoff, window, batch_size, since)
        if created is None:
            return total
        total += created
