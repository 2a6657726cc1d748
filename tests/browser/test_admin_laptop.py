"""The conversion list at laptop width: at 1366x768 with Django's
navigation sidebar open (its default), the failure reason ("Last error") is on screen without
a horizontal scroll; on a wide screen the reason is not cut short, "(gave up after N
attempts)" included.

``UPDATE_SCREENSHOTS=1`` retakes ``docs/screenshots/changelist.png`` here, sidebar open.
"""

from __future__ import annotations

from typing import Any

import pytest

from . import demo_data
from .conftest import login

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/django_nexmo_conversion/conversion/"


def open_changelist(browser: Any, base: str, width: int, height: int) -> Any:
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-GB")
    context.set_default_timeout(15_000)
    tab = context.new_page()
    login(tab, base)
    tab.goto(f"{base}{CHANGELIST}")
    tab.wait_for_selector("#result_list")
    return tab


def horizontal_overflow(tab: Any) -> dict[str, int]:
    """How far the page and the results box scroll sideways (0: they do not)."""
    return tab.evaluate(
        """() => {
            const page = document.documentElement;
            const results = document.querySelector('#changelist .results');
            return {
                page: page.scrollWidth - page.clientWidth,
                results: results.scrollWidth - results.clientWidth,
            };
        }"""
    )


def test_last_error_is_on_screen_at_1366_with_the_sidebar_open(
    browser: Any, live_server: Any, admin_user: Any, settings: Any, screenshot: Any
) -> None:
    demo_data.build(max_attempts=settings.NEXMO_CONVERSION.get("MAX_ATTEMPTS", 8))
    tab = open_changelist(browser, live_server.url, 1366, 768)
    try:
        assert tab.locator("#nav-sidebar").is_visible()  # Django's default: open

        assert horizontal_overflow(tab) == {"page": 0, "results": 0}
        header = tab.locator("#result_list th.column-short_error")
        box = header.bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= 1366
        error = tab.locator("#result_list td.field-short_error .nexmo-error").first
        assert error.is_visible()
        assert error.inner_text().strip()
        screenshot(tab, "changelist")
    finally:
        tab.context.close()


def test_the_whole_reason_shows_on_a_wide_screen(
    browser: Any, live_server: Any, admin_user: Any, settings: Any
) -> None:
    data = demo_data.build(max_attempts=settings.NEXMO_CONVERSION.get("MAX_ATTEMPTS", 8))
    assert data.gave_up is not None
    reason = data.gave_up.last_error
    assert "(gave up after" in reason
    tab = open_changelist(browser, live_server.url, 1920, 1080)
    try:
        tab.fill("#searchbar", data.gave_up.message.message_id)
        tab.press("#searchbar", "Enter")
        tab.wait_for_selector("#result_list")
        error = tab.locator("#result_list td.field-short_error .nexmo-error")
        assert error.count() == 1
        assert error.inner_text().strip() == reason
        # Not clamped: every line of it is drawn, nothing hidden behind an ellipsis.
        clipped = error.evaluate("e => e.scrollHeight > e.clientHeight + 1")
        assert not clipped
        assert horizontal_overflow(tab) == {"page": 0, "results": 0}
    finally:
        tab.context.close()
