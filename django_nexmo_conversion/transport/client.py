"""One POST to the Conversion API with ``requests``, and which outcome its answer is.

What the request carries is built by ``wire``. Nothing here touches the database: it runs
in worker threads.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import requests
from django.views.decorators.debug import sensitive_variables

from ..__about__ import __version__
from ..choices import Outcome
from . import redaction, telemetry
from .deadline import Deadline, DeadlineAdapter
from .wire import Account, Answer, Report, authorization, build_params, endpoint

USER_AGENT = f"django-nexmo-conversion/{__version__} python-requests/{requests.__version__}"
#: How much of an error answer we keep: enough to read the cause, never a whole HTML page.
ERROR_TEXT_LIMIT = 300
#: How much of an answer's body is kept for its error at all.
ERROR_BODY_LIMIT = 2000
#: How much of an answer's body is read at most (the rest is never downloaded).
BODY_LIMIT = 64 * 1024
#: The longest ``Retry-After`` taken as said; the outcome and the rate limiter then bound it
#: by ``RETRY_BACKOFF_MAX``.
RETRY_AFTER_CEILING = 366 * 86400.0
_DELTA_SECONDS = re.compile(r"[0-9]{1,20}(\.[0-9]{1,9})?")


def parse_retry_after(value: object) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date): a finite number
    from 0 to ``RETRY_AFTER_CEILING``, or None when the value means nothing. Never raises:
    the header comes from the other side (``1e400``, ``nan``, year 9999, garbage)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        # Digits only (RFC 9110; a fraction tolerated): float() alone would take "inf",
        # "nan", "1e400" and "1_0".
        return min(float(text), RETRY_AFTER_CEILING)
    try:
        when = email.utils.parsedate_to_datetime(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CEILING)


def describe_error(status_code: int, body: str) -> str:
    """A short, human cause from an error answer: Nexmo's JSON title/detail, else the text."""
    text = body.strip()
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        parts = [str(data[k]) for k in ("title", "detail", "error-text") if data.get(k)]
        if parts:
            return f"HTTP {status_code}: " + " — ".join(parts)[:ERROR_TEXT_LIMIT]
    if text.startswith("<"):
        # An HTML error page (402 sometimes comes as one): its text is markup, not a cause.
        return f"HTTP {status_code}: {ANSWER_MEANINGS.get(status_code, 'error')} (HTML answer)"
    meaning = ANSWER_MEANINGS.get(status_code)
    detail = f": {text[:ERROR_TEXT_LIMIT]}" if text else ""
    return f"HTTP {status_code}{': ' + meaning if meaning else ''}{detail}"


#: Answers that say the endpoint or the request's shape is wrong, not this conversion: the same
#: for every conversion, so they stop the run (plus every 3xx: redirects are not followed).
ENDPOINT_ERROR_CODES = frozenset({403, 404, 405, 406, 415})
_ENDPOINT_FIX = (
    "the endpoint or the request's shape is wrong, the same for every conversion — check "
    "BASE_URL (the path must be the API's root, e.g. https://api.nexmo.com) and any proxy "
    "between here and Nexmo (PROXIES, HTTPS_PROXY)"
)


def is_endpoint_error(status_code: int | None) -> bool:
    """Whether ``status_code`` says the endpoint is wrong (403/404/405/406/415 or a redirect)."""
    if status_code is None:
        return False
    return status_code in ENDPOINT_ERROR_CODES or 300 <= status_code < 400


def halt_fix(status_code: int | None) -> str:
    """What to fix for an answer that stops reporting (401/402 or an endpoint error)."""
    if is_endpoint_error(status_code):
        return _ENDPOINT_FIX
    return ANSWER_MEANINGS.get(status_code or 0, "")


ANSWER_MEANINGS = {
    401: "wrong credentials — check API_KEY and API_SECRET / SIGNATURE_SECRET (and AUTH)",
    402: "conversions are not enabled for this account — ask Vonage support to enable the "
    "Conversion API for this API key",
    **dict.fromkeys(ENDPOINT_ERROR_CODES, _ENDPOINT_FIX),
    408: "the server timed out waiting for the request",
    420: "invalid parameters",
    422: "invalid parameters",
    423: "invalid parameters",
    429: "too many requests",
}


def classify(status_code: int, body: str, headers: Any) -> Answer:
    """Map an HTTP answer to the outcome table (docs, "Outcomes of one attempt")."""
    if status_code == 200:
        return Answer(Outcome.REPORTED, status_code)
    error = describe_error(status_code, body)
    if status_code in (401, 402):
        return Answer(Outcome.ACCOUNT_ERROR, status_code, error)
    if is_endpoint_error(status_code):
        # Stored as an account error (it stops reporting the same way, nothing burned); the
        # status code tells the two apart (see ``reporting.outcomes.halts_everything``).
        if 300 <= status_code < 400:
            where = str(headers.get("Location") or "")[:ERROR_TEXT_LIMIT]
            error = (
                f"HTTP {status_code}: redirected{' to ' + where if where else ''} — {_ENDPOINT_FIX}"
            )
        elif _ENDPOINT_FIX not in error:
            error = f"{error} — {_ENDPOINT_FIX}"
        return Answer(Outcome.ACCOUNT_ERROR, status_code, error)
    if status_code in (408, 429) or status_code >= 500:
        retry_after = parse_retry_after(headers.get("Retry-After"))
        return Answer(Outcome.TRANSIENT, status_code, error, retry_after=retry_after)
    # Any other answer (420/422/423, other 4xx, odd 1xx/2xx) is about this conversion's
    # parameters: sending it again would get the same answer.
    return Answer(Outcome.REJECTED, status_code, error)


def environment_proxies(url: str) -> dict[str, str | None]:
    """The proxies the standard environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``,
    ``NO_PROXY``) gives for ``url``, as any requests client would use them."""
    found = requests.utils.get_environ_proxies(url)
    found.pop("no", None)  # NO_PROXY itself, already applied to url
    return {str(k): str(v) for k, v in found.items()}


def environment_verify() -> bool | str:
    """``REQUESTS_CA_BUNDLE`` (as requests reads it) or ``SSL_CERT_FILE`` (as OpenSSL does),
    else True: the public CAs."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(name)
        if value:
            return value
    return True


def _redact(text: str, account: Account) -> str:
    """``text`` without the account's secrets in any encoding (see ``redaction``): a proxy or
    gateway error page may echo the request back, and the error text is stored, logged and
    shown in the admin."""
    return redaction.redact(
        text, (account.api_secret, account.signature_secret), prefixes=(account.api_key,)
    )


def _read_text(response: requests.Response) -> str:
    """The answer's body, at most ``BODY_LIMIT`` bytes of it. Cut off midway (the deadline,
    a dropped connection), what came is kept: the status line already said what happened, and
    a 200 must stay a 200 (taking it for a failure would send the conversion twice)."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(8192):
            chunks.append(chunk)
            size += len(chunk)
            if size >= BODY_LIMIT:
                response.close()  # the rest is never downloaded (nor the connection reused)
                break
    except requests.RequestException:
        pass
    return b"".join(chunks)[:BODY_LIMIT].decode(response.encoding or "utf-8", "replace")


class Client:
    """Posts reports. One ``requests.Session`` per thread keeps connections alive."""

    def __init__(
        self,
        *,
        base_url: str,
        timeout: float,
        verify: bool | str | None = None,
        proxies: Mapping[str, str | None] | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        #: ``requests``' ``verify``: a CA bundle path or a bool; ``None`` reads the environment
        #: (``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE``) as a requests client would.
        self.verify = environment_verify() if verify is None else verify
        #: ``requests``' ``proxies``; ``None`` reads the environment, honouring ``NO_PROXY``. A
        #: scheme mapped to None goes direct: with the environment ignored, leaving it out does.
        chosen = environment_proxies(base_url) if proxies is None else proxies
        self.proxies = {scheme: url for scheme, url in chosen.items() if url}
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            session.headers["Accept"] = "application/json, text/plain, */*"
            # trust_env would also apply ~/.netrc credentials to a request that carries its own
            # (or to one sent through a proxy): never. The environment's proxies and CA bundle
            # are read above, explicitly, instead.
            session.trust_env = False
            session.verify = self.verify
            session.proxies.update(self.proxies)
            # TIMEOUT is the whole request's deadline, not each read's (see ``deadline``).
            for prefix in ("https://", "http://"):
                session.mount(prefix, DeadlineAdapter())
            self._local.session = session
        return session

    def send(self, report: Report, account: Account) -> Answer:
        url = endpoint(self.base_url, report.channel)
        with telemetry.report_span(url, report.channel) as span:
            answer = self._post(url, report, account)
            span.answered(answer)
        return answer

    # The form fields and the Basic header hold the API secret: hidden from Django's error
    # reports (and the secrets are Secret strings, whose repr hides them from any reporter
    # reading locals).
    @sensitive_variables("params", "header", "secrets", "text", "body")
    def _post(self, url: str, report: Report, account: Account) -> Answer:
        params = build_params(report, account)
        header = authorization(account)
        started = datetime.now(timezone.utc)
        clock = time.perf_counter()
        deadline = Deadline(self.timeout)
        try:
            with deadline:
                response = self._session().post(
                    url,
                    data=params,
                    headers={"Authorization": header} if header else None,
                    timeout=self.timeout,
                    allow_redirects=False,
                    stream=True,
                )
                # Cut before the head was read, a status line may parse from its first
                # bytes: only a head read in time says what Nexmo answered.
                head_in_time = not deadline.expired
                # Redacted past the cut first, so a secret straddling it is masked whole.
                secrets = (account.api_secret, account.signature_secret)
                text = _read_text(response)[: ERROR_BODY_LIMIT + redaction.margin(secrets)]
                body = _redact(text, account)[:ERROR_BODY_LIMIT]
            if not head_in_time:
                raise requests.Timeout
            answer = classify(response.status_code, body, response.headers)
            # Again once describe_error has decoded the JSON: its escapes may have spelt a
            # secret that only the decoding put back together.
            answer = replace(answer, error=_redact(answer.error, account))
        except requests.RequestException as exc:
            if deadline.expired or isinstance(exc, requests.Timeout):
                answer = Answer(Outcome.TRANSIENT, None, f"timed out after {self.timeout:g} s")
            else:
                # The exception text can echo the URL but never the body, where credentials
                # are.
                answer = Answer(Outcome.TRANSIENT, None, f"connection error: {type(exc).__name__}")
        return Answer(
            answer.outcome,
            answer.status_code,
            answer.error,
            retry_after=answer.retry_after,
            started_at=started,
            duration=time.perf_counter() - clock,
        )

    def close(self) -> None:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None
