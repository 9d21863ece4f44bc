"""No hang: a server that drips one byte at a time is cut off by the per-request deadline, with one line and exit 3.

Each drip comes long before the 30 s per-read timeout, so before the deadline a command waited forever. The
dripping server is a real TCP server on loopback written here; the deadline is made small
(``DCT2NOTATION_HTTP_DEADLINE`` for the command, ``Limits`` for the library) so each test takes about a second.
Covered: the standard-library notary reader, the httpx notary client, the sync and async registry clients, and a
token service that drips.
"""

from __future__ import annotations

import asyncio
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dct2notation.config import Limits
from dct2notation.errors import DeadlineExceeded
from dct2notation.registry.client import AsyncRegistryClient, RegistryClient
from dct2notation.registry.options import RegistryOptions
from tests.support.loopback import QuietTCPServer

ROOT = Path(__file__).resolve().parents[1]
DRIP_EVERY = 0.2  # seconds between bytes: far inside the 30 s per-read timeout
DEADLINE = 1.0
LIMITS = Limits(http_deadline_seconds=DEADLINE)
DIGEST = "sha256:" + "ab" * 32


class Dripper:
    """Reads a request head, then answers one byte per ``DRIP_EVERY``: in the head (``mode="head"``), or after a
    complete head promising a large body (``"body"``). ``mode="challenge"`` answers a 401 whose Bearer realm is
    ``realm``; the server stops dripping when the client hangs up."""

    def __init__(self) -> None:
        self.mode = "head"
        self.realm = ""
        self.connections = 0
        dripper = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                dripper.connections += 1
                sock: socket.socket = self.request
                while True:  # one connection may carry several requests (keep-alive)
                    head = b""
                    while b"\r\n\r\n" not in head:
                        data = sock.recv(65536)
                        if not data:
                            return
                        head += data
                    if dripper.mode == "challenge" and not head.startswith(b"GET /token"):
                        body = b'{"errors":[{"code":"UNAUTHORIZED"}]}'
                        sock.sendall(
                            b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm="%s",service="s"\r\n'
                            b"Content-Length: %d\r\n\r\n%s" % (dripper.realm.encode(), len(body), body)
                        )
                        continue
                    if dripper.mode == "body":
                        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n")
                        drip = b"{"
                    else:
                        sock.sendall(b"HTTP/1.1 200 OK\r\n")
                        drip = b"X-Drip: " + b"a" * 100_000
                    try:
                        for byte in drip * 100:
                            sock.sendall(bytes([byte]))
                            time.sleep(DRIP_EVERY)
                    except OSError:
                        return  # the client gave up: what the deadline is for

        self.server = QuietTCPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def dripper() -> Iterator[Dripper]:
    server = Dripper()
    yield server
    server.server.shutdown()
    server.server.server_close()


def run_cli(*argv: str, stdin: str = "", deadline: str = "1") -> tuple[int, str, float]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DCT2NOTATION_HTTP_DEADLINE": deadline,
        "DOCKER_CONFIG": "/nonexistent",
    }
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "dct2notation", *argv], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )
    return done.returncode, done.stderr, time.monotonic() - start


def deadline_line(what: str) -> str:
    return (
        f"dct2notation: error: {what}: no complete answer within 1 s (the per-request deadline; "
        "DCT2NOTATION_HTTP_DEADLINE=SECONDS sets it)\n"
    )


@pytest.mark.parametrize("mode", ["head", "body"])
def test_attack_dripping_notary_server(dripper: Dripper, mode: str) -> None:
    # Anonymous: the standard-library reader (dct/_plainhttp.py).
    dripper.mode = mode
    url = f"http://{dripper.host}"
    code, err, took = run_cli("inventory", "example.com/app", "--server", url)
    assert (code, err) == (3, deadline_line(f"{url}: example.com/app: root.json"))
    assert took < 8


def test_attack_dripping_notary_server_with_credentials(dripper: Dripper) -> None:
    # Credentials switch the notary source to httpx with challenge auth.
    dripper.mode = "body"
    url = f"http://{dripper.host}"
    code, err, took = run_cli(
        "inventory", "example.com/app", "--server", url, "-u", "alice", "--password-stdin", stdin="pw\n"
    )
    assert (code, err) == (3, deadline_line(f"{url}: example.com/app: root.json"))
    assert took < 8


@pytest.mark.parametrize("mode", ["head", "body"])
def test_attack_dripping_registry(dripper: Dripper, mode: str) -> None:
    dripper.mode = mode
    ref = f"{dripper.host}/app@{DIGEST}"
    code, err, took = run_cli("ls", ref, "--insecure-registry", dripper.host)
    assert code == 3
    assert err.startswith(f"dct2notation: error: {dripper.host}: ") and err.count("\n") == 1
    assert err.endswith(
        ": no complete answer within 1 s (the per-request deadline; DCT2NOTATION_HTTP_DEADLINE=SECONDS sets it)\n"
    )
    assert took < 8


def test_attack_dripping_registry_async_client(dripper: Dripper) -> None:
    # The batch signer's client.
    dripper.mode = "body"
    options = RegistryOptions(insecure_registries=frozenset({dripper.host}), limits=LIMITS)

    async def ping() -> None:
        async with AsyncRegistryClient(dripper.host, options) as client:
            await client.ping()

    start = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        asyncio.run(ping())
    assert str(caught.value) == (
        f"{dripper.host}: GET /v2/: no complete answer within 1 s (the per-request deadline; "
        "DCT2NOTATION_HTTP_DEADLINE=SECONDS sets it)"
    )
    assert time.monotonic() - start < DEADLINE + 3


def test_attack_dripping_token_service(dripper: Dripper) -> None:
    # The registry answers at once; its token service drips. The token fetch is part of the request it serves.
    token_service = Dripper()
    try:
        token_service.mode = "head"
        dripper.mode, dripper.realm = "challenge", f"http://{token_service.host}/token"
        options = RegistryOptions(insecure_registries=frozenset({dripper.host, token_service.host}), limits=LIMITS)
        start = time.monotonic()
        with RegistryClient(dripper.host, options) as client, pytest.raises(DeadlineExceeded) as caught:
            client.ping()
        assert str(caught.value).startswith(f"{dripper.host}: GET /v2/: no complete answer within 1 s")
        assert time.monotonic() - start < DEADLINE + 3
        assert token_service.connections == 1  # not retried: a drip once is a drip again
    finally:
        token_service.server.shutdown()
        token_service.server.server_close()


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "nan"])
def test_deadline_from_the_environment_must_be_positive_seconds(value: str) -> None:
    code, err, _ = run_cli("inventory", "example.com/app", "--server", "http://127.0.0.1:9", deadline=value)
    assert (code, err) == (
        2,
        f"dct2notation: error: DCT2NOTATION_HTTP_DEADLINE: {value!r} is not a positive number of seconds\n",
    )


def test_attack_dripping_timestamp_authority(dripper: Dripper) -> None:
    # Not a notary server or registry, but a remote every timestamped signature waits on.
    from dct2notation.errors import TimestampError
    from dct2notation.notation.timestamp import HttpTimestamper

    dripper.mode = "head"
    start = time.monotonic()
    with (
        HttpTimestamper(f"http://{dripper.host}/tsr", [], limits=LIMITS) as tsa,
        pytest.raises(TimestampError) as caught,
    ):
        tsa.timestamp(b"signature", hash_algorithm="SHA-256", signing_chain=[])
    assert str(caught.value) == (
        f"TSA http://{dripper.host}/tsr: no complete answer within 1 s (the per-request deadline; "
        "DCT2NOTATION_HTTP_DEADLINE=SECONDS sets it)"
    )
    assert time.monotonic() - start < DEADLINE + 3
    assert tsa.attempts == 1
