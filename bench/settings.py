"""Django settings for the benchmarks.

``NEXMO_BENCH_DB`` picks the database: ``sqlite`` (a file under the temp dir) or ``postgres``
(the local server on loopback, database ``nexmo_bench``; never the test suite's). Report
processes started by a benchmark get their ``NEXMO_CONVERSION`` overrides as JSON in
``NEXMO_BENCH_CONVERSION``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "Europe/Paris"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_nexmo_conversion",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "bench.urls"
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
# The benchmark compares page times, not password hashing.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

WORK_DIR = Path(os.environ.get("NEXMO_BENCH_DIR", Path(tempfile.gettempdir()) / "nexmo-bench"))
DB = os.environ.get("NEXMO_BENCH_DB", "postgres")
DATABASES: dict[str, dict[str, Any]]
if DB == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(WORK_DIR / "bench.sqlite3"),
            "OPTIONS": {"timeout": 20},
        }
    }
elif DB == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("NEXMO_BENCH_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("NEXMO_BENCH_PG_PORT", "5432"),
            "USER": os.environ.get("NEXMO_BENCH_PG_USER", "postgres"),
            "NAME": os.environ.get("NEXMO_BENCH_PG_NAME", "nexmo_bench"),
        }
    }
else:
    raise RuntimeError(f"NEXMO_BENCH_DB must be sqlite or postgres, got {DB!r}")

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

NEXMO_CONVERSION: dict[str, Any] = {
    "API_KEY": "sandbox-key",
    "API_SECRET": "sandbox-secret",
    "BACKEND": "django_nexmo_conversion.backends.dummy.DummyBackend",
    "DISPATCH": "manual",
}
NEXMO_CONVERSION.update(json.loads(os.environ.get("NEXMO_BENCH_CONVERSION", "{}")))

# Quiet: a log line per conversion would be part of what is measured.
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_nexmo_conversion": {"handlers": ["console"], "level": "WARNING"}},
}
