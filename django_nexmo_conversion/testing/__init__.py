"""Helpers for testing code that marks conversions.

- :func:`wait_for_reports`: wait until this process's background reporter has reported what
  was marked so far (``DISPATCH="background"`` in a live-server or transactional test).
- ``django_nexmo_conversion.testing.factories``: factory-boy factories (needs factory-boy).
- ``django_nexmo_conversion.testing.pytest_plugin``: fixtures ``nexmo_outbox`` and
  ``nexmo_sandbox``; enable it in your conftest.py with
  ``pytest_plugins = ["django_nexmo_conversion.testing.pytest_plugin"]``.
"""

from __future__ import annotations


def wait_for_reports(timeout: float = 5.0) -> None:
    """Block until the background reporter of this process is idle: everything marked (and
    committed) so far has been sent and its answer written. ``AssertionError`` after
    ``timeout`` seconds."""
    from ..dispatch.background import flush

    if not flush(timeout):
        raise AssertionError(f"The background reporter was still busy after {timeout:g} s.")
