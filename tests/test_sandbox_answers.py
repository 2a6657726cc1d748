"""The sandbox answers as the real API does where that is known, and the
app never posts to a URL with a doubled or trailing slash, whatever ``BASE_URL`` ends with.

A 402 comes as the OpenAPI file's JSON body, or (``html_402``, ``--html-402``) as the Jetty
page "Bad Account Credentials" the real API has been seen sending: either way that account
halts, its conversions stay pending, and the cause is readable.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_nexmo_conversion import mark_converted, report_pending
from django_nexmo_conversion.conf import get_settings
from django_nexmo_conversion.models import Conversion, Status
from django_nexmo_conversion.sandbox import DEFAULT_API_KEY, Sandbox

from .helpers import configure

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("html", [False, True], ids=["json", "jetty-html"])
def test_a_402_halts_the_account_with_a_readable_cause(nexmo_sandbox: Sandbox, html: bool) -> None:
    nexmo_sandbox.html_402 = html
    nexmo_sandbox.key_statuses[DEFAULT_API_KEY] = 402
    mark_converted("0A000000000402A1")
    mark_converted("0A000000000402A2")

    result = report_pending(concurrency=1)

    assert (result.halted, result.status_code, result.halted_accounts) == (
        True,
        402,
        [DEFAULT_API_KEY],
    )
    assert set(Conversion.objects.values_list("status", "attempt_count")) == {(Status.PENDING, 0)}
    expected = "Bad Account Credentials" if html else "Conversion has not been enabled"
    assert expected in str(result.error)
    assert "<" not in str(result.error)  # never markup


@pytest.mark.parametrize("tail", ["/", "//", "///"])
def test_base_url_with_trailing_slashes_posts_to_the_bare_endpoint(
    nexmo_sandbox: Sandbox, settings: Any, tail: str
) -> None:
    configure(settings, BASE_URL=nexmo_sandbox.base_url + tail)
    mark_converted("0A00000000051A5H")
    mark_converted("3fa85f64-5717-4562-b3fc-2c963f66afa6", channel="voice")

    assert report_pending().reported == 2

    assert get_settings().base_url == nexmo_sandbox.base_url
    assert sorted(r.path for r in nexmo_sandbox.requests) == [
        "/conversions/sms",
        "/conversions/voice",
    ]


def test_the_sandbox_base_url_and_endpoints_end_without_a_slash(nexmo_sandbox: Sandbox) -> None:
    assert not nexmo_sandbox.base_url.endswith("/")
    for channel in ("sms", "voice"):
        url = nexmo_sandbox.url(channel)
        assert url == f"{nexmo_sandbox.base_url}/conversions/{channel}"
        assert "//" not in url.split("://", 1)[1]
