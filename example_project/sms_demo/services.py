"""The demo's writes. Each one is what a real project's code would do at that moment,
with the package's services doing the work."""

from __future__ import annotations

import secrets

from django.db import transaction

from django_nexmo_conversion import mark_converted, record_sms_response
from django_nexmo_conversion.marking import retry_now
from django_nexmo_conversion.models import Conversion, SentMessage

from . import fake_sms_api, sandbox_link


def send_code(*, to: str, sandbox_answer: str = "ok") -> tuple[SentMessage, str]:
    """Send (pretend) a verification code to ``to`` and record the send; returns (message, code).

    Raises ``ConversionInputError`` for a number that is not a phone number; nothing is stored.
    """
    code = f"{secrets.randbelow(10**6):06d}"
    response = fake_sms_api.send_sms(to=to, text=f"Your verification code is {code}")
    [message] = record_sms_response(response)
    sandbox_link.script_answer(message.message_id, sandbox_answer)
    return message, code


def convert(*, message: SentMessage, delivered: bool = True) -> Conversion:
    """The user acted on the SMS (``delivered=True``), or it never arrived (``False``).

    The conversion row is written in this transaction; with the default
    ``DISPATCH="background"`` the site's reporter thread POSTs it to the Conversion API as
    soon as the transaction commits (the request does not wait for the answer).
    """
    with transaction.atomic():
        return mark_converted(message, delivered=delivered)


def retry(*, message: SentMessage) -> int:
    """Make a failed (or waiting) conversion due now; the next sweep sends it."""
    return retry_now(Conversion.objects.filter(message=message))
