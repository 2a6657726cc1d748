"""Vonage's SMS API webhooks: inbound messages and delivery receipts. See ``webhooks``.

Answers: 200 when the webhook is applied or deliberately ignored (a reply matching nothing,
a receipt for a message we never recorded, a ``messageId`` seen before), so Vonage stops
sending it; 403 when a signature secret is configured and the signature is missing, wrong or
stale; 400 for parameters that are not a Vonage webhook's; 405 for methods other than GET and
POST. Nothing is recorded unless the answer is 200.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .. import webhooks

logger = logging.getLogger("django_nexmo_conversion")

_TEXT = "text/plain; charset=utf-8"


def _answer(
    request: HttpRequest, kind: str, apply: Callable[[Mapping[str, str]], object]
) -> HttpResponse:
    try:
        params = webhooks.read_params(request)
        if not params:
            # Vonage's dashboard may call a URL to check it answers before saving it.
            return HttpResponse(status=200, content_type=_TEXT)
        webhooks.verify(params)
        apply(params)
    except webhooks.WebhookError as exc:
        # The reason only: never the parameters, whose sig and numbers stay out of logs.
        logger.warning("Refused %s webhook (%s): %s", kind, exc.status_code, exc)
        return HttpResponse(str(exc), status=exc.status_code, content_type=_TEXT)
    return HttpResponse(status=200, content_type=_TEXT)


@csrf_exempt  # Vonage cannot hold a CSRF token; the signature authenticates instead
@require_http_methods(["GET", "POST"])
def inbound(request: HttpRequest) -> HttpResponse:
    """An inbound SMS: a reply marks the message it answers converted."""
    return _answer(request, "inbound", webhooks.handle_inbound)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def receipt(request: HttpRequest) -> HttpResponse:
    """A delivery receipt: recorded on the message (part) it is for."""
    return _answer(request, "delivery-receipt", webhooks.handle_receipt)
