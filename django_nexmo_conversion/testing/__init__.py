"""Helpers for testing code that marks conversions.

- ``django_nexmo_conversion.testing.factories``: factory-boy factories (needs factory-boy).
- ``django_nexmo_conversion.testing.pytest_plugin``: fixtures ``nexmo_outbox`` and
  ``nexmo_sandbox``; enable it in your conftest.py with
  ``pytest_plugins = ["django_nexmo_conversion.testing.pytest_plugin"]``.
"""
