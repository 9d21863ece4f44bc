"""A loopback HTTP proxy in front of a real registry that injects the failures no real registry shows on demand.

Every ``every``-th request (up to ``max_faults``) gets the next fault of ``kinds`` in turn:

* ``503``: answered 503 without reaching the registry;
* ``429``: answered 429 with ``Retry-After: <retry_after>``;
* ``drop``: the connection is closed before anything is forwarded;
* ``drop-after``: forwarded (the registry applies it) and then the connection is closed with no reply: the
  case that turns a naive retry into a duplicate write.

Counts of requests and injected faults, and each request's method and path, are kept for assertions (``every=0``
injects nothing: a counting proxy). With ``tls`` it serves HTTPS (a throwaway CA from
``make_tls``), which is how the ``--ca-file`` path meets a real registry behind it.
"""

from __future__ import annotations

import ssl
import threading
from collections import Counter
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx

from tests.support.loopback import QuietHTTPServer
from tests.support.servers import TLSFiles

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return None

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.requests.append(f"{self.command} {self.path}")
        fault = self.server.next_fault()
        if fault in ("503", "429"):
            payload = b'{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}'
            self.send_response(int(fault))
            if fault == "429":
                self.send_header("Retry-After", str(self.server.retry_after))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if fault == "drop":
            self.close_connection = True
            return
        # Host is forwarded unchanged so the registry builds upload Locations that point back at the proxy.
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        if self.server.tls:
            # As a TLS terminator says, so distribution's absolute upload Locations use https.
            headers.append(("X-Forwarded-Proto", "https"))
        upstream = self.server.upstream.request(
            self.command, self.server.upstream_url + self.path, headers=headers, content=body
        )
        if fault == "drop-after":
            self.close_connection = True
            return
        self.send_response(upstream.status_code)
        for key, value in upstream.headers.multi_items():
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        # A HEAD reply has no body but states the size of the GET body (a manifest's size comes from it).
        length = upstream.headers.get("content-length", "0") if self.command == "HEAD" else str(len(upstream.content))
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(upstream.content)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _forward  # noqa: N815 - http.server naming


class _Server(QuietHTTPServer):
    def __init__(
        self,
        upstream_url: str,
        every: int,
        kinds: Sequence[str],
        max_faults: int,
        retry_after: int,
        tls: TLSFiles | None,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tls = tls is not None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert, tls.key)
            self.socket = context.wrap_socket(self.socket, server_side=True)
        self.upstream_url = upstream_url.rstrip("/")
        self.upstream = httpx.Client(timeout=30)
        self.every = every
        self.kinds = list(kinds)
        self.max_faults = max_faults
        self.retry_after = retry_after
        self.request_count = 0
        self.requests: list[str] = []  # "METHOD /path?query" as received, in order
        self.faults: Counter[str] = Counter()
        self.lock = threading.Lock()

    def next_fault(self) -> str | None:
        with self.lock:
            self.request_count += 1
            injected = sum(self.faults.values())
            if self.every <= 0 or self.request_count % self.every or injected >= self.max_faults:
                return None
            kind = self.kinds[injected % len(self.kinds)]
            self.faults[kind] += 1
            return kind


class FaultProxy:
    def __init__(
        self,
        upstream_url: str,
        *,
        every: int = 5,
        kinds: Sequence[str] = ("503", "429", "drop", "drop-after"),
        max_faults: int = 1000,
        retry_after: int = 1,
        tls: TLSFiles | None = None,
    ) -> None:
        self._server = _Server(upstream_url, every, kinds, max_faults, retry_after, tls)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def request_count(self) -> int:
        return self._server.request_count

    @property
    def requests(self) -> list[str]:
        """Every request received, as ``METHOD /path?query``, in order (``every=0``: a counting proxy)."""
        return list(self._server.requests)

    @property
    def faults(self) -> dict[str, int]:
        return dict(self._server.faults)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.upstream.close()
        self._thread.join(5)
