"""The delivery-receipt webhook: what reached the handset is recorded on the message (part),
and with REPORT_FAILED_RECEIPTS a message that never arrived is reported delivered=false."""

from __future__ import annotations

import functools
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_nexmo_conversion import mark_converted, record_message, record_sms_response
from django_nexmo_conversion.backends.locmem import SentReport
from django_nexmo_conversion.models import Conversion, SentMessage, Status
from django_nexmo_conversion.sandbox import Sandbox
from django_nexmo_conversion.sandbox.sender import (
    RECEIPT_STATUSES,
    WEBHOOK_FORMATS,
    WebhookSender,
)

from .helpers import configure, post_webhook, receipt_params
from .processes import sandbox_cli

pytestmark = pytest.mark.django_db

SENDER = WebhookSender()
MESSAGE_ID = "0A00000000000101"
FAILED = ("failed", "expired", "rejected")
NOT_FAILED = ("delivered", "accepted", "buffered", "unknown")


def receipt_url() -> str:
    return reverse("django_nexmo_conversion:receipt")


def at(minutes_ago: float) -> datetime:
    return (timezone.now() - timedelta(minutes=minutes_ago)).replace(microsecond=0)


receipt = functools.partial(receipt_params, message_id=MESSAGE_ID)


def post(client: Client, params: dict[str, str]) -> Any:
    return post_webhook(client, "receipt", params)


@pytest.fixture
def message() -> SentMessage:
    return record_message(MESSAGE_ID, recipient="447700900123")


def state(message: SentMessage) -> tuple[str, str, datetime | None]:
    message.refresh_from_db()
    return message.delivery_status, message.delivery_error_code, message.delivery_updated_at


@pytest.mark.parametrize("status", RECEIPT_STATUSES)
def test_every_status_is_recorded(client: Client, message: SentMessage, status: str) -> None:
    when = at(1)
    response = post(client, receipt(status, at=when))
    assert response.status_code == 200
    expected_code = "0" if status in ("delivered", "accepted", "buffered") else "1"
    assert state(message) == (status, expected_code, when)
    assert not Conversion.objects.exists()  # a receipt alone is no conversion


def test_the_error_code_is_recorded(client: Client, message: SentMessage) -> None:
    post(client, receipt("failed", err_code="6"))
    assert state(message)[:2] == ("failed", "6")


def test_a_status_vonage_may_add_later_is_recorded_as_it_comes(
    client: Client, message: SentMessage
) -> None:
    assert post(client, receipt("Submitted")).status_code == 200
    assert state(message)[0] == "submitted"


@pytest.mark.parametrize("shape", WEBHOOK_FORMATS)
def test_every_shape(client: Client, message: SentMessage, shape: str) -> None:
    params = receipt("expired", err_code="2")
    if shape == "GET":
        response = client.get(receipt_url(), params)
    elif shape == "POST":
        response = client.post(receipt_url(), params)
    else:
        response = client.post(receipt_url(), json.dumps(params), content_type="application/json")
    assert response.status_code == 200
    assert state(message)[:2] == ("expired", "2")


def test_a_receipt_for_an_unknown_message_is_acknowledged_and_ignored(client: Client) -> None:
    response = post(client, receipt(message_id="0A00000000009999"))
    assert response.status_code == 200
    assert not SentMessage.objects.exists()  # not recorded on the fly


def test_a_part_of_a_long_sms_gets_its_own_receipt(client: Client) -> None:
    first, second = record_sms_response(
        {
            "messages": [
                {"to": "447700900123", "message-id": "0A00000000000102", "status": "0"},
                {"to": "447700900123", "message-id": "0A00000000000103", "status": "0"},
            ]
        }
    )
    post(client, receipt("failed", message_id="0A00000000000103", err_code="5"))
    assert state(second)[:2] == ("failed", "5")
    assert state(first) == ("", "", None)


def test_the_same_receipt_twice_changes_nothing(client: Client, message: SentMessage) -> None:
    post(client, receipt("delivered", at=at(5)))
    before = state(message)
    post(client, receipt("delivered", at=at(1)))  # sent again, later
    assert state(message) == before


def test_a_late_intermediate_status_does_not_undo_a_final_one(
    client: Client, message: SentMessage
) -> None:
    post(client, receipt("delivered", at=at(5)))
    post(client, receipt("buffered", at=at(1)))
    assert state(message)[0] == "delivered"


def test_a_final_status_wins_over_an_intermediate_one_however_late(
    client: Client, message: SentMessage
) -> None:
    older = at(5)
    post(client, receipt("buffered", at=at(1)))
    post(client, receipt("delivered", at=older))  # older timestamp, but final
    assert state(message) == ("delivered", "0", older)


def test_between_two_final_statuses_the_newer_wins(client: Client, message: SentMessage) -> None:
    post(client, receipt("failed", at=at(1), err_code="2"))
    post(client, receipt("delivered", at=at(5)))  # an older one, arriving late
    assert state(message)[:2] == ("failed", "2")
    post(client, receipt("expired", at=at(0), err_code="3"))
    assert state(message)[:2] == ("expired", "3")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"status": ""}, "status"),
        ({"status": "delivered!"}, "status"),
        ({"status": "x" * 17}, "status"),
        ({"err-code": "12345678901"}, "err-code"),
        ({"err-code": "1;2"}, "err-code"),
        ({"messageId": ""}, "messageId"),
        ({"message-timestamp": "2024-01-01T00:00:00Z"}, "message-timestamp"),
    ],
)
def test_bad_receipts_answer_400_and_change_nothing(
    client: Client, message: SentMessage, change: dict[str, str], named: str
) -> None:
    response = post(client, {**receipt("failed"), **change})
    assert response.status_code == 400
    assert named in response.content.decode()
    assert state(message) == ("", "", None)


@pytest.mark.parametrize("method", ["put", "delete", "head"])
def test_only_get_and_post(client: Client, message: SentMessage, method: str) -> None:
    assert getattr(client, method)(receipt_url()).status_code == 405


def test_no_csrf_token_needed(message: SentMessage) -> None:
    response = Client(enforce_csrf_checks=True).post(receipt_url(), receipt())
    assert response.status_code == 200
    assert state(message)[0] == "delivered"


# --- REPORT_FAILED_RECEIPTS ----------------------------------------------------------------------


@pytest.mark.parametrize("status", FAILED)
def test_failed_receipts_report_delivered_false_when_asked(
    client: Client, settings: Any, message: SentMessage, status: str
) -> None:
    configure(settings, REPORT_FAILED_RECEIPTS=True)
    when = at(2)
    post(client, receipt(status, at=when))
    conversion = Conversion.objects.get()
    assert (conversion.message, conversion.delivered, conversion.status) == (
        message,
        False,
        Status.PENDING,
    )
    assert conversion.timestamp == when


@pytest.mark.parametrize("status", NOT_FAILED)
def test_other_receipts_report_nothing(
    client: Client, settings: Any, message: SentMessage, status: str
) -> None:
    configure(settings, REPORT_FAILED_RECEIPTS=True)
    post(client, receipt(status))
    assert not Conversion.objects.exists()


def test_failed_receipts_report_nothing_by_default(client: Client, message: SentMessage) -> None:
    post(client, receipt("failed"))
    assert state(message)[0] == "failed"
    assert not Conversion.objects.exists()


def test_a_converted_message_keeps_its_conversion(
    client: Client, settings: Any, message: SentMessage
) -> None:
    configure(settings, REPORT_FAILED_RECEIPTS=True)
    mark_converted(message)
    post(client, receipt("failed"))
    assert list(Conversion.objects.values_list("delivered", flat=True)) == [True]


def test_a_failed_part_reports_the_whole_send_not_delivered(client: Client, settings: Any) -> None:
    configure(settings, REPORT_FAILED_RECEIPTS=True)
    record_sms_response(
        {
            "messages": [
                {"to": "447700900123", "message-id": "0A00000000000104", "status": "0"},
                {"to": "447700900123", "message-id": "0A00000000000105", "status": "0"},
            ]
        }
    )
    post(client, receipt("rejected", message_id="0A00000000000105"))
    assert sorted(Conversion.objects.values_list("message__message_id", "delivered")) == [
        ("0A00000000000104", False),
        ("0A00000000000105", False),
    ]


def test_a_failed_receipt_again_changes_nothing(
    client: Client, settings: Any, message: SentMessage
) -> None:
    configure(settings, REPORT_FAILED_RECEIPTS=True)
    post(client, receipt("failed", at=at(3)))
    conversion = Conversion.objects.get()
    Conversion.objects.update(status=Status.REPORTED)
    post(client, receipt("failed", at=at(1)))
    assert list(Conversion.objects.values_list("pk", "timestamp", "status")) == [
        (conversion.pk, conversion.timestamp, Status.REPORTED)
    ]


@pytest.mark.django_db(transaction=True)
def test_a_failed_receipt_is_reported_through_the_normal_dispatch(
    settings: Any, nexmo_outbox: list[SentReport]
) -> None:
    configure(settings, REPORT_FAILED_RECEIPTS=True, DISPATCH="on_commit")
    record_message(MESSAGE_ID)
    Client().post(receipt_url(), receipt("expired"))
    assert [(r.message_id, r.delivered) for r in nexmo_outbox] == [(MESSAGE_ID, False)]


# --- through the sandbox -------------------------------------------------------------------------


@pytest.mark.sandbox
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("shape", WEBHOOK_FORMATS)
def test_the_sandbox_posts_receipts_to_a_live_server(
    live_server: Any, nexmo_sandbox: Sandbox, settings: Any, shape: str
) -> None:
    configure(settings, REPORT_FAILED_RECEIPTS=True)
    delivered = record_message("0A00000000000106")
    failed = record_message("0A00000000000107")
    sender = WebhookSender.for_sandbox(nexmo_sandbox, webhook_format=shape)
    url = live_server.url + receipt_url()

    assert sender.receipt(url, message_id="0A00000000000106").status == 200
    assert sender.receipt(url, message_id="0A00000000000107", status="failed", err_code="7").ok

    assert state(delivered)[:2] == ("delivered", "0")
    assert state(failed)[:2] == ("failed", "7")
    from django_nexmo_conversion import report_pending

    assert report_pending().reported == 1
    [request] = nexmo_sandbox.reported()
    assert (request.form["message-id"], request.form["delivered"]) == ("0A00000000000107", "false")


@pytest.mark.sandbox
@pytest.mark.django_db(transaction=True)
def test_the_sandbox_cli_posts_a_receipt(live_server: Any) -> None:
    message = record_message("0A00000000000108")
    url = live_server.url + receipt_url()
    options = ["--message-id", "0A00000000000108", "--status", "rejected", "--format", "GET"]
    result = sandbox_cli("post-receipt", "--url", url, *options)
    assert result.returncode == 0, result.stderr
    assert f"GET {url} messageId=0A00000000000108 (unsigned) -> 200" in result.stdout
    assert state(message)[:2] == ("rejected", "1")


# --- several accounts --------------------------------------------------------------------------


def test_a_receipt_signed_by_another_account_changes_nothing(client: Client, settings: Any) -> None:
    """Account B's receipt (validly signed with B's secret) about account A's message id:
    A's delivery status, network and conversions stay as they are."""
    configure(
        settings,
        API_KEY="key-a",
        SIGNATURE_SECRET="secret-a",
        ACCOUNTS={"key-b": {"API_SECRET": "api-b", "SIGNATURE_SECRET": "secret-b"}},
        REPORT_FAILED_RECEIPTS=True,
    )
    mine = record_message(MESSAGE_ID, recipient="447700900123", api_key="key-a")
    theirs = WebhookSender(api_key="key-b", signature_secret="secret-b")
    forged = theirs.sign(theirs.receipt_params(message_id=MESSAGE_ID, status="failed"))

    assert post(client, forged).status_code == 200  # acknowledged (B's own ids may be unknown)

    mine.refresh_from_db()
    assert (mine.delivery_status, mine.network) == ("", "")
    assert not Conversion.objects.exists()
    # A's own receipt, signed by A, is recorded.
    ours = WebhookSender(api_key="key-a", signature_secret="secret-a")
    post(client, ours.sign(ours.receipt_params(message_id=MESSAGE_ID, status="failed")))
    assert state(mine)[0] == "failed"
    assert Conversion.objects.get().delivered is False


def test_a_receipt_for_the_default_account_matches_messages_recorded_without_a_key(
    client: Client, settings: Any
) -> None:
    configure(settings, API_KEY="key-a", ACCOUNTS={"key-b": {"API_SECRET": "api-b"}})
    mine = record_message(MESSAGE_ID, recipient="447700900123")  # no api_key: the default
    sender = WebhookSender(api_key="key-a")
    assert post(client, sender.receipt_params(message_id=MESSAGE_ID)).status_code == 200
    assert state(mine)[0] == "delivered"
