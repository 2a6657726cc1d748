"""pytest fixtures for projects that use django-nexmo-conversion (needs pytest-django:
``pip install 'django-nexmo-conversion[testing]'``).

pytest loads this plugin by itself wherever the package is installed (a ``pytest11`` entry
point); a ``conftest.py`` that still lists it in ``pytest_plugins`` does no harm.

- ``nexmo_outbox``: switches to the locmem backend and yields its (emptied) outbox. Reading
  the outbox first reports whatever your code marked, in the test's own transaction, so a
  test inside pytest-django's rolled-back transaction sees its reports without a commit.
- ``nexmo_sandbox``: starts the bundled sandbox API on loopback, points the http backend at
  it, and yields the :class:`~django_nexmo_conversion.sandbox.Sandbox`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

import pytest

# The app's modules are imported inside the fixtures: pytest loads this plugin (an entry
# point) before anything else, before a test run's coverage measurement starts too.
if TYPE_CHECKING:
    from ..backends.locmem import SentReport
    from ..sandbox import Sandbox


def _override(settings: Any, **values: Any) -> None:
    current = dict(getattr(settings, "NEXMO_CONVERSION", {}) or {})
    current.update(values)
    # Assigning through pytest-django's ``settings`` fixture sends setting_changed,
    # which rebuilds the cached settings and the backend.
    settings.NEXMO_CONVERSION = current


class ReportingOutbox(Sequence["SentReport"]):
    """The locmem outbox, as the ``nexmo_outbox`` fixture gives it: each read first reports
    what is due (``report_pending``), like a test mail backend that sends at once. Marks of a
    rolled-back transaction are gone from the database, so they never show up here."""

    def _reports(self) -> list[SentReport]:
        from ..backends.locmem import outbox
        from ..reporting.engine import report_pending

        report_pending()
        return outbox

    @overload
    def __getitem__(self, index: int) -> SentReport: ...
    @overload
    def __getitem__(self, index: slice) -> list[SentReport]: ...
    def __getitem__(self, index: int | slice) -> SentReport | list[SentReport]:
        return self._reports()[index]

    def __len__(self) -> int:
        return len(self._reports())

    def __eq__(self, other: object) -> bool:
        return self._reports() == other

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by content

    def __repr__(self) -> str:
        return repr(self._reports())

    def clear(self) -> None:
        from ..backends.locmem import outbox

        outbox.clear()


@pytest.fixture
def nexmo_outbox(settings: Any) -> Iterator[ReportingOutbox]:
    from ..backends.locmem import outbox

    # "manual": the outbox reports when it is read, not after a commit that a test in a
    # rolled-back transaction never makes.
    _override(
        settings,
        BACKEND="django_nexmo_conversion.backends.locmem.LocmemBackend",
        DISPATCH="manual",
    )
    outbox.clear()
    yield ReportingOutbox()
    outbox.clear()


@pytest.fixture
def nexmo_sandbox(settings: Any) -> Iterator[Sandbox]:
    from ..backends import reset_backend
    from ..sandbox import DEFAULT_API_KEY, DEFAULT_API_SECRET, Sandbox

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
