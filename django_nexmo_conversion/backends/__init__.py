"""Backends send one report and say what came of it. ``BACKEND`` picks one by dotted path,
like ``EMAIL_BACKEND``; the instance is shared by every thread of the process.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from ..conf import SETTING_NAME, get_settings
from .base import BaseBackend

__all__ = ["BaseBackend", "get_backend", "reset_backend"]

_lock = threading.Lock()
_backend: BaseBackend | None = None


def get_backend() -> BaseBackend:
    """The configured backend (built once per process, rebuilt when the settings change)."""
    global _backend
    with _lock:
        if _backend is None:
            conf = get_settings()
            conf.raise_for_problems()
            backend_class = import_string(conf.backend)
            _backend = backend_class(settings=conf)
        return _backend


def reset_backend() -> None:
    global _backend
    with _lock:
        if _backend is not None:
            _backend.close()
        _backend = None


def _forget_lock_in_child() -> None:
    # A thread of the parent may have held the lock when it forked: the child's is free. (The
    # backend itself is kept: its client opens the child's own connections.)
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_lock_in_child)


@receiver(setting_changed)
def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    # The backend was built from the old settings (base URL, timeout): build it anew.
    if setting == SETTING_NAME:
        reset_backend()
