r"""The outcome table: which of the five outcomes an answer is, a short human cause, and what
a person should do about it ("Outcomes of one attempt" in docs/explanation/reporting.md).

The one place that reads HTTP statuses. It lives in the transport because the client and the
backends build ``Answer``\s with their outcome; ``reporting.outcomes.judge`` decides what each
outcome does to the row and the run, and every reader (the admin, ``queries``, ``health``, the
command) reads the stored outcome.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from datetime import datetime, timezone
from typing import Any

from ..choices import Outcome
from .wire import Answer

#: How much of an error answer we keep: enough to read the cause, never a whole HTML page.
ERROR_TEXT_LIMIT = 300
#: The longest ``Retry-After`` taken as said; the outcome and the rate limiter then bound it
#: by ``RETRY_BACKOFF_MAX``.
RETRY_AFTER_CEILING = 366 * 86400.0
_DELTA_SECONDS = re.compile(r"[0-9]{1,20}(\.[0-9]{1,9})?")
_HTML_TITLE = re.compile(r"<title>([^<]{1,300})</title>", re.IGNORECASE)
_STATUS_PREFIX = re.compile(r"^\s*(error\s+)?\d{3}\b\s*", re.IGNORECASE)


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
    except (ValueError, RecursionError):
        # Not JSON, or JSON nested deeper than the parser goes ("[[[[..."): read as text.
        data = None
    if isinstance(data, dict):
        parts = [str(data[k]) for k in ("title", "detail", "error-text") if data.get(k)]
        if parts:
            return f"HTTP {status_code}: " + " — ".join(parts)[:ERROR_TEXT_LIMIT]
    if text.startswith("<"):
        # An HTML error page (402 sometimes comes as one): its text is markup, not a cause,
        # but Jetty's title says why ("Error 402 Bad Account Credentials").
        title = _HTML_TITLE.search(text[:2000])
        why = _STATUS_PREFIX.sub("", title.group(1)).strip() if title else ""
        why = why[:ERROR_TEXT_LIMIT] or ANSWER_MEANINGS.get(status_code, "error")
        return f"HTTP {status_code}: {why} (HTML answer)"
    meaning = ANSWER_MEANINGS.get(status_code)
    detail = f": {text[:ERROR_TEXT_LIMIT]}" if text else ""
    return f"HTTP {status_code}{': ' + meaning if meaning else ''}{detail}"


#: Answers that say the endpoint or the request's shape is wrong, not this conversion: the same
#: for every conversion (plus every redirect: ``REDIRECTS``; they are not followed).
ENDPOINT_STATUSES = frozenset({403, 404, 405, 406, 415})
REDIRECTS = range(300, 400)
#: 401 (credentials) and 402 (conversions not enabled): the account, not this conversion.
ACCOUNT_STATUSES = frozenset({401, 402})
#: Worth sending again later (besides a timeout or a connection error, which have no status).
TRANSIENT_STATUSES = frozenset({408, 429})


def outcome_of(status_code: int) -> Outcome:
    """The outcome table: which of the five outcomes an HTTP status is. Every other module
    reads the stored outcome; none maps a status again."""
    if status_code == 200:
        return Outcome.REPORTED
    if status_code in ACCOUNT_STATUSES:
        return Outcome.ACCOUNT_ERROR
    if status_code in ENDPOINT_STATUSES or status_code in REDIRECTS:
        return Outcome.ENDPOINT_ERROR
    if status_code in TRANSIENT_STATUSES or status_code >= 500:
        return Outcome.TRANSIENT
    # Any other answer (420/422/423, other 4xx, odd 1xx/2xx) is about this conversion's
    # parameters: sending it again would get the same answer.
    return Outcome.REJECTED


# --- what a person should do about an answer (the command, the health check, the logs) -------

ENDPOINT_FIX = (
    "the endpoint or the request's shape is wrong, the same for every conversion — check "
    "BASE_URL (the path must be the API's root, e.g. https://api.nexmo.com) and any proxy "
    "between here and Nexmo (PROXIES, HTTPS_PROXY)"
)

#: A short meaning per status, for error texts and the operators' help.
ANSWER_MEANINGS = {
    401: "wrong credentials — check API_KEY and API_SECRET / SIGNATURE_SECRET (and AUTH)",
    402: "conversions are not enabled for this account — ask Vonage support to enable the "
    "Conversion API for this API key",
    **dict.fromkeys(ENDPOINT_STATUSES, ENDPOINT_FIX),
    408: "the server timed out waiting for the request",
    420: "invalid parameters",
    422: "invalid parameters",
    423: "invalid parameters",
    429: "too many requests",
}


def halt_fix(outcome: str, status_code: int | None) -> str:
    """What to fix for an answer that stops reporting (an account or an endpoint error)."""
    if outcome == Outcome.ENDPOINT_ERROR:
        return ENDPOINT_FIX
    return ANSWER_MEANINGS.get(status_code or 0, "")


def classify(status_code: int, body: str, headers: Any) -> Answer:
    """An HTTP answer as the table files it, with a short human cause and ``Retry-After``."""
    outcome = outcome_of(status_code)
    if outcome == Outcome.REPORTED:
        return Answer(outcome, status_code)
    error = describe_error(status_code, body)
    if outcome == Outcome.ENDPOINT_ERROR:
        if status_code in REDIRECTS:
            where = str(headers.get("Location") or "")[:ERROR_TEXT_LIMIT]
            error = (
                f"HTTP {status_code}: redirected{' to ' + where if where else ''} — {ENDPOINT_FIX}"
            )
        elif ENDPOINT_FIX not in error:
            error = f"{error} — {ENDPOINT_FIX}"
    retry_after = None
    if outcome == Outcome.TRANSIENT:
        retry_after = parse_retry_after(headers.get("Retry-After"))
    return Answer(outcome, status_code, error, retry_after=retry_after)
