"""The conversion's page after a few rounds of *Report now*: its attempts figure agrees with
its attempts table, it writes every moment one way, and it says what "Converted at" and
"Marked at" mean."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.utils import translation

from django_nexmo_conversion import mark_converted, record_message
from django_nexmo_conversion.models import Conversion, Status
from django_nexmo_conversion.sandbox import Sandbox

from .helpers import configure

pytestmark = [pytest.mark.django_db, pytest.mark.sandbox]

CL = "/admin/django_nexmo_conversion/conversion/"


def field(html: str, name: str) -> str:
    """The text of a read-only field of the change page."""
    found = re.search(
        rf'class="form-row field-{name}.*?<div class="readonly">(.*?)</div>', html, re.S
    )
    assert found, f"no field {name}"
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def test_after_five_report_nows_the_page_counts_the_attempts_it_lists(
    admin_client: Client, nexmo_sandbox: Sandbox, settings: Any
) -> None:
    configure(settings, MAX_ATTEMPTS=4)
    nexmo_sandbox.script(503, 503, 503, 503, 200)
    conversion = mark_converted(record_message("0A00000000PAGE01"))
    for _round in range(5):  # the user presses Report now until it goes through
        admin_client.post(f"{CL}{conversion.pk}/report/")
    conversion.refresh_from_db()
    assert conversion.status == Status.REPORTED

    with translation.override("en"):
        html = admin_client.get(f"{CL}{conversion.pk}/change/").content.decode()

    listed = html.count('class="field-http_status"')
    assert listed == 5
    assert field(html, "attempts_column").startswith(str(conversion.attempt_count))
    assert "5 in all" in field(html, "attempts_column")


def test_every_moment_on_the_page_is_written_one_way_month_in_words(
    admin_client: Client, nexmo_sandbox: Sandbox
) -> None:
    conversion = mark_converted(record_message("0A00000000PAGE02"))
    admin_client.post(f"{CL}{conversion.pk}/report/")
    conversion = Conversion.objects.get(pk=conversion.pk)

    with translation.override("en"):
        html = admin_client.get(f"{CL}{conversion.pk}/change/").content.decode()

    one_way = re.compile(r"[A-Z][a-z]+\.? \d{1,2}, \d{4}, \d\d:\d\d:\d\d")
    for name in ("converted_at", "marked_at", "reported_at_column"):
        assert one_way.fullmatch(field(html, name)), (name, field(html, name))
    started = re.search(r'<td class="field-started">\s*<p>(.*?)</p>', html, re.S)
    assert started
    assert one_way.fullmatch(started.group(1).strip())
    assert not re.search(r"\d\d/\d\d/\d{4}", html)  # never the ambiguous 12/07/2026


def test_the_page_says_what_converted_at_and_marked_at_mean(admin_client: Client) -> None:
    conversion = mark_converted(record_message("0A00000000PAGE03"))

    with translation.override("en"):
        html = admin_client.get(f"{CL}{conversion.pk}/change/").content.decode()

    assert "Converted at: when the person acted on the message" in html
    assert "Marked at: when the conversion was recorded here." in html
