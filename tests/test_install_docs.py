"""What a newcomer reads first says what works: installing from a
checkout, every dependency and extra, the test example's settings, a Troubleshooting page of
its own, and webhook URLs pasted without their trailing slash."""

from __future__ import annotations

import re
import sys
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_nexmo_conversion import mark_converted, record_message
from django_nexmo_conversion.models import Conversion, SentMessage
from django_nexmo_conversion.sandbox.sender import WebhookSender

from .processes import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI (the test extra)
    import tomli as tomllib

README = (ROOT / "README.md").read_text(encoding="utf-8")
INDEX = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
TUTORIAL = (ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
#: Extras for this project's own work, not for users.
INTERNAL_EXTRAS = {"test", "dev", "docs", "bench", "mariadb"}


def console_lines(markdown: str) -> list[str]:
    """Every ``$ command`` of the console blocks, comments dropped."""
    blocks = re.findall(r"```console\n(.*?)```", markdown, flags=re.S)
    return [
        re.split(r"\s#", line[2:])[0].strip()
        for block in blocks
        for line in block.splitlines()
        if line.startswith("$ ")
    ]


def section(markdown: str, heading: str) -> str:
    start = markdown.index(heading)
    following = markdown.find("\n## ", start + len(heading))
    return markdown[start : following if following != -1 else None]


@pytest.mark.parametrize("page", ["README.md", "docs/index.md", "docs/tutorial.md"])
def test_install_from_a_checkout_is_next_to_install_from_pypi(page: str) -> None:
    lines = console_lines((ROOT / page).read_text(encoding="utf-8"))
    pypi = lines.index("pip install django-nexmo-conversion")
    checkout = [n for n, line in enumerate(lines) if line.startswith("pip install -e ")]
    assert checkout, lines
    assert abs(checkout[0] - pypi) <= 2  # beside it, not pages away
    # What `-e` points at is a checkout of this very project: its root has the pyproject.
    assert PROJECT["name"] == "django-nexmo-conversion"
    assert lines[checkout[0]].split()[-1].rstrip("/").endswith("django-nexmo-conversion")


@pytest.mark.parametrize("page", ["README.md", "docs/index.md"])
def test_the_install_line_names_every_dependency(page: str) -> None:
    text = (ROOT / page).read_text(encoding="utf-8")
    line = next(
        x for x in text.splitlines() if x.startswith("$ pip install django-nexmo-conversion ")
    )
    for requirement in PROJECT["dependencies"]:
        name = re.split(r"[<>=!~ \[]", requirement)[0]
        assert name.lower() in line.lower(), (name, line)


@pytest.mark.parametrize("page", ["README.md", "docs/index.md"])
def test_every_extra_for_users_is_listed(page: str) -> None:
    install = section((ROOT / page).read_text(encoding="utf-8"), "## Install")
    for extra in set(PROJECT["optional-dependencies"]) - INTERNAL_EXTRAS:
        assert f"[{extra}]" in install, extra


def test_the_test_example_says_it_needs_pytest_djangos_settings() -> None:
    testing = section(README, "## Testing your own code")
    assert "DJANGO_SETTINGS_MODULE" in testing
    assert "pytest-django" in testing


def test_troubleshooting_is_a_top_level_page_in_the_toctree() -> None:
    page = ROOT / "docs" / "troubleshooting.md"
    assert page.read_text(encoding="utf-8").startswith("# Troubleshooting")
    toctree = re.search(r"```\{toctree\}(.*?)```", INDEX, flags=re.S)
    assert toctree is not None
    assert "troubleshooting" in toctree.group(1).split()
    operations = (ROOT / "docs" / "howto" / "operations.md").read_text(encoding="utf-8")
    assert "| you see | cause | fix |" not in operations  # moved, not copied
    assert "](../troubleshooting.md)" in operations
    assert "| you see | cause | fix |" in page.read_text(encoding="utf-8")


@pytest.mark.django_db
@pytest.mark.parametrize("slash", ["/", ""], ids=["with-slash", "without-slash"])
def test_webhook_urls_work_without_their_trailing_slash(client: Client, slash: str) -> None:
    message = record_message("0A00000000005L45", recipient="447700900123")
    receipt = reverse("django_nexmo_conversion:receipt").rstrip("/") + slash
    inbound = reverse("django_nexmo_conversion:inbound").rstrip("/") + slash
    sender = WebhookSender()

    got_receipt = client.post(receipt, sender.receipt_params(message_id=message.message_id))
    replied = (timezone.now() - timedelta(seconds=5)).replace(microsecond=0)
    got_reply = client.post(inbound, sender.inbound_params(msisdn="447700900123", at=replied))

    assert (got_receipt.status_code, got_reply.status_code) == (200, 200)
    message.refresh_from_db()
    assert message.delivery_status == "delivered"
    assert Conversion.objects.get().message == message
    assert SentMessage.objects.count() == 1
    assert mark_converted(message).marked == "found"
