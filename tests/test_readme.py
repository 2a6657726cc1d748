"""The README is the PyPI page: its links and images must work there, and its Quick start must
run as written in a project fresh from ``django-admin startproject``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.processes import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
REPOSITORY = "https://github.com/django-nexmo-conversion/django-nexmo-conversion/blob/main/"
RAW = "https://raw.githubusercontent.com/django-nexmo-conversion/django-nexmo-conversion/main/"
DOCS = "https://django-nexmo-conversion.readthedocs.io/en/latest/"


def targets(markdown: str) -> list[str]:
    """Every link and image target, outside code blocks: inline, reference-style and HTML."""
    prose = re.sub(r"```.*?```", "", markdown, flags=re.S)
    inline = re.findall(r"\]\(\s*<?([^)\s>]+)", prose)
    references = re.findall(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?\s*$", prose, flags=re.M)
    html = re.findall(r"""(?:href|src)\s*=\s*["']([^"']+)""", prose)
    return inline + references + html


def test_the_readme_has_links_and_images():
    found = targets(README)
    assert any(t.startswith(RAW) and t.endswith(".png") for t in found)
    assert any(t.startswith(DOCS) for t in found)


def test_every_link_and_image_in_the_readme_is_absolute():
    relative = [
        t for t in targets(README) if urlparse(t).scheme != "https" or not urlparse(t).netloc
    ]
    assert relative == [], "PyPI cannot follow these; use absolute https URLs"


def test_the_link_finder_sees_relative_links():
    # The check above would pass on a finder that finds nothing relative: prove it does.
    page = '[a](docs/x.md) ![b](screenshots/y.png) [c]: CONTRIBUTING.md <img src="z.png">\n'
    page += "[d](#install)\n```\n[not a link](ignored.md)\n```\n"
    assert targets(page) == ["docs/x.md", "screenshots/y.png", "#install", "z.png"]
    assert targets("[c]: CONTRIBUTING.md\n") == ["CONTRIBUTING.md"]


def test_the_readme_links_to_files_and_pages_that_exist():
    for target in targets(README):
        url = target.split("#")[0]
        if url.startswith((REPOSITORY, RAW)):
            path = url.removeprefix(REPOSITORY).removeprefix(RAW)
            assert (ROOT / path).is_file(), f"{target}: no {path} in the repository"
        elif url.startswith(DOCS):
            page = url.removeprefix(DOCS).removesuffix(".html") or "index"
            assert (ROOT / "docs" / f"{page}.md").is_file(), f"{target}: no docs/{page}.md"


def block(first_line: str) -> str:
    for code in re.findall(r"```python\n(.*?)```", README, flags=re.S):
        if code.startswith(first_line):
            return str(code)
    raise AssertionError(f"README has no python block starting with {first_line!r}")


@pytest.fixture(scope="module")
def fresh_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``django-admin startproject mysite`` with the Quick start's blocks appended as written."""
    where = tmp_path_factory.mktemp("quickstart")
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(where)],
        check=True,
        capture_output=True,
    )
    with (where / "mysite" / "settings.py").open("a") as settings:
        settings.write("\n" + block("# settings.py"))
    with (where / "mysite" / "urls.py").open("a") as urls:
        urls.write("\n" + block("# urls.py"))
    return where


def manage(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("NEXMO_", "VONAGE_", "DJANGO_"))
    }
    # As the Quick start says: the credentials come from the environment.
    env.update(PYTHONPATH=str(ROOT), NEXMO_API_KEY="abcd1234", NEXMO_API_SECRET="quickstart")
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_quick_start_runs_in_a_fresh_project(fresh_project):
    for command in (["check"], ["migrate", "--noinput"]):
        done = manage(fresh_project, *command)
        assert done.returncode == 0, done.stderr
    shown = manage(fresh_project, "showmigrations", "django_nexmo_conversion")
    assert "[X] 0001_initial" in shown.stdout
    urls = manage(
        fresh_project,
        "shell",
        "-c",
        "from django.urls import reverse; print(reverse('django_nexmo_conversion:inbound'))",
    )
    # The last line: Django 5.2+ first says which objects the shell imported.
    assert urls.stdout.strip().splitlines()[-1] == "/nexmo/webhooks/inbound/", urls.stderr
