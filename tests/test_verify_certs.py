"""Notary Project certificate requirements on signing chains (signature-specification "Certificate Requirements")."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from dct2notation.keys.testcert import make_test_certificate
from dct2notation.notation.certs import CertificateRequirementError, validate_code_signing_chain
from tests.support.plugin_pki import NOW, _ku, issue, make_chain, name, new_key

CA_TRUE = x509.BasicConstraints(ca=True, path_length=None)
ROOT_KEY = new_key("ec-p256")
ROOT_NAME = name("test root")


def ca(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    bc: x509.BasicConstraints | None = CA_TRUE,
    bc_critical: bool = True,
    ku: x509.KeyUsage | None = None,
    ku_critical: bool = True,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=100))
    )
    if bc is not None:
        builder = builder.add_extension(bc, critical=bc_critical)
    builder = builder.add_extension(ku if ku is not None else _ku(cert_sign=True), critical=ku_critical)
    return builder.sign(issuer_key, hashes.SHA256())


def chain_with(**inter_args: object) -> list[x509.Certificate]:
    """leaf → intermediate (tweaked) → root."""
    root = ca(ROOT_NAME, ROOT_KEY, ROOT_NAME, ROOT_KEY)
    inter_key, leaf_key = new_key("ec-p256"), new_key("ec-p256")
    inter_name = name("test intermediate")
    assert isinstance(inter_key, ec.EllipticCurvePrivateKey)
    inter = ca(inter_name, inter_key, ROOT_NAME, ROOT_KEY, **inter_args)  # type: ignore[arg-type]
    leaf = issue(name("leaf"), leaf_key, inter_name, inter_key, ca=False)
    return [leaf, inter, root]


def test_valid_chain_passes() -> None:
    validate_code_signing_chain(chain_with(), at=NOW)
    validate_code_signing_chain(make_chain("rsa-4096").chain, at=NOW)


@pytest.mark.parametrize(
    ("inter_args", "message"),
    [
        ({"bc": None}, "basicConstraints extension is required on a CA certificate"),
        ({"bc_critical": False}, "basicConstraints extension must be critical on a CA certificate"),
        (
            {"bc": x509.BasicConstraints(ca=False, path_length=None)},
            "issues another certificate but basicConstraints cA is false",
        ),
        ({"ku": _ku(sign=True)}, "keyUsage must include keyCertSign on a CA certificate"),
        ({"ku_critical": False}, "keyUsage extension must be critical on a CA certificate"),
    ],
)
def test_ca_rules(inter_args: dict[str, object], message: str) -> None:
    chain = chain_with(**inter_args)
    with pytest.raises(CertificateRequirementError) as info:
        validate_code_signing_chain(chain)
    assert str(info.value) == f'certificate "{chain[1].subject.rfc4514_string()}": {message}'


def test_path_length_is_enforced() -> None:
    root_key, mid_key, low_key, leaf_key = (new_key("ec-p256") for _ in range(4))
    root_name, mid_name, low_name = name("r"), name("mid"), name("low")
    root = ca(root_name, root_key, root_name, root_key, bc=x509.BasicConstraints(ca=True, path_length=0))  # type: ignore[arg-type]
    mid = ca(mid_name, mid_key, root_name, root_key)  # type: ignore[arg-type]
    low = ca(low_name, low_key, mid_name, mid_key)  # type: ignore[arg-type]
    leaf = issue(name("leaf"), leaf_key, low_name, low_key, ca=False)
    with pytest.raises(CertificateRequirementError, match="pathLenConstraint 0 exceeded"):
        validate_code_signing_chain([leaf, low, mid, root])


def test_single_certificate_must_be_self_signed_and_a_leaf() -> None:
    pki = make_chain()
    with pytest.raises(CertificateRequirementError, match="a single-certificate chain must be self-signed"):
        validate_code_signing_chain([pki.chain[0]])
    with pytest.raises(CertificateRequirementError, match="must not be a CA"):
        validate_code_signing_chain([pki.root])
    with pytest.raises(CertificateRequirementError, match="certificate chain is empty"):
        validate_code_signing_chain([])


def test_chain_must_end_self_signed_and_link() -> None:
    pki = make_chain()
    with pytest.raises(CertificateRequirementError, match="the chain must end with a self-signed root certificate"):
        validate_code_signing_chain(pki.chain[:2])
    stranger = make_chain(cn="stranger")
    with pytest.raises(CertificateRequirementError, match="is not issued by the next certificate"):
        validate_code_signing_chain([pki.chain[0], stranger.chain[1], stranger.root])
    self_signed = make_test_certificate("alone", pki.leaf_key, now=NOW)
    with pytest.raises(CertificateRequirementError, match="only the last certificate of the chain may be self-signed"):
        validate_code_signing_chain([self_signed, pki.root])


@pytest.mark.parametrize(
    ("leaf_args", "message"),
    [
        ({"eku": [x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]}, "extendedKeyUsage must not include timeStamping"),
        ({"eku": [x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING]}, "extendedKeyUsage must not include OCSPSigning"),
        (
            {"eku": [x509.oid.ExtendedKeyUsageOID.CODE_SIGNING, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]},
            "extendedKeyUsage must not include clientAuth",
        ),
        ({"not_before": NOW + dt.timedelta(hours=1)}, "not valid before 2026-01-01T01:00:00Z"),
    ],
)
def test_leaf_rules(leaf_args: dict[str, object], message: str) -> None:
    pki = make_chain(**leaf_args)
    with pytest.raises(CertificateRequirementError) as info:
        validate_code_signing_chain(pki.chain, at=NOW)
    assert str(info.value) == f'certificate "{pki.chain[0].subject.rfc4514_string()}": {message}'


def test_leaf_without_key_usage_is_refused() -> None:
    key = new_key("ec-p256")
    subject = name("no-ku")
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    with pytest.raises(CertificateRequirementError, match="keyUsage extension is required on the signing certificate"):
        validate_code_signing_chain([cert])
