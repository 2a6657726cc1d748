"""System checks. Ids are stable: ``django_nexmo_conversion.E001`` and so on.

| id   | what                                                            |
|------|-----------------------------------------------------------------|
| E000 | ``NEXMO_CONVERSION`` is not a dict                              |
| E001 | no credentials, or a key without its secret                     |
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
| E015 | ``DEFAULT_REGION`` is not an ISO 3166-1 alpha-2 country code  |
| E016 | an ``ALERT_*`` value out of range                               |
| W002 | unknown keys in ``NEXMO_CONVERSION``                            |
| W003 | webhooks routed but unauthenticated (deploy check: ``--deploy``) |
| W004 | ``DISPATCH="background"`` under uWSGI without threads          |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks

from .conf import SETTING_NAME, build_settings

CHECK_ID_PREFIX = "django_nexmo_conversion"


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    from django.conf import settings

    # Build afresh rather than read the cache: checks must see the settings as they are now.
    resolved = build_settings(getattr(settings, SETTING_NAME, None))
    messages: list[checks.CheckMessage] = []
    for problem in resolved.problems:
        level = checks.Error if problem.is_error else checks.Warning
        messages.append(
            level(problem.msg, hint=problem.hint or None, id=f"{CHECK_ID_PREFIX}.{problem.id}")
        )
    return messages


@checks.register(checks.Tags.security, deploy=True)
def check_webhook_signing(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W003: the project routes the webhooks but no signature secret authenticates them.

    A deploy check (``manage.py check --deploy``), like Django's own security warnings: on a
    developer's machine unsigned webhooks are the norm (Vonage signs them only on request).
    """
    from django.conf import settings
    from django.urls import NoReverseMatch, reverse

    from .webhooks import signing_required

    if signing_required(build_settings(getattr(settings, SETTING_NAME, None))):
        return []
    try:
        reverse("django_nexmo_conversion:inbound")
    except NoReverseMatch:
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
    from django.conf import settings

    from .reporting.background import THREADS_DISABLED, threads_disabled

    resolved = build_settings(getattr(settings, SETTING_NAME, None))
    if resolved.dispatch != "background" or not threads_disabled():
        return []
    return [
        checks.Warning(
            THREADS_DISABLED,
            hint="Add enable-threads = true to the [uwsgi] section of your uWSGI configuration.",
            id=f"{CHECK_ID_PREFIX}.W004",
        )
    ]
