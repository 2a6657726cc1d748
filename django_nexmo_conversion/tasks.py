"""Queue adapters for ``DISPATCH = "celery"`` and ``"django_tasks"``: thin wrappers that pass a
primary key and call the same service as the command. They import cleanly without either."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


def enqueue_celery(conversion_pk: int) -> None:
    raise ImproperlyConfigured("DISPATCH='celery' is not available yet.")


def enqueue_django_task(conversion_pk: int) -> None:
    raise ImproperlyConfigured("DISPATCH='django_tasks' is not available yet.")
