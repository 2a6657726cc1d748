"""Answers that arrive together are written together: one transaction, one INSERT for the
attempts, one UPDATE per kind of outcome; a row whose lease was lost keeps its new owner's
state even when it shares the batch with rows still ours.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_nexmo_conversion import mark_converted, report_pending
from django_nexmo_conversion.choices import Outcome
from django_nexmo_conversion.conf import get_settings
from django_nexmo_conversion.models import Conversion, ConversionAttempt, Status
from django_nexmo_conversion.reporting.claims import claim
from django_nexmo_conversion.reporting.outcomes import write_answers
from django_nexmo_conversion.transport.wire import Answer

pytestmark = pytest.mark.django_db


def test_a_batch_of_answers_is_one_insert_and_one_update_per_outcome() -> None:
    for n in range(10):
        mark_converted(f"BATCH{n:03d}")
    token, claimed = claim(20)
    answers = [(row, Answer(Outcome.REPORTED, 200)) for row in claimed[:8]]
    answers += [(row, Answer(Outcome.REJECTED, 422, "HTTP 422: bad")) for row in claimed[8:]]

    with CaptureQueriesContext(connection) as captured:
        statuses = write_answers(answers, token, get_settings())

    assert statuses == [Status.REPORTED] * 8 + [Status.FAILED] * 2
    kinds = [q["sql"].split(None, 1)[0].upper() for q in captured.captured_queries]
    assert kinds.count("INSERT") == 1
    assert kinds.count("UPDATE") == 2  # the 200s share one, the 422s another
    assert ConversionAttempt.objects.count() == 10
    assert Conversion.objects.filter(status=Status.REPORTED, attempt_count=1).count() == 8
    assert Conversion.objects.filter(status=Status.FAILED, last_status_code=422).count() == 2
    assert not Conversion.objects.exclude(claim_token="").exists()


def test_a_lost_lease_in_a_batch_spoils_neither_that_row_nor_the_others() -> None:
    kept, lost, failed = (mark_converted(f"LOST{n}") for n in range(3))
    old_token, claimed = claim(10)
    by_pk = {row.pk: row for row in claimed}
    # The old worker was too slow for `lost`: its lease ran out and a new worker took it.
    Conversion.objects.filter(pk=lost.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    new_token, [taken] = claim(10, pks=[lost.pk])
    assert taken.pk == lost.pk

    statuses = write_answers(
        [
            (by_pk[kept.pk], Answer(Outcome.REPORTED, 200)),
            (by_pk[lost.pk], Answer(Outcome.REPORTED, 200)),
            (by_pk[failed.pk], Answer(Outcome.REJECTED, 422, "HTTP 422: bad")),
        ],
        old_token,
        get_settings(),
    )

    assert statuses == [Status.REPORTED, Status.SENDING, Status.FAILED]
    states = {c.pk: (c.status, c.claim_token, c.attempt_count) for c in Conversion.objects.all()}
    assert states[kept.pk] == (Status.REPORTED, "", 1)
    assert states[lost.pk] == (Status.SENDING, new_token, 0)  # the new owner decides
    assert states[failed.pk] == (Status.FAILED, "", 1)
    # Every attempt is recorded, the late one included, exactly once.
    assert sorted(ConversionAttempt.objects.values_list("conversion_id", flat=True)) == sorted(
        [kept.pk, lost.pk, failed.pk]
    )


def test_a_concurrent_run_writes_fewer_statements_than_conversions(nexmo_outbox) -> None:
    for n in range(40):
        mark_converted(f"FEW{n:03d}")

    with CaptureQueriesContext(connection) as captured:
        result = report_pending(concurrency=8)

    assert result.reported == 40
    assert len(nexmo_outbox) == 40
    # Claims in bulk and answers written in groups: well under the four statements
    # (BEGIN, INSERT, UPDATE, COMMIT) that writing each answer on its own would take.
    assert len(captured.captured_queries) <= 3 * 40
    assert ConversionAttempt.objects.count() == 40
