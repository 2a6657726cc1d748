"""The README's Quick start, followed literally in a fresh ``django-admin startproject`` site
with no credentials: its blocks are added where it says, and ``migrate`` and ``check`` pass."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .processes import ROOT, django_admin

README = ROOT / "README.md"
TIMEOUT = 120


def quick_start_blocks() -> dict[str, str]:
    """The Quick start's python blocks, by their first line (``# settings.py`` ...)."""
    section = README.read_text().split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return {block.splitlines()[0].removeprefix("# "): block for block in blocks}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``startproject mysite``, then each Quick start block where the README puts it."""
    root = tmp_path_factory.mktemp("fresh")
    subprocess.run(
        [*django_admin("startproject", "mysite", str(root))], check=True, timeout=TIMEOUT
    )
    blocks = quick_start_blocks()
    assert sorted(blocks) == ["settings.py", "sms.py", "urls.py"]
    package = root / "mysite"
    for name in ("settings.py", "urls.py"):  # "add to the end of mysite/<name>"
        target = package / name
        target.write_text(target.read_text() + "\n" + blocks[name])
    (package / "sms.py").write_text(blocks["sms.py"])
    return root


def manage(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("NEXMO_", "VONAGE_", "DJANGO_"))
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=site,
        # The app from this checkout, nothing of the test suite's settings.
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_migrate_and_check_pass_with_no_credentials(site: Path) -> None:
    migrated = manage(site, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    assert "Applying django_nexmo_conversion.0001_initial... OK" in migrated.stdout

    checked = manage(site, "check")
    assert checked.returncode == 0, checked.stderr
    assert "django_nexmo_conversion.W005" in checked.stderr
    assert "NEXMO_API_SECRET" in checked.stderr  # the hint says how to fix it


def test_check_deploy_refuses_no_credentials(site: Path) -> None:
    checked = manage(site, "check", "--deploy")
    assert checked.returncode != 0
    assert "django_nexmo_conversion.E001" in checked.stderr


def test_credentials_from_the_environment_silence_the_warning(site: Path) -> None:
    checked = manage(site, "check", NEXMO_API_KEY="abcd1234", NEXMO_API_SECRET="s3cret-Xq")
    assert checked.returncode == 0, checked.stderr
    assert "django_nexmo_conversion" not in checked.stdout + checked.stderr


def test_the_urls_are_routed(site: Path) -> None:
    code = "from django.urls import reverse; print(reverse('django_nexmo_conversion:inbound'))"
    shown = manage(site, "shell", "-v", "0", "-c", code)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("/nexmo/")


def test_the_sms_example_imports_with_the_v4_sdk(site: Path) -> None:
    """Its names exist in the vonage 4 SDK and the module runs (sending needs a real account)."""
    shown = manage(
        site,
        "shell",
        "-v",
        "0",
        "-c",
        "from mysite import sms; import inspect; "
        "print(type(sms.vonage).__module__, inspect.signature(sms.vonage.sms.send))",
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("vonage.")
    assert "SmsMessage" in shown.stdout
