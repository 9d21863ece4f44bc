"""The plain-HTTP reader (http.client): framing, keep-alive, caps, and the hand-over to httpx for what it refuses.

The responses come from a scripted HTTP server on loopback (no real notary-server sends chunk extensions, stale
keep-alives, interim statuses or codings on demand); ``test_dct_notary.py`` reads a real notary-server through it.
"""

from __future__ import annotations

import gzip
import socket
import threading
from dataclasses import dataclass, field

import pytest

from dct2notation.dct._plainhttp import ConnectionFailed, PlainHttp, Unsupported
from dct2notation.dct.source import NotaryServerSource


@dataclass
class Reply:
    raw: bytes
    close_after: bool = False  # close the connection after this reply, without saying so


@dataclass
class ScriptedServer:
    """Answers each request with the next scripted reply; counts connections and records request heads."""

    replies: list[Reply]
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        try:
            self._exchange(conn)
        finally:
            self.closed.release()

    def _exchange(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            while self.replies:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                self.requests.append(head)
                reply = self.replies.pop(0)
                conn.sendall(reply.raw)
                if reply.close_after:
                    return

    def close(self) -> None:
        self.listener.close()


def serve(*replies: Reply) -> ScriptedServer:
    return ScriptedServer(list(replies))


def ok(body: bytes, extra: bytes = b"") -> Reply:
    return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body))


def client(server: ScriptedServer) -> PlainHttp:
    return PlainHttp("127.0.0.1", server.port, "", 5.0, deadline=30.0)


def test_content_length_bodies_share_one_connection() -> None:
    server = serve(ok(b"first"), ok(b"second", b"X-Other: 1\r\n"))
    http = client(server)
    assert http.get("/a", 100) == (200, b"first")
    assert http.get("/b", 100) == (200, b"second")
    assert server.connections == 1
    assert server.requests[0] == (
        b"GET /a HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept-Encoding: identity\r\nAccept: */*\r\n\r\n" % server.port
    )
    http.close()
    server.close()


def test_chunked_body_with_extensions_and_trailers() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nT: x\r\n\r\n"
    )
    server = serve(Reply(chunked), ok(b"again"))
    http = client(server)
    assert http.get("/c", 100) == (200, b"hello world")
    assert http.get("/d", 100) == (200, b"again")
    assert server.connections == 1
    http.close()
    server.close()


def test_body_delimited_by_close_and_http10_are_not_reused() -> None:
    server = serve(
        Reply(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", close_after=True),
        Reply(b"HTTP/1.0 404 Not Found\r\nContent-Length: 2\r\n\r\nno"),
        ok(b"third"),
    )
    http = client(server)
    assert http.get("/a", 100) == (200, b"until the end")
    assert http.get("/b", 100) == (404, b"no")
    assert http.get("/c", 100) == (200, b"third")
    assert server.connections == 3
    http.close()
    server.close()


def test_stale_keep_alive_connection_is_replaced_without_error() -> None:
    server = serve(Reply(ok(b"one").raw, close_after=True), ok(b"two"))
    http = client(server)
    assert http.get("/a", 100) == (200, b"one")
    assert server.closed.acquire(timeout=5)  # the server has hung up on the idle connection
    assert http.get("/b", 100) == (200, b"two")
    assert server.connections == 2
    http.close()
    server.close()


@pytest.mark.parametrize(
    "reply",
    [
        ok(b"x" * 50),
        Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n" + b"x" * 20 + b"\r\n1e\r\n" + b"x" * 30),
        Reply(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 50, close_after=True),
    ],
    ids=["content-length", "chunked", "until-close"],
)
def test_oversized_body_is_cut_one_byte_past_the_cap(reply: Reply) -> None:
    server = serve(reply, ok(b"next"))
    http = client(server)
    assert http.get("/big", 24) == (200, b"x" * 25)
    assert http.get("/next", 24) == (200, b"next")  # a fresh connection: the rest was never read
    assert server.connections == 2
    http.close()
    server.close()


@pytest.mark.parametrize(
    "raw",
    [
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nBroken header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Le",
    ],
    ids=["status-line", "truncated-body", "length", "chunk-size", "header", "truncated-head"],
)
def test_broken_framing_is_a_connection_failure(raw: bytes) -> None:
    server = serve(Reply(raw, close_after=True))
    http = client(server)
    with pytest.raises(ConnectionFailed):
        http.get("/a", 100)
    server.close()


def test_refused_connection_is_a_connection_failure() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionFailed, match="ConnectionRefusedError"):
        PlainHttp("127.0.0.1", port, "", 5.0, deadline=30.0).get("/a", 100)


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ],
    ids=["transfer-coding", "content-coding", "two-lengths"],
)
def test_responses_beyond_the_reader_are_unsupported(raw: bytes) -> None:
    server = serve(Reply(raw, close_after=True))
    with pytest.raises(Unsupported):
        client(server).get("/a", 100)
    server.close()


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 2\r\n\r\n{}",
    ],
    ids=["interim", "folded"],
)
def test_interim_status_and_folded_header_are_read(raw: bytes) -> None:
    server = serve(Reply(raw, close_after=True))
    assert client(server).get("/a", 100) == (200, b"{}")
    server.close()


def test_source_hands_an_unsupported_response_to_httpx() -> None:
    """A gzip-coded body (never asked for) goes to httpx, which decodes it; later reads stay with httpx."""
    body = b'{"signed":{}}'
    packed = gzip.compress(body)
    coded = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(packed), packed)
    server = serve(Reply(coded, close_after=True), Reply(coded), ok(b"plain"))
    source = NotaryServerSource(f"http://127.0.0.1:{server.port}")
    try:
        assert source.fetch("example.com/a", "root") == body
        assert source.fetch("example.com/a", "timestamp") == b"plain"
    finally:
        source.close()
    assert [r.split(b" ", 2)[1] for r in server.requests] == [
        b"/v2/example.com/a/_trust/tuf/root.json",
        b"/v2/example.com/a/_trust/tuf/root.json",
        b"/v2/example.com/a/_trust/tuf/timestamp.json",
    ]
    assert b"python-httpx" in server.requests[1] and b"python-httpx" in server.requests[2]
    server.close()
