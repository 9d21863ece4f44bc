"""The socketserver base of every loopback server a test writes itself (hostile answers, relays, fault proxies).

A client that stops reading at its cap, gives up on a deadline or is SIGKILLed closes with bytes unread, and the
kernel answers the server's next read or write with a reset. That is what these tests do on purpose, yet
socketserver prints a traceback for it from the handler's thread, which lands in the CI log whenever pytest's
capture is suspended between test phases. Any other error is still printed.
"""

from __future__ import annotations

import socketserver
import sys
from http.server import ThreadingHTTPServer
from typing import Any


class _QuietResets(socketserver.BaseServer):
    daemon_threads = True  # a handler blocked on a hung-up client never holds the test process open

    def handle_error(self, request: Any, client_address: Any) -> None:
        # ConnectionError: ConnectionResetError, BrokenPipeError, ConnectionAbortedError.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class QuietHTTPServer(_QuietResets, ThreadingHTTPServer):
    """``ThreadingHTTPServer`` with daemon threads and no traceback for a connection the client reset."""


class QuietTCPServer(_QuietResets, socketserver.ThreadingTCPServer):
    """``ThreadingTCPServer`` with daemon threads and no traceback for a connection the client reset."""
