"""``make demo`` in a real browser, as a newcomer tries it: send codes, mark them converted,
open the admin. The dashboard's chart and the Insights page fill within one sweep of the
demo's background reporter (SWEEP_INTERVAL 5 s), with nothing else run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..helpers import free_port
from ..test_example_project import DemoProcess, demo_env, wait_for_site
from .conftest import login

#: One sweep of the demo (5 s), plus room for a slow machine.
SWEEP_DEADLINE = 25.0
SENT = 3


@pytest.fixture
def demo_site(tmp_path: Path) -> Iterator[str]:
    site_port = free_port()
    process = DemoProcess(demo_env(tmp_path, site_port=site_port, sandbox_port=free_port()))
    try:
        site = f"http://127.0.0.1:{site_port}"
        wait_for_site(process, site + "/")
        yield site
    finally:
        process.kill()


def reload_until(page: Any, url: str, text: str, deadline: float) -> str:
    """Reload ``url`` as a person would, until it shows ``text``; the page's text."""
    while True:
        page.goto(url)
        body = str(page.inner_text("body"))
        if text in body:
            return body
        assert time.monotonic() < deadline, f"{url} never showed {text!r}:\n{body[:2000]}"
        page.wait_for_timeout(500)


def test_the_demo_fills_its_dashboard_and_insights_within_one_sweep(
    page: Any, demo_site: str
) -> None:
    page.goto(demo_site + "/")
    for _code in range(SENT):
        page.fill("#id_to", "+44 7700 900123")
        page.click("form.send button.big >> nth=0")
        page.wait_for_load_state()
    for _mark in range(SENT - 1):
        page.locator("button", has_text="Mark converted").first.click()
        page.wait_for_load_state()
    marked = time.monotonic()

    login(page, demo_site, "admin", "admin")
    dashboard = demo_site + "/admin/django_nexmo_conversion/conversion/dashboard/"
    insights = demo_site + "/admin/django_nexmo_conversion/conversion/insights/"
    deadline = marked + SWEEP_DEADLINE
    board = reload_until(page, dashboard, f"{SENT - 1} of {SENT} sent messages converted", deadline)
    assert "No messages were sent in this period" not in board
    assert page.locator("#nexmo-rate svg").count() == 1
    assert "every message and conversion so far" in page.inner_text("#nexmo-freshness")

    reload_until(page, insights, "Funnel", deadline)
    assert page.inner_text('[data-step="sent"]') == str(SENT)
    assert page.inner_text('[data-step="converted"]') == str(SENT - 1)
    assert "No messages were sent in this period" not in page.inner_text("#nexmo-by-country")
