"""The signing-key contract and the fixed Notation key-spec → algorithm table.

Notation accepts exactly six key specs (notation-core-go ``ExtractKeySpec``); anything else is refused here so no
code path can produce an envelope Notation would reject.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from pycose import algorithms as cose_alg

from ..errors import SigningKeyError

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Algorithm:
    key_spec: str  # RSA-2048 … EC-521 (plugin protocol names)
    cose_id: int  # COSE alg label value
    name: str  # PS256 …
    hash_name: str  # SHA-256 … (plugin protocol / timestamp hash names)
    signing_algorithm: str  # plugin protocol signingAlgorithm value
    coordinate_bytes: int  # ECDSA r and s length; 0 for RSA

    def hash(self) -> hashes.HashAlgorithm:
        table: dict[str, hashes.HashAlgorithm] = {
            "SHA-256": hashes.SHA256(),
            "SHA-384": hashes.SHA384(),
            "SHA-512": hashes.SHA512(),
        }
        return table[self.hash_name]


ALGORITHMS: dict[str, Algorithm] = {
    a.key_spec: a
    for a in (
        Algorithm("RSA-2048", cose_alg.Ps256.identifier, "PS256", "SHA-256", "RSASSA-PSS-SHA-256", 0),
        Algorithm("RSA-3072", cose_alg.Ps384.identifier, "PS384", "SHA-384", "RSASSA-PSS-SHA-384", 0),
        Algorithm("RSA-4096", cose_alg.Ps512.identifier, "PS512", "SHA-512", "RSASSA-PSS-SHA-512", 0),
        Algorithm("EC-256", cose_alg.Es256.identifier, "ES256", "SHA-256", "ECDSA-SHA-256", 32),
        Algorithm("EC-384", cose_alg.Es384.identifier, "ES384", "SHA-384", "ECDSA-SHA-384", 48),
        Algorithm("EC-521", cose_alg.Es512.identifier, "ES512", "SHA-512", "ECDSA-SHA-512", 66),
    )
}
ALGORITHMS_BY_COSE_ID: dict[int, Algorithm] = {a.cose_id: a for a in ALGORITHMS.values()}

_CURVES = {"secp256r1": "EC-256", "secp384r1": "EC-384", "secp521r1": "EC-521"}


def key_spec_of(public_key: object, *, where: str = "key") -> str:
    """The Notation key spec of a public key; any size or curve outside the six allowed ones is an error."""
    if isinstance(public_key, rsa.RSAPublicKey):
        spec = f"RSA-{public_key.key_size}"
        if spec in ALGORITHMS:
            return spec
        raise SigningKeyError(f"{where}: RSA key size {public_key.key_size} is not allowed (2048, 3072 or 4096)")
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        spec_or_none = _CURVES.get(public_key.curve.name)
        if spec_or_none is not None:
            return spec_or_none
        raise SigningKeyError(f"{where}: EC curve {public_key.curve.name} is not allowed (P-256, P-384 or P-521)")
    raise SigningKeyError(f"{where}: key type {type(public_key).__name__} is not allowed (RSA or EC only)")


def algorithm_for(key_spec: str) -> Algorithm:
    try:
        return ALGORITHMS[key_spec]
    except KeyError:
        raise SigningKeyError(f"unsupported key spec {key_spec!r} (one of {', '.join(ALGORITHMS)})") from None


def sign_raw(private_key: PrivateKey, data: bytes, algorithm: Algorithm) -> bytes:
    """Sign as COSE wants it: RSA-PSS with salt = hash length, ECDSA as fixed-width r‖s (not DER)."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(algorithm.hash()), salt_length=algorithm.hash().digest_size)
        return private_key.sign(data, pss, algorithm.hash())
    der = private_key.sign(data, ec.ECDSA(algorithm.hash()))
    r, s = decode_dss_signature(der)
    n = algorithm.coordinate_bytes
    return r.to_bytes(n, "big") + s.to_bytes(n, "big")


def verify_raw(public_key: object, signature: bytes, data: bytes, algorithm: Algorithm) -> bool:
    """True when ``signature`` (COSE form) over ``data`` verifies under ``public_key`` with ``algorithm``."""
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            if algorithm.coordinate_bytes:
                return False
            pss = padding.PSS(mgf=padding.MGF1(algorithm.hash()), salt_length=algorithm.hash().digest_size)
            public_key.verify(signature, data, pss, algorithm.hash())
            return True
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            n = algorithm.coordinate_bytes
            if not n or len(signature) != 2 * n:
                return False
            der = encode_dss_signature(int.from_bytes(signature[:n], "big"), int.from_bytes(signature[n:], "big"))
            public_key.verify(der, data, ec.ECDSA(algorithm.hash()))
            return True
    except InvalidSignature:
        return False
    return False


@runtime_checkable
class SigningKey(Protocol):
    """What the envelope builder needs from any key source (local file, signingkeys.json, KMS plugin)."""

    name: str

    def certificate_chain(self) -> list[x509.Certificate]:
        """Leaf first, ending with the root."""
        ...

    def key_spec(self) -> str:
        """One of RSA-2048|RSA-3072|RSA-4096|EC-256|EC-384|EC-521."""
        ...

    def sign(self, to_be_signed: bytes) -> bytes:
        """Raw COSE signature over the ToBeSigned bytes (ECDSA r‖s, RSA-PSS salt = hash length)."""
        ...

    @property
    def signing_agent_suffix(self) -> str:
        """What Notation appends to its signing agent for this key: ``<plugin>/<version>`` for a plugin, else ""."""
        ...

    def envelope_generator(self) -> EnvelopeGenerator | None:
        """The plugin that makes whole envelopes (SIGNATURE_GENERATOR.ENVELOPE contract); None when the caller
        assembles the envelope around ``sign``."""
        ...


class EnvelopeGenerator(Protocol):
    """A key behind a plugin with the SIGNATURE_GENERATOR.ENVELOPE contract (``keys.plugin.PluginKey``)."""

    @property
    def plugin_name(self) -> str: ...

    def generate_envelope(
        self, payload: bytes, envelope_type: str, expiry_seconds: int | None
    ) -> tuple[bytes, dict[str, str]]: ...
