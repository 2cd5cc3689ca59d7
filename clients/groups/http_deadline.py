"""A deadline for each attempt at a URL, and a way to wake the threads blocked on its sockets.

httpx's timeouts bound each wait (to connect, for the next bytes), not an attempt: a server
trickling a byte at a time never trips them. Here every wait of the attempt this thread is
making is cut to what is left of the attempt's deadline. And closing a socket does not wake a
thread blocked reading it; shutting it down does, which :meth:`TrackedSockets.shutdown_all` does
for every socket the client opened (Ctrl-C).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

# the deadline of the attempt this thread is making (a time.monotonic()), read by TrackedSockets'
# streams: a sync httpx request does all its I/O in the thread that made it
_ATTEMPT = threading.local()


@contextmanager
def attempt_deadline(deadline: float) -> Iterator[None]:
    """Every network wait of this thread ends by ``deadline`` (a ``time.monotonic()``) meanwhile."""
    _ATTEMPT.deadline, _ATTEMPT.expired = deadline, False
    try:
        yield
    finally:
        _ATTEMPT.deadline = None


def deadline_expired() -> bool:
    """Whether the wait that just timed out was cut short by the attempt's deadline."""
    return getattr(_ATTEMPT, "expired", False)


def _within_deadline(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` cut to what is left of this thread's attempt; ``error`` when nothing is."""
    deadline = getattr(_ATTEMPT, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        _ATTEMPT.expired = True
        raise error("the attempt's deadline passed")
    if timeout is None or left < timeout:
        _ATTEMPT.expired = True  # if this wait times out, it is the deadline's doing
        return left
    _ATTEMPT.expired = False
    return timeout


class _DeadlineStream:
    """An httpcore network stream whose every wait ends by the attempt's deadline."""

    def __init__(self, inner: Any):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _within_deadline(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _within_deadline(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> Any:
        timeout = _within_deadline(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class TrackedSockets:
    """An httpcore network backend that remembers its sockets, so that :meth:`shutdown_all` can
    wake the threads blocked reading them (closing a socket does not; shutting it down does), and
    whose streams keep to the attempt's deadline (:class:`_DeadlineStream`)."""

    def __init__(self, inner: Any):
        self._inner = inner
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.stopped = False

    def _track(self, stream: Any) -> Any:
        sock = stream.get_extra_info("socket")
        if sock is not None:
            with self._lock:
                self._sockets.add(sock)
            if self.stopped:
                _shutdown(sock)
        return _DeadlineStream(stream)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> Any:
        timeout = _within_deadline(timeout, httpcore.ConnectTimeout)
        return self._track(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        timeout = _within_deadline(timeout, httpcore.ConnectTimeout)
        return self._track(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)

    def shutdown_all(self) -> None:
        self.stopped = True
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # closed already
        sock.shutdown(socket.SHUT_RDWR)


def track_sockets(client: httpx.Client) -> list[TrackedSockets]:
    """Put :class:`TrackedSockets` under every connection pool of ``client`` (direct and
    proxied). httpx has no public hook for it; where its internals differ, nothing is tracked:
    Ctrl-C waits for the requests in flight (at most --timeout), and the deadline is checked
    between the chunks of a body only."""
    tracked = []
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if pool is not None and hasattr(pool, "_network_backend"):
            pool._network_backend = TrackedSockets(pool._network_backend)
            tracked.append(pool._network_backend)
    return tracked
