"""Sphinx configuration for the documentation site (``make docs``; Read the Docs builds the same).

The pages are Markdown (MyST), so that text moves freely between them and the README. The
reference pages document the public functions from their docstrings (autodoc), which needs
Django set up: a minimal configuration is enough, as nothing is read from a database.
"""

from __future__ import annotations

import sys
from pathlib import Path

import django
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if not settings.configured:
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django_nexmo_conversion",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True,
    )
    django.setup()

from django_nexmo_conversion import __version__  # noqa: E402 (after django.setup())

project = "django-nexmo-conversion"
author = "django-nexmo-conversion developers"
copyright = "the django-nexmo-conversion developers (MIT licence)"
release = __version__
version = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
# Links like [the outcomes](reporting.md#outcomes-of-one-attempt) resolve to headings.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

autodoc_typehints = "description"
autodoc_member_order = "bysource"

html_theme = "furo"
html_title = f"django-nexmo-conversion {release}"
html_static_path: list[str] = []
html_theme_options = {
    "source_repository": "https://github.com/django-nexmo-conversion/django-nexmo-conversion/",
    "source_branch": "main",
    "source_directory": "docs/",
}
