"""Thin views: validate the form, call the demo's services, redirect."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from django_nexmo_conversion.exceptions import ConversionInputError
from django_nexmo_conversion.models import SentMessage

from . import queries, sandbox_link, services
from .forms import ReplyForm, SendForm


def _render_home(request: HttpRequest, form: SendForm, status: int = 200) -> HttpResponse:
    rows = queries.recent_messages()
    context = {
        "form": form,
        "rows": rows,
        "live": any(row.in_flight for row in rows),
        "sandbox": sandbox_link.attached(),
        "received": sandbox_link.received(),
        "base_url": settings.NEXMO_CONVERSION["BASE_URL"],
        "dispatch": settings.NEXMO_CONVERSION.get("DISPATCH", "background"),
        "sweep_interval": settings.NEXMO_CONVERSION.get("SWEEP_INTERVAL", 30),
        "reply_form": ReplyForm(),
        "inbound_url": _inbound_url(request),
    }
    return render(request, "sms_demo/home.html", context, status=status)


def _inbound_url(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("django_nexmo_conversion:inbound"))


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return _render_home(request, SendForm())


@require_POST
def send(request: HttpRequest) -> HttpResponse:
    form = SendForm(request.POST)
    if form.is_valid():
        try:
            message, code = services.send_code(
                to=form.cleaned_data["to"], sandbox_answer=form.cleaned_data["sandbox_answer"]
            )
        except ConversionInputError as exc:
            form.add_error("to", str(exc))
        else:
            messages.success(
                request,
                _("Sent (pretend) “Your verification code is %(code)s” to %(to)s: message %(id)s.")
                % {"code": code, "to": message.recipient, "id": message.message_id},
            )
            return redirect("sms_demo:home")
    return _render_home(request, form, status=400)


@require_POST
def converted(request: HttpRequest, pk: int) -> HttpResponse:
    message = get_object_or_404(SentMessage, pk=pk)
    services.convert(message=message, delivered=True)
    messages.success(request, _("Message %(id)s marked converted.") % {"id": message.message_id})
    return redirect("sms_demo:home")


@require_POST
def not_delivered(request: HttpRequest, pk: int) -> HttpResponse:
    message = get_object_or_404(SentMessage, pk=pk)
    services.convert(message=message, delivered=False)
    messages.success(
        request, _("Message %(id)s marked not delivered.") % {"id": message.message_id}
    )
    return redirect("sms_demo:home")


@require_POST
def retry(request: HttpRequest, pk: int) -> HttpResponse:
    message = get_object_or_404(SentMessage, pk=pk)
    services.retry(message=message)
    messages.info(
        request,
        _("Conversion of %(id)s is due again; the next sweep sends it within a few seconds.")
        % {"id": message.message_id},
    )
    return redirect("sms_demo:home")


@require_POST
def reply(request: HttpRequest) -> HttpResponse:
    """The sandbox posts a reply to our own inbound webhook; the app does the rest."""
    form = ReplyForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Give a number and a text to reply with."))
        return redirect("sms_demo:home")
    url = _inbound_url(request)
    posted = sandbox_link.post_reply(
        url=url, msisdn=form.cleaned_data["msisdn"], text=form.cleaned_data["text"]
    )
    messages.info(
        request,
        _("The sandbox posted the reply “%(text)s” from %(from)s to %(url)s: answered %(status)s.")
        % {
            "text": form.cleaned_data["text"],
            "from": form.cleaned_data["msisdn"],
            "url": url,
            "status": posted.status,
        },
    )
    return redirect("sms_demo:home")
