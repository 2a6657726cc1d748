"""How a recipient's phone number is kept: ``RECIPIENT_STORAGE`` and the keyed hash.

Phone numbers are personal data. ``RECIPIENT_STORAGE`` says what lands in
``SentMessage.recipient``:

- ``"full"`` (default): the number, normalised to digits (``447700900123``);
- ``"masked"``: only the last digits survive (``*******0123``), enough for a human to tell
  two messages apart in the admin;
- ``"none"``: nothing.

Whatever the mode, ``SentMessage.recipient_hash`` holds an HMAC-SHA256 of the normalised
number keyed by ``SECRET_KEY`` (through :func:`django.utils.crypto.salted_hmac`, with a salt of
its own), so an inbound reply can be matched to the message it answers without the number
being stored. It is a pseudonym, not anonymisation: anyone holding ``SECRET_KEY`` can test
a guessed number against it. Rotating ``SECRET_KEY`` makes old hashes unmatchable (replies to
messages sent before the rotation are then simply not matched).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.crypto import salted_hmac

from .conf import get_settings
from .transport.wire import msisdn

#: A dedicated salt: the hash can never collide with another use of SECRET_KEY.
HASH_SALT = "django_nexmo_conversion.privacy.recipient"
#: Digits left visible by ``"masked"`` (fewer for short numbers, see :func:`mask`).
MASK_VISIBLE_DIGITS = 4
MASK_CHAR = "*"


@dataclass(frozen=True)
class StoredRecipient:
    """The two values written to a ``SentMessage`` for one number."""

    recipient: str
    recipient_hash: str


def normalize(number: str) -> str:
    """Digits only (``wire.msisdn``), so a number hashes the same whichever way it was
    written."""
    return msisdn(number)


def recipient_hash(number: str) -> str:
    """The keyed hash stored in ``SentMessage.recipient_hash`` (64 hex characters).

    Use it to find the messages sent to a number::

        SentMessage.objects.filter(recipient_hash=recipient_hash(msisdn))
    """
    digits = normalize(number)
    if not digits:
        return ""
    return salted_hmac(HASH_SALT, digits, algorithm="sha256").hexdigest()


def mask(number: str) -> str:
    """Keep the last digits, star the rest: ``447700900123`` -> ``********0123``.

    A short number keeps fewer digits (never more than a third of it), so masking never
    leaves most of a number readable.
    """
    digits = normalize(number)
    visible = min(MASK_VISIBLE_DIGITS, len(digits) // 3)
    hidden = len(digits) - visible
    return MASK_CHAR * hidden + digits[hidden:]


def store(number: str, *, mode: str | None = None) -> StoredRecipient:
    """What to write for ``number`` under ``mode`` (default: the ``RECIPIENT_STORAGE`` setting).

    ``number`` is expected already validated (``validation.clean_recipient``); empty stays empty.
    """
    if not number:
        return StoredRecipient("", "")
    mode = mode or get_settings().recipient_storage
    digits = normalize(number)
    if mode == "full":
        shown = digits
    elif mode == "masked":
        shown = mask(digits)
    else:
        shown = ""
    return StoredRecipient(recipient=shown, recipient_hash=recipient_hash(digits))
