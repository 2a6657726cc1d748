"""What ``pyproject.toml`` promises users: the pytest plugin loads itself, and the light
``[testing]`` extra is enough for it and the factories."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

PYPROJECT = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
PLUGIN = "django_nexmo_conversion.testing.pytest_plugin"


def table(name: str) -> str:
    """The body of ``[name]`` in pyproject.toml (up to the next table)."""
    match = re.search(rf"^\[{re.escape(name)}\]\n(.*?)(?=^\[|\Z)", PYPROJECT, flags=re.M | re.S)
    assert match, f"pyproject.toml has no [{name}]"
    return match.group(1)


def extra(name: str) -> list[str]:
    match = re.search(rf"^{name} = \[(.*?)\]", table("project.optional-dependencies"), re.M | re.S)
    assert match, f"no [{name}] extra"
    return [re.split(r"[<>=~\[]", item)[0] for item in re.findall(r'"([^"]+)"', match.group(1))]


def test_the_plugin_is_a_pytest11_entry_point_named_after_its_module() -> None:
    # Named after the module, a conftest.py's pytest_plugins = [PLUGIN] finds it registered
    # and does not register it a second time (pytest refuses a plugin registered twice).
    assert f'"{PLUGIN}" = "{PLUGIN}"' in table("project.entry-points.pytest11")


def test_the_plugin_is_registered_once(request: pytest.FixtureRequest) -> None:
    import django_nexmo_conversion.testing.pytest_plugin as plugin

    manager: Any = request.config.pluginmanager
    assert [p for p in manager.get_plugins() if p is plugin] == [plugin]
    assert manager.get_plugin(PLUGIN) is plugin


def test_the_testing_extra_is_light() -> None:
    # What the plugin and the factories import, beyond the app's own dependencies.
    assert sorted(extra("testing")) == ["factory-boy", "pytest", "pytest-django"]
