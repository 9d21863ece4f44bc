"""Where Notary metadata comes from: a notary-server, a notary/docker trust dir, or an archive."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from ..config import DEFAULT_LIMITS, Limits
from ..errors import AuthError, Dct2NotationError, DeadlineExceeded, InputError, NotFoundError, RemoteError, UsageError
from ..files import read_regular, segments
from ..safetext import has_userinfo, redact_url
from ._plainhttp import CertificateNotTrusted, ConnectionFailed, DeadlinePassed, PlainHttp, Unsupported

if TYPE_CHECKING:
    import ssl

    import httpx


class _Retryable(Exception):
    """A 5xx or a dropped connection: worth another attempt."""


def _read_capped(root: Path, relative: str, gun: str, name: str, max_bytes: int | None) -> bytes:
    # The GUN may come from a bundle's ARCHIVE.json and the name from a delegation: both stay inside ``root``,
    # and only plain files are read (a FIFO or /dev/zero planted in a trust dir would hang or fill memory).
    cap = DEFAULT_LIMITS.metadata_bytes if max_bytes is None else max_bytes
    try:
        return read_regular(root, relative, cap, what=f"{gun}: {name}")
    except FileNotFoundError as exc:
        raise NotFoundError(f"{gun}: {name}: no {root / relative}") from exc


class TrustDirSource:
    """``<dir>/tuf/<gun>/metadata/<name>.json``: the notary client's (and docker's) cache."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise InputError(f"--trust-dir {directory}: not a directory")
        self.directory = directory

    def fetch(self, gun: str, name: str, *, max_bytes: int | None = None) -> bytes:
        base = self.directory / "tuf" / gun / "metadata"
        if name == "root" and not base.is_dir():
            raise NotFoundError(f"{gun}: not in trust dir {self.directory} (no {base})")
        # The metadata directory may be a symlink (a user's own arrangement); below it only plain files are read.
        segments(gun, f"--trust-dir {self.directory}: GUN")
        return _read_capped(base, f"{name}.json", gun, name, max_bytes)

    def fetch_many(self, gun: str, wanted: Sequence[tuple[str, int]]) -> list[bytes | Dct2NotationError]:
        return []  # files on disk: each is read when verification needs it


class ArchiveSource:
    """An archive written by ``dct2notation archive`` (``<dir>/<gun>/<name>.json``)."""

    def __init__(self, directory: Path) -> None:
        if not (directory / "ARCHIVE.json").is_file():
            raise InputError(f"--archive {directory}: no ARCHIVE.json (not an archive, or an incomplete one)")
        self.directory = directory

    def fetch(self, gun: str, name: str, *, max_bytes: int | None = None) -> bytes:
        if name == "root" and not (self.directory / gun).is_dir():
            raise NotFoundError(f"{gun}: not in archive {self.directory}")
        return _read_capped(self.directory, f"{gun}/{name}.json", gun, name, max_bytes)

    def fetch_many(self, gun: str, wanted: Sequence[tuple[str, int]]) -> list[bytes | Dct2NotationError]:
        return []  # files on disk: each is read when verification needs it


class NotaryServerSource:
    """``GET <url>/v2/<gun>/_trust/tuf/<name>.json`` with challenge auth, retries and streaming size caps.

    Anonymous reads go through one keep-alive ``http.client`` connection (``_plainhttp``), over HTTPS with the same
    TLS verification (``--ca`` or the system store): httpx costs ~35 ms of imports and ~1 ms of CPU per request,
    more than the rest of a small inventory. The first 401 (a token service, as Docker Hub's notary always asks) or
    response beyond that reader, and credentials, an explicit auth, a proxy in the environment or an unusual path,
    switch to the httpx client with ``ChallengeAuth``, which then serves every later request. Both map statuses
    through ``_answer``.
    """

    def __init__(
        self,
        url: str,
        auth: httpx.Auth | None = None,
        ca: Path | None = None,
        limits: Limits = DEFAULT_LIMITS,
        *,
        username: str | None = None,
        password: str | None = None,
        on_auth: Callable[[], None] | None = None,
    ) -> None:
        """``on_auth`` is called once the server is read with credentials or asked for them (a 401): from then on
        each connection holds its own token per GUN, so a GUN's files are better read on one connection."""
        if has_userinfo(url):
            raise UsageError(
                f"--server {redact_url(url)}: credentials in the URL are refused (they show in process lists and "
                "shell history); give -u USER --password-stdin"
            )
        self.url = url.rstrip("/")
        self.limits = limits
        self._auth = auth
        self._ca = ca
        self._username = username
        self._password = password
        self._on_auth = on_auth
        self.client: httpx.Client | None = None
        self._plain: PlainHttp | None = None
        parts = urlsplit(self.url)
        anonymous = parts.username is None and auth is None and username is None and password is None
        if anonymous and parts.scheme in ("http", "https") and not _proxy_configured(parts.scheme):
            tls = self._tls_context() if parts.scheme == "https" else None
            port = parts.port or (443 if tls is not None else 80)
            self._plain = PlainHttp(
                parts.hostname or "",
                port,
                parts.path,
                limits.http_timeout_seconds,
                tls,
                deadline=limits.http_deadline_seconds,
            )
        else:
            self.client = self._httpx_client()
            if on_auth is not None and not anonymous:
                on_auth()

    def _tls_context(self) -> ssl.SSLContext:
        # The OS store, --ca and docker's certs.d / ~/.docker/tls for this host: what `docker trust` trusts.
        from ..tlstrust import tls_context

        return tls_context(urlsplit(self.url).netloc.rpartition("@")[2], self._ca, "--ca")

    def _httpx_client(self) -> httpx.Client:
        from ._httpx import httpx  # isort: skip  # before ..auth, which imports httpx too
        from ..auth import ChallengeAuth, resolve_credentials
        from ..deadline import bounded_client

        # Plain HTTP needs no TLS context; building the default one costs ~0.3 s per process.
        verify: ssl.SSLContext | bool = False if self.url.startswith("http://") else self._tls_context()
        auth = self._auth
        if auth is None:
            url = httpx.URL(self.url)
            host = url.netloc.decode("ascii")
            credentials = resolve_credentials(host, username=self._username, password=self._password)
            # An http:// server URL names its host as plain HTTP, as --insecure-registry does for a registry: its
            # token service may be reached in clear on that host (any port), no other host may.
            plain = frozenset({url.host}) if url.scheme == "http" else frozenset()
            auth = ChallengeAuth(credentials, where=self.url, plain_http_hosts=plain)
        return bounded_client(auth=auth, verify=verify, timeout=self.limits.http_timeout_seconds)

    def close(self) -> None:
        if self._plain is not None:
            self._plain.close()
        if self.client is not None:
            self.client.close()

    def fetch(self, gun: str, name: str, *, max_bytes: int | None = None) -> bytes:
        cap = max_bytes if max_bytes is not None else self.limits.metadata_bytes
        return self.get(f"/v2/{gun}/_trust/tuf/{name}.json", _What(gun, f"{gun}: {name}.json", f"{gun}: {name}"), cap)

    def fetch_many(self, gun: str, wanted: Sequence[tuple[str, int]]) -> list[bytes | Dct2NotationError]:
        # One connection: each file when verification needs it (concurrent.verify_all is what spreads a GUN's
        # files over several connections at once).
        return []

    def get_api(self, path_and_query: str, what: str, max_bytes: int) -> bytes:
        """Any other GET of the server's API (the changefeed), with the same auth, retries, caps and deadline."""
        return self.get(path_and_query, _What(what, what, what), max_bytes)

    def get(self, path: str, what: _What, cap: int) -> bytes:
        try:
            return self._get_once(path, what, cap)
        except _Retryable as first:
            try:
                return self._retry(path, what, cap, first)
            except _Retryable as exc:
                raise RemoteError(
                    f"{self.url}: {what.label}: {exc} (after {self.limits.retry_attempts} attempts)"
                ) from exc

    def _retry(self, path: str, what: _What, cap: int, first: _Retryable) -> bytes:
        # tenacity is imported only once a request has failed (most runs never need it). The failure already
        # seen counts as tenacity's first attempt, so waits and the attempt limit are exactly its own.
        from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

        seen = [first]

        def attempt() -> bytes:
            if seen:
                raise seen.pop()
            return self._get_once(path, what, cap)

        retrying = retry(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(self.limits.retry_attempts),
            wait=wait_exponential(multiplier=0.2, max=self.limits.retry_max_wait_seconds),
            reraise=True,
        )(attempt)
        return retrying()

    def _get_once(self, path: str, what: _What, max_bytes: int) -> bytes:
        if self._plain is not None and _SAFE_PATH.fullmatch(path):
            try:
                status, body = self._plain.get(path, max_bytes)
            except DeadlinePassed as exc:
                raise DeadlineExceeded(f"{self.url}: {what.file}", self.limits.http_deadline_seconds) from exc
            except ConnectionFailed as exc:
                raise _Retryable(f"connection failed ({exc})") from exc
            except CertificateNotTrusted as exc:
                raise InputError(f"{self.url}: TLS certificate not trusted ({exc}); pass --ca FILE") from exc
            except Unsupported:
                pass  # httpx, below, reads what the plain reader does not
            else:
                if status != 401:
                    return self._answer(status, what, body)
                if self._on_auth is not None:
                    self._on_auth()
        if self.client is None:
            # A challenge, a response beyond the plain reader or a path to quote: httpx with ChallengeAuth from
            # here on, for every request.
            if self._plain is not None:
                self._plain.close()
                self._plain = None
            self.client = self._httpx_client()
        return self._get_httpx(self.client, self.url + path, what, max_bytes)

    def _answer(self, status: int, what: _What, body: bytes) -> bytes:
        if status == 200:
            return body
        if status == 404:
            raise NotFoundError(f"{self.url}: {what.file} not found (404)")
        if status == 401:
            raise AuthError(f"{self.url}: {what.who}: authentication required (401); give --username/--password-stdin")
        if status == 403:
            raise AuthError(f"{self.url}: {what.who}: access denied (403)")
        if status >= 500:
            raise _Retryable(f"server answered {status}")
        if status == 400 and self.url.startswith("http://") and _tls_listener_answer(body):
            raise UsageError(
                f"{self.url}: {what.file}: refused (400): the server speaks TLS; use https://"
                f"{self.url.removeprefix('http://')} (with --ca-file FILE if its CA is not in the OS trust store)"
            )
        raise RemoteError(f"{self.url}: {what.file}: unexpected status {status}")

    def _get_httpx(self, client: httpx.Client, url: str, what: _What, max_bytes: int) -> bytes:
        from ..deadline import deadline

        with deadline(self.limits.http_deadline_seconds) as limit:
            try:
                return self._stream_httpx(client, url, what, max_bytes)
            except _Retryable as exc:
                if limit.expired:  # not retried: a server that drips once does it again
                    raise limit.error(f"{self.url}: {what.file}") from exc
                raise

    def _stream_httpx(self, client: httpx.Client, url: str, what: _What, max_bytes: int) -> bytes:
        from ._httpx import httpx

        try:
            with client.stream("GET", url) as response:
                if response.status_code != 200:
                    # The first bytes of an error body only (bounded): enough to recognise a TLS listener's 400.
                    head = next(response.iter_bytes(), b"")[:1024] if response.status_code == 400 else b""
                    return self._answer(response.status_code, what, head)
                chunks: list[bytes] = []
                total = 0
                for chunk in response.iter_bytes():
                    room = max_bytes + 1 - total
                    chunks.append(chunk[:room])
                    total += min(len(chunk), room)
                    if total > max_bytes:
                        break  # one byte past the cap is enough for the caller to name the oversized role
                return b"".join(chunks)
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise InputError(f"{self.url}: TLS certificate not trusted; pass --ca FILE") from exc
            raise _Retryable(f"connection failed ({exc.__class__.__name__}: {exc})") from exc


class _What(NamedTuple):
    """How errors name a request: who for auth, the file for statuses, a label after retries."""

    who: str
    file: str
    label: str


# What a GUN and role name are made of; anything else goes through httpx, which percent-encodes as it always has.
# A query (the changefeed's change_id and records) only of our own making: names, digits and signs.
def _tls_listener_answer(body: bytes) -> bool:
    from ..tlstrust import is_tls_listener_answer  # an error path: ssl stays out of the plain-HTTP start-up

    return is_tls_listener_answer(body)


_SAFE_PATH = re.compile(r"[A-Za-z0-9._~:@!$&'()*+,;=/-]+(?:\?[A-Za-z0-9_=&-]*)?")


def _proxy_configured(scheme: str) -> bool:
    # httpx would route through these (trust_env); the standard-library connection would not.
    names = (f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY")
    return any(os.environ.get(name) for name in names)
