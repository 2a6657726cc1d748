"""One POST to the Conversion API with ``requests``, and which outcome its answer is.

What the request carries is built by ``wire``. Nothing here touches the database: it runs
in worker threads.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from urllib.parse import quote_plus

import requests
from django.views.decorators.debug import sensitive_variables

from ..__about__ import __version__
from ..choices import Outcome
from . import redaction, telemetry
from .adapter import ReportAdapter
from .answers import classify
from .deadline import Deadline
from .wire import Account, Answer, Report, authorization, build_params, endpoint

USER_AGENT = f"django-nexmo-conversion/{__version__} python-requests/{requests.__version__}"
#: How much of an answer's body is kept for its error at all.
ERROR_BODY_LIMIT = 2000
#: How much of an answer's body is read at most (the rest is never downloaded).
BODY_LIMIT = 64 * 1024


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


def _decode(data: bytes, charset: str | None) -> str:
    """``data`` as text in ``charset``, never raising: the header comes from the other side
    (``charset=bogus``, ``rot13``, a codec that is not a text encoding), and any answer, a 200
    above all, must be read whatever it says. What cannot be decoded so is read as UTF-8."""
    try:
        return data.decode(charset or "utf-8", "replace")
    except (LookupError, ValueError, TypeError):
        return data.decode("utf-8", "replace")


# The raw body may echo the request, secrets included: kept out of error reports' locals.
@sensitive_variables("chunks", "chunk")
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
    return _decode(b"".join(chunks)[:BODY_LIMIT], response.encoding)


@functools.lru_cache(maxsize=16)
def _prepared_url(url: str) -> str:
    """``url`` as requests sends it (quoted, its host IDNA-encoded): the same few endpoints
    every time, so prepared once each."""
    request = requests.PreparedRequest()
    request.prepare_url(url, None)
    return str(request.url)


#: What form encoding leaves as it is: ASCII letters, digits and ``_.-~`` (message ids, the
#: field names, "true").
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def _quoted(text: str) -> str:
    return text if _UNRESERVED.fullmatch(text) else quote_plus(text, safe="")


# The form holds the credentials under AUTH="params" (or the signature).
@sensitive_variables("params")
def form_body(params: Mapping[str, str]) -> str:
    """The form fields as ``requests`` encodes a dict of strings (each name and value as UTF-8,
    ``quote_plus``-ed), without the runtime ``Protocol`` checks its ``prepare_body`` makes of
    the data on every call (``isinstance`` against ``typing`` protocols) and its generic
    encoding: preparing a request went from 50-67 us to 15-28 us, of a report's 1 ms of CPU
    in the sending threads (bench/RESULTS.md, round 3)."""
    return "&".join(f"{_quoted(name)}={_quoted(value)}" for name, value in params.items())


# Every local holds the credentials (the header, or the form fields under AUTH="params").
@sensitive_variables("params", "header", "headers", "request", "body")
def _prepare(
    session: requests.Session, url: str, params: dict[str, str], header: str | None
) -> requests.PreparedRequest:
    """The request ``session.post(url, data=params, headers=...)`` prepares, byte for byte
    (tests/test_client.py compares them), without what a session merges into each request:
    cookies, hooks, the environment's settings and redirects, none of which this client uses
    (no cookie is kept, ``trust_env`` is off, redirects are not followed). That merging was a
    quarter of the CPU of a report in the sending threads (bench/cpu_per_conversion.py). The
    body and its two headers are set as ``prepare_body`` sets them for a form: Content-Length,
    then Content-Type."""
    request = requests.PreparedRequest()
    request.prepare_method("POST")
    request.url = _prepared_url(url)
    headers = dict(session.headers)
    if header:
        headers["Authorization"] = header
    request.prepare_headers(headers)
    body = form_body(params)
    request.headers["Content-Length"] = str(len(body))  # ASCII: as many bytes as characters
    request.headers["Content-Type"] = "application/x-www-form-urlencoded"
    request.body = body
    return request


#: How many times this process was forked into (0 in the original process): a session made
#: before a fork holds the parent's kept-alive sockets, which parent and child would then share
#: and read each other's answers from. Each process must open its own.
_forks = 0


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


class Client:
    """Posts reports. One ``requests.Session`` per thread (and per process: a forked child
    never uses its parent's) keeps connections alive."""

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
        if session is not None and getattr(self._local, "forks", 0) != _forks:
            # Made in the parent: its sockets are the parent's too. Left unclosed (closing
            # them here would only close this process's copy anyway), never used again.
            session = None
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
                session.mount(prefix, ReportAdapter())
            self._local.session = session
            self._local.forks = _forks
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
    @sensitive_variables("params", "header", "request", "secrets", "text", "body")
    def _post(self, url: str, report: Report, account: Account) -> Answer:
        params = build_params(report, account)
        header = authorization(account)
        started = datetime.now(timezone.utc)
        clock = time.perf_counter()
        deadline = Deadline(self.timeout)
        try:
            with deadline:
                session = self._session()
                request = _prepare(session, url, params, header)
                adapter = session.get_adapter(str(request.url))
                response = adapter.send(
                    request,
                    stream=True,
                    timeout=self.timeout,
                    verify=self.verify,
                    proxies=self.proxies,
                )
                # Cut before the head was read, a status line may parse from its first
                # bytes: only a head read in time says what Nexmo answered.
                head_in_time = not deadline.expired
                # Redacted past the cut first, so a secret straddling it is masked whole.
                # The raw text is never kept in a local (a DEBUG 500 page shows every frame's
                # locals, sensitive_variables or not): only its redacted form is.
                secrets = (account.api_secret, account.signature_secret)
                cut = ERROR_BODY_LIMIT + redaction.margin(secrets)
                body = _redact(_read_text(response)[:cut], account)[:ERROR_BODY_LIMIT]
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
