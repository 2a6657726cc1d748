from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from django_nexmo_conversion.sandbox import Sandbox

pytest_plugins = ["django_nexmo_conversion.testing.pytest_plugin"]


@pytest.fixture(autouse=True)
def _clean_backend():
    """Each test starts with a fresh backend and an empty outbox, and leaves no background
    reporter running (its sweeps would work on the next test's rows)."""
    from django_nexmo_conversion.backends import reset_backend
    from django_nexmo_conversion.backends.locmem import outbox
    from django_nexmo_conversion.dispatch import background

    reset_backend()
    outbox.clear()
    yield
    background.shutdown(timeout=5)
    reset_backend()


@pytest.fixture
def on_commit(settings: Any, nexmo_sandbox: Sandbox) -> Sandbox:
    """The sandbox, with ``DISPATCH="on_commit"``: a conversion goes out as its transaction
    commits."""
    from .helpers import configure

    configure(settings, DISPATCH="on_commit")
    return nexmo_sandbox


@pytest.fixture
def no_env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credential from the environment (``NEXMO_API_KEY`` and the rest): the developer's
    shell must not leak into a test about what the settings alone give."""
    from django_nexmo_conversion.conf import ENV_FALLBACKS

    for names in ENV_FALLBACKS.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
