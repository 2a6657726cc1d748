"""Which queue engine each ``DISPATCH`` needs, and whether this Python can import one.

Answered without importing the engine (Celery takes a while to import, and a check must not
start one): ``conf`` reports a dispatch whose engine is missing (check E018) instead of
letting every mark fail after its commit.
"""

from __future__ import annotations

import importlib.util

#: DISPATCH -> (the modules any one of which runs it, how to get one).
DISPATCH_ENGINES: dict[str, tuple[tuple[str, ...], str]] = {
    "celery": (("celery",), "pip install 'django-nexmo-conversion[celery]'"),
    "django_tasks": (
        ("django.tasks", "django_tasks"),
        "use Django >= 6.0 (django.tasks), or pip install django-tasks",
    ),
}


def importable(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # "django.tasks" on a Django without it: the parent is no package
        return False


def missing_engine(dispatch: str) -> tuple[tuple[str, ...], str] | None:
    """For a queue ``dispatch`` none of whose engines imports: the modules and how to get
    one; otherwise None (``background``, ``on_commit``, ``manual`` need no engine)."""
    modules, install = DISPATCH_ENGINES.get(dispatch, ((), ""))
    if modules and not any(importable(module) for module in modules):
        return modules, install
    return None
