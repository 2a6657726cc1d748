"""The guard's judgement, apart from where the figures come from: :func:`decide` turns the
evidence about one destination (:class:`Evidence`) into a :class:`Decision`. The live check
(``guard.live``) reads the evidence from the database, the replay (``guard.backtest``) from
the recorded history; both decide here, so a replay judges exactly as a check would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..conf.guard import GuardSettings

__all__ = ["BLOCKING", "REASON_CODES", "Counts", "Decision", "Evidence", "Target", "decide"]

#: Every reason code, stable across releases.
REASON_CODES = (
    "rule",
    "country_denied",
    "prefix_rate",
    "country_rate",
    "network_rate",
    "burst",
    "new_destination",
    "sequential",
    "client_velocity",
    "guard_error",
    "probe",
)
#: The codes that refuse a send (in ``enforce``) or flag it (in ``monitor``); the others
#: are notes the decision carries while it allows the send: ``network_rate`` (a network that
#: stops delivering looks exactly like a collapse, and a whole network is never blocked) and
#: ``probe`` (see :func:`decide`).
BLOCKING = frozenset(REASON_CODES) - {"network_rate", "probe"}
#: The signals that judge what was sent and converted: a destination refused for these alone
#: is probed (see :func:`decide`).
RATES = frozenset({"prefix_rate", "country_rate"})


@dataclass(frozen=True)
class Decision:
    """What the guard says about one send. ``reasons``: ``(code, sentence)`` pairs."""

    allowed: bool
    action: str  # "allow", "block" or "flag"
    reasons: tuple[tuple[str, str], ...] = ()
    prefix: str = ""
    country: str = ""

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(code for code, _text in self.reasons)

    def __str__(self) -> str:
        why = "; ".join(text for _code, text in self.reasons) or "no signal"
        return f"{self.action} +{self.prefix or '?'} ({self.country or '??'}): {why}"


@dataclass(frozen=True)
class Target:
    """The destination being checked (no number in clear)."""

    prefix: str
    country: str
    number_hash: str
    block_hash: str
    client_hash: str = ""


@dataclass(frozen=True)
class Counts:
    """One destination's sends in the rate window: those old enough to have converted
    (``sent``, ``converted``), all of them (``total``) and those of the last
    ``PROBE_INTERVAL`` (``recent``)."""

    sent: int = 0
    converted: int = 0
    total: int = 0
    recent: int = 0


@dataclass(frozen=True)
class Rule:
    action: str  # "allow" or "block"
    kind: str
    label: str
    note: str = ""


@dataclass(frozen=True)
class Evidence:
    prefix: Counts = Counts()
    country: Counts = Counts()
    network: Counts = Counts()
    site: Counts = Counts()
    network_code: str = ""
    #: Checks in the short windows, before this one.
    prefix_recent: int = 0
    country_recent: int = 0
    #: Checks of the prefix and the country the guard allowed in the short window (sends
    #: the sweeps may not have counted yet).
    prefix_allowed_recent: int = 0
    country_allowed_recent: int = 0
    #: Other numbers of the same block of a hundred, and asked for by the same client.
    block_others: int = 0
    client_others: int = 0
    rule: Rule | None = None
    extra: dict[str, object] = field(default_factory=dict)


def _smoothed(counts: Counts, prior: float, weight: float) -> float:
    return (counts.converted + weight * prior) / (counts.sent + weight)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


def shown(prefix: str) -> str:
    return f"+{prefix}" if prefix else "an unknown prefix"


def _rates(target: Target, ev: Evidence, s: GuardSettings) -> list[tuple[str, str]]:
    found = []
    # The site's own rate, then the country's against it, then the prefix's against the
    # country's: a destination with few sends takes its parent's rate.
    site = _smoothed(ev.site, 0.6, s.smoothing)
    country = _smoothed(ev.country, site, s.smoothing)
    prefix = _smoothed(ev.prefix, country, s.smoothing)
    window = _hours(s.rate_window)
    if ev.prefix.sent >= s.min_sends and prefix < s.min_rate:
        found.append(
            (
                "prefix_rate",
                f"{shown(target.prefix)}: {ev.prefix.converted} of {ev.prefix.sent} converted "
                f"in the last {window}",
            )
        )
    if ev.country.sent >= s.min_sends and country < s.min_rate:
        found.append(
            (
                "country_rate",
                f"{target.country or 'unknown country'}: {ev.country.converted} of "
                f"{ev.country.sent} converted in the last {window}",
            )
        )
    network = _smoothed(ev.network, site, s.smoothing)
    if ev.network_code and ev.network.sent >= s.min_sends and network < s.min_rate:
        found.append(
            (
                "network_rate",
                f"network {ev.network_code}: {ev.network.converted} of {ev.network.sent} "
                f"converted in the last {window} (a warning: a network is never blocked)",
            )
        )
    return found


def _volumes(target: Target, ev: Evidence, s: GuardSettings) -> list[tuple[str, str]]:
    found = []
    usual = ev.prefix.total * s.burst_window / s.rate_window
    limit = max(s.burst_min, s.burst_factor * usual)
    if ev.prefix_recent >= limit:
        found.append(
            (
                "burst",
                f"{shown(target.prefix)}: {ev.prefix_recent} checks in {_hours(s.burst_window)}, "
                f"usually {usual:.1f}",
            )
        )
    # New: nothing sent there old enough to have converted (its first sends, the burst's
    # own, do not make it known; once they are old enough, the rates judge them).
    if ev.country.sent == 0 and ev.country_recent >= s.new_destination_max:
        found.append(
            (
                "new_destination",
                f"{target.country or 'unknown country'}: {ev.country_recent} checks in "
                f"{_hours(s.burst_window)} and no earlier send in the last "
                f"{_hours(s.rate_window)}",
            )
        )
    if ev.block_others >= s.sequential_max:
        found.append(
            (
                "sequential",
                f"{ev.block_others} other numbers of the same hundred in "
                f"{_hours(s.sequential_window)}",
            )
        )
    if target.client_hash and ev.client_others >= s.client_max:
        found.append(
            (
                "client_velocity",
                f"this client asked for {ev.client_others} other numbers in "
                f"{_hours(s.client_window)}",
            )
        )
    return found


def outcome(
    blocking: bool, reasons: list[tuple[str, str]], target: Target, s: GuardSettings
) -> Decision:
    """The decision the mode makes of a verdict: ``monitor`` flags what ``enforce`` blocks."""
    action = ("block" if s.mode == "enforce" else "flag") if blocking else "allow"
    return Decision(
        allowed=action != "block",
        action=action,
        reasons=tuple(reasons),
        prefix=target.prefix,
        country=target.country,
    )


def decide(target: Target, ev: Evidence, s: GuardSettings) -> Decision:
    """The decision for ``target`` given ``ev``: a rule first, then the country lists, then
    the signals."""
    if ev.rule is not None:
        note = f" ({ev.rule.note})" if ev.rule.note else ""
        text = f"{ev.rule.action} rule on {ev.rule.kind} {ev.rule.label}{note}"
        return outcome(ev.rule.action == "block", [("rule", text)], target, s)
    denied = (s.allow_countries and target.country not in s.allow_countries) or (
        target.country in s.deny_countries
    )
    if denied:
        text = f"{target.country or 'unknown country'} is not a country this site sends to"
        return outcome(True, [("country_denied", text)], target, s)
    reasons = _volumes(target, ev, s) + _rates(target, ev, s)
    reasons.sort(key=lambda reason: reason[0] not in BLOCKING)
    blocking = {code for code, _ in reasons if code in BLOCKING}
    if blocking and blocking <= RATES and _may_probe(blocking, ev, s):
        reasons.insert(
            0,
            (
                "probe",
                f"one send to {shown(target.prefix)} let through per "
                f"{_hours(s.probe_interval)} to see whether it converts again",
            ),
        )
        return outcome(False, reasons, target, s)
    return outcome(bool(blocking), reasons, target, s)


def _may_probe(blocking: set[str], ev: Evidence, s: GuardSettings) -> bool:
    """Whether a destination refused for its conversion rate alone gets one send through.

    A refused send cannot convert, so without probes a collapse would outlast what caused it
    by the whole rate window: an attack's unconverted sends would refuse the prefix's real
    users for a day after the attack stopped. One send per ``PROBE_INTERVAL`` to the level
    that collapsed (the prefix; the country for ``country_rate``, so an attack spread over a
    country's prefixes gets one probe, not one per prefix), and only while nothing else was
    sent there in that time (the counts, and the checks allowed since the last fold). An
    attack still under way trips the volume signals, which are never probed; a slow one
    gets one send an interval."""
    if s.probe_interval <= 0:
        return False
    quiet = True
    if "prefix_rate" in blocking:
        quiet = quiet and ev.prefix.recent == 0 and ev.prefix_allowed_recent == 0
    if "country_rate" in blocking:
        quiet = quiet and ev.country.recent == 0 and ev.country_allowed_recent == 0
    return quiet
