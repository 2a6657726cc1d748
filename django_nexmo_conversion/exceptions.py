"""Exceptions raised by the app. None of them ever carries a secret in its text or attributes."""

from __future__ import annotations


class NexmoConversionError(Exception):
    """Base class for every error this app raises on purpose."""


class ConversionInputError(NexmoConversionError, ValueError):
    """Bad input to a public function: nothing was stored and nothing was sent."""


class AccountError(NexmoConversionError):
    """Nexmo refused the account (401 wrong credentials, 402 conversions not enabled).

    A run that meets one stops at once and leaves every conversion pending: the fix is in the
    account or the settings, and retrying would only burn the queue.
    """

    def __init__(self, message: str, *, status_code: int, response_text: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        #: The start of Nexmo's answer (already free of anything we sent).
        self.response_text = response_text
