"""Vonage's SMS API webhooks: inbound messages and delivery receipts. See ``webhooks``.

These views read the parameters out of the request and choose the HTTP answer; checking and
applying them is the ``webhooks`` package's job.

Answers: 200 when the webhook is applied or deliberately ignored (a reply matching nothing,
a receipt for a message we never recorded, a ``messageId`` seen before), so Vonage stops
sending it; 403 when a signature secret is configured and the signature is missing, wrong or
stale; 400 for parameters that are not a Vonage webhook's; 405 for methods other than GET and
POST. Nothing is recorded unless the answer is 200.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping

from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .. import webhooks

logger = logging.getLogger("django_nexmo_conversion")

_TEXT = "text/plain; charset=utf-8"


def _flat(query: QueryDict) -> dict[str, str]:
    # A repeated name keeps its last value, as the signature's reference implementations do.
    return {name: str(query[name]) for name in query}


def _text(value: object) -> str:
    # POST-JSON values are strings; anything else is signed and read as its JSON text.
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def read_params(request: HttpRequest) -> dict[str, str]:
    """The webhook's parameters, whichever shape Vonage sent them in (its dashboard's
    "webhook format": GET query, POST form, or POST-JSON)."""
    if request.method != "POST":
        return _flat(request.GET)
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body.decode("utf-8") or "{}")
            if isinstance(data, dict):
                return {str(name): _text(value) for name, value in data.items()}
        # UnicodeDecodeError is a ValueError too. RecursionError: JSON nested thousands deep,
        # which json.loads (or json.dumps, for a nested value) cannot walk.
        except (ValueError, RecursionError):
            raise webhooks.BadWebhook(_("The request body is not valid JSON.")) from None
        raise webhooks.BadWebhook(_("The JSON body must be an object of webhook parameters."))
    # Vonage POSTs the parameters in the body; the query is read only when the body is empty,
    # so a query string in the configured URL never joins the signed parameters.
    return _flat(request.POST) or _flat(request.GET)


def refusal_status(exc: webhooks.WebhookError) -> int:
    """The HTTP status a refused webhook gets: 403 for its signature, 400 for its parameters."""
    return 403 if isinstance(exc, webhooks.WebhookRefused) else 400


def _answer(
    request: HttpRequest, kind: str, apply: Callable[[Mapping[str, str]], object]
) -> HttpResponse:
    try:
        params = read_params(request)
        if not params:
            # Vonage's dashboard may call a URL to check it answers before saving it.
            return HttpResponse(status=200, content_type=_TEXT)
        webhooks.verify_webhook(params)
        apply(params)
    except webhooks.WebhookError as exc:
        status = refusal_status(exc)
        # The reason only: never the parameters, whose sig and numbers stay out of logs.
        logger.warning("Refused %s webhook (%s): %s", kind, status, exc)
        return HttpResponse(str(exc), status=status, content_type=_TEXT)
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
