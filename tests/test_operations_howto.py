"""The operations how-to's health-check and Prometheus blocks, run as written: the health-check
page renders (its app is installed) and ``/metrics`` answers with the app's gauges."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client, override_settings
from prometheus_client import REGISTRY

from .test_readme_examples import code_block

pytestmark = pytest.mark.django_db

PAGE = "docs/howto/operations.md"


def urlconf(block: str) -> types.ModuleType:
    """A ``urls.py`` made of the how-to's block (which extends ``urlpatterns``)."""
    module = types.ModuleType("howto_urls")
    module.urlpatterns = []  # type: ignore[attr-defined]
    exec(block, module.__dict__)
    return module


def test_the_health_check_page_renders_with_the_settings_as_documented() -> None:
    namespace: dict[str, Any] = {"INSTALLED_APPS": list(django_settings.INSTALLED_APPS)}
    exec(code_block("INSTALLED_APPS += [", PAGE), namespace)
    urls = urlconf(code_block("from django.urls import path\nfrom health_check", PAGE))

    with override_settings(INSTALLED_APPS=namespace["INSTALLED_APPS"], ROOT_URLCONF=urls):
        page = Client().get("/ht/", HTTP_ACCEPT="text/html")

    assert page.status_code == 200, page.content[:500]
    assert b"ConversionHealthCheck" in page.content or b"Reporting" in page.content


@pytest.fixture
def collector_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The how-to's registration, undone after the test (the registry is the process's)."""
    registered: list[Any] = []
    register = REGISTRY.register

    def remember(collector: Any) -> None:
        registered.append(collector)
        register(collector)

    monkeypatch.setattr(REGISTRY, "register", remember)
    exec(code_block("from prometheus_client import REGISTRY", PAGE), {})
    yield
    for collector in registered:
        REGISTRY.unregister(collector)


@pytest.mark.usefixtures("collector_registered")
def test_the_three_line_metrics_view_serves_the_gauges() -> None:
    urls = urlconf(code_block("from django.http import HttpResponse", PAGE))

    with override_settings(ROOT_URLCONF=urls):
        scrape = Client().get("/metrics")

    assert scrape.status_code == 200
    assert scrape["Content-Type"].startswith("text/plain")
    body = scrape.content.decode()
    assert 'nexmo_conversions{status="pending"} 0.0' in body
    assert "nexmo_conversion_uncounted_rows 0.0" in body
