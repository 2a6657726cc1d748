"""Secrets in every encoding (an error answer echoing a secret
JSON-escaped, percent-encoded in any case, HTML-escaped, in base64, hex or quoted-printable,
or misread bytes never leaks it); and a secret in a frame's locals never reaches Django's
technical 500 page.

The end-to-end test posts to a real HTTP server on loopback that echoes the request back.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import logging
import quopri
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, unquote_plus

import pytest
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django.urls import reverse
from django.views.debug import technical_500_response
from hypothesis import given
from hypothesis import strategies as st

from django_nexmo_conversion import health, mark_converted, report_pending
from django_nexmo_conversion.models import Conversion, ConversionAttempt
from django_nexmo_conversion.transport.client import Client
from django_nexmo_conversion.transport.redaction import redact
from django_nexmo_conversion.transport.wire import Account, Report

from .helpers import FixedAnswerServer, configure

#: Every awkward character: JSON escapes, URL escapes, a space, non-ASCII (2 and 4 bytes).
SECRET = 'Se/cr"et %2F+ é\\€𝄞-Zq9tail'
KEY = "echo-key"
#: What must not be on a 500 page. Not spelt out near a call: the page quotes source lines.
PAGE_NEEDLES = (SECRET, html.escape(SECRET), SECRET[-7:])
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)

ENCODINGS: dict[str, Callable[[str], str]] = {
    "plain": lambda s: s,
    "form": quote_plus,
    "form-lower": lambda s: quote_plus(s).lower(),
    "percent": lambda s: quote(s, safe=""),
    "percent-twice": lambda s: quote(quote(s, safe=""), safe=""),
    "json": lambda s: json.dumps(s)[1:-1],
    "json-slash": lambda s: json.dumps(s)[1:-1].replace("/", "\\/"),
    "json-unicode": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "json-upper": lambda s: json.dumps(s)[1:-1].upper().replace("\\U", "\\u"),
    "html": lambda s: html.escape(s),
    "html-numeric": lambda s: "".join(f"&#{ord(c)};" for c in s),
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "basic-auth": lambda s: base64.b64encode(f"{KEY}:{s}".encode()).decode(),
    # What gateways are known to echo besides: URL-safe base64 and hex (of the secret and of
    # key:secret), base64 of a whole form body (the secret at any offset), UTF-16 read as
    # bytes, quoted-printable (with its soft line breaks), UTF-8 misread as Latin-1.
    "base64-urlsafe": lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
    "basic-auth-urlsafe": lambda s: base64.urlsafe_b64encode(f"{KEY}:{s}".encode()).decode(),
    "base64-in-form-1": lambda s: base64.b64encode(f"api_secret={s}".encode()).decode(),
    "base64-in-form-2": lambda s: base64.b64encode(f"&api_secret={s}".encode()).decode(),
    "base64-in-form-3": lambda s: base64.b64encode(f"x&api_secret={s}".encode()).decode(),
    "hex": lambda s: s.encode().hex(),
    "hex-upper": lambda s: s.encode().hex().upper(),
    "basic-auth-hex": lambda s: f"{KEY}:{s}".encode().hex(),
    "utf-16-le-as-latin-1": lambda s: s.encode("utf-16-le").decode("latin-1"),
    "utf-16-be-as-latin-1": lambda s: s.encode("utf-16-be").decode("latin-1"),
    "quoted-printable": lambda s: quopri.encodestring(s.encode()).decode().rstrip("\n"),
    "quoted-printable-all": lambda s: "".join(f"={b:02X}" for b in s.encode()),
    "utf-8-as-latin-1": lambda s: s.encode().decode("latin-1"),
    "utf-8-as-cp1252": lambda s: s.encode().decode("cp1252", "replace"),
}


def decoded_forms(text: str) -> str:
    """``text`` plus what a reader's decoders would make of it."""
    return text + json.dumps(text) + html.unescape(text)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_encoding_of_the_secret_is_masked(encoding: str) -> None:
    echoed = f"before {ENCODINGS[encoding](SECRET)} after"
    masked = redact(echoed, [SECRET], prefixes=[KEY])
    assert masked.startswith("before ")
    assert masked.endswith(" after")
    assert "***" in masked
    assert ENCODINGS[encoding](SECRET) not in masked
    assert "Zq9tail" not in masked  # nothing of it left: its end is gone too


@given(
    secret=st.text(min_size=6, max_size=24).filter(lambda s: s.strip() == s),
    encoding=st.sampled_from(sorted(ENCODINGS)),
    noise=st.text(alphabet="abc <>{}", max_size=10),
)
def test_redaction_masks_any_secret_in_any_encoding(secret: str, encoding: str, noise: str) -> None:
    text = noise + ENCODINGS[encoding](secret) + noise
    masked = redact(text, [secret], prefixes=[KEY])
    assert ENCODINGS[encoding](secret) not in masked
    assert secret not in html.unescape(masked)


class EchoHandler(BaseHTTPRequestHandler):
    """Answers 401 with a JSON error echoing the secret it received in several encodings,
    as a misbehaving gateway might."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length).decode()
        secret = parse_qs(body)["api_secret"][0]
        echoes = [f(secret) for f in ENCODINGS.values()]
        payload = json.dumps({"title": "Bad credentials", "detail": " | ".join(echoes)})
        data = payload.encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.django_db(transaction=True)
def test_an_echoing_server_leaks_the_secret_nowhere(
    echo_server: str, settings: Any, caplog: pytest.LogCaptureFixture, admin_client: Any
) -> None:
    configure(
        settings,
        BACKEND="django_nexmo_conversion.backends.http.HttpBackend",
        BASE_URL=echo_server,
        API_KEY=KEY,
        API_SECRET=SECRET,
        AUTH="params",  # the echo reads the secret from the body
    )
    caplog.set_level(logging.DEBUG)
    conversion = mark_converted("0A00000000000EC1")
    report_pending()
    with pytest.raises(CommandError) as raised:
        call_command("report_conversions")
    conversion.refresh_from_db()
    attempts = list(ConversionAttempt.objects.values_list("error", flat=True))
    assert attempts  # it did answer, with the echo
    assert all("Bad credentials" in error for error in attempts)
    page = admin_client.get(
        reverse("admin:django_nexmo_conversion_conversion_change", args=[conversion.pk])
    ).content.decode()
    assert "Bad credentials" in page
    places = [conversion.last_error, *attempts, caplog.text, str(raised.value), page]
    for place in places:
        for needle in (SECRET, "Zq9tail", "𝄞"):
            assert needle not in decoded_forms(place), (needle, place[:400])
    assert Conversion.objects.get().status != "reported"


def technical_500_page(call: Callable[[], object], raised: type[BaseException]) -> str:
    """Django's DEBUG 500 page for the exception ``call`` raises, locals of every frame."""
    try:
        call()
    except raised:
        return technical_500_response(RequestFactory().get("/"), *sys.exc_info()).content.decode()
    pytest.fail(f"expected {raised.__name__}")


def test_the_technical_500_page_never_shows_the_secret(settings: Any, tmp_path: Any) -> None:
    """DEBUG on, an exception inside Client.send (a CA bundle that is not there)."""
    settings.DEBUG = True
    client = Client(base_url="https://127.0.0.1:9", timeout=1, verify=str(tmp_path / "no-ca.pem"))
    report = Report(channel="sms", message_id="0A00000000000EC2", delivered=True, timestamp=NOW)
    page = technical_500_page(
        lambda: client.send(report, Account(api_key=KEY, api_secret=SECRET, auth="params")),
        OSError,
    )
    assert "no-ca.pem" in page  # the page does show the failing frames
    assert "api_secret" in page  # and the form fields' names, with their locals
    for needle in PAGE_NEEDLES:
        assert needle not in page


def test_a_failure_inside_the_signing_frames_shows_no_secret_either(settings: Any) -> None:
    """An unknown method raises inside ``signing.sign``, whose argument is the secret."""
    settings.DEBUG = True
    client = Client(base_url="https://127.0.0.1:9", timeout=1)
    report = Report(channel="sms", message_id="0A00000000000EC3", delivered=True, timestamp=NOW)
    account = Account(api_key=KEY, signature_secret=SECRET, signature_method="bogus")
    page = technical_500_page(lambda: client.send(report, account), ValueError)
    assert "Unknown signature method" in page
    assert "build_params" in page  # the frames that held the secret are on the page
    for needle in PAGE_NEEDLES:
        assert needle not in page


@pytest.mark.parametrize(
    ("encode", "content_type"),
    [
        (lambda body: body.decode().encode("utf-16"), "text/plain; charset=utf-16"),
        (lambda body: body.decode().encode("utf-16-le"), "text/plain"),  # read a byte a char
        (lambda body: unquote_plus(body.decode()).encode(), "text/plain; charset=latin-1"),
        (lambda body: quopri.encodestring(unquote_plus(body.decode()).encode()), "text/plain"),
    ],
    ids=["utf-16", "utf-16-as-latin-1", "utf-8-as-latin-1", "quoted-printable"],
)
@pytest.mark.django_db(transaction=True)
def test_an_echo_in_another_encoding_leaks_the_secret_nowhere(
    settings: Any, caplog: pytest.LogCaptureFixture, encode: Any, content_type: str
) -> None:
    with FixedAnswerServer(401, encode, content_type) as server:
        configure(
            settings,
            BACKEND="django_nexmo_conversion.backends.http.HttpBackend",
            BASE_URL=server.url,
            API_KEY=KEY,
            API_SECRET=SECRET,
            AUTH="params",
        )
        caplog.set_level(logging.DEBUG)
        conversion = mark_converted("0A00000000000EC4")
        report_pending()
        status = StringIO()
        with contextlib.suppress(SystemExit):
            call_command("conversion_status", "--json", stdout=status)
    conversion.refresh_from_db()
    attempts = list(ConversionAttempt.objects.values_list("error", flat=True))
    assert attempts
    places = [conversion.last_error, *attempts, caplog.text, status.getvalue()]
    places += [finding.message for finding in health.findings()]
    for place in places:
        for needle in (SECRET, "Zq9tail", SECRET.encode().decode("latin-1")):
            assert needle not in decoded_forms(place), (needle, place[:400])
        assert "Z\x00q\x009" not in place
