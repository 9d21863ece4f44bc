"""Where Notary metadata comes from: a notary-server, a notary/docker trust dir, or an archive."""

from __future__ import annotations

import ssl
from pathlib import Path

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from ._httpx import httpx  # isort: skip  # before ..auth, which imports httpx too
from ..auth import ChallengeAuth, resolve_credentials
from ..config import DEFAULT_LIMITS, Limits
from ..errors import AuthError, InputError, NotFoundError, RemoteError


class _Retryable(Exception):
    """A 5xx or a dropped connection: worth another attempt."""


def _read_capped(path: Path, gun: str, name: str, max_bytes: int | None) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise NotFoundError(f"{gun}: {name}: no {path}") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    return data


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
        return _read_capped(base / f"{name}.json", gun, name, max_bytes)


class ArchiveSource:
    """An archive written by ``dct2notation archive`` (``<dir>/<gun>/<name>.json``)."""

    def __init__(self, directory: Path) -> None:
        if not (directory / "ARCHIVE.json").is_file():
            raise InputError(f"--archive {directory}: no ARCHIVE.json (not an archive, or an incomplete one)")
        self.directory = directory

    def fetch(self, gun: str, name: str, *, max_bytes: int | None = None) -> bytes:
        if name == "root" and not (self.directory / gun).is_dir():
            raise NotFoundError(f"{gun}: not in archive {self.directory}")
        return _read_capped(self.directory / gun / f"{name}.json", gun, name, max_bytes)


class NotaryServerSource:
    """``GET <url>/v2/<gun>/_trust/tuf/<name>.json`` with challenge auth, retries and streaming size caps."""

    def __init__(
        self,
        url: str,
        auth: httpx.Auth | None = None,
        ca: Path | None = None,
        limits: Limits = DEFAULT_LIMITS,
        *,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.limits = limits
        # Plain HTTP needs no TLS context; building the default one costs ~0.3 s per process.
        verify: ssl.SSLContext | bool = not self.url.startswith("http://")
        if ca is not None:
            try:
                verify = ssl.create_default_context(cafile=str(ca))
            except (OSError, ssl.SSLError) as exc:
                raise InputError(f"--ca {ca}: cannot load CA certificates ({exc})") from exc
        if auth is None:
            host = httpx.URL(self.url).netloc.decode("ascii")
            auth = ChallengeAuth(resolve_credentials(host, username=username, password=password), where=self.url)
        self.client = httpx.Client(auth=auth, verify=verify, timeout=limits.http_timeout_seconds)
        self._get = retry(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(limits.retry_attempts),
            wait=wait_exponential(multiplier=0.2, max=limits.retry_max_wait_seconds),
            reraise=True,
        )(self._get_once)

    def close(self) -> None:
        self.client.close()

    def fetch(self, gun: str, name: str, *, max_bytes: int | None = None) -> bytes:
        try:
            return self._get(gun, name, max_bytes if max_bytes is not None else self.limits.metadata_bytes)
        except _Retryable as exc:
            raise RemoteError(
                f"{self.url}: {gun}: {name}: {exc} (after {self.limits.retry_attempts} attempts)"
            ) from exc

    def _get_once(self, gun: str, name: str, max_bytes: int) -> bytes:
        url = f"{self.url}/v2/{gun}/_trust/tuf/{name}.json"
        try:
            with self.client.stream("GET", url) as response:
                if response.status_code == 404:
                    raise NotFoundError(f"{self.url}: {gun}: {name}.json not found (404)")
                if response.status_code == 401:
                    raise AuthError(
                        f"{self.url}: {gun}: authentication required (401); give --username/--password-stdin"
                    )
                if response.status_code == 403:
                    raise AuthError(f"{self.url}: {gun}: access denied (403)")
                if response.status_code >= 500:
                    raise _Retryable(f"server answered {response.status_code}")
                if response.status_code != 200:
                    raise RemoteError(f"{self.url}: {gun}: {name}.json: unexpected status {response.status_code}")
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
