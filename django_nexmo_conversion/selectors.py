"""Reads: what the command, the admin and the dashboard show."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from .models import Conversion, Status


def due_conversions(*, limit: int | None = None, include_failed: bool = False) -> list[Conversion]:
    """What a report run would take now, oldest due first."""
    query = Q(pk__in=Conversion.objects.due(timezone.now()).values("pk"))
    if include_failed:
        query |= Q(status=Status.FAILED)
    rows = (
        Conversion.objects.filter(query).select_related("message").order_by("next_attempt_at", "pk")
    )
    return list(rows[:limit] if limit is not None else rows)
