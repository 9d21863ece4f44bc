"""A loopback HTTP front of a real registry whose subclasses change what distribution cannot be made to do: answer a
request otherwise (a 405 on DELETE, GitLab's tag resolution) or write behind the client's back (a racing writer).

Subclasses override ``handle_call``; ``forward`` sends a request on to the registry as it came.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
from typing import Self

import httpx

from tests.support.loopback import QuietHTTPServer

Headers = list[tuple[str, str]]
_HOP = ("connection", "content-length", "transfer-encoding")


class Relay(QuietHTTPServer):
    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _RelayHandler)
        self.upstream = httpx.Client(base_url=upstream, timeout=30)
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.upstream.close()
        if self._thread is not None:
            self._thread.join(5)

    def forward(self, method: str, path: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        reply = self.upstream.request(method, path, headers=headers, content=body)
        out = [(k, v) for k, v in reply.headers.multi_items() if k.lower() not in _HOP]
        return reply.status_code, out, reply.content

    def handle_call(self, method: str, path: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        return self.forward(method, path, headers, body)


class _RelayHandler(BaseHTTPRequestHandler):
    server: Relay
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        return None

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")]
        status, out, content = self.server.handle_call(self.command, self.path, headers, body)
        self.send_response(status)
        for key, value in out:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _handle  # noqa: N815 - http.server naming
