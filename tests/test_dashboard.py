"""The dashboard: its numbers (queries), its chart (admin.chart), the halt banner, and the
page itself with a bounded number of queries."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_nexmo_conversion import health, insights, queries, report_pending
from django_nexmo_conversion.admin import chart
from django_nexmo_conversion.models import Conversion, Outcome, Status
from django_nexmo_conversion.queries import DayRate
from django_nexmo_conversion.sandbox import DEFAULT_API_KEY
from django_nexmo_conversion.testing.factories import (
    ConversionFactory,
    SentMessageFactory,
)
from django_nexmo_conversion.transport.answers import classify

from .helpers import configure, halted

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/django_nexmo_conversion/conversion/dashboard/"
PARIS = ZoneInfo("Europe/Paris")  # tests/settings.py's TIME_ZONE
SVG = "{http://www.w3.org/2000/svg}"


# --- queries --------------------------------------------------------------------------------


def test_status_counts_include_every_status():
    ConversionFactory.create_batch(3, status=Status.REPORTED)
    ConversionFactory(status=Status.FAILED)
    assert queries.status_counts() == {"pending": 0, "sending": 0, "reported": 3, "failed": 1}


def test_window_counts_by_when_marked_and_status_now():
    now = timezone.now()
    for age, status in [
        (timedelta(hours=1), Status.REPORTED),
        (timedelta(hours=2), Status.FAILED),
        (timedelta(hours=3), Status.PENDING),
        (timedelta(days=2), Status.REPORTED),
        (timedelta(days=3), Status.SENDING),
        (timedelta(days=10), Status.FAILED),
        (timedelta(days=29), Status.REPORTED),
        (timedelta(days=31), Status.REPORTED),  # outside every period
    ]:
        ConversionFactory(created_at=now - age, status=status)

    windows = {w.key: w for w in queries.window_counts(now=now)}

    assert [w.key for w in queries.window_counts(now=now)] == ["24h", "7d", "30d"]
    assert (windows["24h"].marked, windows["24h"].reported, windows["24h"].failed) == (3, 1, 1)
    assert windows["24h"].waiting == 1
    assert (windows["7d"].marked, windows["7d"].reported, windows["7d"].failed) == (5, 2, 1)
    assert windows["7d"].waiting == 2
    assert (windows["30d"].marked, windows["30d"].reported, windows["30d"].failed) == (7, 3, 2)


def _message(sent_at: datetime, *, converted: bool | None = None, parent=None):
    message = SentMessageFactory(sent_at=sent_at, parent=parent)
    if converted is not None:
        ConversionFactory(message=message, delivered=converted)
    return message


def test_daily_rates_cut_days_in_local_time_across_a_dst_change():
    # Paris moved to summer time on Sunday 29 March 2026: that day has 23 hours.
    now = datetime(2026, 3, 30, 12, 0, tzinfo=PARIS)
    first_day = datetime(2026, 3, 1, 0, 0, tzinfo=PARIS)
    _message(first_day, converted=True)  # first bucket's first instant
    _message(first_day - timedelta(seconds=1), converted=True)  # the day before: excluded
    _message(datetime(2026, 3, 28, 23, 59, tzinfo=PARIS), converted=True)
    _message(datetime(2026, 3, 29, 0, 30, tzinfo=PARIS), converted=True)
    _message(datetime(2026, 3, 29, 23, 30, tzinfo=PARIS))  # after the clocks moved
    sent = _message(datetime(2026, 3, 30, 8, 0, tzinfo=PARIS), converted=True)
    _message(datetime(2026, 3, 30, 8, 0, tzinfo=PARIS), parent=sent)  # part 2: not a send
    _message(datetime(2026, 3, 30, 9, 0, tzinfo=PARIS), converted=False)  # not a conversion
    _message(datetime(2026, 3, 30, 9, 30, tzinfo=PARIS))
    insights.refresh()

    with timezone.override(PARIS):
        days = queries.daily_conversion_rates(days=30, now=now)

    assert len(days) == 30
    assert days[0].day.isoformat() == "2026-03-01"
    assert days[-1].day.isoformat() == "2026-03-30"
    by_day = {d.day.isoformat(): (d.sent, d.converted) for d in days}
    assert by_day["2026-03-01"] == (1, 1)
    assert by_day["2026-03-28"] == (1, 1)
    assert by_day["2026-03-29"] == (2, 1)
    assert by_day["2026-03-30"] == (3, 1)
    assert sum(d.sent for d in days) == 7
    assert by_day["2026-03-15"] == (0, 0)
    assert days[14].rate is None
    assert days[-1].rate == pytest.approx(1 / 3)


def test_daily_rates_reject_a_silly_period():
    with pytest.raises(ValueError, match="days must be >= 1"):
        queries.daily_conversion_rates(days=0)


def test_top_failure_reasons_most_common_first():
    for _ in range(3):
        ConversionFactory(status=Status.FAILED, last_status_code=420, last_error="HTTP 420: bad")
    ConversionFactory(status=Status.FAILED, last_status_code=503, last_error="HTTP 503: gave up")
    ConversionFactory(status=Status.PENDING, last_status_code=503, last_error="HTTP 503: later")
    reasons = queries.top_failure_reasons(limit=5)
    assert [(r.status_code, r.error, r.count) for r in reasons] == [
        (420, "HTTP 420: bad", 3),
        (503, "HTTP 503: gave up", 1),
    ]
    assert len(queries.top_failure_reasons(limit=1)) == 1


@pytest.mark.sandbox
@pytest.mark.parametrize("code", [401, 402])
def test_a_halt_follows_real_report_runs(nexmo_sandbox, code):
    assert queries.current_halts() == []
    first = ConversionFactory()
    nexmo_sandbox.script(code)
    before = timezone.now()
    result = report_pending()
    assert result.halted

    [halt] = queries.current_halts()
    assert halt.status_code == code
    assert f"HTTP {code}" in halt.error
    assert before <= halt.at <= timezone.now()

    # The account works again: the next run reports, and the halt is history.
    second = ConversionFactory()
    result = report_pending()
    assert result.reported == 2
    assert queries.current_halts() == []
    assert {first.pk, second.pk} == set(
        Conversion.objects.filter(status=Status.REPORTED).values_list("pk", flat=True)
    )


def test_an_old_refusal_followed_by_a_report_is_not_a_halt():
    now = timezone.now()
    halted(401, at=now - timedelta(minutes=5))
    ConversionFactory(status=Status.REPORTED, reported_at=now - timedelta(minutes=1))
    assert queries.current_halts() == []


def test_every_halted_account_is_listed_though_another_one_reported_since(settings):
    configure(settings, ACCOUNTS={"marketing": {"API_SECRET": "m-secret"}})
    now = timezone.now()
    halted(401, at=now - timedelta(minutes=9), message=SentMessageFactory(api_key=DEFAULT_API_KEY))
    halted(402, at=now - timedelta(minutes=5), message=SentMessageFactory(api_key="marketing"))
    # Only marketing's own report lifts marketing's halt; the default account's stays.
    ConversionFactory(
        status=Status.REPORTED,
        reported_at=now - timedelta(minutes=7),
        message=SentMessageFactory(api_key="marketing"),
    )
    assert [(h.api_key, h.status_code) for h in queries.current_halts()] == [
        ("marketing", 402),
        (DEFAULT_API_KEY, 401),
    ]

    ConversionFactory(
        status=Status.REPORTED,
        reported_at=now - timedelta(minutes=1),
        message=SentMessageFactory(api_key="marketing"),
    )
    assert [(h.api_key, h.status_code) for h in queries.current_halts()] == [(DEFAULT_API_KEY, 401)]
    # A message recorded with no key (or an unknown one) is the default account's.
    ConversionFactory(
        status=Status.REPORTED, reported_at=now, message=SentMessageFactory(api_key="")
    )
    assert queries.current_halts() == []


def test_each_halted_account_has_its_banner_and_the_health_check_names_both(settings, admin_client):
    configure(settings, ACCOUNTS={"marketing": {"API_SECRET": "m-secret"}})
    halted(401, message=SentMessageFactory(api_key="marketing"))
    halted(402, message=SentMessageFactory(api_key=""))

    html = admin_client.get(DASHBOARD).content.decode()
    assert html.count('class="nexmo-halt"') == 2
    assert html.count('id="nexmo-halt"') == 1
    assert (
        "Reporting is stopped for API key marketing: Nexmo refused the account (HTTP 401)" in html
    )
    assert (
        f"Reporting is stopped for API key {DEFAULT_API_KEY}: Nexmo refused the account (HTTP 402)"
        in html
    )
    [finding] = [f for f in health.findings() if f.check == "halt"]
    assert finding.value == 2
    assert "API key marketing" in finding.message
    assert f"API key {DEFAULT_API_KEY}" in finding.message


def test_an_endpoint_error_stops_every_account_until_any_report():
    now = timezone.now()
    halted(401, at=now - timedelta(minutes=9))
    halted(404, at=now - timedelta(minutes=5))
    [halt] = queries.current_halts()
    assert (halt.endpoint, halt.status_code, halt.api_key) == (True, 404, None)

    # Answered by the account since: the endpoint works, the account does not.
    halted(401, at=now - timedelta(minutes=2))
    [halt] = queries.current_halts()
    assert (halt.endpoint, halt.status_code) == (False, 401)


#: A status of every kind and border; the kinds follow what the outcome table makes of each.
ANSWERS = (101, 200, 201, 301, 308, 400, 401, 402, 403, 404, 405, 406, 408, 415, 420, 422, 429)
ANSWERS += (451, 500, 503, 599)
KIND_OUTCOMES = {
    "ok": {Outcome.REPORTED},
    "account": {Outcome.ACCOUNT_ERROR},
    "endpoint": {Outcome.ENDPOINT_ERROR},
    "rejected": {Outcome.REJECTED},
    "throttled": {Outcome.TRANSIENT},
    "server": {Outcome.TRANSIENT},
}


def test_last_answer_kinds_follow_the_outcome_table():
    kinds = {code: queries.last_answer_kind(code) for code in ANSWERS}
    assert [kinds[c] for c in (200, 401, 404, 301, 420, 429, 408, 503)] == [
        "ok",
        "account",
        "endpoint",
        "endpoint",
        "rejected",
        "throttled",
        "server",
        "server",
    ]
    for code, kind in kinds.items():
        assert classify(code, "", {}).outcome in KIND_OUTCOMES[kind], code
    assert queries.last_answer_kind(None) == "none"
    assert queries.last_answer_query("nonsense") is None


def test_every_answer_is_in_exactly_its_kinds_filter():
    rows = {code: ConversionFactory(last_status_code=code) for code in ANSWERS}
    untried = ConversionFactory(last_status_code=None)
    found: dict[int, list[str]] = {}
    for kind in (*KIND_OUTCOMES, "none"):
        query = queries.last_answer_query(kind)
        assert query is not None, kind
        for pk in Conversion.objects.filter(query).values_list("pk", flat=True):
            found.setdefault(pk, []).append(kind)
    assert {code: found.get(row.pk) for code, row in rows.items()} == {
        code: [queries.last_answer_kind(code)] for code in ANSWERS
    }
    assert found[untried.pk] == ["none"]


# --- the chart --------------------------------------------------------------------------------


def _days(*pairs: tuple[int, int]) -> list[DayRate]:
    start = datetime(2026, 3, 1).date()
    return [
        DayRate(day=start + timedelta(days=n), sent=sent, converted=converted)
        for n, (sent, converted) in enumerate(pairs)
    ]


def test_chart_is_well_formed_svg_with_a_bar_per_day():
    days = _days((10, 5), (0, 0), (4, 4), (8, 0))
    svg = str(chart.rate_chart(days, width=400, height=200))
    root = ET.fromstring(svg)  # our own output

    assert root.tag == f"{SVG}svg"
    groups = root.findall(f"{SVG}g[@class='nexmo-chart__day']")
    assert [g.get("data-day") for g in groups] == [d.day.isoformat() for d in days]
    plot = chart.PlotArea(width=400, height=200)
    heights = []
    for group in groups:
        bar = group.find(f"{SVG}rect[@class='nexmo-chart__bar']")
        heights.append(None if bar is None else float(bar.get("height")))
    assert heights[0] == pytest.approx(plot.inner_height * 0.5, abs=0.01)
    assert heights[1] is None  # nothing sent: a dashed stub instead
    assert groups[1].find(f"{SVG}line[@class='nexmo-chart__empty']") is not None
    assert heights[2] == pytest.approx(plot.inner_height, abs=0.01)
    assert 0 < heights[3] < 2  # 0 %: a sliver, told apart from "nothing sent"
    tooltips = [g.find(f"{SVG}title").text for g in groups]
    assert "5 of 10 messages converted (50.0\u00a0%)" in tooltips[0]
    assert "no messages sent" in tooltips[1]
    # The period's line: 9 of 22 converted.
    average = root.find(f"{SVG}g[@class='nexmo-chart__average']")
    assert average.find(f"{SVG}text").text == "40.9\u00a0%"
    assert float(average.find(f"{SVG}line").get("y1")) == pytest.approx(plot.y(9 / 22), abs=0.01)


def test_chart_of_an_empty_period():
    svg = str(chart.rate_chart(_days((0, 0), (0, 0))))
    root = ET.fromstring(svg)
    assert root.find(f"{SVG}g[@class='nexmo-chart__average']") is None
    assert "No messages were sent" in root.find(f"{SVG}desc").text


# --- the page ---------------------------------------------------------------------------------


def test_dashboard_shows_the_numbers(admin_client):
    now = timezone.now()
    for _ in range(3):
        ConversionFactory(
            status=Status.REPORTED,
            message=SentMessageFactory(sent_at=now - timedelta(hours=1)),
            reported_at=now,
        )
    ConversionFactory(
        status=Status.FAILED,
        last_status_code=420,
        last_error="HTTP 420: Invalid <Parameters>",
        message=SentMessageFactory(sent_at=now - timedelta(hours=1)),
    )
    SentMessageFactory(sent_at=now - timedelta(hours=1))  # sent, never converted
    insights.refresh()  # the sweep that counts them in the rollups the chart reads

    html = admin_client.get(DASHBOARD).content.decode()

    counts = dict(re.findall(r'data-status="(\w+)">(\d+)<', html))
    assert counts == {"total": "4", "pending": "0", "sending": "0", "reported": "3", "failed": "1"}
    row = re.search(r'<tr data-window="24h">(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r">(\d+)<", row) == ["4", "3", "1", "0"]
    assert "80.0\u00a0%" in html  # 4 of 5 sent messages converted (the failed one too)
    assert "4 of 5 sent messages converted" in html
    assert html.count('class="nexmo-chart__day"') == 30
    # Failure reasons, escaped, linking to the matching conversions.
    assert "HTTP 420: Invalid &lt;Parameters&gt;" in html
    assert "?status__exact=failed&amp;answer=rejected" in html
    assert 'id="nexmo-halt"' not in html
    assert "Europe/Paris" in html


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (401, "NEXMO_CONVERSION[&#x27;API_SECRET&#x27;]"),
        (402, "ask Vonage support to enable it"),
    ],
)
def test_dashboard_banner_after_an_account_error(admin_client, code, fix):
    conversion = halted(code)
    html = admin_client.get(DASHBOARD).content.decode()
    assert 'id="nexmo-halt"' in html
    assert f"Nexmo refused the account (HTTP {code})" in html
    assert f"HTTP {code}: refused" in html
    assert fix in html
    # The conversion list shows it too.
    assert (
        'id="nexmo-halt"'
        in admin_client.get("/admin/django_nexmo_conversion/conversion/").content.decode()
    )
    conversion.delete()
    assert 'id="nexmo-halt"' not in admin_client.get(DASHBOARD).content.decode()


def test_dashboard_of_an_empty_table(admin_client):
    html = admin_client.get(DASHBOARD).content.decode()
    assert "No messages were sent in this period." in html
    assert "No failed conversions." in html


def test_dashboard_query_count_does_not_grow_with_the_data(admin_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(DASHBOARD).status_code == 200
        return len(captured)

    halted(401)  # the banner's queries run too
    ConversionFactory(status=Status.FAILED, last_error="a")
    small = queries()
    now = timezone.now()
    for index in range(60):
        ConversionFactory(
            status=[Status.REPORTED, Status.FAILED, Status.PENDING][index % 3],
            last_error=f"error {index % 7}",
            created_at=now - timedelta(days=index % 40),
            message=SentMessageFactory(sent_at=now - timedelta(days=index % 40)),
        )
    assert queries() == small
    assert small <= 10


def test_breadcrumbs_in_the_running_admins_markup(admin_client):
    """Django 6.1 writes its breadcrumbs as a list, and styles only that (ol.breadcrumbs)."""
    import django

    html = admin_client.get(DASHBOARD).content.decode()
    if django.VERSION >= (6, 1):
        assert '<ol class="breadcrumbs">' in html
        assert '<li aria-current="page">Dashboard</li>' in html
        assert '<div class="breadcrumbs">' not in html
    else:
        assert '<div class="breadcrumbs">' in html
        assert '<ol class="breadcrumbs">' not in html
