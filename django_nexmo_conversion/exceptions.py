"""Exceptions raised by the app. None of them ever carries a secret in its text or attributes."""

from __future__ import annotations


class NexmoConversionError(Exception):
    """Base class for every error this app raises on purpose."""


class ConversionInputError(NexmoConversionError, ValueError):
    """Bad input to a public function: nothing was stored and nothing was sent."""
