"""RECIPIENT_STORAGE (full / masked / none) and the keyed hash of the number."""

from __future__ import annotations

import hashlib
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.forms.models import model_to_dict

from django_nexmo_conversion import record_message, record_sms_response
from django_nexmo_conversion.exceptions import ConversionInputError
from django_nexmo_conversion.models import SentMessage
from django_nexmo_conversion.privacy import mask, recipient_hash, store
from django_nexmo_conversion.retention import apply_recipient_storage

from .helpers import configure

pytestmark = pytest.mark.django_db

NUMBER = "+44 7700-900123"
DIGITS = "447700900123"


def storage(settings: Any, mode: str) -> None:
    configure(settings, RECIPIENT_STORAGE=mode)


def every_value(message: SentMessage) -> str:
    message.refresh_from_db()
    return " ".join(str(v) for v in model_to_dict(message).values()) + message.recipient_hash


def test_full_keeps_the_normalised_number(settings: Any) -> None:
    storage(settings, "full")
    message = record_message("FULL0001", recipient=NUMBER)
    message.refresh_from_db()
    assert message.recipient == DIGITS
    assert message.recipient_hash == recipient_hash(DIGITS)


def test_masked_keeps_only_the_last_digits(settings: Any) -> None:
    storage(settings, "masked")
    message = record_message("MASK0001", recipient=NUMBER)
    message.refresh_from_db()
    assert message.recipient == "********0123"
    assert "7700900" not in every_value(message)
    assert message.recipient_hash == recipient_hash(DIGITS)


def test_none_stores_no_number_but_the_hash_still_matches_replies(settings: Any) -> None:
    storage(settings, "none")
    message = record_message("NONE0001", recipient=NUMBER)
    assert "0123" not in every_value(message)
    assert message.recipient == ""
    # An inbound reply carries the number as the SMS API writes it; the hash finds the message.
    found = SentMessage.objects.filter(recipient_hash=recipient_hash("447700900123"))
    assert list(found) == [message]


def test_the_hash_is_keyed_by_secret_key(settings: Any) -> None:
    first = recipient_hash(DIGITS)
    assert len(first) == 64
    assert int(first, 16) >= 0  # hex
    assert first != hashlib.sha256(DIGITS.encode()).hexdigest()  # not guessable without the key
    settings.SECRET_KEY = "another-secret-key"
    assert recipient_hash(DIGITS) != first


def test_the_hash_ignores_formatting() -> None:
    assert recipient_hash("+44 (7700) 900-123") == recipient_hash("447700900123")
    assert recipient_hash("447700900124") != recipient_hash("447700900123")


def test_masking_short_numbers_never_leaves_most_digits_readable() -> None:
    assert mask("447700900123") == "********0123"
    assert mask("123456") == "****56"
    assert mask("123") == "**3"
    assert store("", mode="masked").recipient == ""
    assert store("", mode="full").recipient_hash == ""


def test_sms_responses_follow_the_mode(settings: Any) -> None:
    storage(settings, "masked")
    recorded = record_sms_response(
        {
            "message-count": "1",
            "messages": [{"to": DIGITS, "message-id": "MASK0002", "status": "0"}],
        }
    )
    recorded[0].refresh_from_db()
    assert recorded[0].recipient == "********0123"
    assert recorded[0].recipient_hash == recipient_hash(DIGITS)


def test_no_recipient_means_no_hash() -> None:
    message = record_message("NORCPT01")
    message.refresh_from_db()
    assert (message.recipient, message.recipient_hash) == ("", "")


def test_a_bad_number_stores_nothing(settings: Any) -> None:
    storage(settings, "none")
    with pytest.raises(ConversionInputError, match="not a phone number"):
        record_message("BADNUM01", recipient="call me maybe")
    assert not SentMessage.objects.exists()


# --- tightening the setting afterwards ---------------------------------------------------------


def recipients() -> dict[str, str]:
    return dict(SentMessage.objects.values_list("message_id", "recipient"))


def test_tightening_the_setting_rewrites_the_numbers_already_stored(settings: Any) -> None:
    storage(settings, "full")
    for n in range(5):
        record_message(f"OLD{n}", recipient=f"+44 7700 90012{n}")
    record_message("NONUMBER")
    hashes = dict(SentMessage.objects.values_list("message_id", "recipient_hash"))

    storage(settings, "masked")
    record_message("NEW", recipient=NUMBER)
    assert apply_recipient_storage(dry_run=True) == 5
    assert recipients()["OLD0"] == "447700900120"  # a dry run changes nothing
    assert apply_recipient_storage(batch_size=2) == 5
    assert recipients() == {
        **{f"OLD{n}": mask(f"44770090012{n}") for n in range(5)},
        "NONUMBER": "",
        "NEW": mask(DIGITS),
    }
    assert apply_recipient_storage() == 0  # masked numbers are not masked again

    storage(settings, "none")
    output = StringIO()
    call_command("apply_recipient_storage", stdout=output)
    assert "Changed 6 message(s) (NEXMO_CONVERSION['RECIPIENT_STORAGE'] is 'none')" in (
        output.getvalue()
    )
    assert set(recipients().values()) == {""}
    # The hash is kept whatever the mode: replies to old messages still match.
    assert dict(SentMessage.objects.values_list("message_id", "recipient_hash")) == {
        **hashes,
        "NEW": recipient_hash(DIGITS),
    }


def test_nothing_comes_back_when_the_setting_is_loosened(settings: Any) -> None:
    storage(settings, "masked")
    record_message("MASKED", recipient=NUMBER)
    storage(settings, "full")
    assert apply_recipient_storage() == 0
    assert recipients() == {"MASKED": mask(DIGITS)}


def test_a_bad_batch_size_changes_nothing(settings: Any) -> None:
    storage(settings, "full")
    record_message("KEPT", recipient=NUMBER)
    storage(settings, "none")
    with pytest.raises(ConversionInputError, match="batch_size"):
        apply_recipient_storage(batch_size=0)
    with pytest.raises(CommandError, match="--batch-size"):
        call_command("apply_recipient_storage", "--batch-size", "0", stdout=StringIO())
    assert recipients() == {"KEPT": DIGITS}
