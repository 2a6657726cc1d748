"""DISPATCH="background": a process sweeps from the moment it serves (not once it has marked
something, never in a one-off command), and a retry it scheduled goes at its due time, not at
the next sweep."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from django_nexmo_conversion import mark_converted
from django_nexmo_conversion.dispatch import background
from django_nexmo_conversion.models import Conversion, SentMessage, Status
from django_nexmo_conversion.sandbox import Sandbox
from django_nexmo_conversion.testing.factories import SentMessageFactory

from .helpers import configure
from .processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fresh_process(settings: Any) -> Any:
    """A process that has marked nothing yet (a runserver that just reloaded): no reporter."""
    configure(settings, DISPATCH="background", SWEEP_INTERVAL=0.3)  # also stops any reporter
    background.shutdown()
    yield
    background.shutdown()


@pytest.mark.usefixtures("fresh_process")
def test_one_off_commands_never_start_the_sweeps() -> None:
    call_command("migrate", verbosity=0)
    call_command("check")
    call_command("shell", command="pass")

    assert not background.get_reporter().is_alive()


@pytest.mark.usefixtures("fresh_process")
def test_a_web_process_sweeps_from_its_first_request() -> None:
    # Written behind this process's back (another process, an import): nothing here marked
    # or recorded anything, so only a sweep counts them.
    SentMessageFactory.create_batch(3)
    assert SentMessage.objects.filter(counted=False).count() == 3

    Client().get("/admin/login/")

    assert wait_until(lambda: not SentMessage.objects.filter(counted=False).exists(), timeout=15)


def test_a_retry_goes_at_its_due_time_not_at_the_next_sweep(settings: Any) -> None:
    with Sandbox() as sandbox:
        # The default sweep interval (30 s) is far beyond the test's bound: only the retry
        # this process scheduled for its due time (RETRY_BACKOFF=1) can report it in time.
        configure(
            settings,
            sandbox=sandbox,
            DISPATCH="background",
            SWEEP_INTERVAL=30,
            RETRY_BACKOFF=1,
            RETRY_BACKOFF_MAX=2,
        )
        sandbox.script(503, 200)
        started = time.monotonic()
        mark_converted("0A0000000000DUE1")

        reported = wait_until(
            lambda: Conversion.objects.filter(status=Status.REPORTED).exists(), timeout=10
        )

        conversion = Conversion.objects.get()
        assert reported, (conversion.status, conversion.attempt_count, conversion.last_error)
        assert conversion.attempt_count == 2
        assert time.monotonic() - started < 10
        assert [r.status for r in sandbox.requests] == [503, 200]
    background.shutdown()


@pytest.mark.usefixtures("fresh_process")
def test_broken_settings_never_fail_a_request(settings: Any) -> None:
    settings.NEXMO_CONVERSION = {"DISPATCH": "no-such-mode", "SWEEP_INTERVAL": "often"}

    response = Client().get("/admin/login/")

    assert response.status_code == 200


@pytest.mark.usefixtures("fresh_process")
def test_a_celery_worker_sweeps_once_it_is_ready() -> None:
    from celery.signals import worker_ready

    from django_nexmo_conversion.dispatch import connect_serving

    connect_serving()  # what the app's ready() does in a worker, where celery came first
    assert not background.get_reporter().is_alive()

    worker_ready.send(sender=None)

    assert background.get_reporter().is_alive()
