"""Near-miss setting names get a hint from ``manage.py check``: a
``NEXMO_CONVERSIONS`` setting (W008), or the credentials as Django settings where the app
reads the environment (W009). The values are never shown: they may be secrets."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command

from .helpers import replace_configuration

SECRET = "s3cr3t-in-settings-Zx9"


def check_output() -> str:
    """``manage.py check`` as a user runs it: what it prints (warnings go to stderr)."""
    out, err = io.StringIO(), io.StringIO()
    call_command("check", stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def test_a_plural_nexmo_conversions_setting_is_named_with_the_fix(settings: Any) -> None:
    settings.NEXMO_CONVERSIONS = {"API_KEY": "k", "API_SECRET": SECRET}

    output = check_output()

    assert "django_nexmo_conversion.W008" in output
    assert "NEXMO_CONVERSIONS" in output
    assert "HINT: Rename NEXMO_CONVERSIONS to NEXMO_CONVERSION." in output
    assert SECRET not in output


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("NEXMO_API_KEY", "API_KEY"),
        ("NEXMO_API_SECRET", "API_SECRET"),
        ("VONAGE_API_KEY", "API_KEY"),
        ("NEXMO_SIGNATURE_SECRET", "SIGNATURE_SECRET"),
    ],
)
def test_a_credential_as_a_django_setting_is_pointed_to_the_environment(
    settings: Any, monkeypatch: pytest.MonkeyPatch, name: str, key: str
) -> None:
    for variable in ("NEXMO_API_KEY", "VONAGE_API_KEY", "NEXMO_API_SECRET", "VONAGE_API_SECRET"):
        monkeypatch.delenv(variable, raising=False)
    replace_configuration(settings, {})
    setattr(settings, name, SECRET)

    output = check_output()

    assert "django_nexmo_conversion.W009" in output
    assert f"{name} is a Django setting" in output
    assert f"NEXMO_CONVERSION['{key}']" in output
    assert f"export {name}" in output
    assert SECRET not in output


def test_credentials_passed_on_in_nexmo_conversion_are_fine(settings: Any) -> None:
    settings.NEXMO_API_KEY = "key-from-settings"
    settings.NEXMO_API_SECRET = SECRET
    replace_configuration(settings, {"API_KEY": "key-from-settings", "API_SECRET": SECRET})

    output = check_output()

    assert "W009" not in output
    assert "W008" not in output
