"""How the Conversion API answers: the documented status codes with the bodies of Nexmo's
OpenAPI file (``type``, ``title``, ``detail``, ``instance``, as ``common_errors.yml`` shapes
them), and, for 402, the Jetty HTML page the real API has been seen sending. Standard library
only; :mod:`.rules` decides which answer a request gets."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from http import HTTPStatus
from typing import Literal, TypeAlias

Fault: TypeAlias = Literal["drop", "hang"]

ERROR_DOCS = "https://developer.nexmo.com/api-errors#"
# http.HTTPStatus has no 420 and calls 423 "Locked"; the Conversion API means "invalid parameters".
REASONS = {420: "Invalid Parameters", 423: "Invalid Parameters"}


@dataclass(frozen=True)
class Answer:
    """What to send back: a status with a body, or a fault (``status`` is then ``None``)."""

    status: int | None
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    fault: Fault | None = None
    #: The status line's reason phrase when it is not the usual one (Jetty's pages say why).
    phrase: str | None = None

    @property
    def reason(self) -> str:
        """The status line's reason phrase, as the real API words it ("" if unknown)."""
        if self.phrase is not None:
            return self.phrase
        return "" if self.status is None else reason_phrase(self.status)


def reason_phrase(status: int) -> str:
    if status in REASONS:
        return REASONS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def ok() -> Answer:
    # The reference says the reply "is not in JSON or XML format": an empty 200 it is.
    return Answer(status=200)


def json_error(
    status: int, slug: str, title: str, detail: str, headers: tuple[tuple[str, str], ...] = ()
) -> Answer:
    """A JSON error body shaped like common_errors.yml (type, title, detail, instance)."""
    document = {
        "type": ERROR_DOCS + slug,
        "title": title,
        "detail": detail,
        "instance": secrets.token_hex(16),
    }
    body = json.dumps(document).encode("utf-8")
    return Answer(status, body, "application/json", headers)


def bad_credentials() -> Answer:
    return json_error(
        401,
        "unauthorized",
        "Invalid credentials supplied",
        "You did not provide correct credentials.",
    )


def conversions_disabled() -> Answer:
    """402 as the OpenAPI file describes it: "Conversion has not been enabled for your
    account", in the JSON error shape."""
    return json_error(
        402,
        "conversion-not-enabled",
        "Conversion has not been enabled for your account",
        "Conversions are not enabled for this API key; ask Vonage support to enable them.",
    )


#: The reason Nexmo's Jetty gives its 402 page (``--html-402``).
JETTY_402_REASON = "Bad Account Credentials"


def jetty_page(status: int, why: str, path: str) -> Answer:
    """Jetty's own error page, as the real API's servlet container sends it (the 402 "Bad
    Account Credentials" page has been seen): HTML, Latin-1, the reason in the status line
    too. Clients must not assume every error body is JSON."""
    page = (
        "<html>\n<head>\n"
        '<meta http-equiv="Content-Type" content="text/html;charset=ISO-8859-1"/>\n'
        f"<title>Error {status} {why}</title>\n"
        "</head>\n"
        f"<body><h2>HTTP ERROR {status}</h2>\n"
        f"<p>Problem accessing {path}. Reason:\n"
        f"<pre>    {why}</pre></p>"
        '<hr><a href="http://eclipse.org/jetty">Powered by Jetty://</a><hr/>\n'
        "</body>\n</html>\n"
    )
    body = page.encode("latin-1", "replace")
    return Answer(status, body, "text/html;charset=ISO-8859-1", phrase=why)


def invalid_params(status: int, detail: str) -> Answer:
    return json_error(status, "invalid-params", "Invalid parameters", detail)


def throttled(retry_after: int) -> Answer:
    return json_error(
        429,
        "throttled",
        "Too Many Requests",
        "You have exceeded the rate limit; retry later.",
        (("Retry-After", str(retry_after)),),
    )


def not_found(path: str) -> Answer:
    return json_error(404, "not-found", "Not Found", f"Path {path!r} does not exist.")


def wrong_verb(method: str) -> Answer:
    return json_error(
        405,
        "wrong-verb",
        "Request method not allowed",
        f"Request method {method!r} not supported",
        (("Allow", "POST"),),
    )


def generic_error(status: int) -> Answer:
    phrase = reason_phrase(status)
    slug = phrase.lower().replace(" ", "-") or str(status)
    return json_error(status, slug, phrase, f"The sandbox answered {status} as scripted.")


def answer_for_status(status: int, retry_after: int) -> Answer:
    """A scripted status, answered the way the real API would answer it."""
    if status == 200:
        return ok()
    if status == 401:
        return bad_credentials()
    if status == 402:
        return conversions_disabled()
    if status in (420, 422, 423):
        return invalid_params(status, "Invalid parameters (scripted).")
    if status == 429:
        return throttled(retry_after)
    if 300 <= status < 400:
        # As a misrouted request would see it: a redirect elsewhere, which clients must not follow.
        return Answer(status, b"", None, (("Location", "https://developer.vonage.com/"),))
    return generic_error(status)
