"""The adapter a report goes through: ``deadline``'s, looking each endpoint's route up once.

For every request, requests' ``HTTPAdapter`` parses the URL again, picks the proxy again,
builds the pool's key again and checks the CA bundle's path on disk again (three ``stat``
calls), although a client posts to the same two endpoints with the same settings all its life.
This adapter keeps, per URL and settings, the connection pool and the request's target (a
path, or the whole URL through a plain HTTP proxy), and remembers which pools' certificate
settings are made. A pool closed since (urllib3 1.26 closes a pool its manager drops; 2.x
leaves it open and working) is looked up afresh. One adapter serves one session, and so one
thread (``client``).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

from requests import PreparedRequest
from urllib3.connectionpool import HTTPConnectionPool

from .deadline import DeadlineAdapter


def _proxies_key(proxies: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(proxies.items())) if proxies else ()


class RouteAdapter(DeadlineAdapter):
    """A :class:`DeadlineAdapter` that looks each route up once (see the module's text)."""

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
            pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
            self._pools[key] = pool
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
