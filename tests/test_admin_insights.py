"""The admin's Insights page: its figures are the recount's, it sorts, it charts one
destination, it shows the alerts, and its query count does not grow with the data."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_nexmo_conversion import insights, mark_converted, queries, record_message
from django_nexmo_conversion.insights import conversion_rates, low_conversion_alerts
from django_nexmo_conversion.models import ConversionAlert

from .helpers import configure
from .test_insights import FR, GB, brute_force, send, traffic  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

INSIGHTS = reverse("admin:django_nexmo_conversion_conversion_insights")
DASHBOARD = reverse("admin:django_nexmo_conversion_conversion_dashboard")


def table_rows(html: str, by: str) -> dict[str, dict[str, str]]:
    section = html.split(f'id="nexmo-by-{by}"', 1)[1].split("</section>", 1)[0]
    rows = {}
    for key, body in re.findall(r'<tr data-key="([^"]*)"[^>]*>(.*?)</tr>', section, re.S):
        rows[key] = dict(re.findall(r'<td data-col="(\w+)">([^<]*)</td>', body))
    return rows


@pytest.mark.usefixtures("traffic")
@pytest.mark.parametrize("by", ["country", "network"])
def test_the_page_shows_the_recounted_figures(admin_client: Client, by: str):
    html = admin_client.get(INSIGHTS).content.decode()
    shown = table_rows(html, by)
    expected = brute_force(by)
    assert set(shown) == set(expected)
    for key, counts in expected.items():
        assert (shown[key]["sent"], shown[key]["delivered"], shown[key]["converted"]) == (
            str(counts["sent"]),
            str(counts["delivered"]),
            str(counts["converted"]),
        )


@pytest.mark.usefixtures("traffic")
def test_the_funnel_and_the_chart(admin_client: Client):
    html = admin_client.get(INSIGHTS).content.decode()
    expected = brute_force("country")
    for step in ("sent", "delivered", "converted"):
        total = sum(row[step] for row in expected.values())
        assert f'data-step="{step}">{total}<' in html
    assert '<svg class="nexmo-chart"' in html  # the busiest country, charted by default
    charted = admin_client.get(INSIGHTS, {"chart": "network:20801"}).content.decode()
    assert "Conversion rate per day: Orange" in charted
    assert 'data-sent="4"' in charted  # today's FR sends on that network: 4 long SMS


@pytest.mark.usefixtures("traffic")
def test_sorting_by_rate(admin_client: Client):
    html = admin_client.get(INSIGHTS, {"sort": "rate", "dir": "asc"}).content.decode()
    order = list(table_rows(html, "country"))
    rates = {key: row["converted"] / row["sent"] for key, row in brute_force("country").items()}
    assert order == sorted(rates, key=lambda key: rates[key])


def test_alerts_are_on_top_and_on_the_dashboard(admin_client: Client, settings: Any):
    configure(settings, ALERT_MIN_MESSAGES=5, ALERT_MIN_RATE=0.5)
    for _index in range(6):
        send(FR)
        (gb,) = send(GB)
        mark_converted(gb)
    insights.refresh()
    html = admin_client.get(INSIGHTS).content.decode()
    alerts = html.split('id="nexmo-alerts"', 1)[1].split("</ul>", 1)[0]
    assert 'data-key="FR"' in alerts
    assert 'data-key="GB"' not in alerts
    assert html.index('id="nexmo-alerts"') < html.index('id="nexmo-funnel"')
    # A page view changes nothing: the sweeps record alerts (and send the signal).
    assert not ConversionAlert.objects.exists()
    assert 'data-key="FR"' not in admin_client.get(DASHBOARD).content.decode()
    low_conversion_alerts()  # what the next sweep does
    dashboard = admin_client.get(DASHBOARD).content.decode()
    assert 'data-key="FR"' in dashboard
    assert INSIGHTS in dashboard


def test_the_query_count_does_not_grow_with_the_data(admin_client: Client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(INSIGHTS).status_code == 200
        return len(captured)

    send(GB)
    small = queries()
    now = timezone.now()
    for index in range(40):
        message = record_message(
            f"MANY{index:012d}",
            recipient=f"3361234{index:04d}",
            sent_at=now - timedelta(days=index % 20, hours=index % 5),
        )
        if index % 3:
            mark_converted(message)
    assert queries() == small


def test_only_who_may_view_conversions_sees_it(client: Client):
    assert client.get(INSIGHTS).status_code == 302  # to the login page
    User.objects.create_user("staff", password="pw", is_staff=True)
    client.login(username="staff", password="pw")
    assert client.get(INSIGHTS).status_code == 403


@pytest.mark.usefixtures("traffic")
def test_the_chart_reads_the_chosen_destination_only():
    rates = {row.key: row for row in conversion_rates(by="country")}
    for country in ("GB", "FR", "US"):
        days = queries.daily_conversion_rates(days=30, country=country)
        assert len(days) == 30
        assert sum(day.sent for day in days) == rates[country].sent
        assert sum(day.converted for day in days) == rates[country].converted
    network = queries.daily_conversion_rates(days=30, network="23410")
    assert sum(day.sent for day in network) == 1
