"""Every ``NEXMO_CONVERSION`` setting, resolved in one place.

Read them with :func:`get_settings`; the result is cached and rebuilt whenever Django's
``setting_changed`` signal says ``NEXMO_CONVERSION`` changed (``override_settings`` in tests).
Each key has a parser in ``SPECS``; the problems they find are kept on the result, so the
system checks and the ``ImproperlyConfigured`` raised at use time say the same thing, naming
the setting to fix. This module knows no consumer of the settings.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from ..transport.signing import SIGNATURE_METHODS
from ..transport.wire import AUTH_MODES, Account
from .engines import missing_engine
from .guard import GuardSettings, guard_settings
from .values import (
    SETTING_NAME,
    Parser,
    Problem,
    Thresholds,
    add_problem,
    alert_number,
    base_url,
    ca_bundle,
    choice,
    dotted_path,
    flag,
    host_names,
    keyword_arguments,
    number,
    optional_dotted_path,
    proxies,
    region,
    setting,
    text,
    thresholds,
)

__all__ = [
    "DEFAULTS",
    "SETTING_NAME",
    "Account",
    "ConversionSettings",
    "Problem",
    "Thresholds",
    "build_settings",
    "get_settings",
    "setting",
]

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
    # How API_SECRET travels ("basic", as every maintained Vonage SDK sends it since early
    # 2026, or "params"), and the network: proxies and CA bundle
    # (None: the standard environment, as any requests client reads it).
    "AUTH": "basic",
    "PROXIES": None,
    "VERIFY": None,
    # conversion_status, the health check: (warning, critical) thresholds, None = that level off.
    # Seconds the oldest due conversion has waited: Nexmo weighs routes on the last quarter hour.
    "STATUS_OLDEST_DUE": (300, 900),
    # Leases run out only when a worker died (or was slower than LEASE_SECONDS).
    "STATUS_EXPIRED_LEASES": (1, None),
    # Attempts in the last hour that did not report (rejected or transient).
    "STATUS_FAILURES": (10, 100),
    # Insights: the country of numbers recorded in national format, and the low-conversion
    # alert (a rate below ALERT_MIN_RATE on ALERT_MIN_MESSAGES or more in ALERT_WINDOW s).
    "DEFAULT_REGION": None,
    "ALERT_WINDOW": 3600,
    "ALERT_MIN_MESSAGES": 100,
    "ALERT_MIN_RATE": 0.1,
    # The send guard (``guard``): mode, fail mode and thresholds (``conf.guard``).
    "GUARD": {},
}

#: Environment variables read when a credential is not in the settings dict, in order.
ENV_FALLBACKS = {
    "API_KEY": ("NEXMO_API_KEY", "VONAGE_API_KEY"),
    "API_SECRET": ("NEXMO_API_SECRET", "VONAGE_API_SECRET"),
    "SIGNATURE_SECRET": ("NEXMO_SIGNATURE_SECRET", "VONAGE_SIGNATURE_SECRET"),
}

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def did_you_mean(key: str) -> str:
    """``key``, followed by the known key it most likely misspells, if one is close."""
    # Compared upper-cased: "api_key" is a typo of "API_KEY" as much as "API_KY" is.
    known = {name.upper(): name for name in DEFAULTS}
    close = difflib.get_close_matches(key.upper(), known, n=1, cutoff=0.75)
    return f"{key} (did you mean {known[close[0]]}?)" if close else key


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
    status_oldest_due: Thresholds
    status_expired_leases: Thresholds
    status_failures: Thresholds
    default_region: str | None
    alert_window: float
    alert_min_messages: int
    alert_min_rate: float
    problems: tuple[Problem, ...]
    auth: str = "basic"
    proxies: Mapping[str, str | None] | None = None
    verify: bool | str | None = None
    guard: GuardSettings = field(default_factory=GuardSettings)

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


SPECS: dict[str, tuple[str, Parser]] = {
    "BASE_URL": ("base_url", base_url(DEFAULTS["BASE_URL"])),
    "TIMEOUT": ("timeout", number(minimum=0.001, default=10.0)),
    "MAX_ATTEMPTS": ("max_attempts", number(minimum=1, default=8, whole=True)),
    "RETRY_BACKOFF": ("retry_backoff", number(minimum=0, default=60.0)),
    "RETRY_BACKOFF_MAX": ("retry_backoff_max", number(minimum=0, default=21600.0)),
    "DISPATCH": ("dispatch", choice(DISPATCH_MODES, "E004", DEFAULTS["DISPATCH"])),
    "SWEEP_INTERVAL": ("sweep_interval", number(minimum=0, default=30.0)),
    "CONCURRENCY": ("concurrency", number(minimum=1, default=8, whole=True)),
    "RATE_LIMIT": ("rate_limit", number(minimum=0, default=0.0)),
    "BACKEND": ("backend", dotted_path),
    "NON_CONVERSION_AFTER": ("non_conversion_after", number(minimum=1, default=None)),
    "CELERY_TASK_OPTIONS": ("celery_task_options", keyword_arguments),
    "DJANGO_TASKS_USING": ("django_tasks_using", keyword_arguments),
    "RATE_LIMIT_CACHE": ("rate_limit_cache", text),
    "RECIPIENT_STORAGE": (
        "recipient_storage",
        choice(RECIPIENT_STORAGE_MODES, "E008", DEFAULTS["RECIPIENT_STORAGE"]),
    ),
    "LINK_ALLOWED_HOSTS": ("link_allowed_hosts", host_names),
    "LINK_MAX_AGE": ("link_max_age", number(minimum=1, default=None)),
    "REPLY_WINDOW": ("reply_window", number(minimum=1, default=24 * 3600.0)),
    "REPLY_FILTER": ("reply_filter", optional_dotted_path),
    "WEBHOOK_MAX_AGE": ("webhook_max_age", number(minimum=1, default=300.0)),
    "REPORT_FAILED_RECEIPTS": ("report_failed_receipts", flag),
    "LEASE_SECONDS": ("lease_seconds", number(minimum=1, default=300.0)),
    "AUTH": ("auth", choice(AUTH_MODES, "E012", DEFAULTS["AUTH"])),
    "PROXIES": ("proxies", proxies),
    "VERIFY": ("verify", ca_bundle),
    "STATUS_OLDEST_DUE": ("status_oldest_due", thresholds(DEFAULTS["STATUS_OLDEST_DUE"])),
    "STATUS_EXPIRED_LEASES": (
        "status_expired_leases",
        thresholds(DEFAULTS["STATUS_EXPIRED_LEASES"]),
    ),
    "STATUS_FAILURES": ("status_failures", thresholds(DEFAULTS["STATUS_FAILURES"])),
    "DEFAULT_REGION": ("default_region", region),
    "ALERT_WINDOW": ("alert_window", alert_number(minimum=60, maximum=30 * 86400, default=3600)),
    "ALERT_MIN_MESSAGES": (
        "alert_min_messages",
        alert_number(minimum=1, maximum=10**9, default=100, whole=True),
    ),
    "ALERT_MIN_RATE": ("alert_min_rate", alert_number(minimum=0, maximum=1, default=0.1)),
    "GUARD": ("guard", guard_settings),
}


def _account(
    api_key: str, spec: Mapping[str, Any], where: str, problems: list[Problem], auth: str
) -> Account:
    method = spec.get("SIGNATURE_METHOD") or "md5hash"
    auth = spec.get("AUTH") or auth
    if auth not in AUTH_MODES:
        add_problem(
            problems,
            "E012",
            f"{where}['AUTH'] is {auth!r}, not one of {', '.join(AUTH_MODES)}.",
            "basic sends the secret in an Authorization header (the default), params in the "
            "form body.",
        )
        auth = DEFAULTS["AUTH"]
    # The dashboard shows the methods in capitals (MD5HASH, SHA256): accept any case.
    method = method.lower() if isinstance(method, str) else method
    if method not in SIGNATURE_METHODS:
        add_problem(
            problems,
            "E003",
            f"{where}['SIGNATURE_METHOD'] is {spec.get('SIGNATURE_METHOD')!r}, which is not a "
            f"signature method; the methods are {', '.join(SIGNATURE_METHODS)}.",
            "Use the method set for this key in the Vonage dashboard (Settings > API keys).",
        )
        method = "md5hash"
    account = Account(
        api_key=api_key,
        api_secret=spec.get("API_SECRET") or None,
        signature_secret=spec.get("SIGNATURE_SECRET") or None,
        signature_method=method,
        auth=auth,
    )
    if not account.api_secret and not account.signature_secret:
        add_problem(
            problems,
            "E001",
            f"{where} has an API key but neither API_SECRET nor SIGNATURE_SECRET "
            "(an empty value counts as none).",
            "Add the secret (or the signature secret) for this key.",
        )
    return account


ACCOUNTS_HINT = 'For example {"abcd1234": {"API_SECRET": "...", "SIGNATURE_METHOD": "sha256"}}.'


def _accounts(
    raw: Mapping[str, Any], problems: list[Problem]
) -> tuple[Account | None, dict[str, Account]]:
    """The default account (``API_KEY`` and its secrets) and the ``ACCOUNTS``, by API key."""
    default = None
    # The top-level AUTH is checked with the other keys (E012 once); here it is the default.
    auth = raw["AUTH"] if raw["AUTH"] in AUTH_MODES else DEFAULTS["AUTH"]
    if raw["API_KEY"]:
        default = _account(str(raw["API_KEY"]), {**raw, "AUTH": auth}, SETTING_NAME, problems, auth)
    accounts: dict[str, Account] = {}
    if not isinstance(raw["ACCOUNTS"], Mapping):
        add_problem(
            problems,
            "E006",
            f"{setting('ACCOUNTS')} must be a dict of api_key -> dict.",
            ACCOUNTS_HINT,
        )
    else:
        for key, spec in raw["ACCOUNTS"].items():
            where = f"{setting('ACCOUNTS')}[{key!r}]"
            if not isinstance(spec, Mapping):
                add_problem(
                    problems, "E006", f"{where} must be a dict of credentials.", ACCOUNTS_HINT
                )
                continue
            accounts[str(key)] = _account(str(key), spec, where, problems, auth)
    if default is None and not accounts:
        add_problem(
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
        add_problem(
            problems,
            "E005",
            f"{setting('RETRY_BACKOFF_MAX')} ({backoff_max:g}) is smaller than "
            f"{setting('RETRY_BACKOFF')} ({backoff:g}).",
            "RETRY_BACKOFF is the first delay and RETRY_BACKOFF_MAX the cap: raise the cap.",
        )
    lease, timeout = values["lease_seconds"], values["timeout"]
    if lease <= timeout:
        add_problem(
            problems,
            "E005",
            f"{setting('LEASE_SECONDS')} ({lease:g}) must be longer than {setting('TIMEOUT')} "
            f"({timeout:g}), or a slow request could be sent again by another worker.",
            "Raise LEASE_SECONDS (default 300) or lower TIMEOUT.",
        )
    cache = values["rate_limit_cache"]
    if values["rate_limit"] and cache not in getattr(django_settings, "CACHES", {"default": None}):
        add_problem(
            problems,
            "E011",
            f"{setting('RATE_LIMIT_CACHE')} {cache!r} is not in CACHES.",
            "Name a cache alias from CACHES that all workers share (Redis, Memcached).",
        )


def _check_dispatch_engine(dispatch: str, problems: list[Problem]) -> None:
    """E018: a queue dispatch whose engine is not installed would fail on every mark."""
    missing = missing_engine(dispatch)
    if missing:
        modules, install = missing
        add_problem(
            problems,
            "E018",
            f"{setting('DISPATCH')} is {dispatch!r}, but {' or '.join(modules)} cannot be "
            "imported: no conversion would be reported after its commit.",
            f"{install}; or use the default DISPATCH 'background'.",
        )


def build_settings(user: object) -> ConversionSettings:
    """Resolve the user's dict against the defaults and the environment; never raises."""
    problems: list[Problem] = []
    if user is None:
        user = {}
    if not isinstance(user, Mapping):  # a user's settings file can hold anything
        hint = 'Write it as a dict: NEXMO_CONVERSION = {"API_KEY": ..., "API_SECRET": ...}.'
        message = f"{SETTING_NAME} must be a dict, got {type(user).__name__}."
        add_problem(problems, "E000", message, hint)
        user = {}
    unknown = sorted(str(key) for key in set(user) - set(DEFAULTS))
    if unknown:
        add_problem(
            problems,
            "W002",
            f"{SETTING_NAME} has unknown key(s): {', '.join(map(did_you_mean, unknown))}.",
            "Check the spelling against the settings reference in the docs; an unknown key "
            "is ignored, so its value has no effect.",
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
    _check_dispatch_engine(values["dispatch"], problems)
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
