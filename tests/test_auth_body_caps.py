"""ChallengeAuth reads only the bodies its flow consumes, under a cap; the caller streams everything else.

A real HTTP server on loopback plays the hostile registry: endless chunked bodies on the 401, on the token answer,
and on the authenticated response (which must reach the caller unread so its own size cap applies).
"""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dct2notation.auth import ChallengeAuth, Credentials
from dct2notation.errors import AuthError
from tests.support.loopback import QuietHTTPServer

CHUNK = b"x" * 65536


class Hostile:
    """``/v2/x`` challenges for a Bearer token from ``/token``; ``endless`` names which answer never ends."""

    def __init__(self) -> None:
        self.endless = ""
        self.chunks_sent = 0
        hostile = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
                return

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.startswith("/token"):
                    kind, body = "token", b'{"token":"t0k"}'
                elif self.headers.get("Authorization") != "Bearer t0k":
                    kind, body = "401", b'{"errors":[{"code":"UNAUTHORIZED"}]}'
                else:
                    kind, body = "ok", b"fine"
                self.send_response(401 if kind == "401" else 200)
                if kind == "401":
                    realm = f"http://127.0.0.1:{hostile.port}/token"
                    self.send_header(
                        "WWW-Authenticate", f'Bearer realm="{realm}",service="s",scope="repository:x:pull"'
                    )
                if hostile.endless == kind:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    try:
                        while True:  # until the client hangs up
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
                            hostile.chunks_sent += 1
                    except OSError:
                        self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v2/x"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    server = Hostile()
    yield server
    server.stop()


def auth() -> ChallengeAuth:
    return ChallengeAuth(Credentials("u", "p"), where="registry.test")


def test_token_flow_works_and_the_final_body_is_left_to_the_caller(hostile: Hostile) -> None:
    with httpx.Client(auth=auth()) as client:
        assert client.get(hostile.url).text == "fine"
        hostile.endless = "ok"
        with client.stream("GET", hostile.url) as response:
            # Still unread after the auth flow: the caller's own cap decides how much of it to take.
            assert response.status_code == 200 and not response.is_stream_consumed
            first = next(response.iter_raw())
    assert len(first) > 0
    assert hostile.chunks_sent < 1000  # ~64 MiB: the server was stopped long before it could send everything


@pytest.mark.parametrize(
    ("endless", "message"),
    [
        ("token", "registry.test: token service answer is larger than 1048576 bytes"),
        ("401", "registry.test: 401 answer is larger than 1048576 bytes"),
    ],
)
def test_endless_bodies_in_the_flow_are_cut_off(hostile: Hostile, endless: str, message: str) -> None:
    hostile.endless = endless
    with httpx.Client(auth=auth()) as client, pytest.raises(AuthError) as caught:
        client.get(hostile.url)
    assert str(caught.value) == message
    # The cap (16 chunks) plus what loopback socket buffers held (several MiB), never the endless rest.
    assert hostile.chunks_sent < 1000


def test_async_client_cuts_off_an_endless_token_answer(hostile: Hostile) -> None:
    hostile.endless = "token"

    async def fetch() -> None:
        async with httpx.AsyncClient(auth=auth()) as client:
            await client.get(hostile.url)

    with pytest.raises(AuthError, match=r"^registry.test: token service answer is larger than 1048576 bytes$"):
        asyncio.run(fetch())
