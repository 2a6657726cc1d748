"""The backends, and how ``BACKEND`` picks one."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_nexmo_conversion.backends import BaseBackend, get_backend, reset_backend
from django_nexmo_conversion.backends.console import ConsoleBackend
from django_nexmo_conversion.backends.dummy import DummyBackend
from django_nexmo_conversion.backends.http import HttpBackend
from django_nexmo_conversion.backends.locmem import LocmemBackend, SentReport, outbox
from django_nexmo_conversion.choices import Outcome
from django_nexmo_conversion.conf import Account, build_settings, get_settings
from django_nexmo_conversion.transport.wire import Report, format_timestamp

from .helpers import configure

BACKENDS = "django_nexmo_conversion.backends"
AT = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
REPORT = Report(channel="voice", message_id="call-1", delivered=False, timestamp=AT)
PLAIN = Account(api_key="key1", api_secret="SECRET-plain-77", auth="params")
SIGNED = Account(api_key="key1", api_secret="SECRET-plain-77", signature_secret="SECRET-sig-88")


def use(settings: Any, backend: str, **extra: Any) -> None:
    configure(settings, BACKEND=backend, **extra)


@pytest.mark.parametrize("account", [PLAIN, SIGNED], ids=["key+secret", "signed"])
def test_locmem_outbox_keeps_params_without_secret_or_sig(account: Account) -> None:
    backend = LocmemBackend(settings=get_settings())
    # A recent conversion: a signed one is then signed with its own time (see wire).
    recent = replace(REPORT, timestamp=datetime.now(timezone.utc))
    stamp = format_timestamp(recent.timestamp)
    answer = backend.send(recent, account)
    assert (answer.outcome, answer.status_code) == (Outcome.REPORTED, 200)
    assert outbox == [
        SentReport(
            channel="voice",
            message_id="call-1",
            delivered=False,
            timestamp=stamp,
            api_key="key1",
            params={
                "api_key": "key1",
                "message-id": "call-1",
                "delivered": "false",
                "timestamp": stamp,
            },
        )
    ]
    assert "SECRET" not in repr(outbox)


def test_console_writes_one_line_without_secrets() -> None:
    stream = io.StringIO()
    backend = ConsoleBackend(settings=get_settings(), stream=stream)
    answer = backend.send(REPORT, SIGNED)
    backend.send(REPORT, PLAIN)
    assert answer.outcome == Outcome.REPORTED
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "/conversions/voice" in lines[0]
    assert "message-id=call-1" in lines[0]
    assert "delivered=false" in lines[0]
    assert "timestamp=2024-05-01 12:30:00" in lines[0]
    assert "api_key=key1" in lines[0]
    assert "SECRET" not in stream.getvalue()


def test_console_defaults_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleBackend(settings=get_settings()).send(REPORT, SIGNED)
    out = capsys.readouterr().out
    assert out.count("message-id=call-1") == 1
    assert "SECRET" not in out


def test_dummy_answers_reported_and_keeps_nothing() -> None:
    answer = DummyBackend(settings=get_settings()).send(REPORT, PLAIN)
    assert (answer.outcome, answer.status_code) == (Outcome.REPORTED, 200)
    assert outbox == []


def test_base_backend_send_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        BaseBackend(settings=get_settings()).send(REPORT, PLAIN)


@pytest.mark.parametrize(
    ("path", "cls"),
    [
        (f"{BACKENDS}.locmem.LocmemBackend", LocmemBackend),
        (f"{BACKENDS}.console.ConsoleBackend", ConsoleBackend),
        (f"{BACKENDS}.dummy.DummyBackend", DummyBackend),
        (f"{BACKENDS}.http.HttpBackend", HttpBackend),
    ],
)
def test_get_backend_picks_backend_by_dotted_path(settings: Any, path: str, cls: type) -> None:
    use(settings, path)
    backend = get_backend()
    assert type(backend) is cls
    assert get_backend() is backend  # one instance per process


def test_get_backend_rebuilt_after_settings_change(settings: Any) -> None:
    use(settings, f"{BACKENDS}.locmem.LocmemBackend")
    first = get_backend()
    use(settings, f"{BACKENDS}.dummy.DummyBackend")
    second = get_backend()
    assert type(second) is DummyBackend
    use(settings, f"{BACKENDS}.dummy.DummyBackend", TIMEOUT=1)
    third = get_backend()
    assert third is not second
    assert third.settings.timeout == 1
    assert first is not second


def test_http_backend_uses_the_settings(settings: Any) -> None:
    use(settings, f"{BACKENDS}.http.HttpBackend", BASE_URL="http://127.0.0.1:8765/", TIMEOUT=3)
    backend = get_backend()
    assert isinstance(backend, HttpBackend)
    assert backend.client.base_url == "http://127.0.0.1:8765"
    assert backend.client.timeout == 3


CLOSED: list[str] = []


class ClosingBackend(DummyBackend):
    """Records that it was closed; BACKEND points here by dotted path."""

    def close(self) -> None:
        CLOSED.append(self.settings.backend)


def test_settings_change_closes_the_old_backend(settings: Any) -> None:
    CLOSED.clear()
    use(settings, f"{__name__}.ClosingBackend")
    assert type(get_backend()) is ClosingBackend
    use(settings, f"{BACKENDS}.dummy.DummyBackend")
    assert [f"{__name__}.ClosingBackend"] == CLOSED
    reset_backend()
    assert len(CLOSED) == 1  # the dummy's close is the base no-op


@pytest.mark.parametrize(
    "path", ["no.such.module.Backend", f"{BACKENDS}.http.Nope", "NotADottedPath"]
)
def test_unimportable_backend_is_improperly_configured(settings: Any, path: str) -> None:
    use(settings, path)
    with pytest.raises(ImproperlyConfigured) as info:
        get_backend()
    assert "NEXMO_CONVERSION['BACKEND']" in str(info.value)
    assert path in str(info.value)


def test_backend_problem_found_without_django() -> None:
    resolved = build_settings({"API_KEY": "k", "API_SECRET": "s", "BACKEND": "x.y"})
    assert [p.id for p in resolved.problems] == ["E007"]
