"""The admin in a real browser: log in, find the failed conversions, retry them, read the
dashboard; and an account error reported by the sandbox, seen the way a user sees it.

Screenshots of the changelist, a change page and the dashboard are taken on every run
(``UPDATE_SCREENSHOTS=1`` refreshes the README's copies in ``docs/screenshots/``).
"""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from django_nexmo_conversion.models import Conversion, Status
from django_nexmo_conversion.testing.factories import ConversionFactory

from . import demo_data
from .conftest import login

pytestmark = pytest.mark.django_db(transaction=True)


def test_find_failed_retry_them_and_read_the_dashboard(
    page, live_server, admin_user, screenshot, settings
):
    data = demo_data.build(max_attempts=settings.NEXMO_CONVERSION.get("MAX_ATTEMPTS", 8))
    failed_before = set(
        Conversion.objects.filter(status=Status.FAILED).values_list("pk", flat=True)
    )
    assert len(failed_before) >= 2
    assert data.gave_up is not None
    base = live_server.url

    login(page, base)
    # The admin index lists the dashboard next to the models; it opens the dashboard.
    page.click("a[href$='/django_nexmo_conversion/conversiondashboard/']")
    page.wait_for_url(re.compile(r"/conversion/dashboard/$"))
    chart = page.locator("svg.nexmo-chart")
    assert chart.is_visible()
    box = chart.bounding_box()
    assert box is not None
    assert box["width"] > 400
    assert box["height"] > 100
    assert page.locator("svg.nexmo-chart g.nexmo-chart__day").count() == 30
    assert page.locator("svg.nexmo-chart rect.nexmo-chart__bar").count() == 29  # a quiet day
    assert page.locator("svg.nexmo-chart line.nexmo-chart__empty").count() == 1
    assert dashboard_counts(page) == db_counts()
    reasons = page.locator("#nexmo-failures tbody tr")
    assert reasons.count() == 2
    assert "Invalid Parameters" in page.locator("#nexmo-failures").inner_text()
    assert page.locator("#nexmo-halt").count() == 0
    screenshot(page, "dashboard", full_page=True)

    page.click(".breadcrumbs a[href$='/django_nexmo_conversion/conversion/']")
    page.wait_for_selector("#result_list")
    page.click("#toggle-nav-sidebar")  # more room for the columns (remembered by the browser)
    page.evaluate("window.scrollTo(0, 0)")
    assert page.locator("#result_list .nexmo-badge").count() == 50  # one page
    for status in ("reported", "failed", "pending"):
        assert page.locator(f"#result_list .nexmo-badge--{status}").count() > 0, status
    # docs/screenshots/changelist.png is taken at laptop width, sidebar open: test_admin_laptop.

    # A conversion Nexmo never accepted: every attempt is listed on its page, read-only.
    page.goto(f"{base}/admin/django_nexmo_conversion/conversion/{data.gave_up.pk}/change/")
    assert (
        page.locator("#attempts-group tbody tr.has_original").count() == data.gave_up.attempt_count
    )
    assert "gave up after" in page.locator(".field-last_error").inner_text()
    assert page.locator("input[name=_save]").count() == 0
    assert page.locator("button[name=retry]").is_visible()
    screenshot(page, "change", full_page=True)

    # Filter the failed ones with the sidebar filter, as a user would, and retry them all.
    page.goto(f"{base}/admin/django_nexmo_conversion/conversion/")
    page.locator("#changelist-filter a", has_text=re.compile(r"^\s*Failed\s*$")).first.click()
    page.wait_for_url(re.compile(r"status__exact=failed"))
    statuses = page.locator("#result_list .nexmo-badge").all_inner_texts()
    assert [text.strip().lower() for text in statuses] == ["failed"] * len(failed_before)

    page.check("#action-toggle")
    page.select_option("select[name=action]", "retry_now")
    page.click("button[name=index]")
    message = page.locator("ul.messagelist li.success")
    message.wait_for()
    assert f"{len(failed_before)} conversions are due now" in message.inner_text()
    assert page.locator("ul.messagelist li.warning").count() == 0
    assert page.locator("#result_list .nexmo-badge--failed").count() == 0

    retried = Conversion.objects.filter(pk__in=failed_before)
    assert {c.status for c in retried} == {Status.PENDING}
    assert {c.attempt_count for c in retried} == {0}
    assert all(c.next_attempt_at <= timezone.now() for c in retried)

    # The dashboard agrees.
    page.goto(f"{base}/admin/django_nexmo_conversion/conversion/")
    page.click("#nexmo-dashboard-link")
    page.wait_for_selector("svg.nexmo-chart")
    counts = dashboard_counts(page)
    assert counts == db_counts()
    assert counts[Status.FAILED] == 0
    assert "No failed conversions." in page.locator("#nexmo-failures").inner_text()


def dashboard_counts(page) -> dict[str, int]:
    return {
        status: int(page.locator(f"[data-status='{status}']").inner_text())
        for status in Status.values
    }


def db_counts() -> dict[str, int]:
    return {status: Conversion.objects.filter(status=status).count() for status in Status.values}


def test_account_error_from_the_sandbox_shows_what_to_fix(
    page, live_server, admin_user, nexmo_sandbox, screenshot
):
    conversion = ConversionFactory(status=Status.FAILED, attempt_count=8)
    nexmo_sandbox.script(401)
    base = live_server.url

    login(page, base)
    page.goto(f"{base}/admin/django_nexmo_conversion/conversion/{conversion.pk}/change/")
    page.click("button[name=report]")
    error = page.locator("ul.messagelist li.error")
    error.wait_for()
    text = error.inner_text()
    assert "Reporting stopped" in text
    assert "NEXMO_CONVERSION['API_KEY']" in text

    # Nothing burned: pending again, due, with a fresh budget (Report now = Retry + report).
    conversion.refresh_from_db()
    assert conversion.status == Status.PENDING
    assert conversion.attempt_count == 0
    assert conversion.last_status_code == 401
    assert [r.status for r in nexmo_sandbox.requests] == [401]

    page.goto(f"{base}/admin/django_nexmo_conversion/conversion/dashboard/")
    banner = page.locator("#nexmo-halt")
    assert banner.is_visible()
    assert "HTTP 401" in banner.inner_text()
    assert "NEXMO_CONVERSION['API_SECRET']" in banner.inner_text()
    screenshot(page, "halted")

    # Once the account works, the next report clears the banner.
    page.goto(f"{base}/admin/django_nexmo_conversion/conversion/{conversion.pk}/change/")
    page.click("button[name=report]")
    page.locator("ul.messagelist li.success").wait_for()
    conversion.refresh_from_db()
    assert conversion.status == Status.REPORTED
    page.goto(f"{base}/admin/django_nexmo_conversion/conversion/dashboard/")
    page.wait_for_selector("svg.nexmo-chart")
    assert page.locator("#nexmo-halt").count() == 0
