"""``make demo`` installs only what the demo needs: the package and its dependencies, not the
test suite's ``[dev]`` extra (136 packages, ~70 s before the site answered)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def dry_run(venv: Path) -> str:
    """What ``make demo`` would run, with ``venv`` as the virtualenv (``make -n``)."""
    done = subprocess.run(
        ["make", "-n", "demo", f"VENV={venv}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_a_fresh_clone_installs_the_package_alone_not_the_dev_extra(tmp_path: Path) -> None:
    script = dry_run(tmp_path / "venv")

    installs = [line for line in script.splitlines() if "pip install" in line]
    assert installs, script
    assert all("[dev]" not in line and "$(EXTRAS)" not in line for line in installs), installs
    assert any(" -e ." in line for line in installs), installs
    assert "example_project/demo.py" in script
