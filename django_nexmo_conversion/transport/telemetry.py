"""OpenTelemetry traces, when ``opentelemetry-api`` is installed; nothing happens without it.

A report run is one span (``nexmo.conversion.report_run``); each POST to the Conversion API
is a CLIENT span ``nexmo.conversion.report`` inside it, with the HTTP semantic conventions'
attributes, the channel and the outcome. No attribute ever holds a secret, a phone number or
the request body: only the endpoint URL (credentials travel in the body, never in the URL).
The POSTs run in worker threads, so the run's context is handed to them explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .wire import Answer

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    ENABLED = True
except ImportError:  # the API is optional: every function below is then a no-op
    ENABLED = False

TRACER_NAME = "django_nexmo_conversion"
POST_SPAN = "nexmo.conversion.report"
RUN_SPAN = "nexmo.conversion.report_run"


def _recording() -> bool:
    """Whether a span made now would be recorded: the API installed and a tracer provider set.
    The API alone hands out a proxy whose spans record nothing until an SDK is configured, yet
    making one (its attributes, the context it is made current in) cost about 30 us a POST."""
    if not ENABLED:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


class _Span:
    """What the callers may set on a span; a no-op without OpenTelemetry."""

    def __init__(self, span: Any = None) -> None:
        self.span = span

    def answered(self, answer: Answer) -> None:
        """The outcome of one POST: HTTP status, outcome, and an error status when not 200."""
        if self.span is None:
            return
        self.span.set_attribute("nexmo.conversion.outcome", str(answer.outcome))
        if answer.status_code is not None:
            self.span.set_attribute("http.response.status_code", answer.status_code)
        if answer.status_code != 200:
            # semconv: the status code as a string, else a low-cardinality cause.
            cause = str(answer.status_code) if answer.status_code else "connection"
            self.span.set_attribute("error.type", cause)
            self.span.set_status(trace.StatusCode.ERROR)

    def counted(self, **counts: int | bool) -> None:
        """A run's tally (reported, retrying, failed, halted)."""
        if self.span is None:
            return
        for name, value in counts.items():
            self.span.set_attribute(f"nexmo.conversion.{name}", value)
        if counts.get("halted"):
            self.span.set_status(trace.StatusCode.ERROR)


@contextmanager
def report_span(url: str, channel: str) -> Iterator[_Span]:
    """The CLIENT span of one POST to ``url``."""
    if not _recording():
        yield _Span()
        return
    parts = urlsplit(url)
    # Rebuilt from its parts so that user:password@ in a BASE_URL never reaches a span.
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    attributes: dict[str, str | int] = {
        "http.request.method": "POST",
        "url.full": f"{parts.scheme}://{netloc}{parts.path}",
        "server.address": host,
        "server.port": parts.port or (443 if parts.scheme == "https" else 80),
        "nexmo.conversion.channel": channel,
    }
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        POST_SPAN, kind=trace.SpanKind.CLIENT, attributes=attributes
    ) as span:
        yield _Span(span)


@contextmanager
def run_span() -> Iterator[_Span]:
    """The span of one report run (the parent of its POSTs)."""
    if not _recording():
        yield _Span()
        return
    with trace.get_tracer(TRACER_NAME).start_as_current_span(RUN_SPAN) as span:
        yield _Span(span)


def current_context() -> Any:
    """This thread's trace context, to hand to the threads that send (None without OTel)."""
    return otel_context.get_current() if ENABLED else None


@contextmanager
def attached(context: Any) -> Iterator[None]:
    """Make ``context`` (from :func:`current_context`) current in this thread for a while."""
    if not ENABLED or context is None:
        yield
        return
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)
