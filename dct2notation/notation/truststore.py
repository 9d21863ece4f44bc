"""Notation trust store: ``{root}/x509/{ca|signingAuthority|tsa}/NAME/*`` (notation-go ``verifier/truststore``).

As in notation-go, every entry of a named store is read whatever its extension, and a subdirectory or symlink in a
store is an error rather than something to skip silently: a store that does not hold what the operator thinks it
holds must not quietly change who is trusted.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from ..config import DEFAULT_LIMITS
from ..errors import ConfigError
from ..files import UnsafePathError, read_capped, remove_regular, segments, write_atomic
from ..safetext import printable
from .certs import is_self_signed
from .policy import STORE_NAME, STORE_TYPES


def _load_file(path: Path) -> list[x509.Certificate]:
    # O_NOFOLLOW and a regular-file check on the opened descriptor: a symlink swapped in after the directory
    # listing, or a FIFO, is refused rather than followed or waited on.
    try:
        data = read_capped(path.parent, path.name, DEFAULT_LIMITS.config_file_bytes, what="trust store entry")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: cannot read the trust store entry (No such file or directory)") from exc
    if b"-----BEGIN" in data:
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise ConfigError(f"{path}: not a PEM certificate file ({exc})") from exc
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ConfigError(f"{path}: not a PEM or DER certificate ({exc})") from exc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return bc.ca


def _admissible(path: Path, store_type: str) -> list[x509.Certificate]:
    """The certificates of ``path``, each one a store of ``store_type`` may hold."""
    certs = _load_file(path)
    for cert in certs:
        if store_type == "tsa":
            if not is_self_signed(cert):
                raise ConfigError(f"{path}: a tsa trust store holds root (self-signed) certificates only")
        elif not (_is_ca(cert) or is_self_signed(cert)):
            raise ConfigError(f"{path}: trust store certificates must be CA or self-signed certificates")
    return certs


def _check_store(store_type: str, name: str) -> None:
    if store_type not in STORE_TYPES:
        raise ConfigError(f'trust store type "{store_type}" is not one of {", ".join(STORE_TYPES)}')
    if not STORE_NAME.fullmatch(name):
        # printable here: the error base would make a newline a space, and "acme " would hide what was refused.
        raise ConfigError(f'trust store name "{printable(name)}" is not valid ([a-zA-Z0-9_.-]+)')


class TrustStore:
    def __init__(self, root_dir: Path | str) -> None:
        self.root = Path(root_dir)
        self._cache: dict[tuple[str, str], list[x509.Certificate]] = {}

    def store_dir(self, store_type: str, name: str) -> Path:
        return self.root / "x509" / store_type / name

    def certificates(self, store_type: str, name: str) -> list[x509.Certificate]:
        """The certificates of one named store; every failure names the store and the file."""
        key = (store_type, name)
        if key in self._cache:
            return self._cache[key]
        _check_store(store_type, name)
        directory = self.store_dir(store_type, name)
        if directory.is_symlink() or not directory.is_dir():
            raise ConfigError(f'the trust store "{name}" of type "{store_type}" does not exist ({directory})')
        certs: list[x509.Certificate] = []
        for entry in sorted(directory.iterdir()):
            if entry.is_symlink():
                raise ConfigError(f"{entry}: trust store entries must be regular files, not symlinks")
            if entry.is_dir():
                raise ConfigError(f"{entry}: trust store {store_type}:{name} must not contain directories")
            if not entry.is_file():
                raise ConfigError(f"{entry}: trust store entries must be regular files (a FIFO or device is not)")
            certs += _admissible(entry, store_type)
        if not certs:
            raise ConfigError(f'the trust store "{name}" of type "{store_type}" has no certificates ({directory})')
        self._cache[key] = certs
        return certs

    def add(self, store_type: str, name: str, sources: list[Path]) -> list[Path]:
        """``notation cert add``: copy each source (PEM or DER, every certificate admissible in such a store) into
        the named store under its own file name. All are checked before any is written; an entry of that name
        already there is refused, not replaced."""
        _check_store(store_type, name)
        staged: list[tuple[Path, bytes]] = []
        for source in sources:
            _admissible(source, store_type)
            target = self.store_dir(store_type, name) / source.name
            if target.exists() or target.is_symlink() or any(t == target for t, _ in staged):
                raise ConfigError(f"{target}: the trust store {store_type}:{name} already holds {source.name}")
            data = read_capped(source.parent, source.name, DEFAULT_LIMITS.config_file_bytes, what="certificate")
            staged.append((target, data))
        directory = self.store_dir(store_type, name)
        if any(p.is_symlink() for p in (directory, directory.parent, directory.parent.parent, self.root)):
            raise ConfigError(f"{directory}: a trust store directory is a symlink, which Notation refuses")
        directory.mkdir(parents=True, exist_ok=True)
        for target, data in staged:
            write_atomic(target, data, what="cert add")
        return [target for target, _ in staged]

    def entries(self, store_type: str | None = None, name: str | None = None) -> list[Path]:
        """``notation cert ls``: every file of the stores (of one type, one name), sorted."""
        types = [store_type] if store_type else list(STORE_TYPES)
        out: list[Path] = []
        for kind in types:
            if name is not None:
                _check_store(kind, name)
            base = self.root / "x509" / kind
            stores = [base / name] if name is not None else sorted(base.iterdir()) if base.is_dir() else []
            for store in stores:
                if store.is_dir() and not store.is_symlink():
                    out += sorted(entry for entry in store.iterdir() if entry.is_file() and not entry.is_symlink())
        return out

    def delete(self, store_type: str, name: str, file_name: str | None) -> list[Path]:
        """``notation cert delete``: one entry of a named store by its file name, or (``None``) every entry. Only
        regular files directly in the store are removed, never through a symlinked directory: a name with a ``/`` or
        ``..``, or a store holding a symlink or a subdirectory, is refused before anything is deleted."""
        _check_store(store_type, name)
        relative = "/".join(segments(f"x509/{store_type}/{name}", f"{self.root}: trust store"))
        if file_name is not None:
            if len(segments(file_name, f"cert delete {store_type}:{name}: certificate file name")) != 1:
                raise UnsafePathError(
                    f"cert delete {store_type}:{name}: {file_name!r} is not a file name (it has a '/' in it)"
                )
            return [remove_regular(self.root, f"{relative}/{file_name}", what="trust store entry")]
        directory = self.store_dir(store_type, name)
        if directory.is_symlink() or not directory.is_dir():
            raise ConfigError(f'the trust store "{name}" of type "{store_type}" does not exist ({directory})')
        names = sorted(entry.name for entry in directory.iterdir())
        for entry_name in names:
            entry = directory / entry_name
            if entry.is_symlink() or not entry.is_file():
                raise UnsafePathError(f"{entry}: trust store entries must be regular files; nothing deleted")
        return [remove_regular(self.root, f"{relative}/{n}", what="trust store entry") for n in names]
