"""Which TLS servers we trust: the OS trust store, ``--ca-file``, and docker's per-host certificate directories.

One rule for every registry and notary server, as an operator's docker client applies it:

- the OS trust store (OpenSSL's default paths; ``SSL_CERT_FILE``/``SSL_CERT_DIR`` still point it elsewhere), not
  certifi's bundle, so a CA the machine trusts is trusted here too;
- ``--ca-file FILE`` is added to it;
- ``/etc/docker/certs.d/HOST[:PORT]/`` (the daemon's directory for registries) and ``$DOCKER_CONFIG/tls/HOST[:PORT]/``
  (the docker CLI's for notary servers): every ``*.crt`` is a CA, a ``NAME.cert`` with its ``NAME.key`` a client
  certificate. ``DCT2NOTATION_CERTS_D`` replaces ``/etc/docker/certs.d`` (a test or a rootless set-up).
"""

from __future__ import annotations

import functools
import os
import re
import ssl
from pathlib import Path

from .errors import InputError

DOCKER_CERTS_D = Path("/etc/docker/certs.d")


def docker_config_dir() -> Path:
    explicit = os.environ.get("DOCKER_CONFIG")
    if explicit:
        return Path(explicit)
    return Path.home() / ".docker"


def host_cert_dirs(host: str) -> tuple[Path, ...]:
    """Docker's certificate directories for ``host`` (``name:port`` as given), the daemon's first."""
    certs_d = Path(os.environ.get("DCT2NOTATION_CERTS_D") or DOCKER_CERTS_D)
    return (certs_d / host, docker_config_dir() / "tls" / host)


def is_tls_listener_answer(body: bytes) -> bool:
    """Go's net/http TLS listener answering a plain-HTTP request: a 400 whose body says so. Only then is "use https://"
    the hint; a server's own 400 (a bad parameter) is not."""
    return b"HTTP request to an HTTPS server" in body


def tls_context(host: str, ca_file: Path | None, option: str = "--ca-file") -> ssl.SSLContext:
    """The context for ``host``. Cached: loading the OS store costs ~15-30 ms of CPU, paid once per process; the
    key holds each certificate file's size and mtime, so a file added to certs.d is seen by the next context."""
    files = tuple((p, _stamp(p)) for directory in host_cert_dirs(host) for p in _files(directory))
    # The OS store's location is part of the key: SSL_CERT_FILE/SSL_CERT_DIR name another store for a later context.
    store = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    return _context(store, ca_file, None if ca_file is None else _stamp(ca_file), option, files)


def _stamp(path: Path) -> tuple[int, int]:
    try:
        status = path.stat()
    except OSError:
        return (-1, -1)
    return (status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=64)
def _context(
    store: tuple[str | None, str | None],
    ca_file: Path | None, ca_stamp: tuple[int, int] | None, option: str, files: tuple[tuple[Path, tuple[int, int]], ...]
) -> ssl.SSLContext:
    del store  # the cache key only: _os_store_context reads the same environment
    context = _os_store_context()
    if ca_file is not None:
        _load_ca(context, ca_file, f"{option} {ca_file}")
    for path, _ in files:
        if path.suffix == ".crt":
            _load_ca(context, path, str(path))
        elif path.suffix == ".cert":
            key = path.with_suffix(".key")
            if not key.is_file():
                raise InputError(f"{path}: client certificate without its key {key.name}")
            try:
                context.load_cert_chain(str(path), str(key))
            except (OSError, ssl.SSLError) as exc:
                raise InputError(f"{path}: cannot load the client certificate ({exc})") from exc
    return context


def _os_store_context() -> ssl.SSLContext:
    """A default client context trusting the OS store. Where OpenSSL's default directory is hashed (Debian's
    /etc/ssl/certs, kept by update-ca-certificates), it is given as ``capath``: OpenSSL then looks a CA up by its
    subject hash when a chain needs it, instead of parsing the whole bundle (~150 CAs, ~16 ms of CPU) in every
    process. Elsewhere (no hashed directory, or SSL_CERT_FILE naming a bundle) the bundle is loaded as before."""
    paths = ssl.get_default_verify_paths()
    if paths.capath and not os.environ.get(paths.openssl_cafile_env) and _hashed(paths.capath):
        return ssl.create_default_context(capath=paths.capath)
    return ssl.create_default_context()


@functools.lru_cache(maxsize=4)
def _hashed(directory: str) -> bool:
    try:
        with os.scandir(directory) as entries:
            return any(_HASH_NAME.fullmatch(entry.name) for entry in entries)
    except OSError:
        return False


_HASH_NAME = re.compile(r"[0-9a-f]{8}\.[0-9]+")


def _files(directory: Path) -> list[Path]:
    # Regular files only: a FIFO named *.crt would block the handshake set-up forever.
    try:
        return sorted(p for p in directory.iterdir() if p.is_file())
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise InputError(f"{directory}: cannot read ({exc.strerror})") from exc


def _load_ca(context: ssl.SSLContext, path: Path, where: str) -> None:
    if not path.is_file():
        raise InputError(f"{where}: no such file")
    try:
        context.load_verify_locations(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise InputError(f"{where}: cannot load CA certificates ({exc})") from exc
