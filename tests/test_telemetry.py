"""OpenTelemetry: a report run is a span, each POST a CLIENT span inside it (from the pool's
threads too), with the HTTP attributes, the channel and the outcome — never a secret or a
phone number. Exported to OpenTelemetry's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from django_nexmo_conversion import record_message, report_pending
from django_nexmo_conversion.sandbox import Sandbox
from django_nexmo_conversion.transport import telemetry

from .helpers import configure, mark_many

pytestmark = [pytest.mark.django_db, pytest.mark.sandbox]

SECRET = "wrong-secret-Tr4Kd9Nc"
PHONE = "447700900982"

_exporter = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    # The global provider can be set once per process: the first test sets it.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
    _exporter.clear()
    yield _exporter
    _exporter.clear()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def every_attribute_value(exporter: InMemorySpanExporter) -> str:
    return " ".join(
        f"{key}={value}"
        for span in exporter.get_finished_spans()
        for key, value in (span.attributes or {}).items()
    )


def test_each_post_is_a_client_span_under_the_run(
    nexmo_sandbox: Sandbox, settings: Any, spans: InMemorySpanExporter
) -> None:
    configure(settings, RETRY_BACKOFF=600, RETRY_BACKOFF_MAX=3600)
    nexmo_sandbox.script(422, message_id="TEL0001")
    record_message("TEL0000", recipient=PHONE)
    mark_many(3, prefix="TEL")

    result = report_pending(concurrency=3)  # the POSTs go out from the pool's threads

    (run,) = named(spans, telemetry.RUN_SPAN)
    posts = named(spans, telemetry.POST_SPAN)
    assert result.reported == 2
    assert len(posts) == 3
    assert run.context is not None
    for post in posts:
        assert post.kind == SpanKind.CLIENT
        assert post.parent is not None
        assert post.parent.span_id == run.context.span_id
        attributes = post.attributes or {}
        assert attributes["http.request.method"] == "POST"
        assert attributes["url.full"] == f"{nexmo_sandbox.base_url}/conversions/sms"
        assert attributes["server.address"] == "127.0.0.1"
        assert attributes["nexmo.conversion.channel"] == "sms"
    outcomes = sorted(
        (
            (p.attributes or {})["http.response.status_code"],
            (p.attributes or {})["nexmo.conversion.outcome"],
            p.status.status_code,
        )
        for p in posts
    )
    assert outcomes == [
        (200, "reported", StatusCode.UNSET),
        (200, "reported", StatusCode.UNSET),
        (422, "rejected", StatusCode.ERROR),
    ]
    assert (run.attributes or {})["nexmo.conversion.reported"] == 2
    assert (run.attributes or {})["nexmo.conversion.failed"] == 1


def test_a_halt_is_an_error_and_no_attribute_holds_a_secret_or_a_number(
    nexmo_sandbox: Sandbox, settings: Any, spans: InMemorySpanExporter
) -> None:
    configure(settings, API_SECRET=SECRET)
    record_message("TELH0000", recipient=PHONE)
    mark_many(1, prefix="TELH")

    assert report_pending(concurrency=1).halted

    (run,) = named(spans, telemetry.RUN_SPAN)
    (post,) = named(spans, telemetry.POST_SPAN)
    assert (run.attributes or {})["nexmo.conversion.halted"] is True
    assert run.status.status_code == StatusCode.ERROR
    assert (post.attributes or {})["error.type"] == "401"
    assert (post.attributes or {})["nexmo.conversion.outcome"] == "account_error"
    everything = every_attribute_value(spans) + " ".join(
        str(s.status.description) for s in spans.get_finished_spans()
    )
    assert SECRET not in everything
    assert PHONE not in everything


def test_a_connection_error_has_no_status_code_but_an_error_type(
    settings: Any, spans: InMemorySpanExporter
) -> None:
    from .helpers import free_port

    configure(
        settings,
        BACKEND="django_nexmo_conversion.backends.http.HttpBackend",
        BASE_URL=f"http://user:pw-Qz8@127.0.0.1:{free_port()}",
    )
    mark_many(1, prefix="TELC")

    report_pending(concurrency=1)

    (post,) = named(spans, telemetry.POST_SPAN)
    attributes = post.attributes or {}
    assert "http.response.status_code" not in attributes
    assert attributes["error.type"] == "connection"
    assert attributes["nexmo.conversion.outcome"] == "transient"
    assert "pw-Qz8" not in every_attribute_value(spans)  # userinfo never reaches a span


def test_without_opentelemetry_everything_is_a_no_op() -> None:
    import subprocess
    import sys

    from .processes import ROOT

    script = (
        "import sys; sys.modules['opentelemetry'] = None\n"  # as if it were not installed
        "from django_nexmo_conversion.transport import telemetry\n"
        "assert not telemetry.ENABLED\n"
        "with telemetry.run_span() as run, telemetry.attached(telemetry.current_context()):\n"
        "    with telemetry.report_span('https://api.nexmo.com/conversions/sms', 'sms') as s:\n"
        "        s.answered(None)\n"
        "    run.counted(reported=1)\n"
        "print('no-op')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout == "no-op\n"
