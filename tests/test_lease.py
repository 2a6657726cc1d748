"""Claims and leases: one worker per conversion, taken over when a worker vanishes.

Run on every database the suite supports (``NEXMO_TEST_DB=postgres`` included): the claim is a
compare-and-set UPDATE, plus SKIP LOCKED where the database has it.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError
from django.utils import timezone

from django_nexmo_conversion import report_pending
from django_nexmo_conversion.conf import get_settings
from django_nexmo_conversion.models import Conversion, ConversionAttempt, Outcome, Status
from django_nexmo_conversion.reporting import engine
from django_nexmo_conversion.reporting.claims import Claim, claim, claim_batch, release
from django_nexmo_conversion.reporting.outcomes import write_answers
from django_nexmo_conversion.sandbox import Sandbox
from django_nexmo_conversion.transport.wire import Answer

from .helpers import configure, mark_many, run_together

pytestmark = pytest.mark.django_db


def rows(*conversions: Conversion) -> list[Conversion]:
    return list(Conversion.objects.filter(pk__in=[c.pk for c in conversions]).order_by("pk"))


def expire_leases() -> None:
    """What a vanished worker leaves behind: rows still 'sending', their lease in the past."""
    Conversion.objects.filter(status=Status.SENDING).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def test_claim_takes_due_rows_under_a_lease(settings: Any) -> None:
    configure(settings, LEASE_SECONDS=120)
    conversions = mark_many(3, prefix="LEASE")
    before = timezone.now()

    token, claimed = claim(10)

    after = timezone.now()
    assert token
    assert sorted(c.pk for c in claimed) == [c.pk for c in conversions]
    for row in rows(*conversions):
        assert (row.status, row.claim_token, row.attempt_count) == (Status.SENDING, token, 0)
        # While sending, next_attempt_at is the lease expiry.
        assert row.next_attempt_at is not None
        assert before + timedelta(seconds=120) <= row.next_attempt_at
        assert row.next_attempt_at <= after + timedelta(seconds=120)


def test_claim_respects_size_and_due_time() -> None:
    conversions = mark_many(4, prefix="LEASE")
    later = timezone.now() + timedelta(hours=1)
    Conversion.objects.filter(pk=conversions[3].pk).update(next_attempt_at=later)

    _, first = claim(2)
    _, second = claim(10)

    assert len(first) == 2
    assert {c.pk for c in second} == {conversions[2].pk}  # the fourth is not due yet


def test_a_second_claim_does_not_take_claimed_rows() -> None:
    mark_many(3, prefix="LEASE")
    claim(10)

    token, claimed = claim(10)

    assert claimed == []
    assert Conversion.objects.filter(status=Status.SENDING).count() == 3
    assert not Conversion.objects.filter(claim_token=token).exists()


def test_rows_of_a_vanished_worker_are_taken_over_after_the_lease() -> None:
    conversions = mark_many(2, prefix="LEASE")
    old_token, _ = claim(10)
    expire_leases()

    new_token, claimed = claim(10)

    assert new_token != old_token
    assert sorted(c.pk for c in claimed) == [c.pk for c in conversions]
    assert {r.claim_token for r in rows(*conversions)} == {new_token}
    assert {r.status for r in rows(*conversions)} == {Status.SENDING}


def test_an_outcome_from_a_lost_lease_is_ignored_but_the_attempt_is_kept() -> None:
    [conversion] = mark_many(1, prefix="LEASE")
    conf = get_settings()
    old_token, [old_row] = claim(10)
    expire_leases()
    new_token, [new_row] = claim(10)

    # The old worker's answer arrives late.
    [status] = write_answers([(old_row, Answer(Outcome.REPORTED, 200))], old_token, conf)

    assert status == Status.SENDING  # it knows it lost the row
    [row] = rows(conversion)
    assert (row.status, row.claim_token, row.attempt_count) == (Status.SENDING, new_token, 0)
    assert row.reported_at is None
    assert row.last_status_code is None
    [attempt] = ConversionAttempt.objects.filter(conversion=conversion)
    assert (attempt.http_status, attempt.outcome) == (200, Outcome.REPORTED)

    # The new owner's outcome is what counts.
    [status] = write_answers(
        [(new_row, Answer(Outcome.TRANSIENT, 503, "HTTP 503"))], new_token, conf
    )

    assert status == Status.PENDING
    [row] = rows(conversion)
    assert (row.status, row.claim_token, row.attempt_count) == (Status.PENDING, "", 1)
    assert ConversionAttempt.objects.filter(conversion=conversion).count() == 2


def test_a_failure_from_a_lost_lease_does_not_fail_the_row() -> None:
    [conversion] = mark_many(1, prefix="LEASE")
    conf = get_settings()
    old_token, [old_row] = claim(10)
    expire_leases()
    claim(10)

    write_answers([(old_row, Answer(Outcome.REJECTED, 422, "HTTP 422"))], old_token, conf)

    [row] = rows(conversion)
    assert row.status == Status.SENDING
    assert row.last_error == ""


def test_release_returns_unsent_rows_with_nothing_burned() -> None:
    conversions = mark_many(3, prefix="LEASE")
    token, _ = claim(10)
    before = timezone.now()

    released = release(token, [c.pk for c in conversions[:2]])

    after = timezone.now()
    assert released == 2
    first, second, third = rows(*conversions)
    for row in (first, second):
        assert (row.status, row.claim_token, row.attempt_count) == (Status.PENDING, "", 0)
        assert row.next_attempt_at is not None
        assert before <= row.next_attempt_at <= after
    assert (third.status, third.claim_token) == (Status.SENDING, token)
    assert ConversionAttempt.objects.count() == 0
    # Released rows are due again at once.
    _, again = claim(10)
    assert sorted(c.pk for c in again) == [first.pk, second.pk]


def test_release_with_a_stale_token_changes_nothing() -> None:
    conversions = mark_many(2, prefix="LEASE")
    old_token, _ = claim(10)
    expire_leases()
    new_token, _ = claim(10)

    assert release(old_token, [c.pk for c in conversions]) == 0
    assert {(r.status, r.claim_token) for r in rows(*conversions)} == {(Status.SENDING, new_token)}


def test_report_run_never_sends_rows_another_worker_holds(
    nexmo_sandbox: Sandbox,
) -> None:
    held, free = mark_many(2, prefix="LEASE")
    claim(1)  # another worker holds the oldest one

    result = report_pending()

    assert result.reported == 1
    assert [r.message_id for r in nexmo_sandbox.requests] == ["LEASE0001"]
    assert Conversion.objects.get(pk=held.pk).status == Status.SENDING
    assert Conversion.objects.get(pk=free.pk).status == Status.REPORTED

    # When that worker vanishes, the next run takes its row over and reports it.
    expire_leases()
    assert report_pending().reported == 1
    assert [r.message_id for r in nexmo_sandbox.requests] == ["LEASE0001", "LEASE0000"]


@pytest.mark.django_db(transaction=True)
def test_parallel_claims_take_disjoint_rows() -> None:
    conversions = mark_many(40, prefix="LEASE")

    def worker() -> list[int]:
        mine: list[int] = []
        for _ in range(40):
            try:
                _, got = claim(5)
            except OperationalError:  # SQLite shared cache: another writer holds the table
                continue
            mine.extend(c.pk for c in got)
        return mine

    claimed, errors = run_together(4, worker)

    assert errors == []
    every = [pk for mine in claimed for pk in mine]
    assert len(every) == len(set(every)), "a conversion was claimed by two workers"
    assert set(every) == {c.pk for c in conversions}
    # Each row's token is the one of the worker that got it.
    assert Conversion.objects.filter(status=Status.SENDING).count() == len(conversions)


def test_every_row_is_sent_while_its_lease_holds(
    nexmo_sandbox: Sandbox, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slow API and one request at a time: a batch claimed in one go would still be sending
    # its last rows after their lease ran out, when another worker may take them and send
    # them too.
    lease = 1.0
    # TIMEOUT under the lease (check E005), far above the latency: a stalled request must
    # not turn into a timeout on a busy machine.
    configure(settings, LEASE_SECONDS=lease, TIMEOUT=0.9)
    nexmo_sandbox.latency = 0.12
    conversions = mark_many(12, prefix="LEASE")
    lease_ends: dict[str, float] = {}  # message id -> latest possible lease expiry (monotonic)
    real_claim = engine.claim_batch

    def recording_claim(*args: Any, **kwargs: Any) -> Claim:
        taken = real_claim(*args, **kwargs)
        expiry = time.monotonic() + lease
        for row in taken.rows:
            lease_ends[row.message.message_id] = expiry
        return taken

    monkeypatch.setattr(engine, "claim_batch", recording_claim)

    result = report_pending(concurrency=1)

    assert result.reported == len(conversions)
    late = [
        r.message_id
        for r in nexmo_sandbox.requests
        if r.received_at > lease_ends[r.message_id or ""]
    ]
    assert late == []


def test_lapsed_leases_go_first_and_a_claim_says_when_none_are_left() -> None:
    conversions = mark_many(8, prefix="LAPSED")
    claim(3)
    expire_leases()  # a vanished worker's three rows

    first = claim_batch(2)
    second = claim_batch(2, lapsed=first.lapsed_left)
    third = claim_batch(10, lapsed=second.lapsed_left)

    lapsed = {c.pk for c in conversions[:3]}
    assert {r.pk for r in first.rows} < lapsed  # two of the three
    assert first.lapsed_left is True
    # The last lapsed row and one pending row: fewer lapsed found than wanted.
    assert len({r.pk for r in second.rows} & lapsed) == 1
    assert second.lapsed_left is False
    assert {r.pk for r in third.rows} == {c.pk for c in conversions} - {
        r.pk for r in (*first.rows, *second.rows)
    }


def test_a_run_stops_looking_for_lapsed_leases_once_a_claim_found_too_few(
    nexmo_sandbox: Sandbox, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches (two rounds of two requests fit in a lease): many claims in one run.
    configure(settings, CONCURRENCY=2, LEASE_SECONDS=6, TIMEOUT=1)
    conversions = mark_many(20, prefix="LAPSED")
    claim(5)
    expire_leases()
    asked: list[bool] = []
    real_claim = engine.claim_batch

    def recording_claim(*args: Any, **kwargs: Any) -> Claim:
        asked.append(kwargs["lapsed"])
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(engine, "claim_batch", recording_claim)

    result = report_pending(concurrency=2, limit=None)

    assert result.reported == len(conversions)
    # The claims that took the five lapsed rows looked for them; once one found fewer than it
    # wanted, none did again.
    looked = asked.index(False)
    assert asked == [True] * looked + [False] * (len(asked) - looked)
    assert 1 <= looked <= 5
    assert len(asked) - looked >= 3
