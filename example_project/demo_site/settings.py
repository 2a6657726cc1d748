"""Settings for the demo site: DEBUG on, SQLite, the app reporting to the bundled sandbox.

Nothing to configure. Environment variables (all optional, mostly for ``demo.py`` and tests):
``DEMO_DB_PATH`` (default ``example_project/db.sqlite3``) and ``DEMO_SANDBOX_URL`` (default
``http://127.0.0.1:8787``, where ``demo.py`` starts the sandbox).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django_nexmo_conversion.sandbox import DEFAULT_API_KEY, DEFAULT_API_SECRET

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "demo-only-not-secret"  # a demo on loopback; never deploy this project
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_nexmo_conversion",
    "sms_demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_site.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES: dict[str, dict[str, Any]] = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DB_PATH") or BASE_DIR / "db.sqlite3",
        "OPTIONS": {
            # Request threads and the background reporter's thread all write:
            # take the write lock when a transaction starts (no lock-upgrade deadlocks) and
            # wait for it rather than fail with "database is locked".
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }
}

NEXMO_CONVERSION = {
    # The sandbox's well-known demo credentials: it accepts nothing else.
    "API_KEY": DEFAULT_API_KEY,
    "API_SECRET": DEFAULT_API_SECRET,
    "BASE_URL": os.environ.get("DEMO_SANDBOX_URL", "http://127.0.0.1:8787"),
    # DISPATCH is left at its default, "background": each mark is reported right after its
    # transaction commits, from this process's reporter thread (no request waits for the
    # sandbox), retries go at their due time, and the thread sweeps every SWEEP_INTERVAL
    # seconds: the sweeps count the figures the dashboard's chart and the Insights page show.
    # 5 s instead of the default 30, so the demo's pages fill while you watch.
    "SWEEP_INTERVAL": 5,
    "TIMEOUT": 5,
    # Short backoff and few attempts so retries and giving up are visible within seconds.
    "RETRY_BACKOFF": 5,
    "RETRY_BACKOFF_MAX": 30,
    "MAX_ATTEMPTS": 4,
}

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"app": {"format": "[nexmo] %(levelname)s %(message)s"}},
    "handlers": {"app": {"class": "logging.StreamHandler", "formatter": "app"}},
    "loggers": {
        "django_nexmo_conversion": {"handlers": ["app"], "level": "INFO", "propagate": False}
    },
}
