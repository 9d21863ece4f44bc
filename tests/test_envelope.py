"""COSE envelope encoding and parsing: byte parity with Notation, strict parsing, every algorithm we sign with."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import cbor2
import pytest
from cryptography import x509

from dct2notation.config import FixedClock, Limits
from dct2notation.errors import InputError, SigningKeyError
from dct2notation.keys.base import ALGORITHMS
from dct2notation.keys.local import LocalKey
from dct2notation.notation.envelope import (
    EnvelopeError,
    build_payload,
    encode_envelope,
    encode_protected,
    parse_envelope,
    sig_structure,
    sign_envelope,
)
from dct2notation.oci import OCI_MANIFEST, Descriptor
from tests.support import cose_decoder
from tests.support.plugin_pki import NOW, make_chain

CLOCK = FixedClock(NOW)
TARGET = Descriptor(OCI_MANIFEST, "sha256:" + "ab" * 32, 1234)


def cose(shared: Path, name: str) -> bytes:
    return (shared / "notation" / "cose" / name).read_bytes()


def test_conformance_protected_header_bytes(shared_fixtures: Path) -> None:
    vector = json.loads(cose(shared_fixtures, "ncg_conformance.json"))
    protected = encode_protected(
        ALGORITHMS["RSA-3072"],
        signing_time=dt.datetime.fromtimestamp(vector["signingTime"], dt.UTC),
        expiry=dt.datetime.fromtimestamp(vector["expiry"], dt.UTC),
        extended_attributes={"signedKey1": "signedValue1", "signedCritKey1": "signedCritValue1"},
        critical_extended=("signedCritKey1",),
    )
    assert protected == bytes.fromhex(vector["protectedHeaders"]["cborHex"])
    # With the vector's own unprotected header, payload and dummy signature, the whole message matches too.
    expected = bytes.fromhex(vector["expectedOutput"]["cborHex"])
    unprotected = cbor2.loads(bytes.fromhex(vector["unprotectedHeaders"]["cborHex"]))
    assert encode_envelope(protected, unprotected, bytes.fromhex(vector["payload"]), expected[-384:]) == expected


def test_real_envelope_reencodes_byte_for_byte(shared_fixtures: Path) -> None:
    raw = cose(shared_fixtures, "ng_internal_cose_signature.sig")
    env = parse_envelope(raw)
    assert encode_envelope(env.protected_raw, env.unprotected, env.payload_raw, env.signature) == raw
    assert encode_protected(env.algorithm, signing_time=env.signing_time or NOW) == env.protected_raw
    assert env.algorithm.name == "PS256"
    assert env.signing_time == dt.datetime(2023, 3, 14, 4, 45, 22, tzinfo=dt.UTC)
    assert env.signing_agent == "Notation/1.0.0"
    assert env.target_artifact == Descriptor(
        OCI_MANIFEST, "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0", 481
    )
    manifest = cose(shared_fixtures, "ng_internal_subject_manifest_sha256-19dbd2e4.json")
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == env.target_artifact.digest
    assert env.signature_valid()


@pytest.mark.parametrize(
    ("name", "has_token"),
    [("n_blob.cose.sig", True), ("ng_coseWithTimestamp.sig", True), ("ng_internal_cose_signature.sig", False)],
)
def test_real_envelopes_parse_and_signature_verifies(shared_fixtures: Path, name: str, has_token: bool) -> None:
    env = parse_envelope(cose(shared_fixtures, name))
    assert env.signature_valid()
    assert (env.timestamp_token is not None) == has_token
    assert len(env.cert_chain) == 1


# --- every envelope we make, checked by the independent decoder --------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "alg"),
    [
        ("rsa-2048", "PS256"),
        ("rsa-3072", "PS384"),
        ("rsa-4096", "PS512"),
        ("ec-p256", "ES256"),
        ("ec-p384", "ES384"),
        ("ec-p521", "ES512"),
    ],
)
def test_signed_envelope_decodes_independently(key_type: str, alg: str) -> None:
    pki = make_chain(key_type)
    key = LocalKey("k", pki.leaf_key, pki.chain)
    expiry = NOW + dt.timedelta(days=30)
    signed = sign_envelope(TARGET, key, clock=CLOCK, expiry=expiry, user_metadata={"dct.gun": "docker.io/lib/app"})
    d = cose_decoder.decode(signed.raw)
    assert d.alg_name == alg
    assert d.protected[2] == ["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"]
    assert d.protected[3] == "application/vnd.cncf.notary.payload.v1+json"
    assert d.protected["io.cncf.notary.signingScheme"] == "notary.x509"
    assert d.protected["io.cncf.notary.signingTime"] == NOW
    assert d.time_is_tag1("io.cncf.notary.signingTime", NOW)
    assert d.time_is_tag1("io.cncf.notary.expiry", expiry)
    assert set(d.protected) == {
        1,
        2,
        3,
        "io.cncf.notary.signingScheme",
        "io.cncf.notary.signingTime",
        "io.cncf.notary.expiry",
    }
    assert [c.fingerprint(pki.chain[0].signature_hash_algorithm) for c in d.chain] == [  # type: ignore[arg-type]
        c.fingerprint(pki.chain[0].signature_hash_algorithm)  # type: ignore[arg-type]
        for c in pki.chain
    ]
    assert d.unprotected["io.cncf.notary.signingAgent"] == "dct2notation/0.1.0"
    assert "io.cncf.notary.timestampSignature" not in d.unprotected
    assert d.payload == {
        "targetArtifact": {
            "mediaType": OCI_MANIFEST,
            "digest": TARGET.digest,
            "size": 1234,
            "annotations": {"dct.gun": "docker.io/lib/app"},
        }
    }
    assert d.verify()
    assert signed.signing_time == NOW and signed.cert_chain == pki.chain


def test_no_expiry_means_no_expiry_in_crit() -> None:
    pki = make_chain("ec-p256")
    d = cose_decoder.decode(sign_envelope(TARGET, LocalKey("k", pki.leaf_key, pki.chain), clock=CLOCK).raw)
    assert d.protected[2] == ["io.cncf.notary.signingScheme"]
    assert "io.cncf.notary.expiry" not in d.protected
    assert "annotations" not in d.payload["targetArtifact"]


class RecordingTimestamper:
    def __init__(self) -> None:
        self.calls: list[tuple[bytes, str, int]] = []

    def timestamp(self, signature: bytes, *, hash_algorithm: str, signing_chain: list[x509.Certificate]) -> bytes:
        self.calls.append((signature, hash_algorithm, len(signing_chain)))
        return b"\x30\x03\x02\x01\x01"


def test_timestamper_receives_the_raw_signature() -> None:
    pki = make_chain("ec-p384")
    stamper = RecordingTimestamper()
    d = cose_decoder.decode(
        sign_envelope(TARGET, LocalKey("k", pki.leaf_key, pki.chain), clock=CLOCK, timestamper=stamper).raw
    )
    assert stamper.calls == [(d.signature, "SHA-384", 3)]
    assert d.unprotected["io.cncf.notary.timestampSignature"] == b"\x30\x03\x02\x01\x01"


def test_payload_keeps_only_notation_fields_and_sorted_annotations() -> None:
    target = Descriptor(OCI_MANIFEST, "sha256:" + "cd" * 32, 7, annotations={"z": "1"}, artifact_type="x/y")
    payload = build_payload(target, {"a": "<&>"})
    assert payload == (
        b'{"targetArtifact":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'
        + b"cd" * 32
        + b'","size":7,"annotations":{"a":"\\u003c\\u0026\\u003e","z":"1"}}}'
    )


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"io.cncf.notary.x": "1"}, "reserved prefix"),
        ({"io.cncf.notaryfoo": "1"}, "reserved prefix"),
        ({"z": "2"}, "already an annotation"),
    ],
)
def test_user_metadata_refused(metadata: dict[str, str], message: str) -> None:
    target = Descriptor(OCI_MANIFEST, "sha256:" + "cd" * 32, 7, annotations={"z": "1"})
    with pytest.raises(InputError, match=message):
        build_payload(target, metadata)


class CountingKey(LocalKey):
    signed = 0

    def sign(self, to_be_signed: bytes) -> bytes:
        CountingKey.signed += 1
        return super().sign(to_be_signed)


@pytest.mark.parametrize(
    ("leaf_args", "message"),
    [
        ({"encipher": True}, "keyUsage must not include keyEncipherment"),
        ({"ku_critical": False}, "keyUsage extension must be critical on the signing certificate"),
        ({"eku": [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]}, "extendedKeyUsage must not include serverAuth"),
        ({"not_after": NOW - dt.timedelta(seconds=1)}, "expired at"),
    ],
)
def test_certificate_requirements_checked_before_signing(leaf_args: dict[str, object], message: str) -> None:
    pki = make_chain("ec-p256", **leaf_args)
    key = CountingKey("k", pki.leaf_key, pki.chain)
    CountingKey.signed = 0
    with pytest.raises(SigningKeyError, match=message):
        sign_envelope(TARGET, key, clock=CLOCK)
    assert CountingKey.signed == 0


def test_chain_out_of_order_refused() -> None:
    pki = make_chain("ec-p256")
    key = LocalKey("k", pki.leaf_key, [pki.chain[0], pki.chain[2], pki.chain[1]])
    with pytest.raises(SigningKeyError, match='is not issued by the next certificate "CN=signer root'):
        sign_envelope(TARGET, key, clock=CLOCK)


def test_expiry_before_signing_time_refused() -> None:
    pki = make_chain("ec-p256")
    with pytest.raises(InputError, match="expiry must be after the signing time"):
        sign_envelope(TARGET, LocalKey("k", pki.leaf_key, pki.chain), clock=CLOCK, expiry=NOW)


# --- strict parsing ------------------------------------------------------------------------------------------------


def _parts(shared: Path) -> tuple[dict[object, object], dict[object, object], bytes, bytes]:
    env = parse_envelope(cose(shared, "ng_internal_cose_signature.sig"))
    # cbor2 hands tag-1 times back as datetime; put them back as tag 1 so only the mutation under test differs.
    protected = {
        k: cbor2.CBORTag(1, int(v.timestamp())) if isinstance(v, dt.datetime) else v for k, v in env.protected.items()
    }
    return protected, dict(env.unprotected), env.payload_raw, env.signature


def _encode(protected: dict[object, object], unprotected: dict[object, object], payload: bytes, sig: bytes) -> bytes:
    return encode_envelope(cbor2.dumps(protected, canonical=True), unprotected, payload, sig)


def _mutations() -> list[tuple[str, str]]:
    return [
        ("crit lists a missing label", "critical label 'io.cncf.notary.expiry' is not present"),
        ("expiry not critical", "'io.cncf.notary.expiry' must be marked critical"),
        ("signingScheme not critical", "'io.cncf.notary.signingScheme' must be marked critical"),
        ("signing time without tag 1", "must be a CBOR tag 1 epoch time"),
        ("signing time as tag 0", "must be a CBOR tag 1 epoch time"),
        ("x5chain as a lone bstr", "x5chain: certificate chain is not present"),
        ("alg HMAC", "is not one of PS256"),
        ("wrong content type", "content type"),
        ("unknown scheme", "unsupported value 'notary.x509v2'"),
        ("detached payload", "detached payloads are not supported"),
        ("no signing time", "required for notary.x509"),
        ("crit lists an integer label", "label 1 must not be listed"),
        ("x5chain item not bytes", r"x5chain\[0\]: must be a byte string"),
        ("x5chain item not DER", r"x5chain\[0\]: not a DER certificate"),
        ("signing agent not text", "io.cncf.notary.signingAgent: must be text"),
        ("timestamp not bytes", "io.cncf.notary.timestampSignature: must be a byte string"),
        ("timestamp with signing authority", "timestampSignature: only allowed with notary.x509"),
        ("expiry not after signing time", "io.cncf.notary.expiry: must be after the signing time"),
        ("empty signature", "signature: must be a non-empty byte string"),
        ("unprotected not a map", "unprotected header: must be a map"),
    ]


@pytest.mark.parametrize(("case", "message"), _mutations())
def test_parse_rejects(shared_fixtures: Path, case: str, message: str) -> None:
    protected, unprotected, payload, sig = _parts(shared_fixtures)
    payload_out: bytes | None = payload
    if case == "crit lists a missing label":
        protected[2] = ["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"]
    elif case == "expiry not critical":
        protected["io.cncf.notary.expiry"] = cbor2.CBORTag(1, 2_000_000_000)
    elif case == "signingScheme not critical":
        protected[2] = ["io.cncf.notary.signingTime"]
    elif case == "signing time without tag 1":
        protected["io.cncf.notary.signingTime"] = 1678769122
    elif case == "signing time as tag 0":
        protected["io.cncf.notary.signingTime"] = cbor2.CBORTag(0, "2023-03-14T04:45:22Z")
    elif case == "x5chain as a lone bstr":
        unprotected[33] = unprotected[33][0]  # type: ignore[index]
    elif case == "alg HMAC":
        protected[1] = 5
    elif case == "wrong content type":
        protected[3] = "application/json"
    elif case == "unknown scheme":
        protected["io.cncf.notary.signingScheme"] = "notary.x509v2"
    elif case == "detached payload":
        payload_out = None
    elif case == "no signing time":
        del protected["io.cncf.notary.signingTime"]
    elif case == "crit lists an integer label":
        protected[2] = ["io.cncf.notary.signingScheme", 1]
    elif case == "x5chain item not bytes":
        unprotected[33] = ["pem?"]
    elif case == "x5chain item not DER":
        unprotected[33] = [b"junk"]
    elif case == "signing agent not text":
        unprotected["io.cncf.notary.signingAgent"] = 5
    elif case == "timestamp not bytes":
        unprotected["io.cncf.notary.timestampSignature"] = "token"
    elif case == "timestamp with signing authority":
        unprotected["io.cncf.notary.timestampSignature"] = b"token"
        protected["io.cncf.notary.signingScheme"] = "notary.x509.signingAuthority"
        protected["io.cncf.notary.authenticSigningTime"] = protected["io.cncf.notary.signingTime"]
        protected[2] = ["io.cncf.notary.signingScheme", "io.cncf.notary.authenticSigningTime"]
    elif case == "expiry not after signing time":
        protected["io.cncf.notary.expiry"] = protected["io.cncf.notary.signingTime"]
        protected[2] = ["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"]
    elif case == "empty signature":
        sig = b""
    elif case == "unprotected not a map":
        unprotected = None  # type: ignore[assignment]
    if payload_out is None or unprotected is None:
        raw = cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps(protected, canonical=True), unprotected, payload_out, sig]))
    else:
        raw = _encode(protected, unprotected, payload_out, sig)
    with pytest.raises(EnvelopeError, match=message):
        parse_envelope(raw)


def test_parse_rejects_untagged_and_oversized(shared_fixtures: Path) -> None:
    raw = cose(shared_fixtures, "ng_internal_cose_signature.sig")
    with pytest.raises(EnvelopeError, match="CBOR tag 18"):
        parse_envelope(cbor2.dumps(cbor2.loads(raw).value))
    with pytest.raises(EnvelopeError, match="exceeds the 1000-byte limit"):
        parse_envelope(raw, Limits(envelope_bytes=1000))
    with pytest.raises(EnvelopeError, match="malformed CBOR"):
        parse_envelope(raw[:-10])
    with pytest.raises(EnvelopeError, match="COSE_Sign1 must be an array of 4 items"):
        parse_envelope(cbor2.dumps(cbor2.CBORTag(18, [b"a", {}, b"p"])))
    with pytest.raises(EnvelopeError, match="protected header: must be a map"):
        parse_envelope(cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps([1]), {}, b"p", b"s"])))
    with pytest.raises(EnvelopeError, match="protected header: must be a non-empty byte string"):
        parse_envelope(cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"p", b"s"])))
    with pytest.raises(EnvelopeError, match="payload: missing targetArtifact"):
        protected, unprotected, _, sig = _parts(shared_fixtures)
        parse_envelope(_encode(protected, unprotected, b'{"artifact":{}}', sig))
    with pytest.raises(EnvelopeError, match="payload targetArtifact: missing field digest"):
        protected, unprotected, _, sig = _parts(shared_fixtures)
        parse_envelope(_encode(protected, unprotected, b'{"targetArtifact":{"mediaType":"a","size":1}}', sig))
    with pytest.raises(EnvelopeError, match="payload: not JSON"):
        protected, unprotected, _, sig = _parts(shared_fixtures)
        parse_envelope(_encode(protected, unprotected, b"not json", sig))


@pytest.mark.parametrize("size", [0, 23, 24, 255, 256, 65535, 65536])
def test_hand_assembled_cbor_equals_cbor2(size: int) -> None:
    protected, payload = b"p" * (size % 300 + 1), b"x" * size
    assert sig_structure(protected, payload) == cbor2.dumps(["Signature1", protected, b"", payload])
    unprotected = {33: [b"c" * size], "io.cncf.notary.signingAgent": "a"}
    assert encode_envelope(protected, unprotected, payload, b"s" * 64) == cbor2.dumps(
        cbor2.CBORTag(18, [protected, unprotected, payload, b"s" * 64]), canonical=True
    )


def test_signed_bytes_equal_a_deterministic_reencoding() -> None:
    pki = make_chain("rsa-2048")
    raw = sign_envelope(TARGET, LocalKey("k", pki.leaf_key, pki.chain), clock=CLOCK, expiry=NOW + dt.timedelta(1)).raw
    outer = cbor2.loads(raw)
    assert cbor2.dumps(outer, canonical=True) == raw
