"""The Prometheus collector, scraped after real runs against the sandbox: it reads the
tables at scrape time, so what another process wrote is counted too."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from django_nexmo_conversion import health, insights, mark_converted, record_message, report_pending
from django_nexmo_conversion.contrib.prometheus import ConversionCollector
from django_nexmo_conversion.sandbox import Sandbox

from .helpers import configure, mark_many

pytestmark = [pytest.mark.django_db, pytest.mark.sandbox]

SECRET = "wrong-secret-Mt5Wq2Lp"
PHONE = "447700900733"


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ConversionCollector())
    return registry


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_registering_reads_nothing(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        CollectorRegistry().register(ConversionCollector())


def test_a_real_mixed_run_is_counted_by_status_and_outcome(
    nexmo_sandbox: Sandbox, settings: Any, registry: CollectorRegistry
) -> None:
    configure(settings, RETRY_BACKOFF=600, RETRY_BACKOFF_MAX=3600)
    nexmo_sandbox.script(200, 422, 503)
    mark_many(3, prefix="MET")
    mark_many(2, prefix="LATER")  # marked after the run: due, waiting
    report_pending(concurrency=1, limit=3)

    assert value(registry, "nexmo_conversions", status="reported") == 1
    assert value(registry, "nexmo_conversions", status="failed") == 1
    assert value(registry, "nexmo_conversions", status="pending") == 3
    assert value(registry, "nexmo_conversions", status="sending") == 0
    assert value(registry, "nexmo_conversion_attempts", outcome="reported") == 1
    assert value(registry, "nexmo_conversion_attempts", outcome="rejected") == 1
    assert value(registry, "nexmo_conversion_attempts", outcome="transient") == 1
    assert value(registry, "nexmo_conversion_attempts", outcome="account_error") == 0
    assert (value(registry, "nexmo_conversion_oldest_due_seconds") or 0) > 0
    assert value(registry, "nexmo_conversion_expired_leases") == 0
    assert value(registry, "nexmo_conversion_halted") == 0


def test_a_real_halt_sets_halted_and_the_secret_never_shows(
    nexmo_sandbox: Sandbox, settings: Any, registry: CollectorRegistry
) -> None:
    configure(settings, API_SECRET=SECRET)
    record_message("MHALT", recipient=PHONE)
    mark_many(2, prefix="MHALT")
    assert report_pending(concurrency=1).halted

    exposition = generate_latest(registry).decode()

    assert value(registry, "nexmo_conversion_halted") == 1
    assert value(registry, "nexmo_conversion_attempts", outcome="account_error") == 1
    assert value(registry, "nexmo_conversions", status="pending") == 2
    assert SECRET not in exposition
    assert PHONE not in exposition


def test_rates_by_country_come_from_insights(registry: CollectorRegistry) -> None:
    # Five sends to the UK, two of them converted; one to France, not converted.
    uk = [record_message(f"0B0000000000RAT{n}", recipient=f"+44770090001{n}") for n in range(5)]
    for message in uk[:2]:
        mark_converted(message)
    record_message("0B0000000000RATF", recipient="+33612345679")
    insights.refresh()  # what the next sweep does

    assert value(registry, "nexmo_conversion_rate", country="GB") == 0.4
    assert value(registry, "nexmo_conversion_rate", country="FR") == 0.0
    assert value(registry, "nexmo_conversion_rate", country="ZZ") is None  # nothing sent


def test_no_rates_without_insights(
    monkeypatch: pytest.MonkeyPatch, registry: CollectorRegistry
) -> None:
    monkeypatch.setattr(health, "ALERT_SOURCE", "tests.no_such_module_here")

    assert "nexmo_conversion_rate{" not in generate_latest(registry).decode()
