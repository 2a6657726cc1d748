"""A total deadline for one HTTP request.

``requests``' ``timeout`` bounds each socket operation, not the request: a server that
trickles its answer a byte at a time keeps a request alive for as long as it likes, far past
``TIMEOUT`` and past the claim's lease (after which another worker may send the same
conversion). So a watchdog shuts the request's socket down once the deadline passes; the
blocked read then fails at once and the request ends with a ``requests`` error. One watchdog
thread per process serves every request (a timer thread per request cost 0.8 ms each).

The sockets are found by wrapping the connection class of each urllib3 pool the session
uses (:func:`watch_pool`): a new connection registers its socket as soon as it is
connected (the TLS handshake and a proxy tunnel included), a kept-alive one when a request
starts on it. Nothing here touches Django.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from types import TracebackType
from typing import Any

from urllib3.connectionpool import HTTPConnectionPool

_current = threading.local()

#: How late past its deadline a request may be cut. The watchdog sleeps this much past the
#: earliest deadline, so one wake-up expires every deadline due meanwhile: a request that
#: finished in time stays in the heap until its deadline, and without the slack the thread
#: woke once per request, TIMEOUT after it, for nothing (with ``--loop`` at hundreds of
#: reports a second, as many wake-ups, each taking the interpreter lock from the senders).
SLACK = 0.05


class Deadline:
    """``with Deadline(seconds):`` around one request made from this thread."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        #: True once the deadline passed while the request still ran.
        self.expired = False
        self.due = 0.0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._finished = False

    def __enter__(self) -> Deadline:
        self.due = time.monotonic() + self.seconds
        _current.deadline = self
        _watchdog.add(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._lock:
            self._finished = True
            self._sockets.clear()
        _current.deadline = None

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self._finished:
                return
            if self.expired:
                _shut(sock)
            else:
                self._sockets.append(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._finished:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


class _Watchdog:
    """The thread that expires deadlines, earliest first. A finished deadline stays in the
    heap until its time (expiring it then does nothing): no removal on the request path."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._wake:
            heapq.heappush(self._heap, (deadline.due, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="nexmo-conversion-deadlines", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._wake.notify()  # sooner than what the thread sleeps for

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap:
                    self._wake.wait()
                due, _order, deadline = self._heap[0]
                left = due - time.monotonic()
                if left > 0:
                    self._wake.wait(left + SLACK)
                    continue
                heapq.heappop(self._heap)
            deadline._expire()


_watchdog = _Watchdog()


def _new_watchdog_in_child() -> None:
    # A forked child has the parent's heap but not its thread.
    global _watchdog
    _watchdog = _Watchdog()


os.register_at_fork(after_in_child=_new_watchdog_in_child)


def _shut(sock: socket.socket) -> None:
    # shutdown, not close: a read blocked in another thread returns at once, and the socket's
    # owner still closes it (closing under a blocked reader is undefined).
    with contextlib.suppress(OSError):  # not connected yet, or already closed: nothing to cut
        sock.shutdown(socket.SHUT_RDWR)


def _watch(sock: socket.socket | None) -> None:
    deadline: Deadline | None = getattr(_current, "deadline", None)
    if deadline is not None and sock is not None:
        deadline.watch(sock)


class _Watched:
    """Mixed into a urllib3 connection class: its sockets are under the current deadline."""

    sock: socket.socket | None

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        _watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        # A kept-alive connection (or an HTTPS one, connected and wrapped before the request).
        _watch(self.sock)
        super().request(*args, **kwargs)  # type: ignore[misc]


_watched_classes: dict[type, type] = {}
_classes_lock = threading.Lock()


def _watched(cls: type) -> type:
    with _classes_lock:
        watched = _watched_classes.get(cls)
        if watched is None:
            watched = _watched_classes[cls] = type(f"Watched{cls.__name__}", (_Watched, cls), {})
        return watched


def watch_pool(pool: HTTPConnectionPool) -> HTTPConnectionPool:
    """Put ``pool``'s connections (direct or through a proxy) under the :class:`Deadline`
    entered in the thread that sends; done once per pool, before its first connection (pools
    are made on demand: ``adapter`` calls this where it looks one up)."""
    if not issubclass(pool.ConnectionCls, _Watched):
        pool.ConnectionCls = _watched(pool.ConnectionCls)
    return pool
