"""Secrets (API secret, signature secret) never leave the request body.

One scenario drives marks and reports through the real sandbox with every kind of failure
(401, 402, 5xx, 429, rejects, a hang that times out, a dropped connection), with every logger
at DEBUG (urllib3 and SQL included), then looks for the secrets everywhere they could leak.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from django_nexmo_conversion import (
    ReportResult,
    mark_converted,
    record_message,
    report_pending,
)
from django_nexmo_conversion.backends import get_backend
from django_nexmo_conversion.conf import build_settings, get_settings
from django_nexmo_conversion.exceptions import ConversionInputError
from django_nexmo_conversion.models import Conversion, Status
from django_nexmo_conversion.sandbox import AccountSpec, Sandbox
from django_nexmo_conversion.transport.wire import Answer, Report

from .helpers import replace_configuration, sandbox_settings

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]

API_SECRET = "SECRET-abc123-xyz"
SIGNED_API_SECRET = "SECRET-def456-uvw"
SIGNATURE_SECRET = "SIGSECRET-ghi789-rst"
WRONG_SECRET = "SECRET-wrong-000"
SECRETS = (API_SECRET, SIGNED_API_SECRET, SIGNATURE_SECRET, WRONG_SECRET)
# Fragments too: a secret cut by a length limit is still a leak.
NEEDLES = (*SECRETS, "abc123-xyz", "def456-uvw", "ghi789-rst", "wrong-000")

PLAIN_KEY, SIGNED_KEY, WRONG_KEY = "key-plain", "key-signed", "key-wrong"

#: message id -> (api key, scripted answers from the sandbox)
SCENARIO: dict[str, tuple[str, tuple[Any, ...]]] = {
    "OK-PLAIN": (PLAIN_KEY, ()),
    "OK-SIGNED": (SIGNED_KEY, ()),
    "ACCT-401": (PLAIN_KEY, (401,)),
    "ACCT-402": (SIGNED_KEY, (402,)),
    "ERR-500": (PLAIN_KEY, (500, 500, 500)),
    "ERR-503": (SIGNED_KEY, (503,)),
    "THROTTLED": (PLAIN_KEY, (429,)),
    "REJECT-420": (SIGNED_KEY, (420,)),
    "REJECT-422": (PLAIN_KEY, (422,)),
    "REJECT-423": (SIGNED_KEY, (423,)),
    "HANG": (SIGNED_KEY, ("hang",)),
    "DROP": (PLAIN_KEY, ("drop",)),
}
#: A real 401 (our secret does not match the sandbox's): it halts every run, so it comes last.
WRONG_CREDS = "WRONG-CREDS"  # SMS ids are stored in upper case


def leaks(text: str) -> list[str]:
    return [needle for needle in NEEDLES if needle in text]


@pytest.fixture
def sandbox(settings: Any) -> Iterator[Sandbox]:
    accounts = {
        PLAIN_KEY: AccountSpec(api_secret=API_SECRET),
        SIGNED_KEY: AccountSpec(
            api_secret=SIGNED_API_SECRET,
            signature_secret=SIGNATURE_SECRET,
            signature_method="sha256",
        ),
        WRONG_KEY: AccountSpec(api_secret="the-right-one"),
    }
    with Sandbox(accounts=accounts, hang_seconds=2.0) as running:
        replace_configuration(
            settings,
            sandbox_settings(
                running,
                API_KEY=PLAIN_KEY,
                API_SECRET=API_SECRET,
                ACCOUNTS={
                    SIGNED_KEY: {
                        "API_SECRET": SIGNED_API_SECRET,
                        "SIGNATURE_SECRET": SIGNATURE_SECRET,
                        "SIGNATURE_METHOD": "sha256",
                    },
                    WRONG_KEY: {"API_SECRET": WRONG_SECRET},
                },
                DISPATCH="on_commit",
                # Short, for the scripted hang; a slow machine's ordinary request that times
                # out anyway gets more attempts (MAX_ATTEMPTS), so the scenario stays
                # deterministic.
                TIMEOUT=0.5,
                MAX_ATTEMPTS=3,
                RETRY_BACKOFF=0,
                RETRY_BACKOFF_MAX=0,
                CONCURRENCY=4,
            ),
        )
        yield running


@pytest.fixture
def sql_logged() -> Iterator[None]:
    """Log every SQL statement with its parameters, so a secret written anywhere shows."""
    previous = connection.force_debug_cursor
    connection.force_debug_cursor = True
    yield
    connection.force_debug_cursor = previous


def drain(results: list[ReportResult]) -> None:
    """Report until nothing is due; a halted run is followed by another (bounded)."""
    for _ in range(10):
        result = report_pending()
        results.append(result)
        if not result.attempted and not result.halted:
            return
    raise AssertionError(f"still reporting after 10 runs: {results}")


def test_secrets_never_leak(
    sandbox: Sandbox,
    sql_logged: None,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: every logger, urllib3 included
    for name in ("urllib3", "django", "django.db.backends", "django_nexmo_conversion"):
        caplog.set_level(logging.DEBUG, logger=name)
    texts: list[str] = []  # every exception text and repr we can get hold of
    results: list[ReportResult] = []

    for message_id, (_key, script) in SCENARIO.items():
        if script:
            sandbox.script(*script, message_id=message_id)

    # Marked with on_commit dispatch: each is reported inline right after its commit.
    for message_id, (key, _script) in SCENARIO.items():
        conversion = mark_converted(record_message(message_id, api_key=key))
        texts.append(repr(conversion))
    # Then the command's way, until every retry is spent.
    drain(results)

    # The command, with a conversion that keeps getting 401, and a dry run.
    mark_converted(record_message(WRONG_CREDS, api_key=WRONG_KEY))
    out, err = io.StringIO(), io.StringIO()
    call_command("report_conversions", "--dry-run", stdout=out, stderr=err)
    with pytest.raises(CommandError) as command_error:
        call_command("report_conversions", stdout=out, stderr=err)
    texts += [str(command_error.value), repr(command_error.value), out.getvalue(), err.getvalue()]
    assert "401" in out.getvalue() + str(command_error.value)
    assert f"would report sms {WRONG_CREDS}" in out.getvalue()

    # Answers straight from the backend, for their reprs.
    backend = get_backend()
    conf = get_settings()
    for status in (200, 401, 402, 420, 429, 500, "hang", "drop"):
        # One hang costs a whole TIMEOUT: once is enough.
        for key in (SIGNED_KEY,) if status == "hang" else (PLAIN_KEY, SIGNED_KEY, WRONG_KEY):
            message_id = f"direct-{status}-{key}"
            sandbox.script(status, message_id=message_id)
            report = Report("sms", message_id, True, timezone.now())
            answer: Answer = backend.send(report, conf.account_for(key))
            texts += [repr(answer), answer.error]

    # Exception texts from bad input and bad settings (with the secrets configured).
    for bad in (lambda: mark_converted("ok-plain", delivered="yes"), lambda: record_message("")):
        with pytest.raises(ConversionInputError) as info:
            bad()
        texts += [str(info.value), repr(info.value)]
    broken = build_settings(
        {
            "API_KEY": PLAIN_KEY,
            "API_SECRET": API_SECRET,
            "SIGNATURE_SECRET": SIGNATURE_SECRET,
            "SIGNATURE_METHOD": "sha3",
            "ACCOUNTS": {SIGNED_KEY: {"API_SECRET": SIGNED_API_SECRET, "X": 1}, "k2": "v"},
            "BASE_URL": "http://api.nexmo.com",
            "BACKEND": "nowhere.Backend",
            "TIMEOUT": -1,
        }
    )
    with pytest.raises(ImproperlyConfigured) as improper:
        broken.raise_for_problems()
    texts += [str(improper.value), repr(broken), *(repr(p) for p in broken.problems)]
    empty = build_settings({"ACCOUNTS": {SIGNED_KEY: {"SIGNATURE_SECRET": SIGNATURE_SECRET}}})
    with pytest.raises(ImproperlyConfigured) as no_default:
        empty.account_for("other")
    texts.append(str(no_default.value))

    # Reprs of everything holding credentials or outcomes.
    texts += [
        repr(conf),
        str(conf),
        repr(conf.default_account),
        repr(dict(conf.accounts)),
        repr(backend),
        repr(vars(backend)),
        repr(vars(backend.client)),  # type: ignore[attr-defined]
        repr(results),
        *(r.summary() for r in results),
        repr(sandbox),
        repr(sandbox.requests),
        repr(sandbox.accounts),
    ]

    # --- the scenario really happened -------------------------------------------------------
    received = sandbox.requests
    seen = {r.message_id for r in received}
    assert {*SCENARIO, WRONG_CREDS} <= seen
    assert any(r.status == 401 for r in received)
    assert any(r.status == 402 for r in received)
    assert any(r.fault == "hang" for r in received)
    assert any(r.fault == "drop" for r in received)
    assert any(r.message_id == WRONG_CREDS and r.status == 401 for r in received)
    states = dict(Conversion.objects.values_list("message__message_id", "status"))
    assert states["OK-PLAIN"] == states["OK-SIGNED"] == Status.REPORTED
    assert states["REJECT-420"] == states["ERR-500"] == Status.FAILED
    assert states[WRONG_CREDS] == Status.PENDING  # account errors burn nothing
    # The inline dispatch met the scripted 401 and 402 and said so in the log.
    halts = [r.getMessage() for r in caplog.records if "not reported" in r.getMessage()]
    assert len(halts) >= 2, halts
    assert any("timed out" in t for t in texts)
    assert any("connection error" in t for t in texts)

    # --- and no secret anywhere -------------------------------------------------------------
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    assert any(r.name == "django.db.backends" for r in caplog.records)
    for record in caplog.records:
        rendered = formatter.format(record)  # message, args and any traceback
        assert not leaks(rendered), rendered
        assert not leaks(repr(record.args)), record.args
        assert not leaks(repr(record.__dict__)), record.__dict__

    captured = capsys.readouterr()
    assert not leaks(captured.out)
    assert not leaks(captured.err)

    for text in texts:
        assert not leaks(text), text

    # Every column of every row of the app's tables, read raw.
    app = apps.get_app_config("django_nexmo_conversion")
    tables = sorted({m._meta.db_table for m in app.get_models() if not m._meta.proxy})
    # Every table of the app is scanned, whatever tables later features add; the ones this
    # run writes must really hold rows, or the scan would prove nothing.
    filled = {
        "django_nexmo_conversion_conversion",
        "django_nexmo_conversion_conversionattempt",
        "django_nexmo_conversion_sentmessage",
    }
    assert filled <= set(tables)
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            rows = cursor.fetchall()
            assert rows or table not in filled, table
            for row in rows:
                assert not leaks(repr(row)), (table, row)

    # Signed requests carried the key and a sig, never a secret; nothing travelled in the URL.
    signed = [r for r in received if r.form.get("api_key") == SIGNED_KEY]
    assert signed
    for request in signed:
        assert "api_secret" not in request.form
        assert "sig" in request.form
        assert not leaks(repr(request.form))
    for request in received:
        assert request.query == ""
        assert SIGNATURE_SECRET not in repr(request.form)
        assert not leaks(repr(request.headers))
        assert not leaks(repr(request))
