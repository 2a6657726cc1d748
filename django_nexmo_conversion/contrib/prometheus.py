"""A ``prometheus_client`` collector that reads the app's tables at scrape time.

Install the ``[prometheus]`` extra and register it once (e.g. in an ``AppConfig.ready``)::

    from prometheus_client import REGISTRY
    from django_nexmo_conversion.contrib.prometheus import ConversionCollector
    REGISTRY.register(ConversionCollector())

Why at scrape time: reporting happens in every web process, worker and cron job, so a
per-process counter would only ever see its own share. The tables are the one place that
knows it all, and every process serving ``/metrics`` gives the same numbers.

Metrics (all gauges):

- ``nexmo_conversions{status}``: conversions in each status.
- ``nexmo_conversion_oldest_due_seconds``: how long the oldest due conversion has waited.
- ``nexmo_conversion_attempts{outcome}``: attempts started in the last hour, by outcome (a
  window, not a counter since the start: the attempts table is not counted whole).
- ``nexmo_conversion_expired_leases``: conversions held by a worker whose lease ran out.
- ``nexmo_conversion_halted``: 1 while an account error (401/402) or an endpoint error
  (403/404/405/406/415, a redirect) halts reporting.
- ``nexmo_guard_decisions{action,reason}``: the send guard's decisions in the last hour, by
  action (allow, flag, block) and first reason code ("" for a plain allow).
- ``nexmo_conversion_rate{country}``: converted / sent per country over ``ALERT_WINDOW``,
  when the insights feature is installed.
- ``nexmo_conversion_counted_lag_seconds`` and ``nexmo_conversion_uncounted_rows``: what the
  counted figures (the rates) are current to: how far behind they are (0 when every row is
  counted) and how many rows wait for the next sweep.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import health
from ..conf import get_settings
from ..guard.recent import decisions_since
from ..health import FAILURE_WINDOW, attempts_since, expired_leases, oldest_due
from ..queries import current_halts, status_counts


def _families() -> dict[str, GaugeMetricFamily]:
    return {
        "status": GaugeMetricFamily(
            "nexmo_conversions", "Conversions by status.", labels=["status"]
        ),
        "oldest": GaugeMetricFamily(
            "nexmo_conversion_oldest_due_seconds",
            "Seconds the oldest due conversion has waited (0 when none is due).",
        ),
        "attempts": GaugeMetricFamily(
            "nexmo_conversion_attempts",
            "Attempts started in the last hour, by outcome.",
            labels=["outcome"],
        ),
        "expired": GaugeMetricFamily(
            "nexmo_conversion_expired_leases",
            "Conversions held by a worker whose lease ran out (a dead or hung worker).",
        ),
        "halted": GaugeMetricFamily(
            "nexmo_conversion_halted",
            "1 while an account error (HTTP 401/402) or an endpoint error halts reporting, else 0.",
        ),
        "lag": GaugeMetricFamily(
            "nexmo_conversion_counted_lag_seconds",
            "How far the counted figures (rates) lag behind: 0 when every row is counted.",
        ),
        "uncounted": GaugeMetricFamily(
            "nexmo_conversion_uncounted_rows",
            "Messages and conversions written since the last sweep counted them.",
        ),
        "guard": GaugeMetricFamily(
            "nexmo_guard_decisions",
            "Send guard decisions in the last hour, by action and first reason code.",
            labels=["action", "reason"],
        ),
        "rate": GaugeMetricFamily(
            "nexmo_conversion_rate",
            "Converted / sent per country over the alert window (needs the insights feature).",
            labels=["country"],
        ),
    }


def country_rates(now: datetime) -> list[tuple[str, float]]:
    """(country, rate) over the alert window, from the insights feature when installed."""
    if importlib.util.find_spec(health.ALERT_SOURCE) is None:
        return []
    insights = importlib.import_module(health.ALERT_SOURCE)
    since = now - timedelta(seconds=get_settings().alert_window)
    rows = insights.conversion_rates(by="country", since=since)
    return [(str(row.key), float(row.rate)) for row in rows if row.rate is not None]


class ConversionCollector(Collector):
    """Reads the tables at each scrape; see the module's docstring for the metrics."""

    def describe(self) -> Iterator[Metric]:
        # Without describe(), registering would call collect() (a database read) at once.
        yield from _families().values()

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        families = _families()
        for status, count in status_counts().items():
            families["status"].add_metric([status], count)
        first_due = oldest_due(now)
        families["oldest"].add_metric(
            [], max(0.0, (now - first_due).total_seconds()) if first_due else 0.0
        )
        for outcome, count in attempts_since(now - FAILURE_WINDOW).items():
            families["attempts"].add_metric([outcome], count)
        families["expired"].add_metric([], expired_leases(now))
        families["halted"].add_metric([], 1 if current_halts() else 0)
        fresh = health.counted_freshness(now)
        if fresh is not None:
            families["lag"].add_metric([], fresh.age_seconds)
            families["uncounted"].add_metric([], fresh.uncounted)
        for (action, reason), count in decisions_since(now - FAILURE_WINDOW).items():
            families["guard"].add_metric([action, reason], count)
        for country, rate in country_rates(now):
            families["rate"].add_metric([country], rate)
        yield from families.values()
