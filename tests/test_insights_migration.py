"""Migration 0004's data steps: the country of rows whose full number is stored, and the
rollups of the rows already there, both in bounded batches."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone

from django_nexmo_conversion.insights import conversion_rates
from django_nexmo_conversion.models import Conversion, SentMessage

from .test_insights import assert_matches_recount

pytestmark = pytest.mark.django_db

migration = importlib.import_module("django_nexmo_conversion.migrations.0004_insights")


def test_existing_rows_get_their_country_and_their_rollups(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(migration, "BATCH", 3)  # several batches out of a few rows
    now = timezone.now()
    numbers = ["447700900001", "33612345678", "14155550100", "********0123", "", "447700900002"]
    # counted=True: what 0005 sets on every row that 0004 counted.
    for index, number in enumerate(numbers):
        message = SentMessage.objects.create(
            message_id=f"OLD{index:013d}",
            recipient=number,
            network="23415",
            sent_at=now,
            counted=True,
        )
        if index % 2 == 0:
            Conversion.objects.create(message=message, timestamp=now, counted=True)
    editor = SimpleNamespace(connection=connection)
    migration.fill_countries(apps, editor)
    migration.count_rollups(apps, editor)
    countries = dict(SentMessage.objects.values_list("recipient", "country"))
    assert countries == {
        "447700900001": "GB",
        "33612345678": "FR",
        "14155550100": "US",
        "********0123": "",  # masked: its country code is gone
        "": "",
        "447700900002": "GB",
    }
    assert_matches_recount("country")
    assert sum(row.sent for row in conversion_rates(by="network")) == len(numbers)
