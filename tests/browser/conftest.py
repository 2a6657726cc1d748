"""Browser tests: Playwright for Python driving Debian's chromium against pytest-django's
live server.

Playwright's own browser download does not work here, so the browser is the system's
``/usr/bin/chromium`` (override with ``NEXMO_CHROMIUM``). Install what these tests need::

    apt-get update && apt-get install -y chromium
    .venv/bin/pip install playwright        # the Python package only: no `playwright install`

Without chromium or playwright the tests are skipped with the reason, unless
``NEXMO_REQUIRE_SERVICES=1`` (set by ``.ci/run``): then they fail, so CI never passes
without having run them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("NEXMO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = (
    "install chromium and playwright with `apt-get update && apt-get install -y chromium` and "
    "`.venv/bin/pip install playwright` (no `playwright install`: the system chromium is used)"
)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1600, "height": 1000}


def _unavailable(reason: str) -> None:
    if os.environ.get("NEXMO_REQUIRE_SERVICES") == "1":
        pytest.fail(
            f"{reason}: the browser tests cannot run and NEXMO_REQUIRE_SERVICES=1 requires "
            f"them; {INSTALL_HINT}.",
            pytrace=False,
        )
    pytest.skip(f"{reason}, so the browser tests did not run; {INSTALL_HINT}.")


# Package scope, not session: Playwright's sync API runs an asyncio loop in this thread for as
# long as it lives, and async_to_sync (the async views' tests, django-health-check) refuses
# to run in a thread with a running loop. The browser tests end; the loop ends with them.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"no chromium at {CHROMIUM}")
    # Playwright's sync API keeps an asyncio loop in this thread; the ORM calls the tests
    # make between browser steps are plain synchronous code, so Django's guard is lifted
    # for as long as the browser runs.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT, locale="en-GB")
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def screenshot(tmp_path: Path) -> Any:
    """``screenshot(page, "name")``: saves ``name.png`` in tmp (always) and, with
    ``UPDATE_SCREENSHOTS=1``, over ``docs/screenshots/name.png``; returns the tmp path."""

    def take(tab: Any, name: str, *, full_page: bool = False) -> Path:
        target = tmp_path / f"{name}.png"
        tab.screenshot(path=str(target), full_page=full_page)
        data = target.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), f"{name}.png is not a PNG"
        assert len(data) > 10_000, f"{name}.png is suspiciously small ({len(data)} bytes)"
        if os.environ.get("UPDATE_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(target, SCREENSHOTS / f"{name}.png")
        return target

    return take


def login(tab: Any, base_url: str, username: str = "admin", password: str = "password") -> None:
    """Log in through the admin's real login form."""
    tab.goto(f"{base_url}/admin/login/?next=/admin/")
    tab.fill("#id_username", username)
    tab.fill("#id_password", password)
    tab.click("input[type=submit]")
    tab.wait_for_url(f"{base_url}/admin/")
