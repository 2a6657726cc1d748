"""The demo's reads."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ObjectDoesNotExist

from django_nexmo_conversion.models import Conversion, SentMessage, Status

IN_FLIGHT = (Status.PENDING, Status.SENDING)


@dataclass(frozen=True)
class Row:
    message: SentMessage
    conversion: Conversion | None

    @property
    def in_flight(self) -> bool:
        return self.conversion is not None and self.conversion.status in IN_FLIGHT


def recent_messages(limit: int = 20) -> list[Row]:
    """The latest sent messages with their conversion (``None`` when not converted yet)."""
    messages = SentMessage.objects.select_related("conversion").order_by("-sent_at", "-pk")
    rows = []
    for message in messages[:limit]:
        try:
            conversion: Conversion | None = message.conversion
        except ObjectDoesNotExist:
            conversion = None
        rows.append(Row(message=message, conversion=conversion))
    return rows
