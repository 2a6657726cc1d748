"""The Send guard page in a real browser: an operator reaches it from the dashboard, sees the
destination the guard refused, blocks a country with a note and an expiry through the add
form, and expires the rule again with the list's action."""

from __future__ import annotations

from typing import Any

import pytest

from django_nexmo_conversion import guard
from django_nexmo_conversion.models import GuardRule

from ..helpers import configure
from .conftest import login

pytestmark = pytest.mark.django_db(transaction=True)

DASHBOARD = "/admin/django_nexmo_conversion/conversion/dashboard/"


def test_block_a_country_then_expire_the_rule(
    browser: Any, live_server: Any, admin_user: Any, settings: Any, screenshot: Any
) -> None:
    configure(settings, GUARD={"MODE": "enforce", "DENY_COUNTRIES": ["LV"]})
    refused = guard.check("+37120000001", client="203.0.113.9")
    assert refused.action == "block"

    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-GB")
    context.set_default_timeout(15_000)
    tab = context.new_page()
    try:
        login(tab, live_server.url)
        tab.goto(f"{live_server.url}{DASHBOARD}")
        tab.click("#nexmo-guard-link")
        tab.wait_for_selector("#guard-refused")
        row = tab.locator("#guard-refused tbody tr").first
        assert "LV" in row.inner_text()
        assert "country_denied" in row.inner_text()

        tab.click(".object-tools a.addlink")
        tab.select_option("#id_action", "block")
        tab.select_option("#id_kind", "country")
        tab.fill("#id_destination", "NG")
        tab.fill("#id_note", "pumping seen on 7 December")
        tab.click("input[name=_save]")
        tab.wait_for_selector("ul.messagelist li.success")
        screenshot(tab, "send-guard")
        rule = GuardRule.objects.get()
        assert (rule.action, rule.value, rule.note) == ("block", "NG", "pumping seen on 7 December")
        assert rule.created_by == admin_user.get_username()
        assert guard.check("+2348031234567").reasons[0][0] == "rule"

        tab.check("input.action-select")
        tab.select_option("select[name=action]", "expire_now")
        tab.click("button[name=index]")
        tab.wait_for_selector("ul.messagelist li.success")
        assert "1 rule expired." in tab.inner_text("ul.messagelist")
        rule.refresh_from_db()
        assert rule.expires_at is not None
        assert all(code != "rule" for code, _text in guard.check("+2348031234567").reasons)
    finally:
        context.close()
