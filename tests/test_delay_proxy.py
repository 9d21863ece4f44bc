"""The benchmarks' and tests' delay proxy (tests/support/delay_proxy.py) is a faithful fixed-delay link: every byte
arrives unchanged and in order, each direction ``delay`` later than it was sent, a half-close too; in a thread of the
test process and as its own process alike. A plain TCP server on loopback stands at the far end."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.support.delay_proxy import DelayProcess, DelayProxy

DELAY = 0.1
PAYLOAD = random.Random(19).randbytes(3 * 1024 * 1024 + 7)  # bigger than one read and than socket buffers
# A loaded machine can only make the proxy later, never earlier: the lower bound is exact, the upper one generous.
SLACK = 1.5


@dataclass
class Far:
    """The server behind the proxy: receives until EOF, records when bytes arrived, then answers ``reply``."""

    reply: bytes
    sock: socket.socket = field(default_factory=lambda: socket.create_server(("127.0.0.1", 0)))
    received: bytearray = field(default_factory=bytearray)
    first_byte_at: float | None = None
    eof_at: float | None = None
    replied_at: float | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def serve_one(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while chunk := conn.recv(1 << 20):
                if self.first_byte_at is None:
                    self.first_byte_at = time.monotonic()
                self.received += chunk
            self.eof_at = time.monotonic()
            self.replied_at = time.monotonic()
            conn.sendall(self.reply)


@pytest.fixture(params=["thread", "process"])
def proxy_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture()
def far() -> Iterator[Far]:
    server = Far(reply=PAYLOAD[::-1])
    thread = threading.Thread(target=server.serve_one, daemon=True)
    thread.start()
    yield server
    server.sock.close()
    thread.join(10)


def start(kind: str, port: int) -> DelayProxy | DelayProcess:
    return DelayProxy("127.0.0.1", port, DELAY) if kind == "thread" else DelayProcess("127.0.0.1", port, DELAY)


def test_delay_proxy_adds_the_delay_each_way_and_passes_bytes_unchanged(proxy_kind: str, far: Far) -> None:
    proxy = start(proxy_kind, far.port)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port)) as client:
            sent_at = time.monotonic()
            client.sendall(PAYLOAD)
            # Taken before the half-close: the proxy may read the FIN (and start its delay) before shutdown()
            # returns to this thread, so a time taken after it could be later than the proxy's own.
            shut_at = time.monotonic()
            client.shutdown(socket.SHUT_WR)  # the half-close travels the same delay
            reply = bytearray()
            first_reply_at = None
            while chunk := client.recv(1 << 20):
                first_reply_at = first_reply_at or time.monotonic()
                reply += chunk
            closed_at = time.monotonic()
    finally:
        proxy.close()
    assert bytes(far.received) == PAYLOAD
    assert bytes(reply) == PAYLOAD[::-1]
    assert far.first_byte_at is not None and far.eof_at is not None and far.replied_at is not None
    assert first_reply_at is not None
    assert DELAY <= far.first_byte_at - sent_at < DELAY + SLACK  # client -> server
    assert DELAY <= far.eof_at - shut_at < DELAY + SLACK
    assert DELAY <= first_reply_at - far.replied_at < DELAY + SLACK  # server -> client
    assert DELAY <= closed_at - far.replied_at < DELAY + SLACK  # the server's close, delayed as well


def test_delay_proxy_round_trip_of_one_byte_is_twice_the_delay(proxy_kind: str) -> None:
    """Request-response over one kept connection, six times: each exchange costs 2 x delay, no more per chunk."""
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def echo() -> None:
            conn, _ = listener.accept()
            with conn:
                while data := conn.recv(16):
                    conn.sendall(data)

        thread = threading.Thread(target=echo, daemon=True)
        thread.start()
        proxy = start(proxy_kind, listener.getsockname()[1])
        try:
            with socket.create_connection(("127.0.0.1", proxy.port)) as client:
                times = []
                for n in range(6):
                    began = time.monotonic()
                    client.sendall(bytes([n]))
                    assert client.recv(16) == bytes([n])
                    times.append(time.monotonic() - began)
        finally:
            proxy.close()
        thread.join(10)
    assert all(t >= 2 * DELAY for t in times), times
    assert sorted(times)[3] < 3 * DELAY, times  # the median exchange: the delay, not the proxy's own cost


def test_delay_process_reports_its_own_cpu_and_ends_with_its_stdin() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        proxy = DelayProcess("127.0.0.1", listener.getsockname()[1], DELAY)
        assert proxy.cpu_seconds() >= 0.0
        proxy.close()
        assert proxy.proc.returncode == 0
