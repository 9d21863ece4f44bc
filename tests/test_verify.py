"""Notation-compatible verification: real envelopes, tampering, chains, identities, levels and overrides."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from dct2notation.config import FixedClock, Limits
from dct2notation.errors import ConfigError
from dct2notation.keys.base import ALGORITHMS
from dct2notation.keys.local import LocalKey
from dct2notation.notation.envelope import (
    build_payload,
    encode_envelope,
    encode_protected,
    parse_envelope,
    sig_structure,
    sign_envelope,
)
from dct2notation.notation.policy import TrustPolicyDocument
from dct2notation.notation.truststore import TrustStore
from dct2notation.notation.verify import VerificationResult, verify_artifact, verify_envelope
from dct2notation.oci import DOCKER_MANIFEST, OCI_MANIFEST, Descriptor
from tests.support.plugin_pki import NOW, Chain, _ku, make_chain, name, trust

CLOCK = FixedClock(NOW)
TARGET = Descriptor(OCI_MANIFEST, "sha256:" + "ab" * 32, 1234)
REF = "registry.example/team/app@" + TARGET.digest
TS_SUBJECT = Descriptor(DOCKER_MANIFEST, "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda", 528)
HAVE_TIMESTAMP = importlib.util.find_spec("dct2notation.notation.timestamp") is not None


def policy(
    stores: list[str],
    identities: list[str] | None = None,
    level: str = "strict",
    override: dict[str, str] | None = None,
    **extra: Any,
) -> TrustPolicyDocument:
    verification: dict[str, Any] = {"level": level, **extra}
    if override:
        verification["override"] = override
    statement = {
        "name": "test",
        "registryScopes": ["*"],
        "signatureVerification": verification,
        "trustStores": stores,
        "trustedIdentities": identities or ["*"],
    }
    return TrustPolicyDocument.from_dict({"version": "1.0", "trustPolicies": [statement]})


def cose(shared: Path, name: str) -> bytes:
    return (shared / "notation" / "cose" / name).read_bytes()


def store_with(tmp_path: Path, name: str, *certs: x509.Certificate, kind: str = "ca") -> TrustStore:
    return TrustStore(trust(tmp_path, name, *certs, kind=kind))


def pem_store(tmp_path: Path, name: str, pem: Path, kind: str = "ca") -> TrustStore:
    return store_with(tmp_path, name, *x509.load_pem_x509_certificates(pem.read_bytes()), kind=kind)


def verify_corp(
    raw: bytes, store: TrustStore, *, clock: FixedClock = CLOCK, override: dict[str, str] | None = None
) -> VerificationResult:
    """Verify ``raw`` on TARGET under one strict statement trusting the "corp" CA store."""
    return verify_envelope(
        raw, subject=TARGET, reference=REF, policy=policy(["ca:corp"], override=override), truststore=store, clock=clock
    )


def check(result: VerificationResult, name: str) -> tuple[str, bool | None]:
    found = [c for c in result.checks if c.name == name]
    assert len(found) == 1, result.checks
    return found[0].action, found[0].ok


# --- real Notation envelopes -------------------------------------------------------------------------------------


def internal(shared: Path) -> tuple[bytes, Descriptor]:
    manifest = cose(shared, "ng_internal_subject_manifest_sha256-19dbd2e4.json")
    subject = Descriptor(OCI_MANIFEST, "sha256:" + hashlib.sha256(manifest).hexdigest(), len(manifest))
    return cose(shared, "ng_internal_cose_signature.sig"), subject


def test_notation_go_envelope_verifies(shared_fixtures: Path, tmp_path: Path) -> None:
    raw, subject = internal(shared_fixtures)
    store = pem_store(tmp_path, "alpine", shared_fixtures / "notation/cose/ng_internal_cose_signature.x5chain.pem")
    result = verify_envelope(
        raw,
        subject=subject,
        reference="localhost:5000/net-monitor@" + subject.digest,
        policy=policy(["ca:alpine"], ["x509.subject: C=US, ST=WA, O=Notary, CN=alpine"]),
        truststore=store,
        clock=FixedClock(dt.datetime(2025, 1, 1, tzinfo=dt.UTC)),
    )
    assert (result.ok, result.failed_check, result.reason) == (True, None, "verified")
    assert [(c.name, c.action, c.ok) for c in result.checks] == [
        ("integrity", "enforce", True),
        ("authenticity", "enforce", True),
        ("authenticTimestamp", "enforce", True),
        ("expiry", "enforce", True),
        ("revocation", "enforce", True),
        ("targetArtifact", "enforce", True),
    ]


def test_notation_blob_envelope_verifies(shared_fixtures: Path, tmp_path: Path) -> None:
    blob = cose(shared_fixtures, "n_blob.cose.sig.signed-blob_LICENSE")
    subject = Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(blob).hexdigest(), len(blob))
    store = pem_store(tmp_path, "blob", shared_fixtures / "notation/cose/n_blob.cose.sig.x5chain.pem")
    doc = TrustPolicyDocument.from_dict(
        {
            "version": "1.0",
            "trustPolicies": [
                {
                    "name": "blob",
                    "globalPolicy": True,
                    "signatureVerification": {"level": "strict"},
                    "trustStores": ["ca:blob"],
                    "trustedIdentities": ["*"],
                }
            ],
        },
        kind="blob",
    )
    def at(when: dt.datetime) -> VerificationResult:
        return verify_envelope(
            cose(shared_fixtures, "n_blob.cose.sig"),
            subject=subject,
            reference="LICENSE",
            policy=doc.statement_named(None),
            truststore=store,
            clock=FixedClock(when),
        )

    # The test certificate lived one day; evaluate inside it (the TSA root of this envelope is not public).
    result = at(dt.datetime(2025, 1, 7, 12, 0, tzinfo=dt.UTC))
    assert (result.ok, result.reason) == (True, "verified")
    expired = at(dt.datetime(2025, 2, 1, tzinfo=dt.UTC))
    assert expired.failed_check == "authenticTimestamp"
    assert "current time 2025-02-01T00:00:00Z is after certificate" in expired.reason
    # A clock at another offset: the message still quotes the instant in UTC (it once printed 09:00:00Z).
    shifted = at(dt.datetime(2025, 2, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=9))))
    assert shifted.reason == expired.reason


@pytest.mark.skipif(
    not HAVE_TIMESTAMP, reason="dct2notation.notation.timestamp (timestamp area) is not in the tree yet"
)
@pytest.mark.parametrize(
    ("name", "ca_pem", "ok"),
    [
        ("ng_coseWithTimestamp.sig", "ng_truststore_ca_TestTimestamp.crt", True),
        ("ng_coseExpiredWithTimestamp.sig", "ng_coseExpiredWithTimestamp.x5chain.pem", True),
        ("ng_timestampAfterNotAfter.sig", "ng_timestampAfterNotAfter.x5chain.pem", False),
    ],
)
def test_timestamped_envelopes(shared_fixtures: Path, tmp_path: Path, name: str, ca_pem: str, ok: bool) -> None:
    cose_dir = shared_fixtures / "notation" / "cose"
    pem_store(tmp_path, "ca1", cose_dir / ca_pem)
    tsa_root = x509.load_der_x509_certificate((cose_dir / "ng_truststore_tsa_globalsignRoot.cer").read_bytes())
    store = store_with(tmp_path, "gs", tsa_root, kind="tsa")
    result = verify_envelope(
        cose(shared_fixtures, name),
        subject=TS_SUBJECT,
        reference="localhost:5000/app@" + TS_SUBJECT.digest,
        policy=policy(["ca:ca1", "tsa:gs"]),
        truststore=store,
        clock=FixedClock(dt.datetime(2025, 6, 1, tzinfo=dt.UTC)),
    )
    if ok:
        assert (result.ok, result.reason) == (True, "verified")
        assert check(result, "authenticTimestamp") == ("enforce", True)
    else:
        assert result.failed_check == "authenticTimestamp"
        assert "is not within the validity of certificate" in result.reason


def test_tsa_store_required_timestamp_missing(tmp_path: Path) -> None:
    pki = make_chain()
    raw = sign_envelope(TARGET, LocalKey("k", pki.leaf_key, pki.chain), clock=CLOCK).raw
    trust(tmp_path, "gs", pki.root, kind="tsa")
    store = store_with(tmp_path, "ca1", pki.root)
    result = verify_envelope(
        raw, subject=TARGET, reference=REF, policy=policy(["ca:ca1", "tsa:gs"]), truststore=store, clock=CLOCK
    )
    assert result.failed_check == "authenticTimestamp"
    assert result.reason == "a tsa trust store is configured but the signature has no timestamp countersignature"
    # afterCertExpiry: while the chain is valid the timestamp is not needed.
    result = verify_envelope(
        raw,
        subject=TARGET,
        reference=REF,
        policy=policy(["ca:ca1", "tsa:gs"], verifyTimestamp="afterCertExpiry"),
        truststore=store,
        clock=CLOCK,
    )
    assert result.ok


def _flip(raw: bytes, offset: int) -> bytes:
    data = bytearray(raw)
    data[offset] ^= 0x01
    return bytes(data)


def test_tampering_is_named(shared_fixtures: Path, tmp_path: Path) -> None:
    raw, subject = internal(shared_fixtures)
    store = pem_store(tmp_path, "alpine", shared_fixtures / "notation/cose/ng_internal_cose_signature.x5chain.pem")
    env = parse_envelope(raw)
    doc = policy(["ca:alpine"])
    clock = FixedClock(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))

    def run(data: bytes) -> VerificationResult:
        return verify_envelope(
            data, subject=subject, reference="r.example/a@" + subject.digest, policy=doc, truststore=store, clock=clock
        )

    payload_at = raw.index(env.payload_raw) + env.payload_raw.index(b"sha256:") + 10
    time_at = raw.index(env.protected_raw) + env.protected_raw.index(cbor2.dumps("io.cncf.notary.signingTime")) + 30
    sig_at = len(raw) - 1
    for offset in (payload_at, time_at, sig_at):
        result = run(_flip(raw, offset))
        assert result.failed_check == "integrity", offset
        assert "does not verify" in result.reason

    # A different certificate in x5chain: the signature no longer verifies under its key.
    other = x509.load_pem_x509_certificate((shared_fixtures / "notation/config/n_e2e.crt").read_bytes())
    swapped = dict(env.unprotected)
    swapped[33] = [other.public_bytes(Encoding.DER)]
    result = run(encode_envelope(env.protected_raw, swapped, env.payload_raw, env.signature))
    assert result.failed_check == "integrity"


# --- envelopes we make: chains, identities, levels -----------------------------------------------------------------


def signed(pki: Chain, **kwargs: Any) -> bytes:
    return sign_envelope(TARGET, LocalKey("k", pki.leaf_key, pki.chain), clock=CLOCK, **kwargs).raw


@pytest.mark.parametrize("anchor", [2, 1, 0])
def test_chain_to_any_trusted_certificate(tmp_path: Path, anchor: int) -> None:
    pki = make_chain("rsa-3072")
    store = store_with(tmp_path, "corp", pki.chain[anchor]) if anchor else None
    if anchor == 0:
        # The leaf is not a CA and not self-signed: a trust store refuses it.
        trust(tmp_path, "corp", pki.chain[0])
        with pytest.raises(ConfigError, match="must be CA or self-signed"):
            TrustStore(tmp_path / "truststore").certificates("ca", "corp")
        return
    assert store is not None
    result = verify_envelope(
        signed(pki), subject=TARGET, reference=REF, policy=policy(["ca:corp"]), truststore=store, clock=CLOCK
    )
    assert (result.ok, result.reason) == (True, "verified")


def test_untrusted_root_fails_authenticity(tmp_path: Path) -> None:
    pki, stranger = make_chain(), make_chain(cn="stranger")
    store = store_with(tmp_path, "corp", stranger.root)
    result = verify_envelope(
        signed(pki), subject=TARGET, reference=REF, policy=policy(["ca:corp"]), truststore=store, clock=CLOCK
    )
    assert result.failed_check == "authenticity"
    assert result.reason.startswith("signature is not produced by a trusted signer")
    audit = verify_envelope(
        signed(pki),
        subject=TARGET,
        reference=REF,
        policy=policy(["ca:corp"], level="audit"),
        truststore=store,
        clock=CLOCK,
    )
    assert audit.ok and check(audit, "authenticity") == ("log", False)


def test_missing_trust_store_is_an_authenticity_failure(tmp_path: Path) -> None:
    pki = make_chain()
    result = verify_envelope(
        signed(pki),
        subject=TARGET,
        reference=REF,
        policy=policy(["ca:invalid_store"]),
        truststore=TrustStore(tmp_path),
        clock=CLOCK,
    )
    assert result.failed_check == "authenticity"
    assert 'the trust store "invalid_store" of type "ca" does not exist' in result.reason


@pytest.mark.parametrize(
    ("identity", "ok"),
    [
        ("x509.subject: C=US, ST=WA, O=Acme", True),
        ("x509.subject: CN=signer, C=US, S=WA, O=Acme, L=Seattle", True),
        ("x509.subject: C=US, ST=WA, O=Notary", False),
        ("x509.subject: CN=other, C=US, ST=WA, O=Acme", False),
    ],
)
def test_trusted_identities(tmp_path: Path, identity: str, ok: bool) -> None:
    pki = make_chain(org="Acme")
    store = store_with(tmp_path, "corp", pki.root)
    result = verify_envelope(
        signed(pki),
        subject=TARGET,
        reference=REF,
        policy=policy(["ca:corp"], [identity]),
        truststore=store,
        clock=CLOCK,
    )
    assert result.ok is ok
    if not ok:
        assert result.failed_check == "authenticity"
        assert "does not match the X.509 trusted identities" in result.reason


def test_expiry_levels(tmp_path: Path) -> None:
    pki = make_chain()
    store = store_with(tmp_path, "corp", pki.root)
    raw = signed(pki, expiry=NOW + dt.timedelta(hours=1))
    late = FixedClock(NOW + dt.timedelta(hours=2))
    strict = verify_corp(raw, store, clock=late)
    assert (strict.failed_check, strict.reason) == ("expiry", "signature expired at 2026-01-01T01:00:00Z")
    permissive = verify_envelope(
        raw, subject=TARGET, reference=REF, policy=policy(["ca:corp"], level="permissive"), truststore=store, clock=late
    )
    assert permissive.ok and check(permissive, "expiry") == ("log", False)
    on_time = verify_corp(raw, store, clock=CLOCK)
    assert on_time.ok


def test_expired_certificate_and_override(tmp_path: Path) -> None:
    pki = make_chain()
    store = store_with(tmp_path, "corp", pki.root)
    raw = signed(pki)
    late = FixedClock(NOW + dt.timedelta(days=3700))
    strict = verify_corp(raw, store, clock=late)
    assert strict.failed_check == "authenticTimestamp"
    assert 'is after certificate "CN=signer,O=Notary,L=Seattle,ST=WA,C=US" expired' in strict.reason
    logged = verify_corp(raw, store, clock=late, override={"authenticTimestamp": "log"})
    assert logged.ok and check(logged, "authenticTimestamp") == ("log", False)


def test_revocation_endpoints_need_an_override(tmp_path: Path) -> None:
    pki = make_chain()
    # A self-signed leaf (a valid one-certificate chain) that names a CRL endpoint.
    builder = (
        x509.CertificateBuilder()
        .subject_name(name("crl-leaf"))
        .issuer_name(name("crl-leaf"))
        .public_key(pki.leaf_key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(_ku(sign=True), critical=True)
        .add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier("http://127.0.0.1/crl")], None, None, None)]
            ),
            critical=False,
        )
    )
    leaf = builder.sign(pki.leaf_key, hashes.SHA256())  # type: ignore[arg-type]
    raw = sign_envelope(TARGET, LocalKey("k", pki.leaf_key, [leaf]), clock=CLOCK).raw
    store = store_with(tmp_path, "corp", leaf)
    strict = verify_corp(raw, store, clock=CLOCK)
    assert strict.failed_check == "revocation"
    skipped = verify_corp(raw, store, clock=CLOCK, override={"revocation": "skip"})
    assert skipped.ok and check(skipped, "revocation") == ("skip", None)


def test_subject_and_user_metadata_must_match(tmp_path: Path) -> None:
    pki = make_chain()
    store = store_with(tmp_path, "corp", pki.root)
    raw = signed(pki, user_metadata={"dct.gun": "docker.io/team/app"})
    other = Descriptor(OCI_MANIFEST, TARGET.digest, TARGET.size + 1)
    result = verify_envelope(
        raw, subject=other, reference=REF, policy=policy(["ca:corp"]), truststore=store, clock=CLOCK
    )
    assert result.failed_check == "targetArtifact"
    good = verify_envelope(
        raw,
        subject=TARGET,
        reference=REF,
        policy=policy(["ca:corp"]),
        truststore=store,
        clock=CLOCK,
        user_metadata={"dct.gun": "docker.io/team/app"},
    )
    assert good.ok and good.user_metadata == {"dct.gun": "docker.io/team/app"}
    bad = verify_envelope(
        raw,
        subject=TARGET,
        reference=REF,
        policy=policy(["ca:corp"]),
        truststore=store,
        clock=CLOCK,
        user_metadata={"dct.gun": "docker.io/team/other"},
    )
    assert (bad.failed_check, bad.reason) == (
        "userMetadata",
        "the signature's user metadata does not contain dct.gun=docker.io/team/other",
    )


def test_skip_level_and_scope_selection(tmp_path: Path) -> None:
    pki = make_chain()
    store = store_with(tmp_path, "corp", pki.root)
    doc = TrustPolicyDocument.from_dict(
        {
            "version": "1.0",
            "trustPolicies": [
                {
                    "name": "skip-it",
                    "registryScopes": ["registry.example/team/app"],
                    "signatureVerification": {"level": "skip"},
                },
                {
                    "name": "rest",
                    "registryScopes": ["*"],
                    "signatureVerification": {"level": "strict"},
                    "trustStores": ["ca:nothing"],
                    "trustedIdentities": ["*"],
                },
            ],
        }
    )
    skipped = verify_envelope(b"garbage", subject=TARGET, reference=REF, policy=doc, truststore=store, clock=CLOCK)
    assert (skipped.ok, skipped.statement) == (True, "skip-it")
    assert [(c.name, c.action) for c in skipped.checks] == [
        ("integrity", "skip"),
        ("authenticity", "skip"),
        ("authenticTimestamp", "skip"),
        ("expiry", "skip"),
        ("revocation", "skip"),
    ]
    other_ref = "registry.example/team/other@" + TARGET.digest
    result = verify_envelope(
        signed(pki), subject=TARGET, reference=other_ref, policy=doc, truststore=store, clock=CLOCK
    )
    assert (result.statement, result.failed_check) == ("rest", "authenticity")


def test_verify_artifact_first_passing_wins_and_attempts_are_capped(tmp_path: Path) -> None:
    pki, stranger = make_chain(), make_chain(cn="stranger")
    store = store_with(tmp_path, "corp", pki.root)
    good, bad = signed(pki), signed(stranger)
    outcome = verify_artifact(
        REF, TARGET, [bad, b"\xd2junk", good], policy=policy(["ca:corp"]), truststore=store, clock=CLOCK
    )
    assert (outcome.ok, outcome.passed_index) == (True, 2)
    assert [r.failed_check for r in outcome.results] == ["authenticity", "integrity", None]
    capped = verify_artifact(
        REF,
        TARGET,
        [bad, bad, good],
        policy=policy(["ca:corp"]),
        truststore=store,
        clock=CLOCK,
        limits=Limits(max_signature_attempts=2),
    )
    assert not capped.ok
    assert capped.results[-1].failed_check == "signature"
    assert capped.failed_check == "authenticity"


def test_trust_store_rejects_subdirectories_and_symlinks(tmp_path: Path) -> None:
    pki = make_chain()
    root = trust(tmp_path, "corp", pki.root)
    (root / "x509/ca/corp/nested").mkdir()
    with pytest.raises(ConfigError, match="must not contain directories"):
        TrustStore(root).certificates("ca", "corp")
    (root / "x509/ca/corp/nested").rmdir()
    os.symlink(root / "x509/ca/corp/corp-0.pem", root / "x509/ca/corp/link.pem")
    with pytest.raises(ConfigError, match="not symlinks"):
        TrustStore(root).certificates("ca", "corp")
    os.unlink(root / "x509/ca/corp/link.pem")
    (root / "x509/ca/corp/junk.crt").write_bytes(b"not a certificate")
    with pytest.raises(ConfigError, match="junk.crt: not a PEM or DER certificate"):
        TrustStore(root).certificates("ca", "corp")
    os.unlink(root / "x509/ca/corp/junk.crt")
    trust(tmp_path, "ts", pki.chain[1], kind="tsa")
    with pytest.raises(ConfigError, match="tsa trust store holds root"):
        TrustStore(root).certificates("tsa", "ts")
    assert TrustStore(root).certificates("ca", "corp") == [pki.root]


def test_unknown_critical_header_fails_closed(tmp_path: Path) -> None:
    pki = make_chain()
    key = LocalKey("k", pki.leaf_key, pki.chain)
    protected = encode_protected(
        ALGORITHMS["EC-256"],
        signing_time=NOW,
        extended_attributes={"io.cncf.notary.verificationPlugin": "acme"},
        critical_extended=("io.cncf.notary.verificationPlugin",),
    )
    payload = build_payload(TARGET)
    signature = key.sign(sig_structure(protected, payload))
    raw = encode_envelope(protected, {33: [c.public_bytes(Encoding.DER) for c in pki.chain]}, payload, signature)
    assert parse_envelope(raw).signature_valid()
    store = store_with(tmp_path, "corp", pki.root)
    result = verify_corp(raw, store, clock=CLOCK)
    assert (result.failed_check, result.reason) == (
        "integrity",
        "critical protected header(s) 'io.cncf.notary.verificationPlugin' are not supported",
    )


def test_policy_file_names_in_a_config_dir(tmp_path: Path) -> None:
    statement = {
        "name": "v1",
        "registryScopes": ["*"],
        "signatureVerification": {"level": "audit"},
        "trustStores": ["ca:x"],
        "trustedIdentities": ["*"],
    }
    with pytest.raises(ConfigError, match="no trustpolicy.oci.json or trustpolicy.json"):
        TrustPolicyDocument.load_from_config(tmp_path)
    (tmp_path / "trustpolicy.json").write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
    assert TrustPolicyDocument.load_from_config(tmp_path).statements[0].name == "v1"
    statement["name"] = "v2"
    (tmp_path / "trustpolicy.oci.json").write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
    assert TrustPolicyDocument.load_from_config(tmp_path).statements[0].name == "v2"


def test_signing_authority_scheme(tmp_path: Path) -> None:
    pki = make_chain()
    key = LocalKey("k", pki.leaf_key, pki.chain)
    protected = cbor2.dumps(
        {
            1: ALGORITHMS["EC-256"].cose_id,
            2: ["io.cncf.notary.signingScheme", "io.cncf.notary.authenticSigningTime"],
            3: "application/vnd.cncf.notary.payload.v1+json",
            "io.cncf.notary.signingScheme": "notary.x509.signingAuthority",
            "io.cncf.notary.authenticSigningTime": cbor2.CBORTag(1, int(NOW.timestamp())),
        },
        canonical=True,
    )
    payload = build_payload(TARGET)
    raw = encode_envelope(
        protected,
        {33: [c.public_bytes(Encoding.DER) for c in pki.chain]},
        payload,
        key.sign(sig_structure(protected, payload)),
    )
    env = parse_envelope(raw)
    assert (env.signing_scheme, env.signing_time, env.authentic_signing_time) == (
        "notary.x509.signingAuthority",
        None,
        NOW,
    )
    store = store_with(tmp_path, "sa", pki.root, kind="signingAuthority")
    trust(tmp_path, "sa", pki.root)
    ok = verify_envelope(
        raw, subject=TARGET, reference=REF, policy=policy(["signingAuthority:sa"]), truststore=store, clock=CLOCK
    )
    assert (ok.ok, ok.reason) == (True, "verified")
    wrong = verify_envelope(raw, subject=TARGET, reference=REF, policy=policy(["ca:sa"]), truststore=store, clock=CLOCK)
    assert (wrong.failed_check, wrong.reason) == (
        "authenticity",
        'trust policy statement "test" has no "signingAuthority" trust store for this scheme',
    )
    # The authentic signing time, not the current time, must lie inside the chain's validity.
    late = FixedClock(NOW + dt.timedelta(days=3700))
    still = verify_envelope(
        raw, subject=TARGET, reference=REF, policy=policy(["signingAuthority:sa"]), truststore=store, clock=late
    )
    assert still.ok


def test_trust_store_names_and_empty_stores(tmp_path: Path) -> None:
    store = TrustStore(tmp_path)
    with pytest.raises(ConfigError, match='trust store type "kms" is not one of'):
        store.certificates("kms", "x")
    with pytest.raises(ConfigError, match='trust store name "a/b" is not valid'):
        store.certificates("ca", "a/b")
    (tmp_path / "x509" / "ca" / "empty").mkdir(parents=True)
    with pytest.raises(ConfigError, match='the trust store "empty" of type "ca" has no certificates'):
        store.certificates("ca", "empty")
    pki = make_chain()
    root = trust(tmp_path, "der", pki.root)
    (root / "x509/ca/der/der-0.pem").write_bytes(pki.root.public_bytes(Encoding.DER))
    assert TrustStore(root).certificates("ca", "der") == [pki.root]


def test_every_signed_byte_matters(shared_fixtures: Path, tmp_path: Path) -> None:
    raw, subject = internal(shared_fixtures)
    store = pem_store(tmp_path, "alpine", shared_fixtures / "notation/cose/ng_internal_cose_signature.x5chain.pem")
    env = parse_envelope(raw)
    doc = policy(["ca:alpine"])
    clock = FixedClock(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    regions = [
        (raw.index(env.protected_raw), len(env.protected_raw)),
        (raw.index(env.payload_raw), len(env.payload_raw)),
        (len(raw) - len(env.signature), len(env.signature)),
    ]
    for start, length in regions:
        for offset in range(start, start + length):
            result = verify_envelope(
                _flip(raw, offset),
                subject=subject,
                reference="r.example/a@" + subject.digest,
                policy=doc,
                truststore=store,
                clock=clock,
            )
            assert (result.ok, result.failed_check) == (False, "integrity"), offset
