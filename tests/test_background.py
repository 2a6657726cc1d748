"""DISPATCH="background" (the default): the request never waits for Nexmo, the report leaves
from the process's reporter thread, and its sweeps retry without any command, cron or queue."""

from __future__ import annotations

import logging
import os
import sys
import threading
import types
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import AsyncClient, Client
from django.urls import reverse

from django_nexmo_conversion import (
    amark_converted,
    arecord_sms_response,
    mark_converted,
    record_message,
)
from django_nexmo_conversion.conf import build_settings
from django_nexmo_conversion.dispatch import background
from django_nexmo_conversion.insights import conversion_rates
from django_nexmo_conversion.models import Conversion, SentMessage, Status
from django_nexmo_conversion.sandbox import Sandbox
from django_nexmo_conversion.testing import wait_for_reports

from .helpers import configure, static_checks
from .processes import wait_until

PREFIX = "django_nexmo_conversion"


@pytest.fixture
def api(settings: Any):
    """The sandbox API, and the settings pointing the default dispatch at it."""
    with Sandbox() as sandbox:
        configure(settings, sandbox=sandbox, DISPATCH="background", SWEEP_INTERVAL=0.2)
        yield sandbox


def test_background_is_the_default() -> None:
    resolved = build_settings({"API_KEY": "k", "API_SECRET": "s"})
    assert (resolved.dispatch, resolved.sweep_interval) == ("background", 30)


@pytest.mark.django_db(transaction=True)
def test_the_view_answers_before_nexmo_does(api: Sandbox, settings: Any) -> None:
    # Nexmo answers in 3 s, well under TIMEOUT: the row is not reported for 3 s after the
    # view returns, so a slow machine still sees it unreported.
    configure(settings, TIMEOUT=10)
    api.latency = 3.0
    response = Client().post("/mark/0A00000000000001/")
    assert response.status_code == 200
    assert response.content == b"created"
    # Had the view waited for Nexmo's answer, the row would be reported by now.
    assert Conversion.objects.get().status in (Status.PENDING, Status.SENDING)
    wait_for_reports(timeout=15)
    assert Conversion.objects.get().status == Status.REPORTED
    assert [r.message_id for r in api.reported()] == ["0A00000000000001"]


@pytest.mark.django_db(transaction=True)
def test_a_transient_failure_is_retried_with_no_command_running(api: Sandbox) -> None:
    api.script(503, message_id="0A00000000000002")
    mark_converted("0A00000000000002")
    # RETRY_BACKOFF is 1 in the test settings, sweeps every 0.2 s: the retry goes by itself.
    # Wait for the answer to be written, not just sent.
    assert wait_until(
        lambda: Conversion.objects.filter(status=Status.REPORTED).exists(), timeout=30
    ), list(Conversion.objects.values("status", "attempt_count", "next_attempt_at", "last_error"))
    conversion = Conversion.objects.get()
    assert (conversion.status, conversion.attempt_count) == (Status.REPORTED, 2)
    assert [r.status for r in api.requests] == [503, 200]


@pytest.mark.django_db(transaction=True)
def test_recording_alone_starts_the_sweeps_that_count_it(api: Sandbox) -> None:
    # Nothing marked in this process: the sweeps still count what was sent (an SMS pumping
    # attack converts nothing, and its low-conversion alert comes from these counts).
    record_message("0A0000000000000F", recipient="+447700900123")
    assert wait_until(lambda: SentMessage.objects.filter(counted=True).exists(), timeout=30)
    assert [(row.key, row.sent) for row in conversion_rates(by="country")] == [("GB", 1)]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_mark_is_never_reported(api: Sandbox) -> None:
    from django.db import transaction

    def mark_then_fail() -> None:
        with transaction.atomic():
            mark_converted("0A00000000000003")
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        mark_then_fail()
    mark_converted("0A00000000000004")
    wait_for_reports(timeout=10)
    assert [r.message_id for r in api.requests] == ["0A00000000000004"]


@pytest.mark.django_db(transaction=True)
def test_many_marks_in_one_transaction_are_all_reported(api: Sandbox) -> None:
    from django.db import transaction

    ids = [f"0B{n:014d}" for n in range(25)]
    with transaction.atomic():
        for message_id in ids:
            mark_converted(message_id)
    wait_for_reports(timeout=15)
    assert sorted(r.message_id for r in api.reported()) == ids
    assert Conversion.objects.filter(status=Status.REPORTED).count() == 25


@pytest.mark.django_db(transaction=True)
def test_a_full_queue_leaves_the_row_to_the_sweep(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()
    runs: list[list[int]] = []

    def blocking_run(pks: list[int], **options: object) -> None:
        runs.append(list(pks))
        release.wait(10)

    monkeypatch.setattr(background, "report_conversions", blocking_run)
    reporter = background.BackgroundReporter(sweep_interval=0, queue_size=1)
    try:
        assert reporter.submit(1)
        assert wait_until(lambda: runs == [[1]], timeout=5)  # the thread is busy with 1
        assert reporter.submit(2)  # fills the queue
        with caplog.at_level(logging.WARNING, logger="django_nexmo_conversion"):
            assert not reporter.submit(3)
        assert "left for the next sweep" in caplog.text
        release.set()
        assert reporter.flush(5)
        assert runs == [[1], [2]]
    finally:
        release.set()
        reporter.stop(5)
    assert not reporter.is_alive()


def test_a_forked_child_starts_its_own_reporter(monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[list[int]] = []
    monkeypatch.setattr(
        background, "report_conversions", lambda pks, **options: reported.append(pks)
    )
    parent = background.BackgroundReporter(sweep_interval=0)
    monkeypatch.setattr(background, "_reporter", parent)
    assert background.submit(1)
    assert background.flush(5)
    assert reported == [[1]]

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report 2 from a thread of its own, then say what happened
        try:
            child = background.get_reporter()
            fresh = child is not parent and not child.is_alive()
            child.submit(2)
            child.flush(5)
            os.write(write_end, f"{fresh} {reported[-1]}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    _pid, status = os.waitpid(pid, 0)
    answer = os.read(read_end, 100).decode()
    os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0
    assert answer == "True [2]"
    assert reported == [[1]]  # the parent's thread did not report the child's key
    parent.stop(5)


def test_changing_the_settings_starts_a_new_reporter(settings: Any) -> None:
    configure(settings, SWEEP_INTERVAL=5)
    first = background.get_reporter()
    assert first.sweep_interval == 5
    configure(settings, SWEEP_INTERVAL=7)
    second = background.get_reporter()
    assert second is not first
    assert second.sweep_interval == 7


@pytest.mark.parametrize(
    ("options", "warned"),
    [
        ({}, True),
        ({"enable-threads": True}, False),
        ({b"enable-threads": b"true"}, False),
        ({"threads": b"4"}, False),
        ({"threads": "1"}, True),
    ],
)
def test_uwsgi_without_threads_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, settings: Any, options: dict[Any, Any], warned: bool
) -> None:
    configure(settings, DISPATCH="background")
    monkeypatch.setitem(sys.modules, "uwsgi", types.SimpleNamespace(opt=options))
    ids = [m.id for m in static_checks() if m.id.startswith(PREFIX)]
    assert (f"{PREFIX}.W004" in ids) is warned
    assert background.threads_disabled() is warned


def test_no_uwsgi_warning_for_another_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uwsgi", types.SimpleNamespace(opt={}))
    ids = [m.id for m in static_checks()]
    assert f"{PREFIX}.W004" not in ids  # the test settings use DISPATCH="manual"


# --- async views ----------------------------------------------------------------------------


def run(coroutine_function: Any) -> Any:
    """Run an async test body on an event loop, as an ASGI server would."""
    return async_to_sync(coroutine_function)()


@pytest.mark.django_db(transaction=True)
def test_an_async_view_marks_through_the_async_twins(api: Sandbox) -> None:
    run(_an_async_view_marks)
    assert [r.message_id for r in api.reported()] == ["0A00000000000005"]


async def _an_async_view_marks() -> None:
    response = await AsyncClient().post("/amark/0A00000000000005/")
    assert response.status_code == 200
    assert response.content == b"created"
    again = await AsyncClient().post("/amark/0A00000000000005/")
    assert again.content == b"found"  # idempotent, as mark_converted
    await sync_to_async(wait_for_reports)(10)
    message = await SentMessage.objects.aget(message_id="0A00000000000005")
    assert message.recipient == "447700900123"


@pytest.mark.django_db(transaction=True)
def test_the_async_twins_keep_commit_semantics(api: Sandbox) -> None:
    run(_async_twins_keep_commit_semantics)
    assert {r.message_id for r in api.requests} == {"0A00000000000006"}


async def _async_twins_keep_commit_semantics() -> None:
    # Each call commits on its own (an async view has no surrounding transaction), and the
    # report leaves after that commit, as with the sync functions.
    recorded = await arecord_sms_response(
        {"messages": [{"status": "0", "message-id": "0A00000000000006", "to": "447700900001"}]}
    )
    conversion = await amark_converted(recorded[0], delivered=False)
    assert (conversion.marked, conversion.delivered) == ("created", False)
    upgraded = await amark_converted("0A00000000000006")
    assert upgraded.marked in ("upgraded", "found")  # "found" if already reported as false
    await sync_to_async(wait_for_reports)(10)


# --- a reporter that cannot start -------------------------------------------------------------


@pytest.fixture
def no_new_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """No thread can start, as when the process is out of threads or the interpreter is
    shutting down (Python 3.12 refuses new threads then)."""

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)


@pytest.mark.django_db(transaction=True)
def test_a_reporter_that_cannot_start_never_fails_the_caller(
    settings: Any, no_new_threads: None, caplog: pytest.LogCaptureFixture, client: Client
) -> None:
    configure(settings, DISPATCH="background", SWEEP_INTERVAL=0.2)
    with caplog.at_level(logging.WARNING, logger=PREFIX):
        record_message("0A0000000000F001")
        first = mark_converted("0A0000000000F001")
        second = mark_converted("0A0000000000F002")
        response = client.post(
            reverse("django_nexmo_conversion:inbound"),
            {
                "msisdn": "447700900123",
                "to": "447700900000",
                "messageId": "0A0000000000F003",
                "text": "YES",
                "type": "text",
                "message-timestamp": "2024-05-01 12:00:00",
            },
        )
        background.shutdown()  # never started: nothing to join, no error
        background.shutdown()

    assert response.status_code == 200
    # What could not be dispatched stays pending, for a sweep, a run or the command.
    assert {c.status for c in Conversion.objects.filter(pk__in=[first.pk, second.pk])} == {
        Status.PENDING
    }
    said = [r for r in caplog.records if "could not start" in r.getMessage()]
    assert len(said) == 1  # once, not per mark
