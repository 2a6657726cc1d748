"""How a newly marked conversion gets reported, per ``DISPATCH``.

Every mode waits for the caller's transaction to commit (``transaction.on_commit``): a
rolled-back mark is never reported, and a worker never looks for a row it cannot see yet.
Only ``on_commit`` makes the committing thread wait for Nexmo; ``background`` (the default)
hands the row to this process's reporter thread, the queues to their workers.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import request_started
from django.db import transaction

from ..conf import get_settings
from ..reporting.engine import report_conversions
from . import background
from .background import log_configuration_error

logger = logging.getLogger("django_nexmo_conversion")


def schedule(conversion_pk: int) -> None:
    """Arrange for ``conversion_pk`` to be reported once the current transaction commits."""
    mode = get_settings().dispatch
    if mode == "manual":
        return
    if mode == "background":
        transaction.on_commit(lambda: background.submit(conversion_pk))
    elif mode == "on_commit":
        transaction.on_commit(lambda: report_inline(conversion_pk))
    elif mode == "celery":
        from ..tasks import enqueue_celery

        transaction.on_commit(lambda: enqueue(enqueue_celery, conversion_pk))
    elif mode == "django_tasks":
        from ..tasks import enqueue_django_task

        transaction.on_commit(lambda: enqueue(enqueue_django_task, conversion_pk))


def recorded() -> None:
    """A message was recorded: with ``DISPATCH="background"``, make sure this process
    sweeps, since the sweeps count new messages in the rollups (and watch them for
    low-conversion alerts) even before anything is marked here. Other modes sweep from the
    periodic task or ``report_conversions``."""
    conf = get_settings()
    if conf.dispatch == "background" and conf.sweep_interval:
        transaction.on_commit(background.start)


def serving(**kwargs: Any) -> None:
    """This process serves (a request started, a worker is ready): with
    ``DISPATCH="background"``, it sweeps from now on, even before it marks anything, so due
    retries, figures and alerts never wait for a mark or a command. Connected to
    ``request_started`` (and Celery's ``worker_ready``) by the app's ``ready()``; one-off
    commands (``migrate``, ``shell``, ...) serve nothing and so never start it."""
    try:
        conf = get_settings()
        if conf.dispatch == "background" and conf.sweep_interval:
            background.start()
    except Exception:
        # Never fail the request this runs in: broken settings are the system checks' and
        # the first mark's to report; the reporter's own problems are logged where they arise.
        logger.debug("Could not start the background reporter's sweeps.", exc_info=True)


def connect_serving() -> None:
    """Start sweeping when this process starts serving (see :func:`serving`)."""
    request_started.connect(serving, dispatch_uid="django_nexmo_conversion.serving")
    if "celery" in sys.modules:
        # A Celery worker has imported celery before Django's apps are ready; a web process
        # that merely can enqueue has too, and its worker_ready never comes.
        worker_ready = importlib.import_module("celery.signals").worker_ready
        worker_ready.connect(serving, dispatch_uid="django_nexmo_conversion.serving", weak=False)


def enqueue(send: Callable[[int], None], conversion_pk: int) -> None:
    """Hand ``conversion_pk`` to a task queue, right after commit.

    Never raises: the caller's transaction is committed and its response must not fail
    because the broker is down. The row stays pending for a sweep, the periodic task or
    ``manage.py report_conversions``.
    """
    try:
        send(conversion_pk)
    except Exception:
        logger.exception(
            "Could not enqueue conversion %s; it stays pending for the periodic task or "
            "`manage.py report_conversions`.",
            conversion_pk,
        )


def report_inline(conversion_pk: int) -> None:
    """Report one conversion in this thread, right after commit.

    Never raises: the caller's transaction is already committed and its response must not
    fail because Nexmo is down. Whatever is not reported stays pending for the command.
    """
    try:
        result = report_conversions([conversion_pk])
    except ImproperlyConfigured as exc:
        log_configuration_error(exc)
        return
    except Exception:
        logger.exception(
            "Could not report conversion %s right after commit; it stays pending for "
            "`manage.py report_conversions`.",
            conversion_pk,
        )
        return
    if result.halted:
        logger.error("Conversion %s not reported: %s", conversion_pk, result.error)
    elif result.retrying:
        # Visible at the default WARNING level: if nothing runs the command, the conversion
        # would otherwise wait unnoticed (the cause is in its last error, in the admin).
        logger.warning(
            "Conversion %s was not reported right after commit; it stays pending for "
            "`manage.py report_conversions`.",
            conversion_pk,
        )
