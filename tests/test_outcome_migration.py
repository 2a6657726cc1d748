"""Migration 0006: attempts stored as account errors before endpoint errors had an outcome of
their own are re-tagged from their HTTP status, as the outcome table files them today."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from django_nexmo_conversion.choices import Outcome
from django_nexmo_conversion.models import ConversionAttempt
from django_nexmo_conversion.testing.factories import ConversionAttemptFactory
from django_nexmo_conversion.transport.answers import outcome_of

pytestmark = pytest.mark.django_db

migration = importlib.import_module("django_nexmo_conversion.migrations.0006_endpoint_error")
#: Every status a halting attempt was stored with before 0006, and one of each other kind.
STORED = {
    401: Outcome.ACCOUNT_ERROR,
    402: Outcome.ACCOUNT_ERROR,
    301: Outcome.ACCOUNT_ERROR,
    302: Outcome.ACCOUNT_ERROR,
    308: Outcome.ACCOUNT_ERROR,
    403: Outcome.ACCOUNT_ERROR,
    404: Outcome.ACCOUNT_ERROR,
    405: Outcome.ACCOUNT_ERROR,
    406: Outcome.ACCOUNT_ERROR,
    415: Outcome.ACCOUNT_ERROR,
    200: Outcome.REPORTED,
    422: Outcome.REJECTED,
    503: Outcome.TRANSIENT,
}


def stored() -> dict[int, str]:
    return dict(ConversionAttempt.objects.values_list("http_status", "outcome"))


def test_old_attempts_get_the_outcome_the_table_gives_their_status() -> None:
    for status, outcome in STORED.items():
        ConversionAttemptFactory(http_status=status, outcome=outcome)
    editor = SimpleNamespace(connection=connection)

    migration.retag(apps, editor)

    assert stored() == {status: outcome_of(status) for status in STORED}
    assert {s for s, o in stored().items() if o == Outcome.ENDPOINT_ERROR} == {
        301,
        302,
        308,
        403,
        404,
        405,
        406,
        415,
    }

    migration.untag(apps, editor)  # the way back files them as account errors again
    assert stored() == STORED
