"""The ``GUARD`` setting: the send guard's mode and thresholds (``guard``), read once here.

``GUARD`` is a dict; an unknown key, a wrong type or a value out of range is a problem
naming the setting (``NEXMO_CONVERSION['GUARD']['MIN_RATE']``), and the default is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .values import Problem, add_problem, setting

__all__ = ["GUARD_DEFAULTS", "GuardSettings", "guard_settings"]

GUARD_MODES = ("off", "monitor", "enforce")
FAIL_MODES = ("open", "closed")

#: Every key of ``GUARD`` and its default. Times are seconds.
GUARD_DEFAULTS: dict[str, Any] = {
    "MODE": "off",
    "FAIL": "open",
    "PREFIX_DIGITS": 5,
    # Conversion collapse: sends older than CONVERSION_WAIT, in the last RATE_WINDOW.
    "CONVERSION_WAIT": 300,
    "RATE_WINDOW": 24 * 3600,
    "MIN_RATE": 0.2,
    "MIN_SENDS": 10,
    "SMOOTHING": 5,
    # A destination refused for its rate alone lets one send through per PROBE_INTERVAL (0:
    # never), to learn whether it converts again.
    "PROBE_INTERVAL": 3600,
    # Bursts: checks for one prefix in BURST_WINDOW above max(BURST_MIN, BURST_FACTOR x its
    # usual volume); a country with no sends in RATE_WINDOW gets NEW_DESTINATION_MAX.
    "BURST_WINDOW": 600,
    "BURST_MIN": 15,
    "BURST_FACTOR": 5,
    "NEW_DESTINATION_MAX": 5,
    # Other numbers of the same block of a hundred in SEQUENTIAL_WINDOW.
    "SEQUENTIAL_WINDOW": 600,
    "SEQUENTIAL_MAX": 3,
    # Other numbers asked for by one client in CLIENT_WINDOW.
    "CLIENT_WINDOW": 600,
    "CLIENT_MAX": 5,
    "ALLOW_COUNTRIES": [],
    "DENY_COUNTRIES": [],
}

#: (minimum, maximum, whole) per numeric key.
_NUMBERS: dict[str, tuple[float, float, bool]] = {
    "PREFIX_DIGITS": (1, 8, True),
    "CONVERSION_WAIT": (0, 7 * 86400, False),
    "RATE_WINDOW": (3600, 30 * 86400, False),
    "MIN_RATE": (0, 1, False),
    "MIN_SENDS": (1, 10**6, True),
    "SMOOTHING": (0, 10**6, False),
    "PROBE_INTERVAL": (0, 30 * 86400, False),
    "BURST_WINDOW": (60, 86400, False),
    "BURST_MIN": (1, 10**6, True),
    "BURST_FACTOR": (1, 10**6, False),
    "NEW_DESTINATION_MAX": (1, 10**6, True),
    "SEQUENTIAL_WINDOW": (60, 86400, False),
    "SEQUENTIAL_MAX": (1, 10**6, True),
    "CLIENT_WINDOW": (60, 86400, False),
    "CLIENT_MAX": (1, 10**6, True),
}


@dataclass(frozen=True)
class GuardSettings:
    mode: str = "off"
    fail: str = "open"
    prefix_digits: int = 5
    conversion_wait: float = 300
    rate_window: float = 24 * 3600
    min_rate: float = 0.2
    min_sends: int = 10
    smoothing: float = 5
    probe_interval: float = 3600
    burst_window: float = 600
    burst_min: int = 15
    burst_factor: float = 5
    new_destination_max: int = 5
    sequential_window: float = 600
    sequential_max: int = 3
    client_window: float = 600
    client_max: int = 5
    allow_countries: frozenset[str] = frozenset()
    deny_countries: frozenset[str] = frozenset()

    @property
    def on(self) -> bool:
        return self.mode != "off"

    @property
    def longest_window(self) -> float:
        return max(self.burst_window, self.sequential_window, self.client_window)


def _where(key: str) -> str:
    return f"{setting('GUARD')}[{key!r}]"


def _countries(key: str, value: Any, problems: list[Problem]) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        add_problem(
            problems,
            "E019",
            f"{_where(key)} must be a list of ISO 3166 country codes, got {value!r}.",
            'For example ["GB", "FR"].',
        )
        return frozenset()
    codes = set()
    for code in value:
        if not isinstance(code, str) or len(code) != 2 or not code.isalpha():
            add_problem(
                problems,
                "E019",
                f"{_where(key)} holds {code!r}, which is not a two-letter country code.",
                'Write countries as ISO 3166-1 alpha-2 codes: "GB", "NG".',
            )
            continue
        codes.add(code.upper())
    return frozenset(codes)


def guard_settings(key: str, value: Any, problems: list[Problem]) -> GuardSettings:
    """The ``SPECS`` parser of ``GUARD``."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        add_problem(
            problems,
            "E019",
            f"{setting(key)} must be a dict, got {type(value).__name__}.",
            'For example {"MODE": "monitor"}.',
        )
        return GuardSettings()
    unknown = sorted(str(k) for k in set(value) - set(GUARD_DEFAULTS))
    if unknown:
        add_problem(
            problems,
            "E019",
            f"{setting(key)} has unknown key(s): {', '.join(unknown)}.",
            f"The keys are {', '.join(GUARD_DEFAULTS)}.",
        )
    raw = {**GUARD_DEFAULTS, **value}
    resolved: dict[str, Any] = {}
    for name, choices in (("MODE", GUARD_MODES), ("FAIL", FAIL_MODES)):
        if raw[name] in choices:
            resolved[name.lower()] = raw[name]
        else:
            add_problem(
                problems,
                "E019",
                f"{_where(name)} is {raw[name]!r}, not one of {', '.join(choices)}.",
            )
    for name, (low, high, whole) in _NUMBERS.items():
        number = raw[name]
        ok = not isinstance(number, bool) and isinstance(number, (int, float))
        ok = ok and low <= number <= high and (not whole or isinstance(number, int))
        if ok:
            resolved[name.lower()] = number
        else:
            kind = "a whole number" if whole else "a number"
            add_problem(
                problems,
                "E019",
                f"{_where(name)} must be {kind} from {low:g} to {high:g}, got {number!r}.",
            )
    resolved["allow_countries"] = _countries("ALLOW_COUNTRIES", raw["ALLOW_COUNTRIES"], problems)
    resolved["deny_countries"] = _countries("DENY_COUNTRIES", raw["DENY_COUNTRIES"], problems)
    known = {f.name for f in fields(GuardSettings)}
    return GuardSettings(**{k: v for k, v in resolved.items() if k in known})
