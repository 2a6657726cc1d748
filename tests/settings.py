"""Settings for the test suite. ``NEXMO_TEST_DB`` picks the database: sqlite (default),
postgres or mariadb, each the local service on loopback."""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from typing import Any

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "Europe/Paris"  # not UTC, so that UTC conversion on the wire is really tested
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_nexmo_conversion",
    "django_tasks_db",
    "tests.testapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"
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
# The admin tests' users (admin_user, the browser's login form): PBKDF2's deliberate slowness
# cost each such test up to 1.5 s on a busy 2-core machine, and the suite tests no hasher.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

DB = os.environ.get("NEXMO_TEST_DB", "sqlite")
DATABASES: dict[str, dict[str, Any]]
if DB == "sqlite":
    # A file, not :memory:, so that worker subprocesses can open the test database too.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(tempfile.gettempdir(), "nexmo-conversion-tests.sqlite3"),
            "TEST": {
                "NAME": os.path.join(
                    tempfile.gettempdir(), f"nexmo-conversion-test-{os.getpid()}.sqlite3"
                )
            },
            "OPTIONS": {"timeout": 20},
        }
    }
elif DB == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("NEXMO_TEST_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("NEXMO_TEST_PG_PORT", "5432"),
            "USER": os.environ.get("NEXMO_TEST_PG_USER", "postgres"),
            "NAME": "test",
        }
    }
elif DB == "mariadb":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "HOST": os.environ.get("NEXMO_TEST_MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("NEXMO_TEST_MYSQL_PORT", "3306"),
            "USER": os.environ.get("NEXMO_TEST_MYSQL_USER", "root"),
            "PASSWORD": "",
            "NAME": "test",
            "OPTIONS": {"charset": "utf8mb4"},
        }
    }
else:
    raise RuntimeError(f"NEXMO_TEST_DB must be sqlite, postgres or mariadb, got {DB!r}")

# Two runs on one server (say, two checkouts) each need their own test database.
if os.environ.get("NEXMO_TEST_DB_TEST_NAME") and DB != "sqlite":
    DATABASES["default"]["TEST"] = {"NAME": os.environ["NEXMO_TEST_DB_TEST_NAME"]}

# Worker subprocesses started by tests connect straight to the test database by name.
if os.environ.get("NEXMO_TEST_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["NEXMO_TEST_DB_NAME"]

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if os.environ.get("NEXMO_TEST_CACHE") == "redis":
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ.get("NEXMO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
            # A run's own keys on a Redis that runs side by side share (tests/test_scale.py).
            "KEY_PREFIX": os.environ.get("NEXMO_TEST_REDIS_KEY_PREFIX", ""),
        }
    }

NEXMO_CONVERSION = {
    "API_KEY": "sandbox-key",
    "API_SECRET": "sandbox-secret",
    "BASE_URL": "http://127.0.0.1:9",  # tests point this at a running sandbox
    "BACKEND": "django_nexmo_conversion.backends.locmem.LocmemBackend",
    "DISPATCH": "manual",
    "TIMEOUT": 2,
    "RETRY_BACKOFF": 1,
    "RETRY_BACKOFF_MAX": 10,
}

# Queue integrations (tests/test_queues.py).
CELERY_BROKER_URL = os.environ.get("NEXMO_TEST_BROKER_URL", "redis://127.0.0.1:6379/14")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("NEXMO_TEST_CELERY_QUEUE", "celery")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = False
if os.environ.get("NEXMO_TEST_BEAT_INTERVAL"):
    CELERY_BEAT_SCHEDULE = {
        "report-nexmo-conversions": {
            "task": "django_nexmo_conversion.report_pending",
            "schedule": float(os.environ["NEXMO_TEST_BEAT_INTERVAL"]),
        }
    }
_TASKS_PACKAGE = "django.tasks" if importlib.util.find_spec("django.tasks") else "django_tasks"
TASKS = {"default": {"BACKEND": f"{_TASKS_PACKAGE}.backends.immediate.ImmediateBackend"}}
if os.environ.get("NEXMO_TEST_TASKS") == "database":
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# Subprocesses get their overrides (sandbox URL, dispatch, ...) as JSON.
NEXMO_CONVERSION.update(json.loads(os.environ.get("NEXMO_TEST_CONVERSION_SETTINGS", "{}")))

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django_nexmo_conversion": {"level": "DEBUG"}},
}
