"""The Insights page in words a person reads: "delivered" is explained (or "—" when no
delivery receipt arrived), and times to convert are durations, not seconds."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone, translation

from django_nexmo_conversion import insights, mark_converted, record_message

from .test_insights import receipt

pytestmark = pytest.mark.django_db

INSIGHTS = "/admin/django_nexmo_conversion/conversion/insights/"


def funnel_step(html: str, step: str) -> str:
    found = re.search(rf'data-step="{step}">([^<]*)<', html)
    assert found, f"no funnel step {step}"
    return found.group(1)


def sent_and_converted(count: int) -> list:
    messages = []
    for n in range(count):
        message = record_message(
            f"0E0000000000WRD{n}",
            recipient=f"+4477009004{n:02d}",
            sent_at=timezone.now() - timedelta(minutes=3),
        )
        mark_converted(message)
        messages.append(message)
    return messages


def test_without_receipts_delivered_is_a_dash_and_the_page_says_why(admin_client: Client) -> None:
    sent_and_converted(4)
    insights.refresh()

    with translation.override("en"):
        html = admin_client.get(INSIGHTS).content.decode()

    assert funnel_step(html, "delivered") == "—"
    assert funnel_step(html, "converted") == "4"
    assert "Delivered (0 %)" not in html
    assert "none arrived in this period" in html


def test_with_receipts_delivered_counts_them(admin_client: Client) -> None:
    messages = sent_and_converted(4)
    for message in messages[:3]:
        receipt(message)
    insights.refresh()

    with translation.override("en"):
        html = admin_client.get(INSIGHTS).content.decode()

    assert funnel_step(html, "delivered") == "3"
    assert "Delivered counts the delivery receipts that said delivered." in html


def test_times_to_convert_read_as_durations(admin_client: Client) -> None:
    sent_and_converted(2)  # converted about 3 minutes after sending
    insights.refresh()

    with translation.override("en"):
        html = admin_client.get(INSIGHTS).content.decode()

    median = re.search(r'<td data-col="median">([^<]*)</td>', html)
    assert median
    assert median.group(1) == "≤ 4 minutes"
