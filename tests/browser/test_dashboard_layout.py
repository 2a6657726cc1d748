"""The dashboard's layout in a real browser, in both themes and at desktop and phone widths:
the breadcrumbs in the running admin's own (styled) markup, nothing overflowing its module,
chart labels readable. Run it on the oldest and the newest supported Django.

Screenshots ``dashboard-<theme>-<width>.png`` are taken on every run (``UPDATE_SCREENSHOTS=1``
refreshes ``docs/screenshots/``).
"""

from __future__ import annotations

from typing import Any

import django
import pytest

from django_nexmo_conversion.admin.dashboard import breadcrumbs_are_a_list

from . import demo_data
from .conftest import login

pytestmark = pytest.mark.django_db(transaction=True)

DASHBOARD = "/admin/django_nexmo_conversion/conversion/dashboard/"
#: Phone (iPhone 12-15), a laptop that overflowed "Recent periods" before, a desktop.
WIDTHS = {"phone": 390, "laptop": 1400, "desktop": 1600}
#: The smallest chart label a person reads without zooming, in CSS pixels.
MIN_LABEL_PX = 9


def box(page: Any, selector: str) -> dict[str, float]:
    found = page.locator(selector).first.bounding_box()
    assert found is not None, f"{selector} is not rendered"
    return dict(found)


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("width", list(WIDTHS))
def test_dashboard_layout(
    browser: Any, live_server: Any, admin_user: Any, screenshot: Any, theme: str, width: str
) -> None:
    demo_data.build()
    context = browser.new_context(
        viewport={"width": WIDTHS[width], "height": 900}, color_scheme=theme, locale="en-GB"
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        login(page, live_server.url)
        page.goto(live_server.url + DASHBOARD)
        page.wait_for_selector("svg.nexmo-chart")
        check_breadcrumbs(page)
        check_nothing_overflows(page)
        check_chart_labels(page)
        screenshot(page, f"dashboard-{theme}-{width}", full_page=True)
    finally:
        context.close()


def check_breadcrumbs(page: Any) -> None:
    # Django 6.1 writes <ol class="breadcrumbs"><li>...; before, <div class="breadcrumbs">.
    element = "ol" if django.VERSION >= (6, 1) else "div"
    assert breadcrumbs_are_a_list() is (element == "ol")
    trail = page.locator(f"{element}.breadcrumbs")
    assert trail.count() == 1
    steps = ["Home", "Nexmo conversions", "Conversions", "Dashboard"]
    if element == "ol":  # one <li> a step; the admin's CSS draws the separators
        assert [t.strip() for t in trail.locator("li").all_inner_texts()] == steps
    else:
        separator = " \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} "  # &rsaquo;
        assert " ".join(trail.inner_text().split()) == separator.join(steps)
    # Styled by the admin's CSS (a coloured band), as on every other admin page.
    background = trail.evaluate("e => getComputedStyle(e).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")
    if element == "ol":
        assert trail.locator("li[aria-current=page]").inner_text() == "Dashboard"
        assert trail.evaluate("e => getComputedStyle(e.firstElementChild).display") == (
            "inline-block"
        )


#: The elements of a module drawn past its right edge (a scroll box's content, which scrolls
#: inside the box, excepted).
OVERFLOWING = """m => {
    const edge = m.getBoundingClientRect().right + 0.5;
    return [...m.querySelectorAll("*")]
        .filter(e => !(e.parentElement.closest(".nexmo-table-box")))
        .filter(e => e.getBoundingClientRect().right > edge)
        .map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : ""));
}"""


def check_nothing_overflows(page: Any) -> None:
    for module in ("#nexmo-periods", "#nexmo-rate", "#nexmo-failures", "#nexmo-status-counts"):
        assert page.locator(module).evaluate(OVERFLOWING) == [], module
    # At a laptop's width and up the periods table fits: no scrolling needed to read it.
    if page.viewport_size["width"] >= 1400:
        table_box = page.locator("#nexmo-periods .nexmo-table-box")
        assert table_box.evaluate("e => e.scrollWidth <= e.clientWidth")
    # And the page itself never scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def check_chart_labels(page: Any) -> None:
    labels = page.locator("svg.nexmo-chart text.nexmo-chart__axis")
    visible = [
        labels.nth(i).bounding_box() for i in range(labels.count()) if labels.nth(i).is_visible()
    ]
    assert len(visible) >= 3
    heights = [b["height"] for b in visible if b is not None]
    assert min(heights) >= MIN_LABEL_PX, heights
    # Readable also means apart: no two visible labels (the day axis, the rate axis) overlap.
    boxes = [b for b in visible if b is not None]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = (
                a["x"] + a["width"] <= b["x"] + 0.5
                or b["x"] + b["width"] <= a["x"] + 0.5
                or a["y"] + a["height"] <= b["y"] + 0.5
                or b["y"] + b["height"] <= a["y"] + 0.5
            )
            assert apart, (a, b)
