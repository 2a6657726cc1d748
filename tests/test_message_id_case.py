"""Letter case of message ids.

SMS message ids are upper-case hex and call ids lower-case UUIDs; a site may pass either in
another case (a form field, a URL, a lower-cased log). An id that differs from a recorded one
only in letter case finds that one, never a second row: in the functions, in tracked links,
in delivery receipts and in the admin. A call's UUID marked as an SMS that was never recorded
gets a warning that names ``channel="voice"``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from django_nexmo_conversion import (
    conversion_link,
    mark_converted,
    record_message,
    report_pending,
)
from django_nexmo_conversion.models import Conversion, SentMessage
from django_nexmo_conversion.sandbox import Sandbox
from django_nexmo_conversion.sandbox.sender import WebhookSender

pytestmark = pytest.mark.django_db

SMS_ID = "0A00000000000L01"
CALL_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148 Safari/604.1"


def test_marking_a_lower_case_id_converts_the_recorded_sms(nexmo_sandbox: Sandbox) -> None:
    recorded = record_message(SMS_ID)

    conversion = mark_converted(SMS_ID.lower())

    assert SentMessage.objects.count() == 1
    assert conversion.message_id == recorded.pk
    assert report_pending().reported == 1
    [request] = nexmo_sandbox.requests
    assert request.form["message-id"] == SMS_ID  # Vonage's own case on the wire


def test_an_sms_recorded_in_lower_case_is_stored_as_vonage_writes_it() -> None:
    recorded = record_message(SMS_ID.lower())

    assert recorded.message_id == SMS_ID
    assert record_message(SMS_ID) == recorded
    assert mark_converted(SMS_ID).message_id == recorded.pk
    assert SentMessage.objects.count() == 1


def test_a_call_id_in_upper_case_finds_the_recorded_call() -> None:
    recorded = record_message(CALL_ID, channel="voice")

    conversion = mark_converted(CALL_ID.upper(), channel="voice")

    assert conversion.message_id == recorded.pk
    assert SentMessage.objects.get().message_id == CALL_ID


def test_a_row_recorded_before_ids_were_normalised_is_still_found() -> None:
    # An older version stored the id exactly as the site passed it.
    legacy = SentMessage.objects.create(channel="sms", message_id=SMS_ID.lower())

    assert mark_converted(SMS_ID).message_id == legacy.pk
    assert mark_converted(SMS_ID.lower()).message_id == legacy.pk
    assert record_message(SMS_ID) == legacy
    assert SentMessage.objects.count() == 1


def test_a_tracked_link_made_with_another_case_converts_the_recorded_sms(client: Client) -> None:
    recorded = record_message(SMS_ID)

    response = client.get(
        conversion_link(SMS_ID.lower(), "/welcome/"), headers={"user-agent": PHONE}
    )

    assert response.status_code == 302
    assert SentMessage.objects.count() == 1
    assert Conversion.objects.get().message_id == recorded.pk


def test_a_receipt_with_another_case_lands_on_the_recorded_sms(client: Client) -> None:
    recorded = record_message(SMS_ID, recipient="447700900123")
    params = WebhookSender().receipt_params(message_id=SMS_ID.lower(), status="delivered")

    response = client.post(reverse("django_nexmo_conversion:receipt"), params)

    assert response.status_code == 200
    recorded.refresh_from_db()
    assert recorded.delivery_status == "delivered"
    assert SentMessage.objects.count() == 1


def test_the_admin_finds_one_conversion_whatever_case_is_searched(admin_client: Any) -> None:
    record_message(SMS_ID)
    mark_converted(SMS_ID.lower())
    url = reverse("admin:django_nexmo_conversion_conversion_changelist")

    for term in (SMS_ID, SMS_ID.lower()):
        page = admin_client.get(url, {"q": term})
        assert page.context["cl"].result_count == 1


def test_a_call_id_marked_as_an_sms_warns_to_pass_channel_voice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="django_nexmo_conversion"):
        mark_converted(CALL_ID)

    [record] = [r for r in caplog.records if CALL_ID in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert 'channel="voice"' in record.getMessage()


def test_no_warning_for_a_call_id_recorded_as_an_sms_or_marked_as_a_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="django_nexmo_conversion"):
        mark_converted(CALL_ID, channel="voice")
        record_message("6ba7b810-9dad-11d1-80b4-00c04fd430c8")  # the site says it is an SMS
        mark_converted("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
        mark_converted(SMS_ID)

    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
