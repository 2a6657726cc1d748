"""Insights: the rollups the sweeps fold equal a brute-force recount of the rows, and the
low-conversion alerts fire once, for the collapsing destination only."""

from __future__ import annotations

import bisect
import itertools
import math
from collections import defaultdict
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from django_nexmo_conversion import insights, mark_converted, record_message, record_sms_response
from django_nexmo_conversion.exceptions import ConversionInputError
from django_nexmo_conversion.insights import conversion_rates, low_conversion_alerts
from django_nexmo_conversion.links import conversion_link
from django_nexmo_conversion.models import (
    SECONDS_TO_CONVERT_BOUNDS,
    Conversion,
    ConversionStat,
    SentMessage,
)
from django_nexmo_conversion.signals import conversion_rate_low
from django_nexmo_conversion.webhooks.inbound import handle_inbound
from django_nexmo_conversion.webhooks.receipts import handle_receipt

from .helpers import configure

pytestmark = pytest.mark.django_db

#: (number, country, network) of the destinations the tests send to.
GB = ("447700900", "GB", "23415")
FR = ("33612345", "FR", "20801")
US = ("1415555", "US", "310260")
_ids = itertools.count(1)


def _number(prefix: str) -> str:
    width = {"447700900": 3, "33612345": 3, "1415555": 4}[prefix]
    return f"{prefix}{next(_ids) % 10**width:0{width}d}"


def send(destination: tuple[str, str, str], *, parts: int = 1, api_key: str = "") -> list[Any]:
    """Record one SMS (``parts`` parts) as the SMS API's response would tell it."""
    number = _number(destination[0])
    response = {
        "message-count": str(parts),
        "messages": [
            {
                "to": number,
                "message-id": f"{next(_ids):016X}",
                "status": "0",
                "network": destination[2],
            }
            for _part in range(parts)
        ],
    }
    return list(record_sms_response(response, api_key=api_key or None))


def vonage_time(moment: datetime) -> str:
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def receipt(message: SentMessage, status: str = "delivered", network: str = "") -> None:
    params = {
        "messageId": message.message_id,
        "status": status,
        "message-timestamp": vonage_time(timezone.now()),
    }
    if network:
        params["network-code"] = network
    handle_receipt(params)


def reply(message: SentMessage, number: str) -> None:
    handle_inbound(
        {
            "messageId": f"IN{next(_ids):014X}",
            "msisdn": number,
            "text": "YES",
            "message-timestamp": vonage_time(timezone.now()),
            # Replies are matched within the account they were sent to.
            **({"api-key": message.api_key} if message.api_key else {}),
        }
    )


def brute_force(by: str) -> dict[str, dict[str, Any]]:
    """The same figures, counted message by message from the rows."""
    found: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"sent": 0, "delivered": 0, "converted": 0, "seconds": []}
    )
    for message in SentMessage.objects.filter(parent__isnull=True).select_related("conversion"):
        if by == "day":
            key = timezone.localtime(message.sent_at).date().isoformat()
        else:
            key = getattr(message, by)
        row = found[key]
        row["sent"] += 1
        row["delivered"] += message.delivery_status == "delivered"
        conversion = Conversion.objects.filter(message=message, delivered=True).first()
        if conversion is not None:
            row["converted"] += 1
            row["seconds"].append((conversion.timestamp - message.sent_at).total_seconds())
    return found


def bucket_bound(seconds: float) -> float:
    """The histogram's bound for an exact time (what the rollups can tell)."""
    index = bisect.bisect_left(SECONDS_TO_CONVERT_BOUNDS, seconds)
    return (
        float(SECONDS_TO_CONVERT_BOUNDS[index])
        if index < len(SECONDS_TO_CONVERT_BOUNDS)
        else math.inf
    )


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def assert_matches_recount(by: str) -> None:
    insights.refresh()  # what the next sweep does
    expected = brute_force(by)
    rows = {row.key: row for row in conversion_rates(by=by)}
    assert set(rows) == set(expected)
    for key, counts in expected.items():
        row = rows[key]
        assert (row.sent, row.delivered, row.converted) == (
            counts["sent"],
            counts["delivered"],
            counts["converted"],
        ), key
        assert row.rate == counts["converted"] / counts["sent"]
        if counts["seconds"]:
            assert row.median_seconds_to_convert == bucket_bound(
                nearest_rank(counts["seconds"], 0.5)
            )
            assert row.p90_seconds_to_convert == bucket_bound(nearest_rank(counts["seconds"], 0.9))
        else:
            assert row.median_seconds_to_convert is None


@pytest.fixture
def traffic(settings: Any, client: Client) -> None:
    """Several countries and networks; long SMS; conversions by reply, by link and by call;
    delivered=False reports; receipts with and without a network code."""
    configure(settings, REPLY_WINDOW=3600)
    for index in range(6):
        (gb,) = send(GB, api_key="key-a")
        receipt(gb)
        if index % 2 == 0:
            reply(gb, gb.recipient)  # converted by reply
    # A sweep in the middle: what follows changes rows already counted as well as new ones.
    insights.refresh()
    for _index in range(4):
        fr = send(FR, parts=3, api_key="key-b")  # a long SMS: counted once
        receipt(fr[0])
        receipt(fr[1], "failed")  # a part's receipt says nothing about the send
        mark_converted(fr[1])  # marking a part converts the whole send, once
    for index in range(5):
        (us,) = send(US)
        if index < 2:
            link = conversion_link(us, "/")
            clicked = client.get(link, headers={"User-Agent": "Mozilla/5.0 (Android 14)"})
            assert clicked.status_code == 302  # converted by link
        elif index == 2:
            mark_converted(us, delivered=False)  # a non-conversion: not converted
        else:
            receipt(us, "expired")
    # Recorded without a network; a receipt fills it in, after the conversion was counted.
    late = record_message("LATE000000000001", recipient="447700900999")
    mark_converted(late, timestamp=timezone.now())
    insights.refresh()
    receipt(late, network="23410")
    # The same before the sweep counts anything: the sweep counts it where it is then.
    early = record_message("EARLY00000000001", recipient="447700900998")
    mark_converted(early, timestamp=timezone.now())
    receipt(early, network="23420")
    # Sent a while ago, converted now: times to convert across the histogram (and a day back).
    now = timezone.now()
    for index, ago in enumerate([40, 200, 1000, 5000, 30000, 100000]):
        sent = record_message(
            f"AGO{index:013d}", recipient=_number(GB[0]), sent_at=now - timedelta(seconds=ago)
        )
        mark_converted(sent)
    # A voice call, with no network at all.
    call = record_message(
        "5b1c2d3e-0000-4000-8000-000000000001", channel="voice", recipient="33612345999"
    )
    mark_converted(call)
    insights.refresh()  # the sweep after it all


@pytest.mark.parametrize("by", ["country", "network", "channel", "api_key", "day"])
def test_the_figures_equal_a_recount_of_the_rows(traffic: None, by: str):
    assert_matches_recount(by)


def test_the_traffic_has_what_the_recount_must_tell_apart(traffic: None):
    insights.refresh()
    rates = {row.key: row for row in conversion_rates(by="country")}
    # GB: 6 + the late and early ones + 6 older, 3 by reply + late + early + the 6 older; FR:
    # 4 sends of 3 parts, each once.
    assert (rates["GB"].sent, rates["GB"].converted, rates["GB"].delivered) == (14, 11, 8)
    assert rates["GB"].p90_seconds_to_convert == 43200  # 30000 s is in the (21600, 43200] bucket
    assert (rates["FR"].sent, rates["FR"].converted) == (5, 5)
    # US: 2 by link; the delivered=False one is not converted.
    assert (rates["US"].sent, rates["US"].converted) == (5, 2)
    networks = {row.key: row for row in conversion_rates(by="network")}
    # Moved with its receipt, and counted where its receipt put it:
    assert (networks["23410"].sent, networks["23410"].converted) == (1, 1)
    assert (networks["23420"].sent, networks["23420"].converted) == (1, 1)
    assert networks["23415"].label.startswith("Vodafone")


def test_rebuild_recounts_what_arrived_behind_the_apps_back(traffic: None):
    insights.refresh()
    before = {row.key: row for row in conversion_rates(by="network")}
    # A restore that brought the rows back but not their rollups, and an import whose rows
    # say they were counted already.
    ConversionStat.objects.all().delete()
    SentMessage.objects.create(
        message_id="IMPORTED00000001", country="GB", network="23415", counted=True
    )
    assert insights.refresh() == 0
    assert conversion_rates(by="network") == []
    call_command("rebuild_conversion_stats")
    after = {row.key: row for row in conversion_rates(by="network")}
    assert after["23415"].sent == before["23415"].sent + 1
    assert_matches_recount("network")
    assert_matches_recount("country")


def test_rows_are_counted_by_the_next_sweep_once():
    (gb,) = send(GB)
    mark_converted(gb)
    # Recording and marking wrote only their rows: nothing waits on a counter row.
    assert conversion_rates(by="country") == []
    assert insights.refresh() == 3  # the message, its conversion, its status
    assert [(r.key, r.sent, r.converted) for r in conversion_rates(by="country")] == [("GB", 1, 1)]
    assert insights.refresh() == 0
    assert [(r.key, r.sent, r.converted) for r in conversion_rates(by="country")] == [("GB", 1, 1)]


def test_the_fold_takes_batches_until_nothing_is_left():
    for _index in range(7):
        send(FR)
    assert insights.refresh(batch_size=3) == 7
    assert [(r.key, r.sent) for r in conversion_rates(by="country")] == [("FR", 7)]


def test_a_rolled_back_send_leaves_no_count():
    from django.db import transaction

    def send_then_fail() -> None:
        with transaction.atomic():
            send(GB)
            raise RuntimeError

    with pytest.raises(RuntimeError):
        send_then_fail()
    assert insights.refresh() == 0
    assert conversion_rates(by="country") == []


def test_a_period_is_cut_at_whole_hours():
    now = timezone.now()
    old = record_message(
        "OLD0000000000001", recipient="447700900001", sent_at=now - timedelta(days=3)
    )
    mark_converted(old)
    send(GB)
    insights.refresh()
    recent = conversion_rates(by="country", since=now - timedelta(hours=1))
    assert [(row.key, row.sent, row.converted) for row in recent] == [("GB", 1, 0)]
    everything = conversion_rates(by="country")
    assert [(row.key, row.sent, row.converted) for row in everything] == [("GB", 2, 1)]
    until = conversion_rates(by="country", until=now - timedelta(days=2))
    assert [(row.key, row.sent) for row in until] == [("GB", 1)]


def test_bad_arguments_are_refused_with_a_clear_error():
    with pytest.raises(ConversionInputError, match="by must be one of"):
        conversion_rates(by="city")
    with pytest.raises(ConversionInputError, match="since must be a timezone-aware"):
        conversion_rates(by="country", since=datetime(2026, 1, 1))


def test_the_country_is_kept_whatever_recipient_storage_keeps(settings: Any):
    configure(settings, RECIPIENT_STORAGE="none")
    message = record_message("NONE000000000001", recipient="+33612345678")
    assert (message.recipient, message.country) == ("", "FR")
    configure(settings, RECIPIENT_STORAGE="masked", DEFAULT_REGION="GB")
    national = record_message("NATL000000000001", recipient="07700900123")
    assert national.country == "GB"
    assert "*" in national.recipient


def test_a_bad_network_is_refused_and_nothing_is_stored():
    with pytest.raises(ConversionInputError, match="network must be an MCCMNC"):
        record_sms_response(
            {
                "messages": [
                    {
                        "to": "447700900001",
                        "message-id": "BAD0000000000001",
                        "status": "0",
                        "network": "UK",
                    }
                ]
            }
        )
    assert not SentMessage.objects.exists()
    assert not ConversionStat.objects.exists()


# --- alerts -----------------------------------------------------------------------------------


@pytest.fixture
def pumped(settings: Any) -> None:
    """FR collapses (1 conversion in 12), GB is healthy (9 in 12), US has too few sends."""
    configure(settings, ALERT_MIN_MESSAGES=10, ALERT_MIN_RATE=0.2, ALERT_WINDOW=3600)
    for index in range(12):
        (fr,) = send(FR)
        if index == 0:
            mark_converted(fr)
        (gb,) = send(GB)
        if index < 9:
            mark_converted(gb)
    for _index in range(3):
        send(US)  # 0 % but only 3 sends
    insights.refresh()


def test_a_low_conversion_alert_fires_for_the_collapsing_country_only(pumped: None):
    received: list[Any] = []

    def listener(sender: Any, alert: Any, **kwargs: Any) -> None:
        received.append(alert)

    conversion_rate_low.connect(listener)
    try:
        alerts = low_conversion_alerts()
        assert {(a.by, a.key) for a in alerts} == {("country", "FR"), ("network", "20801")}
        fr = next(a for a in alerts if a.by == "country")
        assert (fr.sent, fr.converted, fr.window_seconds) == (12, 1, 3600)
        assert fr.rate == pytest.approx(1 / 12)
        assert fr.label == "France"
        assert sorted((a.by, a.key) for a in received) == [("country", "FR"), ("network", "20801")]
        # Looking again raises nothing new: the signal went once per alert.
        assert len(low_conversion_alerts()) == 2
        assert len(received) == 2
    finally:
        conversion_rate_low.disconnect(listener)


def test_an_alert_that_clears_and_comes_back_is_signalled_again(pumped: None):
    received: list[Any] = []

    def listener(sender: Any, alert: Any, **kwargs: Any) -> None:
        received.append((alert.by, alert.key))

    conversion_rate_low.connect(listener)
    try:
        low_conversion_alerts()
        later = timezone.now() + timedelta(hours=3)  # outside the window: nothing is low
        assert low_conversion_alerts(now=later) == []
        assert len(low_conversion_alerts()) == 2
        assert received.count(("country", "FR")) == 2
    finally:
        conversion_rate_low.disconnect(listener)


def test_labels_fall_back_to_the_codes_without_the_insights_extra(
    monkeypatch: pytest.MonkeyPatch,
):
    import sys

    from django_nexmo_conversion import geography

    assert geography.network_label("20801").startswith("Orange")
    assert geography.country_label("FR") == "France"
    # None in sys.modules makes the import raise ImportError, as when not installed.
    monkeypatch.setitem(sys.modules, "mcc_mnc_lut.p1_mnc", None)
    monkeypatch.setitem(sys.modules, "pycountry", None)
    geography.operators.cache_clear()
    try:
        assert geography.network_label("20801") == "20801"
        assert geography.country_label("FR") == "FR"
    finally:
        geography.operators.cache_clear()


def test_default_region_and_alert_settings_are_checked(settings: Any):
    from django_nexmo_conversion.conf import build_settings

    problems = build_settings(
        {"API_KEY": "k", "API_SECRET": "s", "DEFAULT_REGION": "UK", "ALERT_MIN_RATE": 2}
    ).problems
    ids = sorted(problem.id for problem in problems)
    assert ids == ["E015", "E016"]
    assert "DEFAULT_REGION" in next(p.msg for p in problems if p.id == "E015")
    assert "ALERT_MIN_RATE" in next(p.msg for p in problems if p.id == "E016")
    good = build_settings({"API_KEY": "k", "API_SECRET": "s", "DEFAULT_REGION": "gb"})
    assert (good.default_region, good.problems) == ("GB", ())
