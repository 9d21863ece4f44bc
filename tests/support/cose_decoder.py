"""An independent Notation COSE decoder for tests: cbor2 + cryptography only, nothing from dct2notation.

It re-derives every field from the bytes and checks the signature by rebuilding the Sig_structure itself, so a bug
in our envelope module cannot hide behind the same bug in the check.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

# RFC 9053 / RFC 8230 algorithm identifiers.
COSE_ALGS: dict[int, tuple[str, hashes.HashAlgorithm]] = {
    -37: ("PS256", hashes.SHA256()),
    -38: ("PS384", hashes.SHA384()),
    -39: ("PS512", hashes.SHA512()),
    -7: ("ES256", hashes.SHA256()),
    -35: ("ES384", hashes.SHA384()),
    -36: ("ES512", hashes.SHA512()),
}


@dataclass
class Decoded:
    raw: bytes
    protected_bytes: bytes
    protected: dict[Any, Any]
    unprotected: dict[Any, Any]
    payload_bytes: bytes
    payload: dict[str, Any]
    signature: bytes
    chain: list[x509.Certificate]

    @property
    def alg_name(self) -> str:
        return COSE_ALGS[self.protected[1]][0]

    def time_is_tag1(self, label: str, value: dt.datetime) -> bool:
        """The header value is CBOR tag 1 with integer seconds (bytes as Notation writes them)."""
        encoded = cbor2.dumps(label) + cbor2.dumps(cbor2.CBORTag(1, int(value.timestamp())))
        return encoded in self.protected_bytes

    def verify(self) -> bool:
        name, digest = COSE_ALGS[self.protected[1]]
        to_be_signed = cbor2.dumps(["Signature1", self.protected_bytes, b"", self.payload_bytes])
        key = self.chain[0].public_key()
        try:
            if name.startswith("PS"):
                assert isinstance(key, rsa.RSAPublicKey)
                key.verify(
                    self.signature,
                    to_be_signed,
                    padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size),
                    digest,
                )
            else:
                assert isinstance(key, ec.EllipticCurvePublicKey)
                half = len(self.signature) // 2
                assert half == (key.curve.key_size + 7) // 8, "ECDSA signature is not fixed-width r||s"
                der = encode_dss_signature(
                    int.from_bytes(self.signature[:half], "big"), int.from_bytes(self.signature[half:], "big")
                )
                key.verify(der, to_be_signed, ec.ECDSA(digest))
        except InvalidSignature:
            return False
        return True


def decode(raw: bytes) -> Decoded:
    outer = cbor2.loads(raw)
    assert raw[:2] == b"\xd2\x84", "not COSE_Sign1_Tagged"
    assert isinstance(outer, cbor2.CBORTag) and outer.tag == 18
    protected_bytes, unprotected, payload_bytes, signature = outer.value
    protected = cbor2.loads(protected_bytes)
    assert isinstance(unprotected[33], list), "x5chain must be an array"
    chain = [x509.load_der_x509_certificate(der) for der in unprotected[33]]
    return Decoded(
        raw=raw,
        protected_bytes=protected_bytes,
        protected=protected,
        unprotected=unprotected,
        payload_bytes=payload_bytes,
        payload=json.loads(payload_bytes),
        signature=signature,
        chain=chain,
    )
