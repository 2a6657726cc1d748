"""Every ``NEXMO_CONVERSION`` setting, resolved in one place.

Read them with :func:`get_settings`; the result is cached and rebuilt whenever Django's
``setting_changed`` signal says ``NEXMO_CONVERSION`` changed (``override_settings`` in tests).
Problems are collected by :func:`find_problems` so the system checks and the
``ImproperlyConfigured`` raised at use time say the same thing, naming the setting to fix.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .signing import SIGNATURE_METHODS

SETTING_NAME = "NEXMO_CONVERSION"

DISPATCH_MODES = ("on_commit", "celery", "django_tasks", "manual")
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
    "DISPATCH": "on_commit",
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
class Account:
    """Credentials for one API key. The repr never shows a secret."""

    api_key: str
    api_secret: str | None = field(default=None, repr=False)
    signature_secret: str | None = field(default=None, repr=False)
    signature_method: str = "md5hash"

    @property
    def signed(self) -> bool:
        return bool(self.signature_secret)

    def __repr__(self) -> str:
        auth = f"signed ({self.signature_method})" if self.signed else "key+secret"
        return f"Account(api_key={self.api_key!r}, {auth})"


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


def _number(
    raw: Mapping[str, Any], key: str, problems: list[Problem], *, minimum: float, allow_none: bool
) -> float | None:
    value = raw[key]
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        problems.append(
            Problem(
                "E005",
                f"{setting(key)} must be a number >= {minimum:g}, got {value!r}.",
                "Fix the value in your NEXMO_CONVERSION setting.",
            )
        )
        return None
    return float(value)


def _account(api_key: str, spec: Mapping[str, Any], where: str, problems: list[Problem]) -> Account:
    method = spec.get("SIGNATURE_METHOD") or "md5hash"
    if method not in SIGNATURE_METHODS:
        problems.append(
            Problem(
                "E003",
                f"{where} SIGNATURE_METHOD {method!r} is not one of "
                f"{', '.join(SIGNATURE_METHODS)}.",
                "Use the method set for this key in the Vonage dashboard (Settings > API keys).",
            )
        )
        method = "md5hash"
    account = Account(
        api_key=api_key,
        api_secret=spec.get("API_SECRET") or None,
        signature_secret=spec.get("SIGNATURE_SECRET") or None,
        signature_method=method,
    )
    if not account.api_secret and not account.signature_secret:
        problems.append(
            Problem(
                "E001",
                f"{where} has an API key but neither API_SECRET nor SIGNATURE_SECRET.",
                "Add the secret (or the signature secret) for this key.",
            )
        )
    return account


def build_settings(user: object) -> ConversionSettings:
    """Resolve the user's dict against the defaults and the environment; never raises."""
    problems: list[Problem] = []
    if user is None:
        user = {}
    if not isinstance(user, Mapping):  # a user's settings file can hold anything
        problems.append(
            Problem("E000", f"{SETTING_NAME} must be a dict, got {type(user).__name__}.")
        )
        user = {}
    unknown = sorted(str(key) for key in set(user) - set(DEFAULTS))
    if unknown:
        problems.append(
            Problem(
                "W002",
                f"{SETTING_NAME} has unknown key(s): {', '.join(unknown)}.",
                "Check the spelling against the settings reference in the README.",
            )
        )
    raw = {**DEFAULTS, **user}
    for key in ENV_FALLBACKS:
        # Only an absent key falls back to the environment: an explicit None means "none"
        # (a test fixture switching signing off must not be overridden by the shell).
        if key not in user:
            raw[key] = _env(key)

    default_account: Account | None = None
    if raw["API_KEY"]:
        default_account = _account(
            str(raw["API_KEY"]),
            raw,
            f"{setting('API_KEY')}",
            problems,
        )
    accounts: dict[str, Account] = {}
    if not isinstance(raw["ACCOUNTS"], Mapping):
        problems.append(
            Problem("E006", f"{setting('ACCOUNTS')} must be a dict of api_key -> dict.")
        )
    else:
        for key, spec in raw["ACCOUNTS"].items():
            if not isinstance(spec, Mapping):
                problems.append(
                    Problem(
                        "E006", f"{setting('ACCOUNTS')}[{key!r}] must be a dict of credentials."
                    )
                )
                continue
            accounts[str(key)] = _account(
                str(key), spec, f"{setting('ACCOUNTS')}[{key!r}]", problems
            )
    if default_account is None and not accounts:
        problems.append(
            Problem(
                "E001",
                f"No Nexmo credentials: {setting('API_KEY')} is not set and neither are the "
                "NEXMO_API_KEY / VONAGE_API_KEY environment variables.",
                "Set API_KEY and API_SECRET (or SIGNATURE_SECRET) in NEXMO_CONVERSION, "
                "or export NEXMO_API_KEY and NEXMO_API_SECRET.",
            )
        )

    base_url = str(raw["BASE_URL"] or "").rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(
            Problem("E002", f"{setting('BASE_URL')} {base_url!r} is not an http(s) URL.")
        )
    elif parts.scheme == "http" and not _is_loopback(parts.hostname):
        problems.append(
            Problem(
                "E002",
                f"{setting('BASE_URL')} must use https; plain http is allowed only for loopback "
                f"hosts, got {parts.hostname!r}.",
                "Credentials travel in the request body: never send them unencrypted.",
            )
        )

    dispatch = raw["DISPATCH"]
    if dispatch not in DISPATCH_MODES:
        problems.append(
            Problem(
                "E004",
                f"{setting('DISPATCH')} {dispatch!r} is not one of {', '.join(DISPATCH_MODES)}.",
            )
        )

    backend = str(raw["BACKEND"])
    try:
        import_string(backend)
    except ImportError as exc:
        problems.append(
            Problem("E007", f"{setting('BACKEND')} {backend!r} cannot be imported: {exc}.")
        )

    timeout = _number(raw, "TIMEOUT", problems, minimum=0.001, allow_none=False) or 10.0
    max_attempts = _number(raw, "MAX_ATTEMPTS", problems, minimum=1, allow_none=False) or 8
    backoff = _number(raw, "RETRY_BACKOFF", problems, minimum=0, allow_none=False)
    backoff_max = _number(raw, "RETRY_BACKOFF_MAX", problems, minimum=0, allow_none=False)
    concurrency = _number(raw, "CONCURRENCY", problems, minimum=1, allow_none=False) or 8
    rate_limit = _number(raw, "RATE_LIMIT", problems, minimum=0, allow_none=False) or 0.0
    non_conv = _number(raw, "NON_CONVERSION_AFTER", problems, minimum=1, allow_none=True)
    lease = _number(raw, "LEASE_SECONDS", problems, minimum=1, allow_none=False) or 300.0
    if backoff is None:
        backoff = 60.0
    if backoff_max is None:
        backoff_max = 21600.0
    if backoff_max < backoff:
        problems.append(
            Problem(
                "E005",
                f"{setting('RETRY_BACKOFF_MAX')} ({backoff_max:g}) is smaller than "
                f"{setting('RETRY_BACKOFF')} ({backoff:g}).",
            )
        )
    if lease <= timeout:
        problems.append(
            Problem(
                "E005",
                f"{setting('LEASE_SECONDS')} ({lease:g}) must be longer than {setting('TIMEOUT')} "
                f"({timeout:g}), or a slow request could be sent again by another worker.",
            )
        )
    if isinstance(raw["MAX_ATTEMPTS"], float):
        problems.append(Problem("E005", f"{setting('MAX_ATTEMPTS')} must be a whole number."))
    if isinstance(raw["CONCURRENCY"], float):
        problems.append(Problem("E005", f"{setting('CONCURRENCY')} must be a whole number."))

    for key in ("CELERY_TASK_OPTIONS", "DJANGO_TASKS_USING"):
        if not isinstance(raw[key], Mapping):
            problems.append(Problem("E010", f"{setting(key)} must be a dict of keyword arguments."))
            raw[key] = {}
    if raw["RATE_LIMIT"] and str(raw["RATE_LIMIT_CACHE"]) not in getattr(
        django_settings, "CACHES", {"default": None}
    ):
        problems.append(
            Problem(
                "E011",
                f"{setting('RATE_LIMIT_CACHE')} {raw['RATE_LIMIT_CACHE']!r} is not in CACHES.",
            )
        )

    storage = raw["RECIPIENT_STORAGE"]
    if storage not in RECIPIENT_STORAGE_MODES:
        problems.append(
            Problem(
                "E008",
                f"{setting('RECIPIENT_STORAGE')} {storage!r} is not one of "
                f"{', '.join(RECIPIENT_STORAGE_MODES)}.",
            )
        )
    link_hosts = raw["LINK_ALLOWED_HOSTS"]
    if (
        isinstance(link_hosts, str)
        or not isinstance(link_hosts, (Iterable, type(None)))
        or not all(isinstance(h, str) for h in link_hosts or ())
    ):
        problems.append(
            Problem("E009", f"{setting('LINK_ALLOWED_HOSTS')} must be a list of host names.")
        )
        link_hosts = ()
    link_max_age = _number(raw, "LINK_MAX_AGE", problems, minimum=1, allow_none=True)
    reply_window = _number(raw, "REPLY_WINDOW", problems, minimum=1, allow_none=False)
    webhook_max_age = _number(raw, "WEBHOOK_MAX_AGE", problems, minimum=1, allow_none=False)
    reply_filter = raw["REPLY_FILTER"]
    if reply_filter is not None:
        try:
            import_string(str(reply_filter))
        except ImportError as exc:
            problems.append(
                Problem(
                    "E007", f"{setting('REPLY_FILTER')} {reply_filter!r} cannot be imported: {exc}."
                )
            )

    return ConversionSettings(
        api_key=default_account.api_key if default_account else None,
        base_url=base_url,
        timeout=timeout,
        max_attempts=int(max_attempts),
        retry_backoff=backoff,
        retry_backoff_max=backoff_max,
        dispatch=str(dispatch),
        concurrency=int(concurrency),
        rate_limit=rate_limit,
        backend=backend,
        non_conversion_after=non_conv,
        lease_seconds=lease,
        accounts=accounts,
        default_account=default_account,
        celery_task_options=dict(raw["CELERY_TASK_OPTIONS"]),
        django_tasks_using=dict(raw["DJANGO_TASKS_USING"]),
        rate_limit_cache=str(raw["RATE_LIMIT_CACHE"]),
        recipient_storage=str(storage),
        link_allowed_hosts=tuple(link_hosts or ()),
        link_max_age=link_max_age,
        reply_window=reply_window or 24 * 3600.0,
        reply_filter=str(reply_filter) if reply_filter else None,
        webhook_max_age=webhook_max_age or 300.0,
        report_failed_receipts=bool(raw["REPORT_FAILED_RECEIPTS"]),
        problems=tuple(problems),
    )


@lru_cache(maxsize=1)
def get_settings() -> ConversionSettings:
    """The resolved settings (cached; rebuilt when the Django setting changes)."""
    return build_settings(getattr(django_settings, SETTING_NAME, None))


@receiver(setting_changed)
def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        get_settings.cache_clear()
        from .backends import reset_backend

        reset_backend()
