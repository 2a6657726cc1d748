"""pytest fixtures for projects that use django-nexmo-conversion (needs pytest-django).

Enable in your ``conftest.py``::

    pytest_plugins = ["django_nexmo_conversion.testing.pytest_plugin"]

- ``nexmo_outbox``: switches to the locmem backend and yields its (emptied) outbox.
- ``nexmo_sandbox``: starts the bundled sandbox API on loopback, points the http backend at
  it, and yields the :class:`~django_nexmo_conversion.sandbox.Sandbox`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ..backends import reset_backend
from ..backends.locmem import SentReport, outbox
from ..sandbox import DEFAULT_API_KEY, DEFAULT_API_SECRET, Sandbox


def _override(settings: Any, **values: Any) -> None:
    current = dict(getattr(settings, "NEXMO_CONVERSION", {}) or {})
    current.update(values)
    # Assigning through pytest-django's ``settings`` fixture sends setting_changed,
    # which rebuilds the cached settings and the backend.
    settings.NEXMO_CONVERSION = current


@pytest.fixture
def nexmo_outbox(settings: Any) -> Iterator[list[SentReport]]:
    _override(settings, BACKEND="django_nexmo_conversion.backends.locmem.LocmemBackend")
    outbox.clear()
    yield outbox
    outbox.clear()


@pytest.fixture
def nexmo_sandbox(settings: Any) -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        _override(
            settings,
            BACKEND="django_nexmo_conversion.backends.http.HttpBackend",
            BASE_URL=sandbox.base_url,
            API_KEY=DEFAULT_API_KEY,
            API_SECRET=DEFAULT_API_SECRET,
            SIGNATURE_SECRET=None,
        )
        yield sandbox
        reset_backend()
