"""A notary server of the test's own on loopback: it answers ``GET /v2/<gun>/_trust/tuf/<name>.json`` with whatever
bytes the test decides, which is how a compromised or hostile notary-server is played (no real one serves forged
roots on demand).

``files`` maps a role file name (``root``, ``3.root``, ``targets/releases``) to bytes, or is a function of the name
answering bytes or None (404); every name asked for is recorded in ``requested``, in order.

``hold`` (seconds) counts round trips: a request is answered only once no other has arrived for ``hold`` seconds,
and the names answered together are one entry of ``waves`` (sorted). A client that sends its requests at once
makes one wave of them; one that waits for each answer before the next makes a wave per request.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from tests.support.loopback import QuietHTTPServer

Files = Mapping[str, bytes] | Callable[[str], bytes | None]


class HostileNotary:
    def __init__(self, gun: str, files: Files, *, hold: float = 0.0) -> None:
        self.gun = gun
        self.files = files
        self.requested: list[str] = []
        self.hold = hold
        self.waves: list[list[str]] = []
        self._batch: list[str] = []
        self._last_arrival = 0.0
        self._released = 0
        self._cond = threading.Condition()
        owner = self
        prefix = f"/v2/{gun}/_trust/tuf/"

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                return None

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                body: bytes | None = None
                if self.path.startswith(prefix) and self.path.endswith(".json"):
                    name = self.path[len(prefix) : -len(".json")]
                    owner.requested.append(name)
                    if owner.hold:
                        owner.held(name)
                    body = owner.answer(name)
                self.send_response(404 if body is None else 200)
                self.send_header("Content-Length", str(0 if body is None else len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client stopped at its cap
                    self.wfile.write(body or b"")

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def held(self, name: str) -> None:
        """Wait until ``hold`` seconds pass without a new request; the first waiter to see that releases all."""
        with self._cond:
            self._batch.append(name)
            self._last_arrival = time.monotonic()
            wave = self._released
            while self._released == wave:
                left = self._last_arrival + self.hold - time.monotonic()
                if left <= 0:
                    self.waves.append(sorted(self._batch))
                    self._batch = []
                    self._released += 1
                    self._cond.notify_all()
                    break
                self._cond.wait(left)

    def answer(self, name: str) -> bytes | None:
        if callable(self.files):
            return self.files(name)
        return self.files.get(name)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
