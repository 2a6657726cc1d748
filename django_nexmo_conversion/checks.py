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
| W002 | unknown keys in ``NEXMO_CONVERSION``                            |
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
