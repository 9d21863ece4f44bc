"""A private key and its certificate chain in PEM files (``notation key add --key --cert`` style)."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..config import DEFAULT_LIMITS
from ..errors import SigningKeyError
from ..files import read_document
from .base import PrivateKey, algorithm_for, key_spec_of, sign_raw


class LocalKey:
    """A key held in memory; ``sign`` produces the raw COSE signature."""

    def __init__(self, name: str, private_key: PrivateKey, chain: list[x509.Certificate]) -> None:
        if not chain:
            raise SigningKeyError(f"key {name!r}: certificate chain is empty")
        spec = key_spec_of(private_key.public_key(), where=f"key {name!r}")
        if chain[0].public_key() != private_key.public_key():
            raise SigningKeyError(f"key {name!r}: the private key does not match the leaf certificate")
        self.name = name
        self._private_key = private_key
        self._chain = list(chain)
        self._spec = spec
        self._algorithm = algorithm_for(spec)

    def certificate_chain(self) -> list[x509.Certificate]:
        return list(self._chain)

    def key_spec(self) -> str:
        return self._spec

    def sign(self, to_be_signed: bytes) -> bytes:
        return sign_raw(self._private_key, to_be_signed, self._algorithm)

    @property
    def signing_agent_suffix(self) -> str:
        return ""  # Notation's agent names only plugins after itself

    def envelope_generator(self) -> None:
        return None  # the envelope is assembled around ``sign``


def read_private_key(path: Path) -> PrivateKey:
    try:
        data = read_document(path, DEFAULT_LIMITS.config_file_bytes)
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read key file ({exc.strerror})") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise SigningKeyError(
            f"{path}: encrypted private keys are not supported (Notation keys are unencrypted)"
        ) from exc
    except ValueError as exc:
        raise SigningKeyError(f"{path}: not a PEM private key ({exc})") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise SigningKeyError(f"{path}: key type {type(key).__name__} is not allowed (RSA or EC only)")
    return key


def read_certificate_chain(path: Path) -> list[x509.Certificate]:
    try:
        data = read_document(path, DEFAULT_LIMITS.config_file_bytes)
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read certificate file ({exc.strerror})") from exc
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise SigningKeyError(f"{path}: not a PEM certificate chain ({exc})") from exc
    return chain


def load_local_key(key_path: Path, cert_path: Path, *, name: str | None = None) -> LocalKey:
    """Key + chain (leaf first) from PEM files; the key must match the leaf certificate."""
    return LocalKey(name or key_path.stem, read_private_key(key_path), read_certificate_chain(cert_path))
