"""Keep-alive HTTP/1.1 GETs to an anonymous plain-HTTP notary server, on the socket module alone.

``http.client`` imports ``ssl`` and ``email`` (~7 ms a process) and httpx far more; an inventory makes a handful of
GETs. This reads the part of HTTP/1.1 a notary-server speaks: a status line, headers, and a body framed by
Content-Length, chunked transfer coding or the end of the connection. Anything else (a 1xx status, another transfer
or a content coding, folded or oversized headers) raises ``Unsupported`` and the caller hands the request to httpx,
which speaks all of HTTP. Socket failures and broken framing raise ``ConnectionFailed``, which the caller retries.
"""

from __future__ import annotations

import io
import select
import socket

_MAX_LINE = 65536  # the limits http.client applies
_MAX_HEADERS = 100
_HEX = frozenset(b"0123456789abcdefABCDEF")


class Unsupported(Exception):
    """A response outside the subset read here; httpx must make the request."""


class ConnectionFailed(Exception):
    """The connection failed or the response broke HTTP framing: worth another attempt."""


class PlainHttp:
    """One connection to ``host:port``; ``get`` returns (status, body cut at ``max_bytes + 1`` bytes)."""

    def __init__(self, host: str, port: int, prefix: str, timeout: float) -> None:
        self.host = host
        self.port = port
        self.prefix = prefix
        self.timeout = timeout
        authority = f"[{host}]" if ":" in host else host
        self._host_header = f"{authority}:{port}".encode("ascii" if authority.isascii() else "idna")
        self._sock: socket.socket | None = None
        self._reader: io.BufferedReader | None = None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._reader = None

    def _connect(self) -> tuple[socket.socket, io.BufferedReader]:
        # An ASCII name passed as bytes skips the IDNA codec import; a non-ASCII one goes through it as usual.
        host: str | bytes = self.host.encode("ascii") if self.host.isascii() else self.host
        # getaddrinfo takes bytes as well; typeshed lists only str.
        sock = socket.create_connection((host, self.port), self.timeout)  # type: ignore[arg-type]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, sock.makefile("rb")

    def _idle_connection(self) -> tuple[socket.socket, io.BufferedReader] | None:
        sock, reader = self._sock, self._reader
        self._sock = self._reader = None
        if sock is None or reader is None:
            return None
        # Readable while idle means the server closed it (or sent junk): a fresh connection, no retry spent.
        if select.select([sock], [], [], 0)[0]:
            sock.close()
            return None
        return sock, reader

    def get(self, path: str, max_bytes: int) -> tuple[int, bytes]:
        request = b"GET %s HTTP/1.1\r\nHost: %s\r\nAccept: */*\r\n\r\n" % (
            (self.prefix + path).encode("ascii"),
            self._host_header,
        )
        sock = None
        try:
            sock, reader = self._idle_connection() or self._connect()
            sock.sendall(request)
            status, headers, keep_alive = _read_head(reader)
            body, complete = _read_body(reader, status, headers, max_bytes)
        except (OSError, ValueError) as exc:
            if sock is not None:
                sock.close()
            raise ConnectionFailed(f"{exc.__class__.__name__}: {exc}") from exc
        except Unsupported:
            if sock is not None:
                sock.close()
            raise
        if complete and keep_alive:
            self._sock, self._reader = sock, reader
        else:
            sock.close()  # delimited by its end, closing, or the rest of an oversized body: not reusable
        return status, body


def _line(reader: io.BufferedReader) -> bytes:
    line = reader.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise Unsupported("header line too long")
    if not line.endswith(b"\n"):
        raise ValueError("connection closed inside the response head")
    return line


def _read_head(reader: io.BufferedReader) -> tuple[int, dict[bytes, bytes], bool]:
    parts = _line(reader).split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3 or not parts[1].isdigit():
        raise ValueError(f"malformed status line {b' '.join(parts)[:80]!r}")
    status = int(parts[1])
    if status < 200:
        raise Unsupported(f"interim status {status}")
    headers: dict[bytes, bytes] = {}
    for _ in range(_MAX_HEADERS + 1):
        line = _line(reader)
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            raise Unsupported("folded header")
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise ValueError(f"malformed header line {line[:80]!r}")
        key = name.lower()
        value = value.strip()
        if key in headers and headers[key] != value:
            raise Unsupported(f"repeated header {name.decode('latin-1')}")
        headers[key] = value
    else:
        raise Unsupported("too many headers")
    connection = headers.get(b"connection", b"").lower()
    keep_alive = b"close" not in connection and (parts[0] != b"HTTP/1.0" or b"keep-alive" in connection)
    return status, headers, keep_alive


def _read_exact(reader: io.BufferedReader, size: int) -> bytes:
    data = reader.read(size)  # a BufferedReader: short only at EOF
    if len(data) != size:
        raise ValueError(f"connection closed {size - len(data)} bytes before the end of the body")
    return data


def _read_body(
    reader: io.BufferedReader, status: int, headers: dict[bytes, bytes], max_bytes: int
) -> tuple[bytes, bool]:
    """The body cut at ``max_bytes + 1``, and whether it was read to its end (the connection can be reused)."""
    coding = headers.get(b"content-encoding", b"identity").lower()
    if coding != b"identity":
        raise Unsupported(f"content coding {coding!r}")
    if status in (204, 304):
        return b"", True
    transfer = headers.get(b"transfer-encoding")
    if transfer is not None:
        if transfer.lower() != b"chunked":
            raise Unsupported(f"transfer coding {transfer!r}")
        return _read_chunked(reader, max_bytes)
    length = headers.get(b"content-length")
    if length is not None:
        if not length.isdigit():
            raise ValueError(f"malformed Content-Length {length[:40]!r}")
        size = int(length)
        if size > max_bytes:
            return _read_exact(reader, max_bytes + 1), False
        return _read_exact(reader, size), True
    return reader.read(max_bytes + 1), False  # delimited by the server closing


def _read_chunked(reader: io.BufferedReader, max_bytes: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_text = _line(reader).split(b";", 1)[0].strip()
        if not size_text or not _HEX.issuperset(size_text):
            raise ValueError(f"malformed chunk size {size_text[:40]!r}")
        size = int(size_text, 16)
        if size == 0:
            break
        if total + size > max_bytes:
            chunks.append(_read_exact(reader, max_bytes + 1 - total))
            return b"".join(chunks), False
        chunks.append(_read_exact(reader, size))
        total += size
        if _line(reader) not in (b"\r\n", b"\n"):
            raise ValueError("chunk not followed by CRLF")
    for _ in range(_MAX_HEADERS + 1):
        if _line(reader) in (b"\r\n", b"\n"):
            return b"".join(chunks), True  # trailer fields skipped: nothing here needs them
    raise Unsupported("too many trailer fields")
