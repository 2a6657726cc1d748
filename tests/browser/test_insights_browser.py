"""The Insights page in a real browser: reached from the dashboard, its tables sort, a row
charts its destination, the low-conversion alert sits on top. Screenshot: ``insights``."""

from __future__ import annotations

import random
import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_nexmo_conversion import mark_converted, record_sms_response

from ..helpers import configure
from .conftest import login

pytestmark = pytest.mark.django_db(transaction=True)

#: (number prefix, network, conversion rate): healthy routes, and one being pumped. With the
#: five digits added, each is a number of its country's length.
DESTINATIONS = [
    ("4477009", "23415", 0.82),
    ("4478012", "23410", 0.74),
    ("336123", "20801", 0.66),
    ("4915112", "26201", 0.71),
    ("141555", "310260", 0.58),
    ("23480312", "62130", 0.02),  # Nigeria: SMS pumping
]


def build_traffic() -> None:
    rng = random.Random(14)
    now = timezone.now()
    serial = 0
    for prefix, network, rate in DESTINATIONS:
        for day in range(14):
            for _send in range(rng.randint(8, 14) if rate > 0.1 else 30):
                serial += 1
                sent_at = now - timedelta(days=day, minutes=rng.randint(5, 600))
                (message,) = record_sms_response(
                    {
                        "messages": [
                            {
                                "to": f"{prefix}{serial:05d}",
                                "message-id": f"B{serial:015d}",
                                "status": "0",
                                "network": network,
                            }
                        ]
                    }
                )
                type(message).objects.filter(pk=message.pk).update(sent_at=sent_at)
                if rng.random() < rate:
                    message.sent_at = sent_at
                    delay = timedelta(seconds=rng.choice([8, 20, 40, 75, 150, 400]))
                    mark_converted(message, timestamp=min(sent_at + delay, now))
    # sent_at was moved after the rows were counted: recount, as after an import.
    from django.core.management import call_command

    call_command("rebuild_conversion_stats")


def test_read_the_insights(
    page: Any, live_server: Any, admin_user: Any, screenshot: Any, settings: Any
):
    configure(settings, ALERT_MIN_MESSAGES=20, ALERT_MIN_RATE=0.1, ALERT_WINDOW=86400)
    build_traffic()
    base = live_server.url
    login(page, base)
    page.goto(f"{base}/admin/django_nexmo_conversion/conversion/dashboard/")
    page.click("#nexmo-insights-link")
    page.wait_for_url(re.compile(r"/conversion/insights/$"))

    alerts = page.locator("#nexmo-alerts li")
    assert alerts.count() == 2  # the country and its network
    assert "Nigeria" in alerts.first.inner_text()
    countries = page.locator("#nexmo-by-country tbody tr")
    assert countries.count() == 5  # GB counts both British networks
    assert page.locator("#nexmo-by-network tbody tr").count() == 6
    assert "Vodafone" in page.locator("#nexmo-by-network").inner_text()

    # Sort by rate, lowest first: the pumped destination comes to the top.
    page.locator("#nexmo-by-country th a[data-sort=rate]").click()
    page.locator("#nexmo-by-country th a[data-sort=rate]").click()
    page.wait_for_url(re.compile(r"dir=asc"))
    assert page.locator("#nexmo-by-country tbody tr").first.get_attribute("data-key") == "NG"

    # A row charts its destination's daily rate.
    page.locator("#nexmo-by-network tbody tr[data-key='62130'] th a").click()
    page.wait_for_url(re.compile(r"chart=network"))
    chart = page.locator("#nexmo-insights-chart svg.nexmo-chart")
    assert chart.is_visible()
    assert page.locator("#nexmo-insights-chart g.nexmo-chart__day").count() == 30
    assert page.locator("#nexmo-by-network tr.selected").get_attribute("data-key") == "62130"
    screenshot(page, "insights", full_page=True)
