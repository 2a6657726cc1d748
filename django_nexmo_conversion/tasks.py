"""Queue adapters for ``DISPATCH = "celery"`` and ``DISPATCH = "django_tasks"``.

Thin on purpose: a task receives a primary key and calls the same service as the command,
which claims the row exactly as any worker does. Status and attempt counts live in the
app's tables, so neither engine retries anything for us: a conversion that needs another
try is picked up by the periodic ``report_pending`` task (Celery beat or a scheduler).

This module imports cleanly with neither Celery nor a tasks framework installed; the
task objects are then ``None``.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any, cast

from django.core.exceptions import ImproperlyConfigured

from .conf import get_settings, setting
from .reporting.engine import report_conversions
from .reporting.sweep import report_due

CELERY_REPORT_CONVERSION = "django_nexmo_conversion.report_conversion"
CELERY_REPORT_PENDING = "django_nexmo_conversion.report_pending"


def report_conversion(conversion_pk: int) -> str:
    """Report one conversion if it is still due; returns the run's summary."""
    return report_conversions([conversion_pk]).summary()


def report_periodically(limit: int | None = None) -> str:
    """The periodic job (``reporting.sweep.report_due``); returns the run's summary."""
    result = report_due(limit=limit)
    summary = result.summary()
    if result.non_conversions:
        return f"{result.non_conversions} non-conversion(s) marked; {summary}"
    return summary


# --- Celery -----------------------------------------------------------------------------------

try:
    from celery import shared_task
except ImportError:
    shared_task = None

celery_report_conversion: Any = None
celery_report_pending: Any = None
if shared_task is not None:
    # ignore_result: the outcome is in our tables; a result backend would only fill up.
    celery_report_conversion = shared_task(name=CELERY_REPORT_CONVERSION, ignore_result=True)(
        report_conversion
    )
    celery_report_pending = shared_task(name=CELERY_REPORT_PENDING, ignore_result=True)(
        report_periodically
    )


def enqueue_celery(conversion_pk: int) -> None:
    if celery_report_conversion is None:
        raise ImproperlyConfigured(
            f"{setting('DISPATCH')} is 'celery' but Celery is not installed: "
            "pip install 'django-nexmo-conversion[celery]'."
        )
    celery_report_conversion.apply_async(args=[conversion_pk], **get_settings().celery_task_options)


# --- Django's tasks framework (django.tasks on Django >= 6.0, the django-tasks backport before)


TaskDecorator = Callable[[], Callable[[Callable[..., str]], Any]]


def _task_decorator() -> TaskDecorator | None:
    for module in ("django.tasks", "django_tasks"):
        if importlib.util.find_spec(module) is not None:
            return cast(TaskDecorator, importlib.import_module(module).task)
    return None


_task = _task_decorator()

# No queue or backend in the decorator: naming one there breaks every project that has not
# declared it. DJANGO_TASKS_USING picks them at enqueue time instead.
task_report_conversion: Any = None
task_report_pending: Any = None
if _task is not None:

    @_task()
    def task_report_conversion(conversion_pk: int) -> str:
        return report_conversion(conversion_pk)

    @_task()
    def task_report_pending(limit: int | None = None) -> str:
        return report_periodically(limit)


def enqueue_django_task(conversion_pk: int) -> None:
    if task_report_conversion is None:
        raise ImproperlyConfigured(
            f"{setting('DISPATCH')} is 'django_tasks' but no tasks framework is available: "
            "use Django >= 6.0 or pip install django-tasks."
        )
    using = get_settings().django_tasks_using
    task = task_report_conversion.using(**using) if using else task_report_conversion
    task.enqueue(conversion_pk)
