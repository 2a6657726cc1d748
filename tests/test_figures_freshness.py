"""Every page and read that shows counted figures says what they are current to: the
dashboard, the Insights page, ``conversion_status`` (text and JSON), the health check and the
Prometheus metrics. And the durations people read are words, not seconds."""

from __future__ import annotations

import contextlib
import io
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone, translation
from prometheus_client import CollectorRegistry

from django_nexmo_conversion import health, insights, mark_converted, record_message
from django_nexmo_conversion.contrib.prometheus import ConversionCollector

from .helpers import configure

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/django_nexmo_conversion/conversion/dashboard/"
INSIGHTS = "/admin/django_nexmo_conversion/conversion/insights/"
NOT_YET = re.compile(r"Counted up to \d\d:\d\d:\d\d, [^;]+ ago; (\d+) rows? not yet counted\.")
ALL_COUNTED = re.compile(r"Counted up to \d\d:\d\d:\d\d: every message and conversion so far\.")


def send_and_convert(count: int, converted: int) -> None:
    for n in range(count):
        message = record_message(f"0C00000000FRESH{n}", recipient=f"+4477009002{n:02d}")
        if n < converted:
            mark_converted(message)


def status_output(*args: str) -> str:
    out = io.StringIO()
    with contextlib.suppress(SystemExit):
        call_command("conversion_status", *args, stdout=out)
    return out.getvalue()


def freshness_line(html: str) -> str:
    found = re.search(r'id="nexmo-freshness">([^<]*)<', html)
    assert found, "the page does not say what its figures are current to"
    return found.group(1)


@pytest.mark.parametrize("page", [DASHBOARD, INSIGHTS])
def test_a_page_with_counted_figures_says_how_many_rows_wait_then_that_all_are_counted(
    admin_client: Client, page: str
) -> None:
    send_and_convert(4, 3)  # 4 messages + 3 conversions, none counted by a sweep yet

    waiting = NOT_YET.fullmatch(freshness_line(admin_client.get(page).content.decode()))
    insights.refresh()  # what the next sweep does
    after = freshness_line(admin_client.get(page).content.decode())

    assert waiting
    assert waiting.group(1) == "7"
    assert ALL_COUNTED.fullmatch(after)


def test_freshness_dates_the_oldest_row_not_yet_counted() -> None:
    now = timezone.now()
    record_message("0C00000000OLD001", sent_at=now - timedelta(minutes=5))
    record_message("0C00000000NEW001", sent_at=now)

    fresh = insights.freshness(now=now)

    assert fresh.uncounted == 2
    assert fresh.counted_up_to == now - timedelta(minutes=5)
    assert "5 minutes ago" in str(fresh)


def test_conversion_status_says_what_the_counted_figures_are_current_to() -> None:
    send_and_convert(2, 1)

    text = status_output()
    document = json.loads(status_output("--json"))

    assert NOT_YET.search(text)
    assert NOT_YET.search(text).group(1) == "3"
    [counted] = [f for f in document["findings"] if f["check"] == "counted"]
    assert counted["level"] == "ok"
    assert NOT_YET.fullmatch(counted["message"])


def test_a_low_conversion_warning_from_the_health_check_says_how_fresh_it_is(
    settings: Any,
) -> None:
    configure(settings, ALERT_MIN_MESSAGES=3, ALERT_MIN_RATE=0.5, ALERT_WINDOW=86400)
    send_and_convert(4, 0)
    insights.refresh()
    record_message("0C00000000LATE01", recipient="+447700900299")  # after the sweep

    line = health.summary(health.findings())

    assert "over the last 24 hours" in line
    assert NOT_YET.search(line)
    assert NOT_YET.search(line).group(1) == "1"


def test_the_metrics_say_how_far_the_counted_figures_lag() -> None:
    registry = CollectorRegistry()
    registry.register(ConversionCollector())
    record_message("0C00000000MET001", sent_at=timezone.now() - timedelta(seconds=90))

    lag = registry.get_sample_value("nexmo_conversion_counted_lag_seconds")
    waiting = registry.get_sample_value("nexmo_conversion_uncounted_rows")
    insights.refresh()

    assert lag is not None
    assert 89 <= lag < 600
    assert waiting == 1
    assert registry.get_sample_value("nexmo_conversion_counted_lag_seconds") == 0
    assert registry.get_sample_value("nexmo_conversion_uncounted_rows") == 0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (12, "12 seconds"),
        (60, "1 minute"),
        (90, "90 seconds"),
        (600, "10 minutes"),
        (3600, "1 hour"),
        (5400, "90 minutes"),
        (86400, "24 hours"),
        (172800, "2 days"),
    ],
)
def test_durations_read_as_words(seconds: float, text: str) -> None:
    with translation.override("en"):
        assert insights.duration_text(seconds) == text


def test_the_insights_alert_names_its_window_in_words(admin_client: Client, settings: Any) -> None:
    configure(settings, ALERT_MIN_MESSAGES=3, ALERT_MIN_RATE=0.5, ALERT_WINDOW=86400)
    send_and_convert(4, 0)
    insights.refresh()

    html = admin_client.get(INSIGHTS).content.decode()

    assert "in the last 24 hours" in html
    assert "86400" not in html


def test_conversion_status_says_how_long_the_oldest_waited_in_words() -> None:
    mark_converted(record_message("0C00000000WAIT01"))

    later = timezone.now() + timedelta(minutes=10)
    [oldest] = [f for f in health.findings(later) if f.check == "oldest_due"]

    assert "has waited 10 minutes." in oldest.message
