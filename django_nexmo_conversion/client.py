"""One POST to the Conversion API with ``requests``, and which outcome its answer is.

What the request carries is built by ``wire``. Nothing here touches the database: it runs
in worker threads.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import threading
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote_plus

import requests

from .__about__ import __version__
from .choices import Outcome
from .deadline import Deadline, DeadlineAdapter
from .wire import Account, Answer, Report, build_params, endpoint

USER_AGENT = f"django-nexmo-conversion/{__version__} python-requests/{requests.__version__}"
#: How much of an error answer we keep: enough to read the cause, never a whole HTML page.
ERROR_TEXT_LIMIT = 300
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


ANSWER_MEANINGS = {
    401: "wrong credentials — check API_KEY and API_SECRET / SIGNATURE_SECRET",
    402: "conversions are not enabled for this account — ask Vonage support to enable the "
    "Conversion API for this API key",
    420: "invalid parameters",
    422: "invalid parameters",
    423: "invalid parameters",
    429: "too many requests",
}


def classify(status_code: int, body: str, headers: Any) -> Answer:
    """Map an HTTP answer to the outcome table (README, "Outcomes of one attempt")."""
    if status_code == 200:
        return Answer(Outcome.REPORTED, status_code)
    error = describe_error(status_code, body)
    if status_code in (401, 402):
        return Answer(Outcome.ACCOUNT_ERROR, status_code, error)
    if status_code == 429 or status_code >= 500:
        retry_after = parse_retry_after(headers.get("Retry-After"))
        return Answer(Outcome.TRANSIENT, status_code, error, retry_after=retry_after)
    # Any other answer (420/422/423, other 4xx, and odd 1xx/3xx) is about this conversion's
    # parameters: sending it again would get the same answer.
    return Answer(Outcome.REJECTED, status_code, error)


def _redact(text: str, account: Account) -> str:
    """``text`` without the account's secrets: a proxy or gateway error page may echo the
    request body back, and the error text is stored, logged and shown in the admin."""
    for secret in (account.api_secret, account.signature_secret):
        if secret:
            # As sent (form-encoded) and as decoded.
            text = text.replace(quote_plus(secret), "***").replace(secret, "***")
    return text


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

    def __init__(self, *, base_url: str, timeout: float, verify: bool | str = True) -> None:
        self.base_url = base_url
        self.timeout = timeout
        #: ``requests``' ``verify``: True (the system's CAs, via certifi) or a CA bundle path.
        #: The environment's ``REQUESTS_CA_BUNDLE`` is ignored with the rest of it (below), so
        #: a backend subclass that must trust a private CA passes its path here.
        self.verify = verify
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            session.headers["Accept"] = "application/json, text/plain, */*"
            # Proxies or auth from the environment (.netrc) must not redirect our credentials.
            session.trust_env = False
            session.verify = self.verify
            # TIMEOUT is the whole request's deadline, not each read's (see ``deadline``).
            for prefix in ("https://", "http://"):
                session.mount(prefix, DeadlineAdapter())
            self._local.session = session
        return session

    def send(self, report: Report, account: Account) -> Answer:
        params = build_params(report, account)
        started = datetime.now(timezone.utc)
        clock = time.perf_counter()
        deadline = Deadline(self.timeout)
        try:
            with deadline:
                response = self._session().post(
                    endpoint(self.base_url, report.channel),
                    data=params,
                    timeout=self.timeout,
                    allow_redirects=False,
                    stream=True,
                )
                # Cut before the head was read, a status line may parse from its first
                # bytes: only a head read in time says what Nexmo answered.
                head_in_time = not deadline.expired
                body = _redact(_read_text(response)[:2000], account)
            if not head_in_time:
                raise requests.Timeout
            answer = classify(response.status_code, body, response.headers)
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
