"""Keep-alive GETs to an anonymous notary server (HTTP or HTTPS) through the standard library's ``http.client``.

httpx costs ~35 ms of imports and ~1 ms of CPU per request, more than the rest of a small inventory; an inventory
makes a handful of GETs. HTTP parsing stays with a maintained implementation: this module only adds the size cap,
refuses what a notary-server never sends (a content coding, a transfer coding other than chunked, conflicting
Content-Length values) by raising ``Unsupported`` so the caller hands the request to httpx, and maps failures to
``ConnectionFailed``, which the caller retries.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import itertools
import socket
import ssl
import threading
import time


class Unsupported(Exception):
    """A response outside what is read here; httpx must make the request."""


class ConnectionFailed(Exception):
    """The connection failed or the response broke HTTP framing: worth another attempt."""


class DeadlinePassed(Exception):
    """The request did not end within its overall deadline: the watchdog shut the connection down."""


class CertificateNotTrusted(Exception):
    """The server's TLS certificate does not verify: retrying will not help, a CA (``--ca``) might."""


class PlainHttp:
    """One connection to ``host:port``; ``get`` returns (status, body cut at ``max_bytes + 1`` bytes)."""

    def __init__(
        self, host: str, port: int, prefix: str, timeout: float, tls: ssl.SSLContext | None = None, *, deadline: float
    ) -> None:
        """``timeout`` bounds each socket operation, ``deadline`` each whole ``get``."""
        self.prefix = prefix
        self.deadline = deadline
        self._conn = (
            http.client.HTTPConnection(host, port, timeout=timeout)
            if tls is None
            else http.client.HTTPSConnection(host, port, timeout=timeout, context=tls)
        )

    def close(self) -> None:
        self._conn.close()

    def get(self, path: str, max_bytes: int) -> tuple[int, bytes]:
        reused = self._conn.sock is not None
        watchdog = _Watchdog(self._conn, self.deadline)
        try:
            try:
                return self._get(path, max_bytes)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if not reused or watchdog.fired:
                    raise
                # The server closed the idle keep-alive connection: one fresh connection, no retry spent.
                return self._get(path, max_bytes)
        except ssl.SSLCertVerificationError as exc:
            self._conn.close()
            raise CertificateNotTrusted(exc.verify_message or str(exc)) from exc
        except (OSError, http.client.HTTPException) as exc:
            self._conn.close()
            if watchdog.fired:
                raise DeadlinePassed from exc
            raise ConnectionFailed(f"{exc.__class__.__name__}: {exc}") from exc
        except Unsupported:
            self._conn.close()
            raise
        finally:
            if watchdog.stop():
                self._conn.close()  # shut down after the answer was complete: not reusable, the answer stands

    def _get(self, path: str, max_bytes: int) -> tuple[int, bytes]:
        self._conn.request("GET", self.prefix + path, headers={"Accept": "*/*"})
        response = self._conn.getresponse()
        _check_framing(response)
        declared = response.length  # what a Content-Length promised, None for chunked or close-delimited
        body = response.read(max_bytes + 1)
        if declared is not None and len(body) < min(declared, max_bytes + 1):
            # read(amt) returns a short body where the server hung up early; read() would raise IncompleteRead.
            raise http.client.IncompleteRead(body, declared - len(body))
        if not response.isclosed():
            self._conn.close()  # the rest of an oversized body was never read: the connection is not reusable
        return response.status, body


class _Watchdog:
    """Shuts the connection's socket down once ``seconds`` have passed, so a blocked read or handshake ends.

    A socket timeout bounds each read; a server that drips one byte per read holds ``http.client`` forever.
    A connection still being made has no socket to shut: the watchdog tries again until the request ends.
    One thread (``_WATCHES``) serves every request's watch: a thread of its own per request cost ~0.1 ms of
    start-up each, 10% of an estate's CPU at 800 requests.
    """

    def __init__(self, conn: http.client.HTTPConnection, seconds: float) -> None:
        self._conn = conn
        self.done = False
        self.fired = False
        _WATCHES.add(self, time.monotonic() + seconds)

    def shut(self) -> None:
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> bool:
        """End the watch; True when it had already fired."""
        return _WATCHES.end(self)


class _Watches:
    """Every live watch by due time; one daemon thread, started on first use, fires those that come due."""

    RETRY = 0.05  # seconds between attempts to shut a fired watch's socket (the connection may not exist yet)

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, _Watchdog]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, watch: _Watchdog, due: float) -> None:
        with self._cond:
            heapq.heappush(self._due, (due, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="http-deadline")
                self._thread.start()
            elif self._due[0][2] is watch:
                self._cond.notify()  # due before what the thread waits for

    def end(self, watch: _Watchdog) -> bool:
        with self._cond:
            watch.done = True
            return watch.fired

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._due and self._due[0][2].done:
                    heapq.heappop(self._due)  # ended before its time: dropped when it reaches the top
                if not self._due:
                    self._cond.wait()
                    continue
                due, _, watch = self._due[0]
                now = time.monotonic()
                if due > now:
                    self._cond.wait(due - now)
                    continue
                heapq.heappop(self._due)
                watch.fired = True
                watch.shut()
                heapq.heappush(self._due, (now + self.RETRY, next(self._order), watch))


_WATCHES = _Watches()


def _check_framing(response: http.client.HTTPResponse) -> None:
    if response.msg.defects:
        # http.client reads a broken head (a line without a colon, a head cut off) as an empty one.
        raise http.client.HTTPException(f"malformed response head ({response.msg.defects[0].__class__.__name__})")
    coding = (response.getheader("Content-Encoding") or "identity").strip().lower()
    if coding != "identity":
        raise Unsupported(f"content coding {coding!r}")
    transfer = response.getheader("Transfer-Encoding")
    if transfer is not None and transfer.strip().lower() != "chunked":
        raise Unsupported(f"transfer coding {transfer!r}")
    lengths = {value.strip() for value in response.msg.get_all("Content-Length") or []}
    if len(lengths) > 1:
        raise Unsupported("conflicting Content-Length values")
    if transfer is None and lengths and not next(iter(lengths)).isdigit():
        raise http.client.HTTPException(f"malformed Content-Length {next(iter(lengths))[:40]!r}")
