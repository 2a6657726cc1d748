"""The send guard (``django_nexmo_conversion.guard``): each signal alone, the modes, the
fail modes, rules and bad input."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.utils import timezone

from django_nexmo_conversion import guard, record_message, record_sms_response, signals
from django_nexmo_conversion.exceptions import ConversionInputError
from django_nexmo_conversion.models import GuardEvent, GuardRule, GuardTally, SentMessage

from .helpers import configure, sent_history

pytestmark = pytest.mark.django_db

#: UK mobile numbers: 4477009 is the attacked prefix; the others are healthy.
ATTACKED = "4477009"


def numbers(prefix: str, count: int, *, step: int = 1000, start: int = 0) -> list[str]:
    """``count`` numbers of ``prefix``, ``step`` apart (1000: never two in one hundred)."""
    width = 12 - len(prefix)
    return [f"{prefix}{(start + i * step) % 10**width:0{width}d}" for i in range(count)]


@pytest.fixture
def enforce(settings: Any) -> None:
    configure(settings, GUARD={"MODE": "enforce"})


@pytest.fixture
def healthy_uk() -> None:
    """Two hours ago: 60 sends to other UK prefixes, 45 converted (75 %)."""
    sent_history(
        numbers("4477123", 30) + numbers("4477124", 30),
        sent_at=timezone.now() - timedelta(hours=2),
        converted=45,
        network="23410",
    )


def test_off_mode_allows_reads_nothing_and_writes_nothing(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        decision = guard.check("+447700900123")
    assert decision.allowed
    assert decision.action == "allow"
    assert (decision.prefix, decision.country) == (ATTACKED, "GB")
    assert not GuardEvent.objects.exists()


def test_a_check_costs_three_queries(
    enforce: None, healthy_uk: None, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(3):
        decision = guard.check("447700900123", client="10.0.0.1")
    assert decision.allowed
    assert GuardEvent.objects.count() == 1


def test_prefix_rate_blocks_a_prefix_whose_sends_stopped_converting(
    enforce: None, healthy_uk: None
) -> None:
    sent_history(numbers(ATTACKED, 46), sent_at=timezone.now() - timedelta(hours=1))
    decision = guard.check("447700955555")
    assert not decision.allowed
    assert decision.action == "block"
    assert decision.codes == ("prefix_rate",)
    assert decision.reasons[0][1].startswith("+4477009: 0 of 46 converted")


def test_a_handful_of_unconverted_sends_never_blocks(enforce: None, healthy_uk: None) -> None:
    sent_history(numbers(ATTACKED, 8), sent_at=timezone.now() - timedelta(hours=1))
    assert guard.check("447700955555").allowed


def test_sends_too_recent_to_have_converted_are_not_counted(
    enforce: None, healthy_uk: None
) -> None:
    sent_history(numbers(ATTACKED, 46), sent_at=timezone.now() - timedelta(minutes=2))
    decision = guard.check("447700955555")
    assert "prefix_rate" not in decision.codes


def test_country_rate_blocks_a_country_whose_sends_stopped_converting(
    enforce: None, healthy_uk: None
) -> None:
    # 40 French prefixes, one send each: no prefix has enough sends, the country has.
    french = [f"336{i:02d}000000" for i in range(40)]
    sent_history(french, sent_at=timezone.now() - timedelta(hours=1))
    decision = guard.check("33699000001")
    assert decision.codes == ("country_rate",)
    assert not decision.allowed


def test_a_collapse_nothing_was_sent_to_for_an_hour_is_probed_with_one_send(
    enforce: None, healthy_uk: None
) -> None:
    sent_history(numbers(ATTACKED, 46), sent_at=timezone.now() - timedelta(hours=3))
    probe = guard.check("447700955555")
    assert probe.allowed
    assert probe.action == "allow"
    assert probe.codes == ("probe", "prefix_rate")
    assert "one send to +4477009 let through per 1 h" in probe.reasons[0][1]
    # The probe went out (a check the sweep has not counted yet): the next one is refused.
    assert guard.check("447700966666").codes == ("prefix_rate",)


def test_a_country_that_collapsed_is_probed_once_not_once_per_prefix(
    enforce: None, healthy_uk: None
) -> None:
    french = [f"336{i:02d}000000" for i in range(40)]
    sent_history(french, sent_at=timezone.now() - timedelta(hours=3))
    assert guard.check("33698000001").codes == ("probe", "country_rate")
    assert guard.check("33699000001").codes == ("country_rate",)


def test_probes_are_off_with_a_zero_interval(settings: Any, healthy_uk: None) -> None:
    configure(settings, GUARD={"MODE": "enforce", "PROBE_INTERVAL": 0})
    sent_history(numbers(ATTACKED, 46), sent_at=timezone.now() - timedelta(hours=3))
    assert guard.check("447700955555").codes == ("prefix_rate",)


def test_a_collapse_with_a_volume_signal_is_never_probed(enforce: None, healthy_uk: None) -> None:
    sent_history(numbers(ATTACKED, 46), sent_at=timezone.now() - timedelta(hours=3))
    decisions = [guard.check(f"4477009001{n:02d}") for n in range(5)]
    assert decisions[0].codes == ("probe", "prefix_rate")
    assert decisions[4].codes == ("sequential", "prefix_rate")
    assert not decisions[4].allowed


def test_a_failing_network_is_a_warning_never_a_block(enforce: None, healthy_uk: None) -> None:
    failing = [f"44770{i:02d}000000"[:12] for i in range(10, 40)]
    sent_history(failing, sent_at=timezone.now() - timedelta(hours=1), network="23415")
    sent_history(numbers(ATTACKED, 2), sent_at=timezone.now() - timedelta(hours=1), network="23415")
    decision = guard.check("447700955555")
    assert decision.allowed
    assert decision.action == "allow"
    assert decision.codes == ("network_rate",)


def test_a_burst_to_one_prefix_is_blocked(enforce: None, healthy_uk: None) -> None:
    decisions = [guard.check(number) for number in numbers(ATTACKED, 16)]
    assert all(d.allowed for d in decisions[:15])
    assert decisions[15].codes == ("burst",)


def test_a_burst_to_a_country_never_sent_to_is_blocked(enforce: None) -> None:
    decisions = [guard.check(f"234803{i}234567") for i in range(6)]
    assert all(d.allowed for d in decisions[:5])
    assert decisions[5].codes == ("new_destination",)
    assert decisions[5].country == "NG"


def test_sequential_numbers_are_blocked(enforce: None, healthy_uk: None) -> None:
    decisions = [guard.check(f"4477009001{n:02d}") for n in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert decisions[3].codes == ("sequential",)


def test_asking_again_for_the_same_number_is_not_sequential(
    enforce: None, healthy_uk: None
) -> None:
    assert all(guard.check("447700900101").allowed for _ in range(5))


def test_one_client_asking_for_many_numbers_is_blocked(enforce: None, healthy_uk: None) -> None:
    spread = numbers("4477123", 3, start=7) + numbers("4477124", 3, start=7)
    decisions = [guard.check(number, client="203.0.113.9") for number in spread]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert decisions[5].codes == ("client_velocity",)
    # Another requester asking for one of those numbers is not held back.
    assert guard.check(spread[0], client="198.51.100.1").allowed


def test_a_block_rule_wins_over_healthy_signals(enforce: None, healthy_uk: None) -> None:
    GuardRule.objects.create(action="block", kind="prefix", value="4477123", note="pumping")
    decision = guard.check("447712312345")
    assert decision.codes == ("rule",)
    assert "pumping" in decision.reasons[0][1]
    assert guard.check("447712412345").allowed


def test_an_allow_rule_on_a_number_wins_over_a_block_on_its_prefix(
    enforce: None, healthy_uk: None
) -> None:
    from django_nexmo_conversion.privacy import recipient_hash

    GuardRule.objects.create(action="block", kind="country", value="GB")
    GuardRule.objects.create(action="allow", kind="number", value=recipient_hash("447712312345"))
    assert guard.check("447712312345").allowed
    assert not guard.check("447712312346").allowed


def test_an_expired_rule_no_longer_applies(enforce: None, healthy_uk: None) -> None:
    GuardRule.objects.create(
        action="block", kind="country", value="GB", expires_at=timezone.now() - timedelta(1)
    )
    assert guard.check("447712312345").allowed


def test_a_country_outside_the_allow_list_is_denied(settings: Any) -> None:
    configure(settings, GUARD={"MODE": "enforce", "ALLOW_COUNTRIES": ["GB"]})
    assert guard.check("447712312345").allowed
    decision = guard.check("2348031234567")
    assert decision.codes == ("country_denied",)


def test_monitor_mode_flags_and_never_refuses(settings: Any, healthy_uk: None) -> None:
    configure(settings, GUARD={"MODE": "monitor"})
    GuardRule.objects.create(action="block", kind="prefix", value="4477123")
    blocked: list[Any] = []
    signals.send_blocked.connect(lambda **kw: blocked.append(kw), weak=False)
    try:
        decision = guard.enforce("447712312345")
    finally:
        signals.send_blocked.receivers.clear()
    assert decision.allowed
    assert decision.action == "flag"
    assert blocked == []
    assert GuardEvent.objects.get().action == "flag"


def test_enforce_raises_send_blocked_and_sends_the_signal(enforce: None, healthy_uk: None) -> None:
    GuardRule.objects.create(action="block", kind="prefix", value="4477123")
    blocked: list[Any] = []

    def receiver(**kwargs: Any) -> None:
        blocked.append(kwargs)

    signals.send_blocked.connect(receiver)
    try:
        with pytest.raises(guard.SendBlocked) as raised:
            guard.enforce("447712312345")
    finally:
        signals.send_blocked.disconnect(receiver)
    assert raised.value.decision.codes == ("rule",)
    assert blocked[0]["prefix"] == "4477123"
    assert blocked[0]["to_country"] == "GB"
    assert blocked[0]["decision"] is raised.value.decision


#: MySQL/MariaDB commit DDL at once: a dropped table would stay dropped for later tests.
needs_transactional_ddl = pytest.mark.skipif(
    connection.vendor == "mysql", reason="DDL is not transactional on MySQL/MariaDB"
)


def _break_the_guards_tables() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {GuardTally._meta.db_table}")


@needs_transactional_ddl
@pytest.mark.parametrize(("mode", "action"), [("enforce", "allow"), ("monitor", "allow")])
def test_a_failing_guard_fails_open_by_default(
    settings: Any, mode: str, action: str, caplog: pytest.LogCaptureFixture
) -> None:
    configure(settings, GUARD={"MODE": mode})
    assert guard.check("447712312340").codes == ()  # a guard that works, to begin with
    _break_the_guards_tables()
    first = guard.check("447712312345")
    second = guard.check("447712312346")
    assert first.allowed
    assert first.action == action
    assert first.codes == ("guard_error",)
    assert second.allowed
    assert len([r for r in caplog.records if "could not decide" in r.getMessage()]) == 1


@needs_transactional_ddl
@pytest.mark.parametrize(("mode", "action"), [("enforce", "block"), ("monitor", "flag")])
def test_a_failing_guard_fails_closed_when_asked(settings: Any, mode: str, action: str) -> None:
    configure(settings, GUARD={"MODE": mode, "FAIL": "closed"})
    _break_the_guards_tables()
    decision = guard.check("447712312345")
    assert decision.action == action
    assert decision.codes == ("guard_error",)
    assert decision.allowed is (mode == "monitor")


@pytest.mark.parametrize("bad", ["not a number", "", "1" * 10_000, None, 447700900123, "+"])
def test_input_that_is_no_phone_number_is_a_clear_error(enforce: None, bad: object) -> None:
    with pytest.raises(ConversionInputError) as raised:
        guard.check(bad)
    assert len(str(raised.value)) < 200
    assert not GuardEvent.objects.exists()


def test_a_number_of_no_known_country_is_judged_on_what_is_known(enforce: None) -> None:
    decision = guard.check("999123456789")
    assert decision.allowed
    assert (decision.prefix, decision.country) == ("", "")


def test_acheck_decides_like_check(enforce: None) -> None:
    decision = async_to_sync(guard.acheck)("447712312345")
    assert decision.allowed
    assert decision.prefix == "4477123"


def test_the_prefix_is_kept_whatever_recipient_storage_says(settings: Any) -> None:
    configure(settings, RECIPIENT_STORAGE="none")
    message = record_message("M1", recipient="+44 7700 900123")
    assert (message.recipient, message.prefix, message.country) == ("", ATTACKED, "GB")


def test_the_sms_apis_message_price_is_kept() -> None:
    response = {
        "message-count": "1",
        "messages": [
            {
                "to": "447700900123",
                "message-id": "P1",
                "status": "0",
                "network": "23410",
                "message-price": "0.03330000",
            }
        ],
    }
    (message,) = record_sms_response(response)
    message.refresh_from_db()
    assert message.price == Decimal("0.0333")
    assert message.prefix == ATTACKED


def test_the_sweep_counts_sends_and_conversions_for_the_guard() -> None:
    sent_history(numbers(ATTACKED, 4), sent_at=timezone.now() - timedelta(hours=1), converted=3)
    prefix = GuardTally.objects.get(kind="p", name=ATTACKED)
    site = GuardTally.objects.get(kind="*")
    assert (prefix.sent, prefix.converted) == (4, 3) == (site.sent, site.converted)
    assert SentMessage.objects.filter(prefix=ATTACKED).count() == 4


def test_rebuilding_the_rollups_recounts_the_guards_counts() -> None:
    from django.core.management import call_command

    sent_history(numbers(ATTACKED, 4), sent_at=timezone.now() - timedelta(hours=1), converted=3)
    sent_history(numbers("4477123", 2), sent_at=timezone.now() - timedelta(days=5))
    GuardTally.objects.update(sent=99, converted=0)
    call_command("rebuild_conversion_stats", verbosity=0)
    prefix = GuardTally.objects.get(kind="p", name=ATTACKED)
    site = GuardTally.objects.get(kind="*")
    assert (prefix.sent, prefix.converted) == (4, 3) == (site.sent, site.converted)
    # Older than the rate window and a day: no longer read, not recounted.
    assert not GuardTally.objects.filter(name="4477123").exists()


def test_bad_guard_settings_name_the_setting(settings: Any) -> None:
    from django_nexmo_conversion.conf import get_settings

    configure(settings, GUARD={"MODE": "block", "MIN_RATE": 2, "COLOUR": 1})
    messages = " ".join(p.msg for p in get_settings().problems)
    assert "NEXMO_CONVERSION['GUARD']['MODE'] is 'block'" in messages
    assert "NEXMO_CONVERSION['GUARD']['MIN_RATE']" in messages
    assert "COLOUR" in messages
    assert get_settings().guard.mode == "off"


def test_a_blocked_destination_is_a_warning_in_the_health_findings(
    enforce: None, healthy_uk: None
) -> None:
    from django_nexmo_conversion import health

    assert not [f for f in health.findings() if f.check == "send_guard"]
    GuardRule.objects.create(action="block", kind="prefix", value="4477123")
    guard.check("447712312345")
    (finding,) = [f for f in health.findings() if f.check == "send_guard"]
    assert finding.level == health.WARNING
    assert "+4477123 (GB) 1 time(s)" in finding.message
    assert "447712312345" not in finding.message


def test_the_guards_decisions_are_a_prometheus_metric(enforce: None, healthy_uk: None) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from django_nexmo_conversion.contrib.prometheus import ConversionCollector

    GuardRule.objects.create(action="block", kind="prefix", value="4477123")
    guard.check("447712312345")
    guard.check("447712412345")
    registry = CollectorRegistry()
    registry.register(ConversionCollector())
    text = generate_latest(registry).decode()
    assert 'nexmo_guard_decisions{action="block",reason="rule"} 1.0' in text
    assert 'nexmo_guard_decisions{action="allow",reason=""} 1.0' in text
