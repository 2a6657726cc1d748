"""``guard.replay`` and ``manage.py replay_send_guard``, against a hand-built history."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from django_nexmo_conversion import guard, mark_converted
from django_nexmo_conversion.models import GuardReplay

from .helpers import configure, sent_history

pytestmark = pytest.mark.django_db


def healthy_day(start: Any, *, price: str | None = None) -> None:
    """60 UK sends, one every five minutes from ``start`` over two prefixes; 45 convert."""
    for i in range(60):
        sent_history(
            [f"447712{3 + i % 2}{i * 1000:05d}"],
            sent_at=start + timedelta(minutes=5 * i),
            converted=int(i % 4 != 0),
            price=price,
            fold=False,
            id_prefix="G",
        )


@pytest.fixture
def history() -> None:
    """A day with healthy UK traffic and one walk through ten numbers of +4477009 ten hours
    ago, at 0.05 a message; the fifth number of the walk converted."""
    now = timezone.now()
    healthy_day(now - timedelta(hours=20), price="0.04")
    walk = sent_history(
        [f"4477009001{n:02d}" for n in range(10)],
        sent_at=now - timedelta(hours=10),
        price="0.05",
        id_prefix="W",
    )
    mark_converted(walk[4], timestamp=now - timedelta(hours=9))


def test_replay_counts_what_the_guard_would_have_blocked(history: None) -> None:
    result = guard.replay(days=1)
    assert result.checked == 70
    # The first three numbers of the walk pass; the seven after them are refused.
    assert result.blocked == 7
    assert result.by_reason == {"sequential": 7}
    assert result.by_prefix == {"4477009": 7}
    assert result.blocked_converted == 1
    assert result.blocked_cost == Decimal("0.35")
    assert result.blocked_unpriced == 0
    assert result.converted == 46


def test_replay_judges_as_enforce_whatever_the_mode(settings: Any, history: None) -> None:
    configure(settings, GUARD={"MODE": "monitor"})
    assert guard.replay(days=1).blocked == 7


def test_replay_leaves_out_what_the_rows_cannot_tell(settings: Any, history: None) -> None:
    configure(settings, RECIPIENT_STORAGE="masked")
    result = guard.replay(days=1)
    assert result.blocked == 0
    assert set(result.skipped_signals) == {"sequential", "client_velocity"}


def test_replay_only_judges_the_days_asked_for(history: None) -> None:
    assert guard.replay(days=0.25).checked == 0


def test_replay_counts_a_collapsing_prefix_from_its_first_mature_sends() -> None:
    now = timezone.now()
    healthy_day(now - timedelta(hours=20))
    for minute in range(60):  # one send a minute, never converted
        sent_history(
            [f"4477009{minute * 1000:05d}"],
            sent_at=now - timedelta(hours=5) + timedelta(minutes=minute),
            fold=False,
            id_prefix="A",
        )
    result = guard.replay(days=1)
    assert result.by_reason["prefix_rate"] > 0
    assert 60 - result.blocked <= 30  # let through before the guard stepped in
    assert result.blocked_converted == 0


def test_the_command_prints_the_replay(history: None) -> None:
    out = StringIO()
    call_command("replay_send_guard", "--days", "1", stdout=out)
    text = out.getvalue()
    assert "Would have blocked: 7" in text
    assert "converted (false positives): 1" in text
    assert "0.35" in text


def test_the_command_prints_json(history: None) -> None:
    out = StringIO()
    call_command("replay_send_guard", "--days", "1", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert (data["blocked"], data["blocked_converted"], data["blocked_cost"]) == (7, 1, "0.35")


def test_the_command_refuses_a_period_of_no_days() -> None:
    with pytest.raises(CommandError, match="--days"):
        call_command("replay_send_guard", "--days", "0")


def test_the_send_guard_page_shows_the_last_replay(history: None, admin_client: Any) -> None:
    page = reverse("admin:django_nexmo_conversion_guardrule_changelist")
    assert 'id="guard-last-replay-none"' in admin_client.get(page).content.decode()

    call_command("replay_send_guard", "--days", "1", stdout=StringIO())

    html = admin_client.get(page).content.decode()
    assert "7 of 70 sends would have been blocked, 1 of which converted" in html
    assert "they cost 0.35" in html


def test_only_the_newest_replays_are_kept(history: None) -> None:
    for _ in range(guard.KEEP_REPLAYS + 2):
        guard.replay(days=1)
    assert GuardReplay.objects.count() == guard.KEEP_REPLAYS
    guard.replay(days=1, record=False)
    assert GuardReplay.objects.count() == guard.KEEP_REPLAYS
