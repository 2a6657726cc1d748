"""Every ``NEXMO_CONVERSION`` setting, resolved in one place.

Read them with :func:`get_settings`; the result is cached and rebuilt whenever Django's
``setting_changed`` signal says ``NEXMO_CONVERSION`` changed (``override_settings`` in tests).
Each key has a parser in ``SPECS``; the problems they find are kept on the result, so the
system checks and the ``ImproperlyConfigured`` raised at use time say the same thing, naming
the setting to fix. This module knows no consumer of the settings.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .signing import SIGNATURE_METHODS
from .wire import Account

__all__ = ["Account", "ConversionSettings", "Problem", "build_settings", "get_settings", "setting"]

SETTING_NAME = "NEXMO_CONVERSION"

DISPATCH_MODES = ("background", "on_commit", "celery", "django_tasks", "manual")
RECIPIENT_STORAGE_MODES = ("full", "masked", "none")

DEFAULTS: dict[str, Any] = {
    "API_KEY": None,
    "API_SECRET": None,
    "SIGNATURE_SECRET": None,
    "SIGNATURE_METHOD": "md5hash",
    "BASE_URL": "https://api.nexmo.com",
    "TIMEOUT": 10,
    "MAX_ATTEMPTS": 8,
    "RETRY_BACKOFF": 60,
    "RETRY_BACKOFF_MAX": 21600,
    "DISPATCH": "background",
    "SWEEP_INTERVAL": 30,
    "CONCURRENCY": 8,
    "RATE_LIMIT": 0,
    "BACKEND": "django_nexmo_conversion.backends.http.HttpBackend",
    "NON_CONVERSION_AFTER": None,
    "ACCOUNTS": {},
    # Keyword arguments for Celery's apply_async (e.g. {"queue": "nexmo"}) and for
    # django.tasks' Task.using() (e.g. {"queue_name": "nexmo", "backend": "default"}).
    "CELERY_TASK_OPTIONS": {},
    "DJANGO_TASKS_USING": {},
    # The cache alias RATE_LIMIT is kept in: shared by all workers (Redis), never the database.
    "RATE_LIMIT_CACHE": "default",
    # Recipients' phone numbers are personal data: "full", "masked" (last digits) or "none".
    "RECIPIENT_STORAGE": "full",
    # Tracked links: extra hosts a link may redirect to (besides ALLOWED_HOSTS), default max age.
    "LINK_ALLOWED_HOSTS": [],
    "LINK_MAX_AGE": 30 * 24 * 3600,
    # Inbound webhooks: how long after a send a reply counts, an optional dotted path to a
    # callable deciding per reply, how old a signed webhook may be, and whether a failed
    # delivery receipt reports the message delivered=false at once.
    "REPLY_WINDOW": 24 * 3600,
    "REPLY_FILTER": None,
    "WEBHOOK_MAX_AGE": 300,
    "REPORT_FAILED_RECEIPTS": False,
    # How long a claimed conversion stays with its worker before another may take it over.
    # Not in the public table: it must exceed TIMEOUT, and the default does by a wide margin.
    "LEASE_SECONDS": 300,
    # Insights: the country of numbers recorded in national format, and the low-conversion
    # alert (a rate below ALERT_MIN_RATE on ALERT_MIN_MESSAGES or more in ALERT_WINDOW s).
    "DEFAULT_REGION": None,
    "ALERT_WINDOW": 3600,
    "ALERT_MIN_MESSAGES": 100,
    "ALERT_MIN_RATE": 0.1,
}

#: Environment variables read when a credential is not in the settings dict, in order.
ENV_FALLBACKS = {
    "API_KEY": ("NEXMO_API_KEY", "VONAGE_API_KEY"),
    "API_SECRET": ("NEXMO_API_SECRET", "VONAGE_API_SECRET"),
    "SIGNATURE_SECRET": ("NEXMO_SIGNATURE_SECRET", "VONAGE_SIGNATURE_SECRET"),
}

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


@dataclass(frozen=True)
class ConversionSettings:
    api_key: str | None
    base_url: str
    timeout: float
    max_attempts: int
    retry_backoff: float
    retry_backoff_max: float
    dispatch: str
    sweep_interval: float
    concurrency: int
    rate_limit: float
    backend: str
    non_conversion_after: float | None
    lease_seconds: float
    accounts: Mapping[str, Account]
    default_account: Account | None
    celery_task_options: Mapping[str, Any]
    django_tasks_using: Mapping[str, Any]
    rate_limit_cache: str
    recipient_storage: str
    link_allowed_hosts: tuple[str, ...]
    link_max_age: float | None
    reply_window: float
    reply_filter: str | None
    webhook_max_age: float
    report_failed_receipts: bool
    default_region: str | None
    alert_window: float
    alert_min_messages: int
    alert_min_rate: float
    problems: tuple[Problem, ...]

    def account_for(self, api_key: str | None) -> Account:
        """The credentials to report a message sent with ``api_key`` (default account otherwise)."""
        if api_key and api_key in self.accounts:
            return self.accounts[api_key]
        if self.default_account is None:
            raise ImproperlyConfigured(
                f"No Nexmo credentials: set {setting('API_KEY')} and {setting('API_SECRET')} "
                f"(or {setting('SIGNATURE_SECRET')}), or the NEXMO_API_KEY / NEXMO_API_SECRET "
                "environment variables."
            )
        return self.default_account

    def raise_for_problems(self) -> None:
        errors = [p for p in self.problems if p.is_error]
        if errors:
            raise ImproperlyConfigured(" ".join(p.msg for p in errors))


def _env(key: str) -> str | None:
    for name in ENV_FALLBACKS[key]:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _problem(problems: list[Problem], check_id: str, msg: str, hint: str = "") -> None:
    problems.append(Problem(check_id, msg, hint))


# --- one parser per kind of value: (key, raw value, problems) -> the resolved value -----------

Parser = Callable[[str, Any, list[Problem]], Any]


def number(*, minimum: float, default: float | None, whole: bool = False) -> Parser:
    """A number >= ``minimum``; ``default=None`` means None is allowed (the feature is off)."""

    def parse(key: str, value: Any, problems: list[Problem]) -> float | None:
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            _problem(
                problems,
                "E005",
                f"{setting(key)} must be a number >= {minimum:g}, got {value!r}.",
                "Fix the value in your NEXMO_CONVERSION setting.",
            )
            return default
        if whole and isinstance(value, float):
            _problem(problems, "E005", f"{setting(key)} must be a whole number.")
        return int(value) if whole else float(value)

    return parse


def choice(options: tuple[str, ...], check_id: str) -> Parser:
    def parse(key: str, value: Any, problems: list[Problem]) -> str:
        if value not in options:
            _problem(
                problems, check_id, f"{setting(key)} {value!r} is not one of {', '.join(options)}."
            )
        return str(value)

    return parse


def keyword_arguments(key: str, value: Any, problems: list[Problem]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        _problem(problems, "E010", f"{setting(key)} must be a dict of keyword arguments.")
        return {}
    return dict(value)


def dotted_path(key: str, value: Any, problems: list[Problem]) -> str:
    try:
        import_string(str(value))
    except ImportError as exc:
        _problem(problems, "E007", f"{setting(key)} {value!r} cannot be imported: {exc}.")
    return str(value)


def optional_dotted_path(key: str, value: Any, problems: list[Problem]) -> str | None:
    return None if value is None else dotted_path(key, value, problems)


def host_names(key: str, value: Any, problems: list[Problem]) -> tuple[str, ...]:
    if (
        isinstance(value, str)
        or not isinstance(value, (Iterable, type(None)))
        or not all(isinstance(h, str) for h in value or ())
    ):
        _problem(problems, "E009", f"{setting(key)} must be a list of host names.")
        return ()
    return tuple(value or ())


def base_url(key: str, value: Any, problems: list[Problem]) -> str:
    url = str(value or "").rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _problem(problems, "E002", f"{setting(key)} {url!r} is not an http(s) URL.")
    elif parts.scheme == "http" and not _is_loopback(parts.hostname):
        _problem(
            problems,
            "E002",
            f"{setting(key)} must use https; plain http is allowed only for loopback "
            f"hosts, got {parts.hostname!r}.",
            "Credentials travel in the request body: never send them unencrypted.",
        )
    return url


def region(key: str, value: Any, problems: list[Problem]) -> str | None:
    """An ISO 3166-1 alpha-2 code (upper case) phone numbers can be read in, or None."""
    if value is None:
        return None
    # Imported here: only this parser needs phonenumbers, and conf knows no consumer.
    from .geography import is_region

    code = value.upper() if isinstance(value, str) else value
    if not is_region(code):
        _problem(
            problems,
            "E015",
            f"{setting(key)} {value!r} is not an ISO 3166-1 alpha-2 country code (e.g. 'GB').",
        )
        return None
    return str(code)


def alert_number(*, minimum: float, maximum: float, default: float, whole: bool = False) -> Parser:
    """A number in [minimum, maximum] for an ``ALERT_*`` key (check id E016)."""

    def parse(key: str, value: Any, problems: list[Problem]) -> float:
        wrong_type = isinstance(value, bool) or not isinstance(value, (int, float))
        if wrong_type or not minimum <= value <= maximum or (whole and isinstance(value, float)):
            kind = "a whole number" if whole else "a number"
            _problem(
                problems,
                "E016",
                f"{setting(key)} must be {kind} from {minimum:g} to {maximum:g}, got {value!r}.",
            )
            return int(default) if whole else default
        return int(value) if whole else float(value)

    return parse


def text(key: str, value: Any, problems: list[Problem]) -> str:
    return str(value)


def flag(key: str, value: Any, problems: list[Problem]) -> bool:
    return bool(value)


#: Every key but the credentials (see :func:`_accounts`): its parser, by ``ConversionSettings``
#: field name. The defaults are in ``DEFAULTS``.
SPECS: dict[str, tuple[str, Parser]] = {
    "BASE_URL": ("base_url", base_url),
    "TIMEOUT": ("timeout", number(minimum=0.001, default=10.0)),
    "MAX_ATTEMPTS": ("max_attempts", number(minimum=1, default=8, whole=True)),
    "RETRY_BACKOFF": ("retry_backoff", number(minimum=0, default=60.0)),
    "RETRY_BACKOFF_MAX": ("retry_backoff_max", number(minimum=0, default=21600.0)),
    "DISPATCH": ("dispatch", choice(DISPATCH_MODES, "E004")),
    "SWEEP_INTERVAL": ("sweep_interval", number(minimum=0, default=30.0)),
    "CONCURRENCY": ("concurrency", number(minimum=1, default=8, whole=True)),
    "RATE_LIMIT": ("rate_limit", number(minimum=0, default=0.0)),
    "BACKEND": ("backend", dotted_path),
    "NON_CONVERSION_AFTER": ("non_conversion_after", number(minimum=1, default=None)),
    "CELERY_TASK_OPTIONS": ("celery_task_options", keyword_arguments),
    "DJANGO_TASKS_USING": ("django_tasks_using", keyword_arguments),
    "RATE_LIMIT_CACHE": ("rate_limit_cache", text),
    "RECIPIENT_STORAGE": ("recipient_storage", choice(RECIPIENT_STORAGE_MODES, "E008")),
    "LINK_ALLOWED_HOSTS": ("link_allowed_hosts", host_names),
    "LINK_MAX_AGE": ("link_max_age", number(minimum=1, default=None)),
    "REPLY_WINDOW": ("reply_window", number(minimum=1, default=24 * 3600.0)),
    "REPLY_FILTER": ("reply_filter", optional_dotted_path),
    "WEBHOOK_MAX_AGE": ("webhook_max_age", number(minimum=1, default=300.0)),
    "REPORT_FAILED_RECEIPTS": ("report_failed_receipts", flag),
    "LEASE_SECONDS": ("lease_seconds", number(minimum=1, default=300.0)),
    "DEFAULT_REGION": ("default_region", region),
    "ALERT_WINDOW": ("alert_window", alert_number(minimum=60, maximum=30 * 86400, default=3600)),
    "ALERT_MIN_MESSAGES": (
        "alert_min_messages",
        alert_number(minimum=1, maximum=10**9, default=100, whole=True),
    ),
    "ALERT_MIN_RATE": ("alert_min_rate", alert_number(minimum=0, maximum=1, default=0.1)),
}


def _account(api_key: str, spec: Mapping[str, Any], where: str, problems: list[Problem]) -> Account:
    method = spec.get("SIGNATURE_METHOD") or "md5hash"
    if method not in SIGNATURE_METHODS:
        _problem(
            problems,
            "E003",
            f"{where} SIGNATURE_METHOD {method!r} is not one of {', '.join(SIGNATURE_METHODS)}.",
            "Use the method set for this key in the Vonage dashboard (Settings > API keys).",
        )
        method = "md5hash"
    account = Account(
        api_key=api_key,
        api_secret=spec.get("API_SECRET") or None,
        signature_secret=spec.get("SIGNATURE_SECRET") or None,
        signature_method=method,
    )
    if not account.api_secret and not account.signature_secret:
        _problem(
            problems,
            "E001",
            f"{where} has an API key but neither API_SECRET nor SIGNATURE_SECRET.",
            "Add the secret (or the signature secret) for this key.",
        )
    return account


def _accounts(
    raw: Mapping[str, Any], problems: list[Problem]
) -> tuple[Account | None, dict[str, Account]]:
    """The default account (``API_KEY`` and its secrets) and the ``ACCOUNTS``, by API key."""
    default = None
    if raw["API_KEY"]:
        default = _account(str(raw["API_KEY"]), raw, setting("API_KEY"), problems)
    accounts: dict[str, Account] = {}
    if not isinstance(raw["ACCOUNTS"], Mapping):
        _problem(problems, "E006", f"{setting('ACCOUNTS')} must be a dict of api_key -> dict.")
    else:
        for key, spec in raw["ACCOUNTS"].items():
            where = f"{setting('ACCOUNTS')}[{key!r}]"
            if not isinstance(spec, Mapping):
                _problem(problems, "E006", f"{where} must be a dict of credentials.")
                continue
            accounts[str(key)] = _account(str(key), spec, where, problems)
    if default is None and not accounts:
        _problem(
            problems,
            "E001",
            f"No Nexmo credentials: {setting('API_KEY')} is not set and neither are the "
            "NEXMO_API_KEY / VONAGE_API_KEY environment variables.",
            "Set API_KEY and API_SECRET (or SIGNATURE_SECRET) in NEXMO_CONVERSION, "
            "or export NEXMO_API_KEY and NEXMO_API_SECRET.",
        )
    return default, accounts


def _check_together(values: Mapping[str, Any], problems: list[Problem]) -> None:
    """The rules that tie two keys together."""
    backoff, backoff_max = values["retry_backoff"], values["retry_backoff_max"]
    if backoff_max < backoff:
        _problem(
            problems,
            "E005",
            f"{setting('RETRY_BACKOFF_MAX')} ({backoff_max:g}) is smaller than "
            f"{setting('RETRY_BACKOFF')} ({backoff:g}).",
        )
    lease, timeout = values["lease_seconds"], values["timeout"]
    if lease <= timeout:
        _problem(
            problems,
            "E005",
            f"{setting('LEASE_SECONDS')} ({lease:g}) must be longer than {setting('TIMEOUT')} "
            f"({timeout:g}), or a slow request could be sent again by another worker.",
        )
    cache = values["rate_limit_cache"]
    if values["rate_limit"] and cache not in getattr(django_settings, "CACHES", {"default": None}):
        _problem(problems, "E011", f"{setting('RATE_LIMIT_CACHE')} {cache!r} is not in CACHES.")


def build_settings(user: object) -> ConversionSettings:
    """Resolve the user's dict against the defaults and the environment; never raises."""
    problems: list[Problem] = []
    if user is None:
        user = {}
    if not isinstance(user, Mapping):  # a user's settings file can hold anything
        _problem(problems, "E000", f"{SETTING_NAME} must be a dict, got {type(user).__name__}.")
        user = {}
    unknown = sorted(str(key) for key in set(user) - set(DEFAULTS))
    if unknown:
        _problem(
            problems,
            "W002",
            f"{SETTING_NAME} has unknown key(s): {', '.join(unknown)}.",
            "Check the spelling against the settings reference in the README.",
        )
    raw = {**DEFAULTS, **user}
    for key in ENV_FALLBACKS:
        # Only an absent key falls back to the environment: an explicit None means "none"
        # (a test fixture switching signing off must not be overridden by the shell).
        if key not in user:
            raw[key] = _env(key)
    default_account, accounts = _accounts(raw, problems)
    values = {name: parse(key, raw[key], problems) for key, (name, parse) in SPECS.items()}
    _check_together(values, problems)
    return ConversionSettings(
        api_key=default_account.api_key if default_account else None,
        accounts=accounts,
        default_account=default_account,
        problems=tuple(problems),
        **values,
    )


@lru_cache(maxsize=1)
def get_settings() -> ConversionSettings:
    """The resolved settings (cached; rebuilt when the Django setting changes)."""
    return build_settings(getattr(django_settings, SETTING_NAME, None))


@receiver(setting_changed)
def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        get_settings.cache_clear()
