"""System checks. Ids are stable: ``django_nexmo_conversion.E001`` and so on.

| id   | what                                                            |
|------|-----------------------------------------------------------------|
| E000 | ``NEXMO_CONVERSION`` is not a dict                              |
| E001 | no credentials, or a key without its secret (``--deploy``; raised at report time) |
| E002 | ``BASE_URL`` is not https (plain http only for loopback hosts)  |
| E003 | unknown ``SIGNATURE_METHOD``                                    |
| E004 | unknown ``DISPATCH``                                            |
| E005 | a number out of range                                           |
| E006 | ``ACCOUNTS`` is not a dict of dicts                             |
| E007 | ``BACKEND`` (or ``REPLY_FILTER``) cannot be imported            |
| E008 | unknown ``RECIPIENT_STORAGE``                                   |
| E009 | ``LINK_ALLOWED_HOSTS`` is not a list of host names              |
| E010 | ``CELERY_TASK_OPTIONS`` / ``DJANGO_TASKS_USING`` is not a dict  |
| E011 | ``RATE_LIMIT_CACHE`` is not in ``CACHES``                       |
| E012 | ``AUTH`` (or an account's) is not ``params`` / ``basic``        |
| E013 | ``PROXIES`` is not None or a dict of scheme -> proxy URL        |
| E014 | ``VERIFY`` is not None, a bool or an existing CA bundle path    |
| E017 | a ``STATUS_*`` threshold is not a (warning, critical) pair      |
| E018 | ``DISPATCH`` names a queue whose engine cannot be imported      |
| E015 | ``DEFAULT_REGION`` is not an ISO 3166-1 alpha-2 country code  |
| E016 | an ``ALERT_*`` value out of range                               |
| W002 | unknown keys in ``NEXMO_CONVERSION``                            |
| W003 | webhooks routed but unauthenticated (deploy check: ``--deploy``) |
| W004 | ``DISPATCH="background"`` under uWSGI without threads          |
| W005 | no credentials, or a key without its secret (E001 under ``--deploy``) |
| W006 | ``BASE_URL`` has a path: every report would 404                 |
| W007 | the sandbox's credentials or a loopback ``BASE_URL`` (deploy check) |
| W008 | a Django setting named like ``NEXMO_CONVERSION`` (``NEXMO_CONVERSIONS``) |
| W009 | ``NEXMO_API_KEY`` & co. as Django settings the app does not use       |

Missing credentials are W005 at a plain ``check`` so that a new project's ``migrate`` and
``test`` (which stop on any error) run before its secrets are set.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.core import checks

from .conf import SETTING_NAME, ConversionSettings, build_settings
from .conf.values import is_loopback

CHECK_ID_PREFIX = "django_nexmo_conversion"

#: Problems only a deploy needs fixed: the plain check (run by ``migrate`` and ``test``)
#: shows them under the warning id on the right, ``check --deploy`` as the error they are.
DEPLOY_ERRORS = {"E001": "W005"}


def _resolved() -> ConversionSettings:
    from django.conf import settings

    # Build afresh rather than read the cache: checks must see the settings as they are now.
    return build_settings(getattr(settings, SETTING_NAME, None))


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    for problem in _resolved().problems:
        # A new project has no secrets yet: missing credentials must not stop its first
        # migrate or test run (Django stops both on any error), only its deploy and reports.
        check_id = DEPLOY_ERRORS.get(problem.id, problem.id)
        level = checks.Error if check_id.startswith("E") else checks.Warning
        messages.append(
            level(problem.msg, hint=problem.hint or None, id=f"{CHECK_ID_PREFIX}.{check_id}")
        )
    return messages


@checks.register(checks.Tags.security, deploy=True)
def check_deploy_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E001 and W007, for ``manage.py check --deploy``: what a production site must not run with."""
    from .sandbox.rules import DEFAULT_API_KEY, DEFAULT_API_SECRET

    resolved = _resolved()
    messages: list[checks.CheckMessage] = [
        checks.Error(problem.msg, hint=problem.hint or None, id=f"{CHECK_ID_PREFIX}.{problem.id}")
        for problem in resolved.problems
        if problem.id in DEPLOY_ERRORS
    ]
    host = urlsplit(resolved.base_url).hostname
    if host and is_loopback(host):
        messages.append(
            checks.Warning(
                f"NEXMO_CONVERSION['BASE_URL'] is {resolved.base_url!r}, on this machine: "
                "conversions go to a local server (the sandbox?), not to Nexmo.",
                hint="Remove BASE_URL from the deployed settings for https://api.nexmo.com.",
                id=f"{CHECK_ID_PREFIX}.W007",
            )
        )
    accounts = [*resolved.accounts.values(), resolved.default_account]
    if any(
        a and (a.api_key == DEFAULT_API_KEY or a.api_secret == DEFAULT_API_SECRET) for a in accounts
    ):
        messages.append(
            checks.Warning(
                "NEXMO_CONVERSION holds the sandbox's credentials (sandbox-key / "
                "sandbox-secret): Nexmo will answer every report with 401.",
                hint="Set the API key and secret of your Vonage account (dashboard > Settings).",
                id=f"{CHECK_ID_PREFIX}.W007",
            )
        )
    return messages


def routed_views(patterns: Sequence[Any] | None = None) -> Iterator[Callable[..., Any]]:
    """Every view the project's URLconf routes, however it is wired: through ``include`` (with
    or without the app's namespace), or a ``path`` naming the view directly."""
    from django.urls import URLPattern, URLResolver, get_resolver

    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from routed_views(entry.url_patterns)
        elif isinstance(entry, URLPattern):
            yield entry.callback


def webhooks_routed() -> bool:
    """Whether the inbound or the delivery-receipt webhook is reachable through the URLconf."""
    from .views import webhooks as webhook_views

    ours = {webhook_views.inbound, webhook_views.receipt}
    return any(view in ours for view in routed_views())


@checks.register(checks.Tags.security, deploy=True)
def check_webhook_signing(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W003: the project routes the webhooks but no signature secret authenticates them.

    A deploy check (``manage.py check --deploy``), like Django's own security warnings: on a
    developer's machine unsigned webhooks are the norm (Vonage signs them only on request).
    """

    from .webhooks import signing_required

    if signing_required(_resolved()):
        return []
    # The views themselves, not a reverse() of the app's URL names: a project may route them
    # with a plain path(), under no namespace, and they are just as open then.
    if not webhooks_routed():
        return []  # webhooks not routed: nothing to protect
    return [
        checks.Warning(
            "The inbound and delivery-receipt webhooks accept unsigned requests: no "
            "SIGNATURE_SECRET is configured, so anyone who finds their URL can mark messages "
            "converted or forge delivery receipts.",
            hint="Set NEXMO_CONVERSION['SIGNATURE_SECRET'] (or one per key in ACCOUNTS) and ask "
            "Vonage support to sign your webhooks; or do not route the webhook URLs.",
            id=f"{CHECK_ID_PREFIX}.W003",
        )
    ]


@checks.register()
def check_background_threads(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W004: the background reporter needs threads, which uWSGI runs only when asked to."""
    from .dispatch.background import THREADS_DISABLED, threads_disabled

    resolved = _resolved()
    if resolved.dispatch != "background" or not threads_disabled():
        return []
    return [
        checks.Warning(
            THREADS_DISABLED,
            hint="Add enable-threads = true to the [uwsgi] section of your uWSGI configuration.",
            id=f"{CHECK_ID_PREFIX}.W004",
        )
    ]


#: Credentials the app reads from the environment (and from NEXMO_CONVERSION), never as
#: Django settings of their own: setting name -> the NEXMO_CONVERSION key it belongs in.
CREDENTIAL_SETTINGS = {
    f"{vendor}_{name}": name
    for vendor in ("NEXMO", "VONAGE")
    for name in ("API_KEY", "API_SECRET", "SIGNATURE_SECRET")
}


@checks.register()
def check_near_miss_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W008: a setting named almost ``NEXMO_CONVERSION``, which the app never reads; W009: a
    credential given as a Django setting instead of an environment variable, and not passed
    on in ``NEXMO_CONVERSION``. Values are never shown: they may be secrets."""
    from django.conf import settings

    names = [name for name in dir(settings) if name.isupper() and name != SETTING_NAME]
    messages: list[checks.CheckMessage] = [
        checks.Warning(
            f"The {name} setting is not read by django_nexmo_conversion: its settings are one "
            f"dict named {SETTING_NAME}.",
            hint=f"Rename {name} to {SETTING_NAME}.",
            id=f"{CHECK_ID_PREFIX}.W008",
        )
        for name in difflib.get_close_matches(SETTING_NAME, names, n=3, cutoff=0.85)
    ]
    account = _resolved().default_account
    in_use = {
        "API_KEY": account.api_key if account else None,
        "API_SECRET": account.api_secret if account else None,
        "SIGNATURE_SECRET": account.signature_secret if account else None,
    }
    for name, key in CREDENTIAL_SETTINGS.items():
        value = getattr(settings, name, None)
        if value is None or (value and str(value) == str(in_use[key] or "")):
            continue  # not set, or passed on in NEXMO_CONVERSION: as intended
        messages.append(
            checks.Warning(
                f"{name} is a Django setting, which django_nexmo_conversion does not read: it "
                f"reads {name} from the environment, or {SETTING_NAME}['{key}'].",
                hint=f'Put it in {SETTING_NAME} = {{"{key}": ...}}, or export {name} in the '
                "environment instead of setting it in settings.py.",
                id=f"{CHECK_ID_PREFIX}.W009",
            )
        )
    return messages
