"""Recording sends from what the SMS API and the Vonage SDKs really return, multipart included.

The v4 SDK objects are built with the real ``vonage`` package (``vonage_sms``), from the JSON
the SMS API answers; the v3 SDK returned that JSON as a dict.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest
from vonage_sms import SmsResponse
from vonage_sms.errors import PartialFailureError

from django_nexmo_conversion import (
    mark_converted,
    record_message,
    record_sms_response,
    report_pending,
)
from django_nexmo_conversion.exceptions import ConversionInputError
from django_nexmo_conversion.marking import FailedPart, RecordedMessages
from django_nexmo_conversion.models import Conversion, SentMessage, Status
from django_nexmo_conversion.sandbox import Sandbox
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db


def part(message_id: str, *, status: str = "0", to: str = "447700900123") -> dict[str, str]:
    return {
        "to": to,
        "message-id": message_id,
        "status": status,
        "remaining-balance": "3.14159265",
        "message-price": "0.03330000",
        "network": "12345",
    }


def refused(status: str = "9", error: str = "Partner quota violation") -> dict[str, str]:
    # What the SMS API answers for a refused part: no message id, an error text.
    return {"status": status, "error-text": error}


def answer(*parts: dict[str, str]) -> dict[str, Any]:
    return {"message-count": str(len(parts)), "messages": list(parts)}


LONG = answer(part("0A00000011111111"), part("0A00000011111112"), part("0A00000011111113"))


# --- shapes ---------------------------------------------------------------------------------


def test_v3_dict() -> None:
    recorded = record_sms_response(answer(part("0A0000000000000A")))
    assert [m.message_id for m in recorded] == ["0A0000000000000A"]
    assert isinstance(recorded, list)
    assert recorded.ok
    assert recorded.failed == []


@pytest.mark.parametrize("encode", [json.dumps, lambda d: json.dumps(d).encode()])
def test_json_text_and_bytes(encode: Any) -> None:
    recorded = record_sms_response(encode(answer(part("0A0000000000000B"))))
    assert [m.message_id for m in recorded] == ["0A0000000000000B"]


def test_v4_sdk_sms_response() -> None:
    response = SmsResponse(**copy.deepcopy(LONG))  # what vonage_sms.Sms.send returns
    assert response.messages[0].message_id == "0A00000011111111"
    recorded = record_sms_response(response)
    assert [m.message_id for m in recorded] == [
        "0A00000011111111",
        "0A00000011111112",
        "0A00000011111113",
    ]
    recorded[0].refresh_from_db()
    assert recorded[0].recipient == "447700900123"


def test_v4_sdk_partial_failure_records_the_accepted_parts() -> None:
    # vonage_sms raises PartialFailureError when some parts of a long SMS fail; the
    # exception keeps the API's answer, accepted parts included.
    data = answer(part("0A00000022222221"), refused(), part("0A00000022222223"))
    error = PartialFailureError(data)
    recorded = record_sms_response(error)
    assert [m.message_id for m in recorded] == ["0A00000022222221", "0A00000022222223"]
    assert recorded.failed == [FailedPart(1, "9", "Partner quota violation")]
    assert not recorded.ok


def test_target_and_api_key_are_kept() -> None:
    order = Order.objects.create()
    recorded = record_sms_response(answer(part("0A0000000000000C")), target=order, api_key="k2")
    message = SentMessage.objects.get(pk=recorded[0].pk)
    assert message.target == order
    assert message.api_key == "k2"


def test_voice_call_ids_are_recorded_and_reported_on_the_voice_endpoint(
    nexmo_sandbox: Sandbox,
) -> None:
    call = record_message("63f61863-4a51-4f6b-86e1-46edebcf9356", channel="voice")
    mark_converted(call)
    assert report_pending().reported == 1
    [request] = nexmo_sandbox.reported()
    assert request.channel == "voice"
    assert request.form["message-id"] == "63f61863-4a51-4f6b-86e1-46edebcf9356"


# --- failed parts ---------------------------------------------------------------------------


def test_failed_parts_are_not_recorded_and_are_reported_back() -> None:
    recorded = record_sms_response(
        answer(refused("2", "Missing to param"), part("0A0000000000000D"))
    )
    assert isinstance(recorded, RecordedMessages)
    assert [m.message_id for m in recorded] == ["0A0000000000000D"]
    assert recorded.failed == [FailedPart(0, "2", "Missing to param")]
    # The first accepted part stands for the send.
    assert recorded[0].parent is None


def test_all_parts_failed_records_nothing() -> None:
    recorded = record_sms_response(answer(refused("4", "Invalid credentials")))
    assert recorded == []
    assert [f.status for f in recorded.failed] == ["4"]
    assert not SentMessage.objects.exists()


@pytest.mark.parametrize(
    ("response", "error"),
    [
        ("not json", "not JSON"),
        ({"message-count": "1"}, "'messages' list"),
        ({"messages": ["0A01"]}, "must hold objects"),
        (answer(part("0A0000000000000E"), part("has a space")), "whitespace"),
        (answer(part("0A0000000000000F", to="not a number")), "not a phone number"),
        (ValueError("some other error"), "'messages' list"),
    ],
)
def test_bad_input_raises_and_stores_nothing(response: Any, error: str) -> None:
    with pytest.raises(ConversionInputError, match=error):
        record_sms_response(response)
    assert not SentMessage.objects.exists()


def test_recording_twice_is_idempotent() -> None:
    first = record_sms_response(LONG)
    second = record_sms_response(LONG)
    assert [m.pk for m in first] == [m.pk for m in second]
    assert SentMessage.objects.count() == 3


# --- multipart ------------------------------------------------------------------------------


def test_parts_two_to_n_point_to_the_first() -> None:
    head, second, third = record_sms_response(LONG)
    assert head.parent is None
    assert SentMessage.objects.get(pk=second.pk).parent_id == head.pk
    assert SentMessage.objects.get(pk=third.pk).parent_id == head.pk


@pytest.mark.parametrize("which", [0, 1, 2])
def test_marking_any_part_reports_every_part(nexmo_sandbox: Sandbox, which: int) -> None:
    parts = record_sms_response(SmsResponse(**copy.deepcopy(LONG)))
    conversion = mark_converted(parts[which].message_id)
    assert conversion.message_id == parts[which].pk
    assert Conversion.objects.count() == 3

    assert report_pending().reported == 3
    sent = nexmo_sandbox.reported()
    assert sorted(r.form["message-id"] for r in sent) == [m.message_id for m in parts]
    # One send, one conversion moment: every part is reported alike.
    assert {(r.form["delivered"], r.form["timestamp"]) for r in sent} == {
        ("true", sent[0].form["timestamp"])
    }


def test_marking_a_part_again_marks_nothing_new(nexmo_sandbox: Sandbox) -> None:
    parts = record_sms_response(LONG)
    mark_converted(parts[0])
    report_pending()
    mark_converted(parts[2])
    assert Conversion.objects.count() == 3
    assert report_pending().attempted == 0
    assert len(nexmo_sandbox.reported()) == 3


def test_upgrading_a_non_conversion_upgrades_every_part() -> None:
    parts = record_sms_response(LONG)
    mark_converted(parts[1], delivered=False)
    assert set(Conversion.objects.values_list("delivered", flat=True)) == {False}
    mark_converted(parts[2])
    assert list(Conversion.objects.values_list("delivered", "status").distinct()) == [
        (True, Status.PENDING)
    ]


def test_a_single_message_marks_only_itself() -> None:
    one = record_message("0A00000033333331")
    other = record_message("0A00000033333332")
    mark_converted(one)
    assert list(Conversion.objects.values_list("message_id", flat=True)) == [one.pk]
    assert not Conversion.objects.filter(message=other).exists()


def test_refused_parts_are_logged_without_the_number(caplog: pytest.LogCaptureFixture) -> None:
    refused_part = {**refused("3", "Invalid value for param: to"), "to": "447700900999"}
    with caplog.at_level(logging.DEBUG, logger="django_nexmo_conversion"):
        recorded = record_sms_response(answer(part("0A00000044444441"), refused_part))
    assert recorded.failed == [FailedPart(1, "3", "Invalid value for param: to")]
    assert "refused 1 of 2 part(s) (status 3)" in caplog.text
    assert "447700900999" not in caplog.text
    assert "447700900999" not in repr(recorded.failed)
