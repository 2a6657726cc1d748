"""Views the tests call through real clients and servers: one marks a conversion the way a
user's view would (sync), the other through the async twins (async)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from django_nexmo_conversion import amark_converted, arecord_message, mark_converted


@csrf_exempt
def mark(request: HttpRequest, message_id: str) -> HttpResponse:
    conversion = mark_converted(message_id)
    return HttpResponse(conversion.marked, content_type="text/plain")


@csrf_exempt
async def amark(request: HttpRequest, message_id: str) -> HttpResponse:
    message = await arecord_message(message_id, recipient="+447700900123")
    conversion = await amark_converted(message)
    return HttpResponse(conversion.marked, content_type="text/plain")


@csrf_exempt
def verify(request: HttpRequest) -> HttpResponse:
    """The README's testing example: the right code converts the SMS that carried it."""
    if request.POST.get("code") == "1234":
        mark_converted("0A0000001234567B")
        return HttpResponse("verified", content_type="text/plain")
    return HttpResponse("wrong code", status=400, content_type="text/plain")
