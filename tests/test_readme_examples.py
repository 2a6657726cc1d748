"""The examples of the README and of the documentation site, run as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The pages that show the outbox example: the PyPI landing page and the how-to.
PAGES = ["README.md", "docs/howto/testing.md"]


def code_block(after: str, page: str = "README.md") -> str:
    """The first ```python block of ``page`` that starts with the line ``after``."""
    for block in re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), flags=re.S):
        if block.startswith(after):
            return str(block)
    raise AssertionError(f"{page} has no python block starting with {after!r}")


@pytest.mark.django_db  # what the example's own mark asks for, checked below
@pytest.mark.parametrize("page", PAGES)
def test_the_outbox_example_passes_as_written(client: Any, nexmo_outbox: Any, page: str) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(code_block("# test_verify.py", page), page, "exec"), namespace)
    test = namespace["test_code_entry_converts"]
    assert [mark.name for mark in test.pytestmark] == ["django_db"]
    test(client, nexmo_outbox)


@pytest.mark.django_db
@pytest.mark.parametrize("page", PAGES)
def test_the_outbox_example_fails_when_nothing_is_marked(
    client: Any, nexmo_outbox: Any, page: str
) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(code_block("# test_verify.py", page), page, "exec"), namespace)
    with pytest.raises(AssertionError):
        namespace["test_code_entry_converts"](_NoVerify(client), nexmo_outbox)


class _NoVerify:
    """A client whose /verify/ marks nothing: the example must then fail."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def post(self, path: str, data: dict[str, str]) -> Any:
        return self.client.post(path, {"code": "0000"})
