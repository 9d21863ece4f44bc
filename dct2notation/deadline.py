"""One overall deadline per HTTP exchange, on top of httpx's per-operation timeouts.

httpx times each connect, read and write on its own (encode/httpx#1450, open): a server that drips one byte every
few seconds never trips a 30 s read timeout and holds a command forever, in the response head as well as the body.
``deadline(seconds)`` marks the exchange; a client made by ``bounded_client`` gives every socket operation at most
the time left (httpcore's public network-backend interface), so the exchange, its redirects and its token fetches
end when the time is up. The async client uses ``asyncio.timeout`` instead; the standard-library reader of
``dct/_plainhttp.py`` shuts its own socket down.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from .errors import DeadlineExceeded

_END: contextvars.ContextVar[float | None] = contextvars.ContextVar("dct2notation_http_deadline", default=None)


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def error(self, what: str) -> DeadlineExceeded:
        return DeadlineExceeded(what, self.seconds)


@contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Every socket operation of a ``bounded_client`` inside this block ends by ``seconds`` from now."""
    limit = Deadline(seconds)
    outer = _END.get()
    token = _END.set(limit.end if outer is None else min(outer, limit.end))
    try:
        yield limit
    finally:
        _END.reset(token)


def _left(timeout: float | None, late: type[httpcore.TimeoutException]) -> float | None:
    end = _END.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise late("the overall deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_tcp(host, port, left, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_unix_socket(path, left, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def bounded_client(**kwargs: Any) -> httpx.Client:
    """``httpx.Client(**kwargs)`` whose connections (its transport's and any proxy's) honour ``deadline``."""
    client = httpx.Client(**kwargs)
    transports: list[Any] = [client._transport, *client._mounts.values()]  # noqa: SLF001 - see below
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if pool is None:
            continue  # not a network transport (a test's in-memory transport): nothing to bound
        # httpx builds its httpcore pool without a way to name the network backend; httpcore's pool keeps it in
        # this attribute. A test of a dripping server fails if a future httpx moves it.
        backend = pool._network_backend  # noqa: SLF001
        if not isinstance(backend, _Backend):
            pool._network_backend = _Backend(backend)  # noqa: SLF001
    return client
