"""How each kind of ``NEXMO_CONVERSION`` value is read and checked: one parser per kind (a
number, a choice, a dotted path, proxies, ...), each turning a raw value into the resolved one
and noting a :class:`Problem` (a check id and a message naming the setting) when it is wrong.
``conf`` declares which key uses which parser."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.utils.module_loading import import_string

SETTING_NAME = "NEXMO_CONVERSION"

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def setting(key: str) -> str:
    """The user-facing name of a key, for error messages: ``NEXMO_CONVERSION['KEY']``."""
    return f"{SETTING_NAME}[{key!r}]"


@dataclass(frozen=True)
class Problem:
    """One misconfiguration: ``id`` is the stable check id suffix, e.g. ``E001``."""

    id: str
    msg: str
    hint: str = ""

    @property
    def is_error(self) -> bool:
        return self.id.startswith("E")


#: A (warning, critical) pair for ``conversion_status``; None switches that level off.
Thresholds = tuple[float | None, float | None]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine: 127.0.0.0/8, ::1, localhost."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_problem(problems: list[Problem], check_id: str, msg: str, hint: str = "") -> None:
    problems.append(Problem(check_id, msg, hint))


# --- one parser per kind of value: (key, raw value, problems) -> the resolved value -----------

Parser = Callable[[str, Any, list[Problem]], Any]


def number(*, minimum: float, default: float | None, whole: bool = False) -> Parser:
    """A number >= ``minimum``; ``default=None`` means None is allowed (the feature is off)."""

    def parse(key: str, value: Any, problems: list[Problem]) -> float | None:
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            add_problem(
                problems,
                "E005",
                f"{setting(key)} must be a number >= {minimum:g}, got {value!r}.",
                "Fix the value in your NEXMO_CONVERSION setting.",
            )
            return default
        if whole and isinstance(value, float):
            add_problem(
                problems,
                "E005",
                f"{setting(key)} must be a whole number, got {value!r}.",
                f"Use {int(value)} or {int(value) + 1}.",
            )
        return int(value) if whole else float(value)

    return parse


def choice(options: tuple[str, ...], check_id: str, default: str) -> Parser:
    def parse(key: str, value: Any, problems: list[Problem]) -> str:
        if value not in options:
            add_problem(
                problems,
                check_id,
                f"{setting(key)} {value!r} is not one of {', '.join(options)}.",
                f"Pick one of these, or remove the key for the default {default!r}.",
            )
        return str(value)

    return parse


def keyword_arguments(key: str, value: Any, problems: list[Problem]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        add_problem(
            problems,
            "E010",
            f"{setting(key)} must be a dict of keyword arguments, got {type(value).__name__}.",
            'For example {"queue": "nexmo"} for Celery, {"queue_name": "nexmo"} for django.tasks.',
        )
        return {}
    return dict(value)


def dotted_path(key: str, value: Any, problems: list[Problem]) -> str:
    try:
        import_string(str(value))
    except ImportError as exc:
        add_problem(
            problems,
            "E007",
            f"{setting(key)} {value!r} cannot be imported: {exc}.",
            "Give the full dotted path (package.module.Name) of something on the Python path.",
        )
    return str(value)


def optional_dotted_path(key: str, value: Any, problems: list[Problem]) -> str | None:
    return None if value is None else dotted_path(key, value, problems)


def host_names(key: str, value: Any, problems: list[Problem]) -> tuple[str, ...]:
    if (
        isinstance(value, str)
        or not isinstance(value, (Iterable, type(None)))
        or not all(isinstance(h, str) for h in value or ())
    ):
        add_problem(
            problems,
            "E009",
            f"{setting(key)} must be a list of host names.",
            'For example ["www.example.com", "example.com"]; a single string is not a list.',
        )
        return ()
    return tuple(value or ())


def base_url(default: str) -> Parser:
    """An http(s) URL of a host, with no path: https, or http for a loopback host."""

    def parse(key: str, value: Any, problems: list[Problem]) -> str:
        url = str(value or "").rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            add_problem(
                problems,
                "E002",
                f"{setting(key)} {url!r} is not an http(s) URL.",
                f"Remove the key for the default {default!r}.",
            )
        elif parts.scheme == "http" and not is_loopback(parts.hostname):
            add_problem(
                problems,
                "E002",
                f"{setting(key)} must use https; plain http is allowed only for loopback "
                f"hosts, got {parts.hostname!r}.",
                "Credentials travel in the request body: never send them unencrypted.",
            )
        elif parts.path or parts.query or parts.fragment:
            # The client appends /conversions/<channel>: a path here (often the endpoint pasted
            # from the API reference) makes every report a 404. Shown without user:password@.
            host = parts.netloc.rpartition("@")[2]
            shown = url.replace(parts.netloc, host, 1)
            add_problem(
                problems,
                "W006",
                f"{setting(key)} {shown!r} has a path, query or fragment; every report would go to "
                f"{shown}/conversions/sms (or /voice), which the API does not serve.",
                f"Give the scheme and host only, e.g. {parts.scheme}://{host}.",
            )
        return url

    return parse


def text(key: str, value: Any, problems: list[Problem]) -> str:
    return str(value)


def flag(key: str, value: Any, problems: list[Problem]) -> bool:
    return bool(value)


def proxies(key: str, value: Any, problems: list[Problem]) -> dict[str, str | None] | None:
    """None (the environment) or a dict like requests' ``proxies``: scheme (or
    ``scheme://host``) -> proxy URL. Values are never echoed: a proxy URL may hold a password."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        add_problem(
            problems,
            "E013",
            f"{setting(key)} must be None (use the environment) or a dict like requests' "
            "proxies, e.g. {'https': 'http://proxy.example:3128'}; "
            f"got a {type(value).__name__}.",
            "None uses HTTPS_PROXY / HTTP_PROXY / NO_PROXY; {} means no proxy at all.",
        )
        return None
    resolved: dict[str, str | None] = {}
    for scheme, url in value.items():
        parts = urlsplit(url) if isinstance(url, str) else None
        if not isinstance(scheme, str) or (
            url is not None and (parts is None or not parts.scheme or not parts.hostname)
        ):
            add_problem(
                problems,
                "E013",
                f"{setting(key)}[{scheme!r}] must be a proxy URL such as "
                "'http://proxy.example:3128' (or None).",
                "The value is not shown: a proxy URL may contain a password.",
            )
            continue
        resolved[scheme] = url
    return resolved


def ca_bundle(key: str, value: Any, problems: list[Problem]) -> bool | str | None:
    """None (the environment), a bool, or the path of a CA bundle file or directory."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (str, os.PathLike)) and os.path.exists(value):
        return os.fspath(value)
    add_problem(
        problems,
        "E014",
        f"{setting(key)} must be None, True, False or the path of an existing CA bundle; "
        f"got {value!r}.",
        "None reads REQUESTS_CA_BUNDLE / SSL_CERT_FILE from the environment.",
    )
    return None


def thresholds(default: Thresholds) -> Parser:
    """A (warning, critical) pair of numbers >= 0 or None (that level off)."""

    def parse(key: str, value: Any, problems: list[Problem]) -> Thresholds:
        def level(bound: Any) -> bool:
            return bound is None or (
                isinstance(bound, (int, float)) and not isinstance(bound, bool) and bound >= 0
            )

        if (
            isinstance(value, (str, bytes))
            or not isinstance(value, (list, tuple))
            or len(value) != 2
            or not all(level(bound) for bound in value)
        ):
            add_problem(
                problems,
                "E017",
                f"{setting(key)} must be a (warning, critical) pair of numbers >= 0 or None, "
                f"got {value!r}.",
            )
            return default
        warning, critical = value
        if warning is not None and critical is not None and warning > critical:
            add_problem(
                problems,
                "E017",
                f"{setting(key)}: the warning threshold ({warning:g}) is above the critical one "
                f"({critical:g}).",
                "A warning comes first: give it the smaller value.",
            )
        return (warning, critical)

    return parse


#: Every key but the credentials (see :func:`_accounts`): its parser, by ``ConversionSettings``
#: field name. The defaults are in ``DEFAULTS``.


def region(key: str, value: Any, problems: list[Problem]) -> str | None:
    """An ISO 3166-1 alpha-2 code (upper case) phone numbers can be read in, or None."""
    if value is None:
        return None
    # Imported here: only this parser needs phonenumbers.
    from ..geography import is_region

    code = value.upper() if isinstance(value, str) else value
    if not is_region(code):
        add_problem(
            problems,
            "E015",
            f"{setting(key)} {value!r} is not an ISO 3166-1 alpha-2 country code (e.g. 'GB').",
            "The country your users' numbers are written for when they lack a +prefix; "
            "None if they always carry one.",
        )
        return None
    return str(code)


def alert_number(*, minimum: float, maximum: float, default: float, whole: bool = False) -> Parser:
    """A number in [minimum, maximum] for an ``ALERT_*`` key (check id E016)."""

    def parse(key: str, value: Any, problems: list[Problem]) -> float:
        wrong_type = isinstance(value, bool) or not isinstance(value, (int, float))
        if wrong_type or not minimum <= value <= maximum or (whole and isinstance(value, float)):
            kind = "a whole number" if whole else "a number"
            add_problem(
                problems,
                "E016",
                f"{setting(key)} must be {kind} from {minimum:g} to {maximum:g}, got {value!r}.",
                f"Remove the key for the default {default:g}.",
            )
            return int(default) if whole else default
        return int(value) if whole else float(value)

    return parse
