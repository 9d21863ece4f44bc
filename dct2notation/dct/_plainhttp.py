"""Keep-alive GETs to an anonymous notary server (HTTP or HTTPS) through the standard library's ``http.client``.

httpx costs ~35 ms of imports and ~1 ms of CPU per request, more than the rest of a small inventory; an inventory
makes a handful of GETs. HTTP parsing stays with a maintained implementation: this module only adds the size cap,
refuses what a notary-server never sends (a content coding, a transfer coding other than chunked, conflicting
Content-Length values) by raising ``Unsupported`` so the caller hands the request to httpx, and maps failures to
``ConnectionFailed``, which the caller retries.
"""

from __future__ import annotations

import http.client
import ssl


class Unsupported(Exception):
    """A response outside what is read here; httpx must make the request."""


class ConnectionFailed(Exception):
    """The connection failed or the response broke HTTP framing: worth another attempt."""


class CertificateNotTrusted(Exception):
    """The server's TLS certificate does not verify: retrying will not help, a CA (``--ca``) might."""


class PlainHttp:
    """One connection to ``host:port``; ``get`` returns (status, body cut at ``max_bytes + 1`` bytes)."""

    def __init__(self, host: str, port: int, prefix: str, timeout: float, tls: ssl.SSLContext | None = None) -> None:
        self.prefix = prefix
        self._conn = (
            http.client.HTTPConnection(host, port, timeout=timeout)
            if tls is None
            else http.client.HTTPSConnection(host, port, timeout=timeout, context=tls)
        )

    def close(self) -> None:
        self._conn.close()

    def get(self, path: str, max_bytes: int) -> tuple[int, bytes]:
        reused = self._conn.sock is not None
        try:
            try:
                return self._get(path, max_bytes)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if not reused:
                    raise
                # The server closed the idle keep-alive connection: one fresh connection, no retry spent.
                return self._get(path, max_bytes)
        except ssl.SSLCertVerificationError as exc:
            self._conn.close()
            raise CertificateNotTrusted(exc.verify_message or str(exc)) from exc
        except (OSError, http.client.HTTPException) as exc:
            self._conn.close()
            raise ConnectionFailed(f"{exc.__class__.__name__}: {exc}") from exc
        except Unsupported:
            self._conn.close()
            raise

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
