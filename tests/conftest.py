from __future__ import annotations

import pytest

pytest_plugins = ["django_nexmo_conversion.testing.pytest_plugin"]


@pytest.fixture(autouse=True)
def _clean_backend():
    """Each test starts with a fresh backend and an empty outbox, and leaves no background
    reporter running (its sweeps would work on the next test's rows)."""
    from django_nexmo_conversion.backends import reset_backend
    from django_nexmo_conversion.backends.locmem import outbox
    from django_nexmo_conversion.reporting import background

    reset_backend()
    outbox.clear()
    yield
    background.shutdown(timeout=5)
    reset_backend()
