"""DISPATCH: when a marked conversion goes out, against the sandbox and real transactions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from django_nexmo_conversion import mark_converted, record_message, report_pending, signals
from django_nexmo_conversion.models import Conversion, ConversionAttempt, SentMessage, Status
from django_nexmo_conversion.sandbox import AccountSpec, Sandbox

from .helpers import configure, free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sandbox]

LOGGER = "django_nexmo_conversion"


@pytest.fixture
def marked_signals() -> Iterator[list[Conversion]]:
    got: list[Conversion] = []

    def receiver(sender: Any, conversion: Conversion, **kwargs: Any) -> None:
        got.append(conversion)

    signals.conversion_marked.connect(receiver, weak=False, dispatch_uid="test-dispatch-marked")
    yield got
    signals.conversion_marked.disconnect(dispatch_uid="test-dispatch-marked")


def assert_warned(caplog: pytest.LogCaptureFixture, *parts: str) -> None:
    """Some record at WARNING or above (the level production logs keep) says all of ``parts``."""
    warnings = [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING
    ]
    assert any(all(part in text for part in parts) for text in warnings), caplog.text


def test_on_commit_sends_right_after_commit_and_not_before(on_commit: Sandbox) -> None:
    with transaction.atomic():
        conversion = mark_converted("0A00000000000C01")
        # Still inside the caller's transaction: nothing may leave yet.
        assert on_commit.requests == []

    # Sent during the commit, before control returns here.
    [request] = on_commit.requests
    assert (request.message_id, request.status) == ("0A00000000000C01", 200)
    row = Conversion.objects.get(pk=conversion.pk)
    assert (row.status, row.attempt_count) == (Status.REPORTED, 1)


def test_on_commit_in_autocommit_sends_at_once(on_commit: Sandbox) -> None:
    mark_converted("0A00000000000C02")

    assert [r.message_id for r in on_commit.reported()] == ["0A00000000000C02"]
    assert Conversion.objects.get().status == Status.REPORTED


def test_on_commit_sends_only_the_new_conversion(on_commit: Sandbox, settings: Any) -> None:
    configure(settings, DISPATCH="manual")
    mark_converted("0A00000000000C03")  # an older one, left for the command
    configure(settings, DISPATCH="on_commit")

    mark_converted("0A00000000000C04")

    assert [r.message_id for r in on_commit.requests] == ["0A00000000000C04"]
    assert Conversion.objects.get(message__message_id="0A00000000000C03").status == Status.PENDING


def test_rolled_back_mark_sends_nothing_and_leaves_no_row(on_commit: Sandbox) -> None:
    def view() -> None:
        with transaction.atomic():
            mark_converted("0A00000000000C05")
            raise RuntimeError("the view failed after marking")

    with pytest.raises(RuntimeError):
        view()

    assert on_commit.requests == []
    assert not Conversion.objects.exists()
    assert not SentMessage.objects.exists()
    assert report_pending().attempted == 0


def test_rolled_back_savepoint_sends_nothing_but_the_outer_commit_does(on_commit: Sandbox) -> None:
    with transaction.atomic():
        mark_converted("0A00000000000C06")
        try:
            with transaction.atomic():
                mark_converted("0A00000000000C07")
                raise RuntimeError
        except RuntimeError:
            pass

    assert [r.message_id for r in on_commit.requests] == ["0A00000000000C06"]
    assert not Conversion.objects.filter(message__message_id="0A00000000000C07").exists()


@pytest.mark.parametrize("answer", [503, "drop"])
def test_api_trouble_at_commit_never_reaches_the_caller(
    on_commit: Sandbox, caplog: pytest.LogCaptureFixture, answer: Any
) -> None:
    on_commit.script(answer)

    with caplog.at_level(logging.INFO, logger=LOGGER), transaction.atomic():
        conversion = mark_converted("0A00000000000C08")
    # No exception reached us; the conversion waits for the command.

    row = Conversion.objects.get(pk=conversion.pk)
    assert (row.status, row.attempt_count) == (Status.PENDING, 1)
    assert row.next_attempt_at is not None
    assert ConversionAttempt.objects.filter(conversion=row).count() == 1
    assert_warned(caplog, f"Conversion {row.pk} ", "report_conversions")


def test_api_unreachable_at_commit_never_reaches_the_caller(
    on_commit: Sandbox, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    configure(settings, BASE_URL=f"http://127.0.0.1:{free_port()}")

    with caplog.at_level(logging.INFO, logger=LOGGER):
        conversion = mark_converted("0A00000000000C09")

    row = Conversion.objects.get(pk=conversion.pk)
    assert (row.status, row.attempt_count) == (Status.PENDING, 1)
    assert "connection error" in row.last_error
    assert_warned(caplog, f"Conversion {row.pk} ", "report_conversions")


def test_account_error_at_commit_is_logged_as_an_error(
    on_commit: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    on_commit.accounts["sandbox-key"] = AccountSpec(conversions_enabled=False)

    with caplog.at_level(logging.INFO, logger=LOGGER):
        conversion = mark_converted("0A00000000000C0A")

    row = Conversion.objects.get(pk=conversion.pk)
    assert (row.status, row.attempt_count, row.last_status_code) == (Status.PENDING, 0, 402)
    errors = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.ERROR]
    assert any("not enabled" in r.getMessage() for r in errors), caplog.text


@pytest.mark.usefixtures("no_env_credentials")
def test_misconfiguration_at_commit_is_logged_not_raised(
    on_commit: Sandbox, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    configure(settings, API_KEY=None, API_SECRET=None, ACCOUNTS={"k2": {"API_SECRET": "s2"}})

    with caplog.at_level(logging.INFO, logger=LOGGER):
        conversion = mark_converted(record_message("0A00000000000C0B"))

    assert on_commit.requests == []
    row = Conversion.objects.get(pk=conversion.pk)
    assert (row.status, row.attempt_count, row.claim_token) == (Status.PENDING, 0, "")
    errors = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.ERROR]
    assert any("report_conversions" in r.getMessage() for r in errors), caplog.text


def test_manual_sends_nothing_until_report_pending(nexmo_sandbox: Sandbox, settings: Any) -> None:
    configure(settings, DISPATCH="manual")
    with transaction.atomic():
        mark_converted("0A00000000000C0C")
    mark_converted("0A00000000000C0D")

    assert nexmo_sandbox.requests == []
    assert Conversion.objects.filter(status=Status.PENDING).count() == 2

    assert report_pending().reported == 2
    assert sorted(r.message_id or "" for r in nexmo_sandbox.reported()) == [
        "0A00000000000C0C",
        "0A00000000000C0D",
    ]


@pytest.mark.parametrize("dispatch", ["manual", "on_commit"])
def test_conversion_marked_is_sent_once_per_new_conversion(
    nexmo_sandbox: Sandbox, settings: Any, marked_signals: list[Conversion], dispatch: str
) -> None:
    configure(settings, DISPATCH=dispatch)
    with transaction.atomic():
        first = mark_converted("0A00000000000C0E", delivered=False)
        again = mark_converted("0A00000000000C0E", delivered=False)
        upgraded = mark_converted("0A00000000000C0E")  # an upgrade is not a new conversion
        other = mark_converted("0A00000000000C0F")

    assert first.pk == again.pk == upgraded.pk
    assert [c.pk for c in marked_signals] == [first.pk, other.pk]
    sent = len(nexmo_sandbox.requests)
    assert sent == (2 if dispatch == "on_commit" else 0)
    if dispatch == "on_commit":
        # One request per conversion even though the first was scheduled twice, and the
        # upgrade went out as delivered=true.
        forms = {r.message_id: r.form for r in nexmo_sandbox.requests}
        assert forms["0A00000000000C0E"]["delivered"] == "true"


def test_marking_again_after_reporting_sends_nothing_more(on_commit: Sandbox) -> None:
    mark_converted("0A00000000000C10")
    mark_converted("0A00000000000C10")

    assert len(on_commit.requests) == 1
