"""The ``requests`` adapter a report goes through: each pool under ``deadline``'s watch, each
endpoint's route looked up once.

For every request, requests' ``HTTPAdapter`` parses the URL again, picks the proxy again,
builds the pool's key again and checks the CA bundle's path on disk again (three ``stat``
calls), although a client posts to the same two endpoints with the same settings all its life.
This adapter keeps, per URL and settings, the connection pool and the request's target (a
path, or the whole URL through a plain HTTP proxy), and remembers which pools' certificate
settings are made. A pool closed since (urllib3 1.26 closes a pool its manager drops; 2.x
leaves it open and working) is looked up afresh. One adapter serves one session, and so one
thread (``client``). Its responses carry no cookie jar's contents: requests parses every
answer's cookies, which this client never keeps.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any, cast

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3.connectionpool import HTTPConnectionPool

from .deadline import watch_pool


def _proxies_key(proxies: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(proxies.items())) if proxies else ()


class ReportAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections obey the sending thread's deadline and which looks
    each route up once (see the module's text)."""

    def __init__(self) -> None:
        super().__init__()
        self._pools: dict[tuple[Any, ...], HTTPConnectionPool] = {}
        self._targets: dict[tuple[Any, ...], str] = {}
        # Weak: a pool the pool manager dropped is forgotten with it.
        self._verified: weakref.WeakKeyDictionary[HTTPConnectionPool, tuple[Any, ...]] = (
            weakref.WeakKeyDictionary()
        )

    def get_connection_with_tls_context(
        self,
        request: PreparedRequest,
        verify: bool | str | None,
        proxies: Any = None,
        cert: Any = None,
    ) -> HTTPConnectionPool:
        key = (request.url, verify, cert, _proxies_key(proxies))
        pool = self._pools.get(key)
        if pool is None or pool.pool is None:  # never looked up, or closed since
            found = super().get_connection_with_tls_context(request, verify, proxies, cert)
            pool = self._pools[key] = watch_pool(cast(HTTPConnectionPool, found))
        return pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        if self._verified.get(conn) != (url, verify, cert):
            super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
            self._verified[conn] = (url, verify, cert)

    def request_url(self, request: PreparedRequest, proxies: Any) -> str:
        key = (request.url, _proxies_key(proxies))
        target = self._targets.get(key)
        if target is None:
            target = self._targets[key] = super().request_url(request, proxies)
        return target

    def build_response(self, req: PreparedRequest, resp: Any) -> Response:
        # What requests' own gives (status, headers, encoding, the raw answer, the request)
        # but the cookies: it parses every answer's Set-Cookie headers into a jar this client
        # never reads (it keeps no cookie, and Nexmo's answers set none worth keeping).
        response = Response()
        response.status_code = resp.status
        response.headers = CaseInsensitiveDict(resp.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = cast(str, req.url)
        response.request = req
        response.connection = self
        return response
