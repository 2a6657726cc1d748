"""Back-testing: judge the recorded sends, in time order, with the current settings.

Each recorded send (the first part of a long SMS) is treated as a check at its ``sent_at``;
the counts it is judged on are rebuilt from the rows as a check would have read them then:
sends before it, and conversions marked (``timestamp``) before it. A send the guard would
have blocked is counted (did it convert? what did it cost?) and, like a refused send, adds to
the windows of bursts and sequences but not to the sends. What the rows cannot tell is left
out: the requester (``client_velocity`` is not replayed) and, unless ``RECIPIENT_STORAGE`` is
``"full"``, the number's block of a hundred (``sequential`` is not replayed). Rules are
judged as they stand now.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from ..conf import get_settings
from ..models import Conversion, SentMessage
from ..rollups.guard import BUCKET_SECONDS, bucket_of
from .decide import Counts, Evidence, Target, decide
from .live import keyed, matching_rule, rules

__all__ = ["ReplayResult", "replay"]


@dataclass
class ReplayResult:
    """What :func:`replay` found. ``blocked``: sends ``enforce`` would have refused;
    ``blocked_converted``: those of them that converted (false positives); ``blocked_cost``:
    what they cost by their recorded ``message-price`` (``blocked_unpriced`` had none)."""

    since: datetime
    until: datetime
    checked: int = 0
    blocked: int = 0
    blocked_converted: int = 0
    blocked_cost: Decimal = Decimal(0)
    blocked_unpriced: int = 0
    converted: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_prefix: Counter[str] = field(default_factory=Counter)
    skipped_signals: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            since=self.since.isoformat(),
            until=self.until.isoformat(),
            blocked_cost=f"{self.blocked_cost.normalize():f}",
            by_reason=dict(self.by_reason.most_common()),
            by_prefix=dict(self.by_prefix.most_common(20)),
            skipped_signals=list(self.skipped_signals),
        )
        return data


class _Tallies:
    """``GuardTally`` in memory: (kind, name) -> bucket -> [sent, converted]."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[datetime, list[int]]] = defaultdict(dict)
        self.networks: dict[str, str] = {}

    def add(self, keys: list[tuple[str, str]], bucket: datetime, column: int) -> None:
        for key in keys:
            row = self.rows[key].setdefault(bucket, [0, 0])
            row[column] += 1

    def counts(
        self, key: tuple[str, str], since: datetime, mature: datetime, probe: datetime
    ) -> Counts:
        sent = converted = total = recent = 0
        for bucket, (s, c) in self.rows.get(key, {}).items():
            if bucket > since:
                total += s
                if bucket <= mature:
                    sent += s
                    converted += c
                if bucket > probe:
                    recent += s
        return Counts(sent, converted, total, recent)


def _keys(m: dict[str, Any]) -> list[tuple[str, str]]:
    keys = [("*", ""), ("c", m["country"])]
    if m["prefix"]:
        keys.append(("p", m["prefix"]))
    if m["network"]:
        keys.append(("n", m["network"]))
    return keys


def _recent(times: deque[datetime], now: datetime, window: float) -> int:
    edge = now - timedelta(seconds=window)
    while times and times[0] <= edge:
        times.popleft()
    return len(times)


def replay(*, days: float = 7, now: datetime | None = None) -> ReplayResult:
    """Judge the sends of the last ``days`` (up to ``now``) as ``enforce`` would have."""
    s = replace(get_settings().guard, mode="enforce")
    until = now or timezone.now()
    since = until - timedelta(days=days)
    warm = since - timedelta(seconds=s.rate_window)
    full = get_settings().recipient_storage == "full"
    result = ReplayResult(since=since, until=until)
    result.skipped_signals = ("client_velocity",) if full else ("client_velocity", "sequential")
    rows = (
        SentMessage.objects.filter(parent__isnull=True, sent_at__gt=warm, sent_at__lte=until)
        .order_by("sent_at", "pk")
        .values("pk", "sent_at", "prefix", "country", "network", "recipient", "price")
    )
    messages: list[dict[str, Any]] = [dict(row) for row in rows]
    conversions = dict(
        Conversion.objects.filter(
            message_id__in=[m["pk"] for m in messages], delivered=True, timestamp__lte=until
        ).values_list("message_id", "timestamp")
    )
    # The timeline: sends, and conversions at the moment they were marked.
    timeline: list[tuple[datetime, int, dict[str, Any]]] = []
    for m in messages:
        timeline.append((m["sent_at"], 1, m))
        if m["pk"] in conversions:
            timeline.append((max(conversions[m["pk"]], m["sent_at"]), 0, m))
    timeline.sort(key=lambda entry: (entry[0], entry[1]))
    in_force = rules(until, "", "")
    tallies = _Tallies()
    refused: set[int] = set()
    recent: dict[tuple[str, str], deque[datetime]] = defaultdict(deque)
    numbers: dict[str, deque[tuple[datetime, str]]] = defaultdict(deque)
    for moment, is_send, m in timeline:
        keys = _keys(m)
        if not is_send:
            if m["pk"] not in refused:
                tallies.add(keys, bucket_of(m["sent_at"]), 1)
            continue
        if m["sent_at"] > since:
            decision = _judge(m, moment, tallies, recent, numbers, s, full, in_force)
            result.checked += 1
            converted = m["pk"] in conversions
            result.converted += converted
            if not decision.allowed:
                refused.add(m["pk"])
                result.blocked += 1
                result.blocked_converted += converted
                result.by_reason[decision.codes[0]] += 1
                result.by_prefix[m["prefix"]] += 1
                if m["price"] is None:
                    result.blocked_unpriced += 1
                else:
                    result.blocked_cost += m["price"]
        recent[("p", m["prefix"])].append(moment)
        recent[("c", m["country"])].append(moment)
        if m["pk"] not in refused:
            tallies.add(keys, bucket_of(m["sent_at"]), 0)
            if m["network"] and m["prefix"]:
                tallies.networks[m["prefix"]] = m["network"]
    return result


def _judge(
    m: dict[str, Any],
    moment: datetime,
    tallies: _Tallies,
    recent: dict[tuple[str, str], deque[datetime]],
    numbers: dict[str, deque[tuple[datetime, str]]],
    s: Any,
    full: bool,
    in_force: list[dict[str, Any]],
) -> Any:
    digits = m["recipient"] if full else ""
    block = keyed("block", digits[:-2]) if digits else ""
    target = Target(m["prefix"], m["country"], keyed("number", digits) if digits else "", block)
    since = moment - timedelta(seconds=s.rate_window)
    mature = moment - timedelta(seconds=s.conversion_wait + BUCKET_SECONDS)
    probe = moment - timedelta(seconds=s.probe_interval + BUCKET_SECONDS)
    network = tallies.networks.get(m["prefix"], "")
    others = 0
    if block:
        seen = numbers[block]
        edge = moment - timedelta(seconds=s.sequential_window)
        while seen and seen[0][0] <= edge:
            seen.popleft()
        others = len({h for _t, h in seen if h != target.number_hash})
        seen.append((moment, target.number_hash))
    ev = Evidence(
        prefix=tallies.counts(("p", m["prefix"]), since, mature, probe),
        country=tallies.counts(("c", m["country"]), since, mature, probe),
        network=tallies.counts(("n", network), since, mature, probe) if network else Counts(),
        site=tallies.counts(("*", ""), since, mature, probe),
        network_code=network,
        prefix_recent=_recent(recent[("p", m["prefix"])], moment, s.burst_window),
        country_recent=_recent(recent[("c", m["country"])], moment, s.burst_window),
        block_others=others,
        rule=matching_rule(in_force, digits, m["country"], m["prefix"]),
    )
    return decide(target, ev, s)
