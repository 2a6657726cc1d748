"""Input checks (validation.py): bad input gets a clear error and nothing else (no row,
nothing sent); good input is recorded once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from django_nexmo_conversion import mark_converted, record_message, record_sms_response
from django_nexmo_conversion.backends.locmem import outbox
from django_nexmo_conversion.exceptions import ConversionInputError
from django_nexmo_conversion.models import Conversion, ConversionAttempt, SentMessage, Status
from tests.testapp.models import Order

from .helpers import configure

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _report_on_commit(settings: Any) -> Iterator[None]:
    """Dispatch right after commit to the locmem backend, so "nothing sent" is observable."""
    configure(
        settings,
        DISPATCH="on_commit",
        BACKEND="django_nexmo_conversion.backends.locmem.LocmemBackend",
    )
    outbox.clear()
    yield
    outbox.clear()


def counts() -> tuple[int, int, int]:
    return (
        SentMessage.objects.count(),
        Conversion.objects.count(),
        ConversionAttempt.objects.count(),
    )


@pytest.fixture
def rejected(
    django_capture_on_commit_callbacks: Any,
) -> Callable[..., ConversionInputError]:
    """``rejected(fn, "field")``: fn raises a ConversionInputError naming the field, and
    nothing was written, scheduled or sent."""

    def check(call: Callable[[], object], *names: str) -> ConversionInputError:
        before = counts()
        with (
            django_capture_on_commit_callbacks(execute=True) as callbacks,
            pytest.raises(ConversionInputError) as info,
        ):
            call()
        assert isinstance(info.value, ValueError)
        for name in names:
            assert name in str(info.value), f"{name!r} not in {str(info.value)!r}"
        assert counts() == before
        assert callbacks == []
        assert outbox == []
        return info.value

    return check


def test_the_harness_sees_a_send(django_capture_on_commit_callbacks: Any) -> None:
    """Control: a good mark is scheduled and sent, so the checks above can fail."""
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        mark_converted("0A0000001234567B")
    assert len(callbacks) == 1
    assert [r.message_id for r in outbox] == ["0A0000001234567B"]
    assert counts() == (1, 1, 1)


# --- record_message ---------------------------------------------------------------------------

BAD_MESSAGE_IDS = [
    "",
    "A" * 65,
    "0A00 0001",
    " 0A000001",
    "0A000001\n",
    "0A\t0001",
    "0A00\x000001",
    "0A00\x7f0001",
    "0A00é001",
    "0A00\u200b001",
    123,
    None,
    b"0A000001",
]


@pytest.mark.parametrize("message_id", BAD_MESSAGE_IDS, ids=repr)
def test_record_message_bad_message_id(rejected: Any, message_id: object) -> None:
    rejected(lambda: record_message(message_id), "message_id")


def test_record_message_max_length_is_accepted() -> None:
    assert record_message("A" * 64).message_id == "A" * 64


@pytest.mark.parametrize("channel", ["mms", "SMS", "", None, 1])
def test_record_message_unknown_channel(rejected: Any, channel: object) -> None:
    rejected(lambda: record_message("0A000001", channel=channel), "channel")


def test_record_message_naive_sent_at(rejected: Any) -> None:
    rejected(lambda: record_message("0A000001", sent_at=datetime(2024, 1, 1)), "sent_at")


def test_record_message_sent_at_in_the_future(rejected: Any) -> None:
    later = timezone.now() + timedelta(minutes=6)
    rejected(lambda: record_message("0A000001", sent_at=later), "sent_at", "future")


def test_record_message_sent_at_not_a_datetime(rejected: Any) -> None:
    rejected(lambda: record_message("0A000001", sent_at="2024-01-01 00:00:00"), "sent_at")


@pytest.mark.parametrize("recipient", ["not a number", "12", "+44 7700 900abc", 447700900123])
def test_record_message_bad_recipient(rejected: Any, recipient: object) -> None:
    rejected(lambda: record_message("0A000001", recipient=recipient), "recipient")


def test_record_message_recipient_is_normalised() -> None:
    assert record_message("0A000001", recipient="+44 (7700) 900-123").recipient == "447700900123"


def test_record_message_unsaved_target(rejected: Any) -> None:
    rejected(lambda: record_message("0A000001", target=Order()), "target")
    rejected(lambda: record_message("0A000001", target="order 1"), "target")


def test_record_message_bad_api_key(rejected: Any) -> None:
    rejected(lambda: record_message("0A000001", api_key="my key"), "api_key")
    rejected(lambda: record_message("0A000001", api_key="k" * 65), "api_key")


def test_record_message_is_idempotent_per_channel() -> None:
    first = record_message("0A000001", recipient="447700900001")
    again = record_message("0A000001", recipient="447700900999")
    assert again.pk == first.pk
    assert again.recipient == "447700900001"
    assert SentMessage.objects.count() == 1


def test_same_id_on_sms_and_voice_are_two_rows() -> None:
    sms = record_message("shared-id-1")
    voice = record_message("shared-id-1", channel="voice")
    assert sms.pk != voice.pk
    assert sorted(SentMessage.objects.values_list("channel", flat=True)) == ["sms", "voice"]


def test_record_message_with_target() -> None:
    order = Order.objects.create()
    message = record_message("0A000001", target=order, api_key="key-2")
    message.refresh_from_db()
    assert message.target == order
    assert message.api_key == "key-2"


# --- mark_converted ---------------------------------------------------------------------------


@pytest.mark.parametrize("message_id", BAD_MESSAGE_IDS[:10], ids=repr)
def test_mark_converted_bad_message_id(rejected: Any, message_id: str) -> None:
    rejected(lambda: mark_converted(message_id), "message_id")


@pytest.mark.parametrize("message", [123, None, b"0A000001", 1.5])
def test_mark_converted_message_of_the_wrong_type(rejected: Any, message: object) -> None:
    rejected(lambda: mark_converted(message), "message")


def test_mark_converted_unsaved_message(rejected: Any) -> None:
    rejected(lambda: mark_converted(SentMessage(message_id="0A000001")), "message", "saved")


@pytest.mark.parametrize("delivered", [1, 0, "true", "false", None])
def test_mark_converted_delivered_must_be_bool(rejected: Any, delivered: object) -> None:
    message = record_message("0A000001")
    rejected(lambda: mark_converted(message, delivered=delivered), "delivered")
    rejected(lambda: mark_converted("0A000002", delivered=delivered), "delivered")


def test_mark_converted_naive_timestamp(rejected: Any) -> None:
    rejected(lambda: mark_converted("0A000001", timestamp=datetime(2024, 1, 1)), "timestamp")


def test_mark_converted_timestamp_more_than_five_minutes_ahead(rejected: Any) -> None:
    later = timezone.now() + timedelta(minutes=5, seconds=30)
    rejected(lambda: mark_converted("0A000001", timestamp=later), "timestamp", "future")


def test_mark_converted_tolerates_small_clock_skew() -> None:
    soon = timezone.now() + timedelta(minutes=4)
    assert mark_converted("0A000001", timestamp=soon).timestamp == soon


def test_mark_converted_unknown_channel(rejected: Any) -> None:
    rejected(lambda: mark_converted("0A000001", channel="fax"), "channel")


def test_mark_converted_records_unknown_ids_on_the_fly() -> None:
    when = datetime(2024, 5, 1, 14, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    conversion = mark_converted("call-uuid-1", channel="voice", timestamp=when, delivered=False)
    conversion.refresh_from_db()
    assert conversion.message.channel == "voice"
    assert conversion.message.message_id == "call-uuid-1"
    assert conversion.delivered is False
    assert conversion.timestamp == when
    assert conversion.status == Status.PENDING


def test_mark_converted_twice_returns_the_same_conversion(
    django_capture_on_commit_callbacks: Any,
) -> None:
    message = record_message("0A000001")
    with django_capture_on_commit_callbacks() as callbacks:
        first = mark_converted(message)
        again = mark_converted(message)
        by_id = mark_converted("0A000001")
    assert first.pk == again.pk == by_id.pk
    assert Conversion.objects.count() == 1
    assert len(callbacks) == 1  # scheduled once


def test_delivered_false_then_true_upgrades_while_unreported(
    django_capture_on_commit_callbacks: Any,
) -> None:
    message = record_message("0A000001")
    with django_capture_on_commit_callbacks() as callbacks:
        first = mark_converted(message, delivered=False)
        upgraded = mark_converted(message, delivered=True)
    assert upgraded.pk == first.pk
    assert upgraded.delivered is True
    assert Conversion.objects.get().delivered is True
    assert len(callbacks) == 2  # the upgrade is reported too


def test_delivered_true_is_never_downgraded() -> None:
    message = record_message("0A000001")
    mark_converted(message, delivered=True)
    assert mark_converted(message, delivered=False).delivered is True
    assert Conversion.objects.get().delivered is True


def test_no_upgrade_once_reported() -> None:
    message = record_message("0A000001")
    conversion = mark_converted(message, delivered=False)
    Conversion.objects.filter(pk=conversion.pk).update(
        status=Status.REPORTED, reported_at=timezone.now()
    )
    again = mark_converted(message, delivered=True)
    assert again.delivered is False
    assert again.status == Status.REPORTED
    assert Conversion.objects.get().delivered is False


# --- record_sms_response ----------------------------------------------------------------------

SMS_RESPONSE = {
    "message-count": "3",
    "messages": [
        {"to": "447700900001", "message-id": "0A0000000000000A", "status": "0"},
        {"to": "447700900002", "status": "2", "error-text": "Missing to param"},
        {"to": "447700900003", "message-id": "0A0000000000000C", "status": "0"},
    ],
}


def test_record_sms_response_records_accepted_parts_with_recipient() -> None:
    order = Order.objects.create()
    messages = record_sms_response(SMS_RESPONSE, target=order)
    assert [(m.message_id, m.recipient) for m in messages] == [
        ("0A0000000000000A", "447700900001"),
        ("0A0000000000000C", "447700900003"),
    ]
    assert SentMessage.objects.count() == 2
    assert all(SentMessage.objects.get(pk=m.pk).target == order for m in messages)


def test_record_sms_response_accepts_json_text_and_bytes() -> None:
    assert len(record_sms_response(json.dumps(SMS_RESPONSE))) == 2
    assert len(record_sms_response(json.dumps(SMS_RESPONSE).encode())) == 2
    assert SentMessage.objects.count() == 2  # idempotent


def test_record_sms_response_accepts_an_sdk_like_object() -> None:
    class SdkResponse:
        def model_dump(self, *, by_alias: bool = False) -> dict[str, Any]:
            assert by_alias
            return SMS_RESPONSE

    assert [m.message_id for m in record_sms_response(SdkResponse())] == [
        "0A0000000000000A",
        "0A0000000000000C",
    ]


def test_record_sms_response_accepts_the_vonage_sdk_v4_response() -> None:
    """The real ``vonage_sms.SmsResponse`` (``vonage`` is a test extra)."""
    vonage_sms = pytest.importorskip("vonage_sms")
    response = vonage_sms.SmsResponse.model_validate(SMS_RESPONSE)
    messages = record_sms_response(response)
    assert [(m.message_id, m.recipient) for m in messages] == [
        ("0A0000000000000A", "447700900001"),
        ("0A0000000000000C", "447700900003"),
    ]


@pytest.mark.parametrize(
    "response",
    [
        "not json",
        b"\x00\x01",
        "",
        "[1, 2]",
        {"message-count": "1"},
        {"messages": "0A0001"},
        [],
        None,
    ],
    ids=repr,
)
def test_record_sms_response_not_an_sms_response(rejected: Any, response: object) -> None:
    rejected(lambda: record_sms_response(response), "response")


def test_record_sms_response_parts_must_be_objects(rejected: Any) -> None:
    rejected(lambda: record_sms_response({"messages": ["0A0001"]}), "messages")


def test_record_sms_response_one_bad_part_stores_nothing(rejected: Any) -> None:
    bad_id = {"messages": [*SMS_RESPONSE["messages"], {"status": "0", "message-id": "bad id"}]}
    rejected(lambda: record_sms_response(bad_id), "message_id")
    missing = {"messages": [*SMS_RESPONSE["messages"], {"status": "0"}]}
    rejected(lambda: record_sms_response(missing), "message_id")
    bad_to = {
        "messages": [
            *SMS_RESPONSE["messages"],
            {"status": "0", "message-id": "0A0000000000000D", "to": "nobody"},
        ]
    }
    rejected(lambda: record_sms_response(bad_to), "recipient")


def test_record_sms_response_unsaved_target(rejected: Any) -> None:
    rejected(lambda: record_sms_response(SMS_RESPONSE, target=Order()), "target")


# --- raw exceptions and absurd input from public entry points -------------


@pytest.mark.parametrize(
    "when",
    [
        datetime(1, 1, 1, tzinfo=timezone.get_fixed_timezone(300)),  # overflows to UTC
        datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC")),  # an unset clock
    ],
    ids=["year-1-with-offset", "epoch"],
)
def test_an_absurdly_old_timestamp_is_refused_and_records_nothing(
    rejected: Any, when: datetime
) -> None:
    rejected(lambda: mark_converted("0A00000000000D01", timestamp=when), "timestamp", "2000")
    rejected(lambda: record_message("0A00000000000D02", sent_at=when), "sent_at")


def test_a_conversion_before_its_message_was_sent_is_refused(rejected: Any) -> None:
    sent = record_message("0A00000000000D03", sent_at=timezone.now())
    counted = counts()
    with pytest.raises(ConversionInputError, match="before the message was sent"):
        mark_converted(sent, timestamp=timezone.now() - timedelta(hours=1))
    assert counts() == counted
    # Within clock skew it is accepted.
    assert mark_converted(sent, timestamp=timezone.now() - timedelta(minutes=1)).pk


def test_deeply_nested_json_to_record_sms_response_is_refused(rejected: Any) -> None:
    rejected(lambda: record_sms_response("[" * 100_000 + "]" * 100_000), "JSON")


def test_a_target_whose_key_is_longer_than_the_column_is_refused(rejected: Any) -> None:
    order = Order.objects.create()
    order.pk = 10**70  # a key 71 digits long: more than target_object_id holds
    rejected(lambda: record_message("0A00000000000D04", target=order), "primary key")


@pytest.mark.django_db(transaction=True)
def test_marking_a_purged_message_is_refused(rejected: Any) -> None:
    sent = record_message("0A00000000000D05")
    SentMessage.objects.filter(pk=sent.pk).delete()
    rejected(lambda: mark_converted(sent), "no longer recorded")


def test_purge_older_than_absurdly_many_days_is_a_clear_error() -> None:
    from django.core.management import CommandError, call_command

    from django_nexmo_conversion.retention import purge

    with pytest.raises(CommandError, match="older-than"):
        call_command("purge_conversions", "--older-than", "99999999")
    with pytest.raises(ConversionInputError, match="older_than"):
        purge(older_than=timedelta(days=999_999_999))
