"""Query parameters as people edit them by hand: every admin page of the app answers a bad
value with its default (never a 500), and the dashboard's chart takes a period too."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import translation

from django_nexmo_conversion import insights, mark_converted, record_message

pytestmark = pytest.mark.django_db

ADMIN = "/admin/django_nexmo_conversion"
DASHBOARD = f"{ADMIN}/conversion/dashboard/"
INSIGHTS = f"{ADMIN}/conversion/insights/"
#: Django's own pages of the app (their parameters are Django's: a bad one redirects to ?e=1).
LISTS = [f"{ADMIN}/conversion/", f"{ADMIN}/sentmessage/", f"{ADMIN}/conversiondashboard/"]
BAD = [
    "days=²",
    "days=①",
    "days=٣٠",  # Arabic-Indic 30: a digit to str.isdigit, not a period the page offers
    "days=-7",
    "days=0",
    "days=99999999999999999999999",
    "days=",
    "days=30&days=x",
    "sort=nope",
    "sort=__class__",
    "dir=sideways",
    "chart=country:",
    "chart=planet:XX",
    "chart=country:%3Cscript%3E",
    "chart=" + "x" * 5000,
    "status__exact=nope",
    "answer=nope",
    "e=1",
]


@pytest.fixture
def traffic() -> None:
    for n in range(3):
        message = record_message(f"0D0000000000PAR{n}", recipient=f"+4477009003{n:02d}")
        if n:
            mark_converted(message)
    insights.refresh()


@pytest.mark.usefixtures("traffic")
@pytest.mark.parametrize("page", [DASHBOARD, INSIGHTS])
def test_no_bad_parameter_breaks_the_dashboard_or_the_insights(
    admin_client: Client, page: str
) -> None:
    answers = {query: admin_client.get(f"{page}?{query}").status_code for query in BAD}

    assert answers == dict.fromkeys(BAD, 200)


@pytest.mark.parametrize("page", LISTS)
def test_no_bad_parameter_breaks_the_lists(admin_client: Client, page: str) -> None:
    answers = {query: admin_client.get(f"{page}?{query}", follow=True).status_code for query in BAD}

    assert answers == dict.fromkeys(BAD, 200)


@pytest.mark.usefixtures("traffic")
@pytest.mark.parametrize("page", [DASHBOARD, INSIGHTS])
def test_a_bad_period_shows_the_default_one(admin_client: Client, page: str) -> None:
    queries = ["days=²", "days=①", "days=-7", "days=30&days=x", "days="]
    with translation.override("en"):
        pages = [admin_client.get(f"{page}?{query}").content.decode() for query in queries]

    assert all("<strong>30 days</strong>" in html for html in pages)


@pytest.mark.usefixtures("traffic")
def test_the_insights_page_ignores_a_bad_sort_and_keeps_the_good_period(
    admin_client: Client,
) -> None:
    with translation.override("en"):
        html = admin_client.get(f"{INSIGHTS}?days=7&sort=nope&dir=sideways").content.decode()

    assert "<strong>7 days</strong>" in html
    assert 'class="sorted descending"><a href="?days=7&amp;sort=sent&amp;dir=asc' in html


@pytest.mark.usefixtures("traffic")
def test_the_dashboard_charts_the_period_asked_for(admin_client: Client) -> None:
    with translation.override("en"):
        week = admin_client.get(f"{DASHBOARD}?days=7").content.decode()
        default = admin_client.get(DASHBOARD).content.decode()

    assert "Conversion rate per day, last 7 days" in week
    assert "<strong>7 days</strong>" in week
    assert "Conversion rate per day, last 30 days" in default
    assert "2 of 3 sent messages converted" in week
