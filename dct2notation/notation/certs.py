"""Notary Project certificate requirements (signature specification "Certificate Requirements").

Notation does not build paths: the envelope carries an ordered chain leaf → root, and notation-core-go
``ValidateCodeSigningCertChain`` checks that order, the issuer links and the extension profile. We do the same
with ``cryptography``'s ``verify_directly_issued_by`` for the links. ``cryptography.x509.verification`` was not used
because its path validation also enforces validity periods and web-PKI leaf rules (SAN, no self-signed leaf as
anchor), which conflict with Notation: expiry and authentic-timestamp are separate, level-controlled checks and
``cert generate-test`` leaves are self-signed non-CA certificates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..errors import SigningKeyError
from ..keys.base import key_spec_of


class CertificateRequirementError(SigningKeyError):
    """A certificate chain breaks a Notary Project certificate requirement; the message names cert and rule."""


_FORBIDDEN_LEAF_EKUS = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}


def describe(cert: x509.Certificate) -> str:
    return f'certificate "{cert.subject.rfc4514_string()}"'


def is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, Exception):  # InvalidSignature and unsupported-key errors alike
        return False
    return True


_E = TypeVar("_E", bound=x509.ExtensionType)


def _ext(cert: x509.Certificate, ext_type: type[x509.ExtensionType]) -> x509.Extension[x509.ExtensionType] | None:
    try:
        return cert.extensions.get_extension_for_class(ext_type)
    except x509.ExtensionNotFound:
        return None


def _fail(cert: x509.Certificate, rule: str) -> CertificateRequirementError:
    return CertificateRequirementError(f"{describe(cert)}: {rule}")


def _required_critical(cert: x509.Certificate, ext_type: type[_E], name: str, on: str) -> _E:
    """The value of extension ``name``, which the profile requires ``on`` this certificate, marked critical."""
    ext = _ext(cert, ext_type)
    if ext is None or not isinstance(ext.value, ext_type):
        raise _fail(cert, f"{name} extension is required on {on}")
    if not ext.critical:
        raise _fail(cert, f"{name} extension must be critical on {on}")
    return ext.value


def check_leaf(cert: x509.Certificate) -> None:
    """Code-signing leaf profile."""
    bc = _ext(cert, x509.BasicConstraints)
    if bc is not None and isinstance(bc.value, x509.BasicConstraints) and bc.value.ca:
        raise _fail(cert, "a signing (leaf) certificate must not be a CA (basicConstraints cA=true)")
    usage = _required_critical(cert, x509.KeyUsage, "keyUsage", "the signing certificate")
    if not usage.digital_signature:
        raise _fail(cert, "keyUsage must include digitalSignature")
    forbidden = [
        name
        for name, on in (
            ("keyEncipherment", usage.key_encipherment),
            ("dataEncipherment", usage.data_encipherment),
            ("keyAgreement", usage.key_agreement),
            ("keyCertSign", usage.key_cert_sign),
            ("cRLSign", usage.crl_sign),
            ("encipherOnly", usage.key_agreement and usage.encipher_only),
            ("decipherOnly", usage.key_agreement and usage.decipher_only),
        )
        if on
    ]
    if forbidden:
        raise _fail(cert, f"keyUsage must not include {', '.join(forbidden)}")
    eku = _ext(cert, x509.ExtendedKeyUsage)
    if eku is not None and isinstance(eku.value, x509.ExtendedKeyUsage):
        bad = [name for oid, name in _FORBIDDEN_LEAF_EKUS.items() if oid in eku.value]
        if bad:
            raise _fail(cert, f"extendedKeyUsage must not include {', '.join(bad)}")
    key_spec_of(cert.public_key(), where=describe(cert))


def check_ca(cert: x509.Certificate, *, intermediates_below: int) -> None:
    on = "a CA certificate"
    bc = _required_critical(cert, x509.BasicConstraints, "basicConstraints", on)
    if not bc.ca:
        raise _fail(cert, "issues another certificate but basicConstraints cA is false")
    if bc.path_length is not None and intermediates_below > bc.path_length:
        raise _fail(cert, f"pathLenConstraint {bc.path_length} exceeded")
    if not _required_critical(cert, x509.KeyUsage, "keyUsage", on).key_cert_sign:
        raise _fail(cert, "keyUsage must include keyCertSign on a CA certificate")


def check_validity(chain: Sequence[x509.Certificate], at: dt.datetime) -> None:
    """Every certificate valid at ``at`` (signing time at sign time; now when no timestamp vouches for a time)."""
    for cert in chain:
        if at < cert.not_valid_before_utc:
            raise _fail(cert, f"not valid before {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}")
        if at > cert.not_valid_after_utc:
            raise _fail(cert, f"expired at {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")


# Chains already found structurally valid. Checking links costs a public-key verification per certificate, which
# would otherwise dominate signing a batch of thousands of envelopes with one key (certificates compare by DER).
# Keyed by object identity (hashing a certificate means hashing its DER); the value pins the objects so an id cannot
# be reused while its entry exists.
_STRUCTURE_OK: dict[tuple[int, ...], tuple[x509.Certificate, ...]] = {}
_STRUCTURE_OK_BY_DER: dict[tuple[x509.Certificate, ...], None] = {}
_STRUCTURE_CACHE_SIZE = 1024


def validate_code_signing_chain(chain: Sequence[x509.Certificate], *, at: dt.datetime | None = None) -> None:
    """Order, links and extension profile of a signing chain (leaf first, ending in a self-signed root); with
    ``at``, also that every certificate is valid at that instant."""
    key = tuple(map(id, chain))
    if key not in _STRUCTURE_OK:
        certs = tuple(chain)
        # Freshly parsed envelopes bring new objects for the same certificates: fall back to comparing by DER.
        if certs not in _STRUCTURE_OK_BY_DER:
            _validate_structure(chain)
            if len(_STRUCTURE_OK_BY_DER) >= _STRUCTURE_CACHE_SIZE:
                _STRUCTURE_OK_BY_DER.clear()
            _STRUCTURE_OK_BY_DER[certs] = None
        if len(_STRUCTURE_OK) >= _STRUCTURE_CACHE_SIZE:
            _STRUCTURE_OK.clear()
        _STRUCTURE_OK[key] = certs
    if at is not None:
        check_validity(chain, at)


def _validate_structure(chain: Sequence[x509.Certificate]) -> None:
    if not chain:
        raise CertificateRequirementError("certificate chain is empty")
    for cert in chain:
        if isinstance(cert.signature_hash_algorithm, hashes.SHA1):
            raise _fail(cert, "SHA-1 signatures are not allowed")
    if len(chain) == 1:
        if not is_self_signed(chain[0]):
            raise _fail(chain[0], "a single-certificate chain must be self-signed")
        check_leaf(chain[0])
    else:
        check_leaf(chain[0])
        for index, cert in enumerate(chain):
            last = index == len(chain) - 1
            if not last and is_self_signed(cert):
                raise _fail(cert, "only the last certificate of the chain may be self-signed")
            if last and not is_self_signed(cert):
                raise _fail(cert, "the chain must end with a self-signed root certificate")
            if index > 0:
                check_ca(cert, intermediates_below=index - 1)
            if not last:
                issuer = chain[index + 1]
                try:
                    cert.verify_directly_issued_by(issuer)
                except Exception as exc:  # name mismatch, bad signature or unsupported key all mean "not issued by"
                    raise _fail(cert, f"is not issued by the next {describe(issuer)} ({exc})") from exc
