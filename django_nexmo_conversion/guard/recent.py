"""What the guard decided lately, read from its checks (``GuardEvent``, kept two days): for
the health check, the Prometheus collector and the admin. Each read is bounded by its
window (the ``action, at`` index), not by the size of the tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Min

from ..models import GuardEvent

__all__ = ["Refused", "decisions_since", "refused_since"]


def decisions_since(since: datetime) -> dict[tuple[str, str], int]:
    """(action, first reason code) -> number of checks since ``since``."""
    rows = (
        GuardEvent.objects.filter(at__gte=since)
        .order_by()
        .values_list("action", "reason")
        .annotate(n=Count("pk"))
    )
    return {(action, reason): n for action, reason, n in rows}


@dataclass(frozen=True)
class Refused:
    """A destination the guard blocked (or flagged, in monitor mode) since a moment."""

    prefix: str
    country: str
    action: str
    reason: str
    checks: int
    first: datetime
    last: datetime


def refused_since(since: datetime, *, limit: int = 50) -> list[Refused]:
    """The destinations blocked or flagged since ``since``, the most refused first."""
    rows = (
        GuardEvent.objects.filter(action__in=["block", "flag"], at__gte=since)
        .order_by()
        .values("prefix", "country", "action", "reason")
        .annotate(checks=Count("pk"), first=Min("at"), last=Max("at"))
        .order_by("-checks", "prefix")[:limit]
    )
    return [Refused(**row) for row in rows]
