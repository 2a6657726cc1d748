"""Is reporting healthy? ``health.findings``, ``manage.py conversion_status`` and the
django-health-check check, judged on states that real runs against the sandbox left behind:
a real 401 halt, a real backlog, real failed attempts, a killed worker's expired lease."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.test import RequestFactory
from django.utils import timezone
from health_check.exceptions import ServiceUnavailable, ServiceWarning
from health_check.views import HealthCheckView
from prometheus_client import CollectorRegistry

from django_nexmo_conversion import health, insights, mark_converted, record_message, report_pending
from django_nexmo_conversion.checks import check_settings
from django_nexmo_conversion.conf import build_settings
from django_nexmo_conversion.contrib.health_check import ConversionHealthCheck
from django_nexmo_conversion.contrib.prometheus import ConversionCollector
from django_nexmo_conversion.models import Conversion, Status
from django_nexmo_conversion.sandbox import DEFAULT_API_KEY, ReceivedRequest, Sandbox

from .helpers import configure, mark_many, sandbox_settings
from .processes import django_admin, running, wait_until, worker_env

pytestmark = [pytest.mark.django_db, pytest.mark.sandbox]

#: Configured as the API secret in the halt tests: it must never show in any output.
SECRET = "wrong-secret-Hq7Zx3Vb"
PHONE = "447700900461"


def status(*args: str) -> tuple[int, str]:
    """Run ``conversion_status``: (exit code, output)."""
    out = StringIO()
    try:
        call_command("conversion_status", *args, stdout=out, stderr=out)
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue()
    return 0, out.getvalue()


def by_check(found: list[health.Finding]) -> dict[str, health.Finding]:
    return {f.check: f for f in found}


def halt_for_real(sandbox: Sandbox, settings: Any) -> None:
    """A wrong secret: the sandbox answers 401 and the run halts, as with the real API."""
    configure(settings, sandbox=sandbox, API_SECRET=SECRET)
    record_message("HALT0001", recipient=PHONE)
    mark_many(2, prefix="HALT")
    result = report_pending(concurrency=1)
    assert result.halted
    assert result.status_code == 401
    assert [r.status for r in sandbox.requests] == [401]


def test_nothing_to_report_is_healthy() -> None:
    found = health.findings()

    assert health.worst(found) == health.OK
    assert [f.check for f in found] == [
        "halt",
        "oldest_due",
        "expired_leases",
        "failures",
        "counted",
    ]
    code, text = status()
    assert code == 0
    assert text.startswith("CONVERSIONS OK - Reporting is healthy.")


def test_a_real_401_halt_is_critical_everywhere_and_never_shows_the_secret(
    nexmo_sandbox: Sandbox, settings: Any
) -> None:
    halt_for_real(nexmo_sandbox, settings)

    found = by_check(health.findings())
    code, text = status()
    json_code, document = status("--json")
    with pytest.raises(ServiceUnavailable) as caught:
        ConversionHealthCheck().run()

    assert found["halt"].level == health.CRITICAL
    assert "HTTP 401" in found["halt"].message
    assert "API_SECRET" in found["halt"].message  # says what to fix
    assert code == json_code == 2
    assert text.startswith("CONVERSIONS CRITICAL - Reporting halted for API key")
    parsed = json.loads(document)
    assert parsed["status"] == "critical"
    assert parsed["exit_code"] == 2
    assert {f["check"]: f["level"] for f in parsed["findings"]}["halt"] == "critical"
    assert "HTTP 401" in str(caught.value)
    everything = text + document + str(caught.value) + repr(found)
    assert SECRET not in everything
    assert PHONE not in everything


def test_reporting_again_clears_the_halt(nexmo_sandbox: Sandbox, settings: Any) -> None:
    halt_for_real(nexmo_sandbox, settings)
    configure(settings, sandbox=nexmo_sandbox)  # the right secret again

    report_pending()

    assert by_check(health.findings())["halt"].level == health.OK
    assert status()[0] == 0


def test_a_real_backlog_warns_then_goes_critical_as_it_ages(settings: Any) -> None:
    # DISPATCH="manual" (the test settings) and no report run: a backlog, as when every
    # reporter is down.
    configure(settings, STATUS_OLDEST_DUE=(300, 900))
    mark_many(3, prefix="LATE")
    marked = min(Conversion.objects.values_list("next_attempt_at", flat=True))

    fresh = by_check(health.findings(marked + timedelta(seconds=10)))["oldest_due"]
    late = by_check(health.findings(marked + timedelta(seconds=400)))["oldest_due"]
    later = by_check(health.findings(marked + timedelta(seconds=1000)))["oldest_due"]

    assert fresh.level == health.OK
    assert late.level == health.WARNING
    assert later.level == health.CRITICAL
    assert late.value == 400
    assert "report_conversions" in late.message


def test_a_retry_waiting_for_its_backoff_is_not_a_backlog(
    nexmo_sandbox: Sandbox, settings: Any
) -> None:
    configure(settings, RETRY_BACKOFF=600, RETRY_BACKOFF_MAX=3600)
    nexmo_sandbox.script(503)
    mark_many(1, prefix="WAIT")
    report_pending()

    row = Conversion.objects.get()
    assert row.status == Status.PENDING
    assert row.next_attempt_at is not None
    found = by_check(health.findings(row.next_attempt_at - timedelta(seconds=1)))
    assert found["oldest_due"].value == 0
    assert found["oldest_due"].level == health.OK


def test_failures_in_the_last_hour_count_real_attempts(
    nexmo_sandbox: Sandbox, settings: Any
) -> None:
    configure(settings, STATUS_FAILURES=(2, 4), RETRY_BACKOFF=600, RETRY_BACKOFF_MAX=3600)
    nexmo_sandbox.script(422, 503, 422, 200)
    mark_many(4, prefix="FAIL")
    report_pending(concurrency=1)

    now = timezone.now()
    found = by_check(health.findings(now))["failures"]
    hour_later = by_check(health.findings(now + timedelta(hours=1, seconds=5)))["failures"]

    assert found.value == 3
    assert found.level == health.WARNING
    assert "2 rejected, 1 transient" in found.message
    assert hour_later.value == 0  # out of the window
    assert health.attempts_since(now - timedelta(hours=1)) == {
        "reported": 1,
        "endpoint_error": 0,
        "rejected": 2,
        "transient": 1,
        "account_error": 0,
    }
    with pytest.raises(ServiceWarning):
        ConversionHealthCheck().run()
    assert status()[0] == 1


def test_thresholds_set_to_none_switch_that_level_off(settings: Any) -> None:
    configure(settings, STATUS_OLDEST_DUE=(None, None))
    mark_many(1, prefix="OFF")

    found = by_check(health.findings(timezone.now() + timedelta(days=3)))

    assert found["oldest_due"].level == health.OK


@pytest.mark.parametrize(
    "value",
    ["300", (900, 300), (1, 2, 3), (-1, None), (True, None), [None, "x"], 5],
)
def test_wrong_thresholds_are_e017_naming_the_setting(settings: Any, value: object) -> None:
    configure(settings, STATUS_FAILURES=value)

    resolved = build_settings(settings.NEXMO_CONVERSION)
    messages = check_settings()

    assert [p.id for p in resolved.problems] == ["E017"]
    assert "NEXMO_CONVERSION['STATUS_FAILURES']" in resolved.problems[0].msg
    assert [m.id for m in messages] == ["django_nexmo_conversion.E017"]


def test_a_real_low_conversion_alert_becomes_a_warning(settings: Any) -> None:
    # The insights feature itself: four sends to the UK, none converted, one to France that was.
    configure(settings, ALERT_MIN_MESSAGES=3, ALERT_MIN_RATE=0.5)
    for n in range(4):
        record_message(f"0B0000000000ALR{n}", recipient=f"+44770090000{n}")
    mark_converted(record_message("0B0000000000ALRF", recipient="+33612345678"))
    insights.refresh()  # what the next sweep does

    found = health.findings()

    alerts = [f for f in found if f.check == "low_conversion"]
    assert [(f.level, f.value) for f in alerts] == [(health.WARNING, 0.0)]
    assert "country" in alerts[0].message
    assert "GB" in alerts[0].message or "United Kingdom" in alerts[0].message
    assert health.worst(found) == health.WARNING


def test_an_absent_alert_source_gives_no_alerts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "ALERT_SOURCE", "tests.no_such_module_here")

    assert health.insight_alerts(timezone.now()) == []


# --------------------------------------------------------------------- real processes


@pytest.mark.django_db(transaction=True)
def test_a_killed_workers_expired_lease_is_found(tmp_path: Any) -> None:
    arrived, release = threading.Event(), threading.Event()

    def hold(request: ReceivedRequest) -> None:
        arrived.set()
        release.wait(30)

    with Sandbox(on_request=hold) as sandbox:
        mark_many(3, prefix="DEAD")
        env = worker_env(sandbox_settings(sandbox, DISPATCH="manual", TIMEOUT=1, LEASE_SECONDS=2))
        try:
            with running(
                django_admin("report_conversions", "--concurrency", "1"),
                env,
                log=tmp_path / "worker.log",
            ) as worker:
                assert arrived.wait(30), "the worker never sent anything"
                worker.kill()  # mid-send, its claimed rows still "sending"
                worker.wait(timeout=10)
        finally:
            release.set()

    assert Conversion.objects.filter(status=Status.SENDING).exists()
    assert wait_until(lambda: health.expired_leases(timezone.now()) > 0, timeout=30)
    found = by_check(health.findings())
    code, text = status()

    assert found["expired_leases"].level == health.WARNING
    assert found["expired_leases"].value == Conversion.objects.filter(status=Status.SENDING).count()
    assert code == 1
    assert "WARNING  expired_leases:" in text
    # The collector reads the same tables: what the dead process left is on /metrics too.
    registry = CollectorRegistry()
    registry.register(ConversionCollector())
    assert (
        registry.get_sample_value("nexmo_conversion_expired_leases")
        == found["expired_leases"].value
    )
    with pytest.raises(ServiceWarning):
        ConversionHealthCheck().run()


@pytest.mark.django_db(transaction=True)
def test_the_health_check_view_answers_500_on_a_real_halt_without_naming_the_account(
    nexmo_sandbox: Sandbox, settings: Any
) -> None:
    halt_for_real(nexmo_sandbox, settings)
    view = HealthCheckView.as_view(
        checks=["django_nexmo_conversion.contrib.health_check.ConversionHealthCheck"]
    )

    response = async_to_sync(view)(RequestFactory().get("/ht/?format=json"))

    body = response.content.decode()
    assert response.status_code == 500
    assert "Unavailable" in body
    assert "HTTP 401" in body
    assert "halted for an account" in body
    # The page is anonymous: it never names the account, nor leaks a secret or a number.
    assert DEFAULT_API_KEY not in body
    assert SECRET not in body
    assert PHONE not in body
    # The command (an operator at a shell) may name it.
    assert f"API key {DEFAULT_API_KEY}" in status()[1]


def test_a_database_error_is_unavailable_without_its_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import OperationalError

    from django_nexmo_conversion.contrib import health_check

    def broken(now: Any = None, **options: Any) -> list[health.Finding]:
        raise OperationalError(f"SELECT ... WHERE recipient = '{PHONE}'")

    monkeypatch.setattr(health_check, "findings", broken)

    with pytest.raises(ServiceUnavailable) as caught:
        ConversionHealthCheck().run()

    assert str(caught.value) == "Unavailable: Cannot read the conversions: OperationalError"
