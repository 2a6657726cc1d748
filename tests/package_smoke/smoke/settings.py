"""A minimal project as a user would write it after ``pip install django-nexmo-conversion``.

The nox ``package`` session runs it from a clean venv holding only the built wheel (and its
dependencies), so it proves that what ships in the wheel is enough: migrations, templates,
static files, the admin and the URLs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SECRET_KEY = "package-smoke-test-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
TIME_ZONE = "America/New_York"

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

ROOT_URLCONF = "smoke.urls"
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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get(
            "SMOKE_DATABASE", str(Path(tempfile.gettempdir()) / "nexmo-smoke.sqlite3")
        ),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STATIC_URL = "/static/"
STATIC_ROOT = os.environ.get("SMOKE_STATIC_ROOT", str(Path(tempfile.gettempdir()) / "smoke-static"))

# verify_install.py starts the bundled sandbox and passes its address; manage.py migrate and
# check run without one, against the real default.
NEXMO_CONVERSION = {
    "API_KEY": "sandbox-key",
    "API_SECRET": "sandbox-secret",
}
if os.environ.get("SMOKE_NEXMO_BASE_URL"):
    NEXMO_CONVERSION["BASE_URL"] = os.environ["SMOKE_NEXMO_BASE_URL"]
