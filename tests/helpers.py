"""What several test modules need: the app's settings for one test, a sandbox to point at,
conversions to report.

The fixtures built on these live in ``tests/conftest.py``.
"""

from __future__ import annotations

from typing import Any

from django_nexmo_conversion import mark_converted
from django_nexmo_conversion.models import Conversion
from django_nexmo_conversion.sandbox import DEFAULT_API_KEY, DEFAULT_API_SECRET, Sandbox


def sandbox_settings(sandbox: Sandbox | str, **overrides: Any) -> dict[str, Any]:
    """NEXMO_CONVERSION overrides that point the http backend at ``sandbox`` (or its base URL),
    with the sandbox's default account."""
    return {
        "BACKEND": "django_nexmo_conversion.backends.http.HttpBackend",
        "BASE_URL": sandbox if isinstance(sandbox, str) else sandbox.base_url,
        "API_KEY": DEFAULT_API_KEY,
        "API_SECRET": DEFAULT_API_SECRET,
        **overrides,
    }


def configure(settings: Any, *, sandbox: Sandbox | None = None, **values: Any) -> None:
    """Merge ``values`` into NEXMO_CONVERSION for this test, keeping the rest as it is.

    ``settings`` is pytest-django's fixture: assigning through it sends ``setting_changed``
    (which rebuilds the app's cached settings and backend) and restores the setting after the
    test. With ``sandbox``, the http backend is pointed at it too (``values`` still win).
    """
    pointed = sandbox_settings(sandbox) if sandbox is not None else {}
    settings.NEXMO_CONVERSION = {**settings.NEXMO_CONVERSION, **pointed, **values}


def replace_configuration(settings: Any, value: object) -> None:
    """Make NEXMO_CONVERSION exactly ``value``: nothing of ``tests/settings.py``'s is kept.

    Any object, not only a dict: the system checks are tested with broken ones.
    """
    settings.NEXMO_CONVERSION = value


def mark_many(count: int, prefix: str = "MSG") -> list[Conversion]:
    """``count`` pending conversions, of messages ``{prefix}0000``, ``{prefix}0001``, ..."""
    return [mark_converted(f"{prefix}{i:04d}") for i in range(count)]
