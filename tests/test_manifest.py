"""Signature manifests and referrers indexes against the DERIVED Notation files for the fixture envelope."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography import x509

from dct2notation.config import DEFAULT_LIMITS
from dct2notation.errors import InputError
from dct2notation.migrate.children import INDEX_TYPES, Child, index_children
from dct2notation.notation.envelope import SignedEnvelope
from dct2notation.notation.manifest import (
    parse_index,
    parse_signature_manifest,
    referrers_index,
    referrers_tag,
    signature_manifest,
    thumbprints,
)
from dct2notation.oci import (
    COSE_MEDIA_TYPE,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    NOTATION_SIGNATURE,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    sha256_digest,
)

SUBJECT_HEX = "19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0"


def fixture_inputs(cose: Path) -> tuple[Descriptor, Descriptor, list[x509.Certificate], dt.datetime]:
    """Everything Notation had when it pushed the fixture envelope, read from the fixture files themselves."""
    envelope = (cose / "ng_internal_cose_signature.sig").read_bytes()
    subject_raw = (cose / "ng_internal_subject_manifest_sha256-19dbd2e4.json").read_bytes()
    tagged = cbor2.loads(envelope)
    protected = cbor2.loads(tagged.value[0])
    signing_time = protected["io.cncf.notary.signingTime"]
    chain = [x509.load_der_x509_certificate(der) for der in tagged.value[1][33]]
    envelope_desc = Descriptor(COSE_MEDIA_TYPE, sha256_digest(envelope), len(envelope))
    subject = Descriptor(json.loads(subject_raw)["mediaType"], sha256_digest(subject_raw), len(subject_raw))
    return envelope_desc, subject, chain, signing_time


def as_signed(
    raw: bytes, chain: list[x509.Certificate], signing_time: dt.datetime, media_type: str = COSE_MEDIA_TYPE
) -> SignedEnvelope:
    """An envelope made elsewhere (a fixture, a tampered copy) as ``push_signature`` takes it; a push reads its bytes,
    media type, chain and signing time, never the payload (which is inside ``raw``)."""
    return SignedEnvelope(raw, signing_time, list(chain), payload=b"", media_type=media_type)


@pytest.mark.parametrize(
    ("form", "derived"),
    [
        ("legacy", "DERIVED_sigmanifest_legacy-form_ng_internal_cose_signature.json"),
        ("artifact", "DERIVED_sigmanifest_artifactType-form_ng_internal_cose_signature.json"),
    ],
)
def test_signature_manifest_matches_notation_bytes(shared_fixtures: Path, form: str, derived: str) -> None:
    cose = shared_fixtures / "notation" / "cose"
    envelope_desc, subject, chain, signing_time = fixture_inputs(cose)
    raw = signature_manifest(envelope_desc, subject, chain, signing_time, form=form)  # type: ignore[arg-type]
    assert raw == (cose / derived).read_bytes()
    parsed = parse_signature_manifest(raw)
    assert parsed.form == form
    assert parsed.subject.digest == "sha256:" + SUBJECT_HEX
    assert parsed.envelope == envelope_desc
    assert parsed.digest == sha256_digest(raw)


def test_referrers_index_matches_notation_bytes(shared_fixtures: Path) -> None:
    cose = shared_fixtures / "notation" / "cose"
    envelope_desc, subject, chain, signing_time = fixture_inputs(cose)
    manifest = parse_signature_manifest(signature_manifest(envelope_desc, subject, chain, signing_time))
    expected = (cose / f"DERIVED_referrers-tag-index_sha256-{SUBJECT_HEX}.json").read_bytes()
    assert referrers_index([manifest.descriptor()]) == expected
    assert parse_index(expected, where="index") == [manifest.descriptor()]


def test_real_e2e_layout_manifest_parses_as_legacy(shared_fixtures: Path) -> None:
    layout = shared_fixtures / "notation" / "oci-layout-e2e-valid-signature"
    digest = "90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f"
    parsed = parse_signature_manifest((layout / "blobs" / "sha256" / digest).read_bytes())
    assert parsed.form == "legacy"
    assert parsed.envelope.media_type == "application/jose+json"
    assert parsed.descriptor().size == 728
    index_raw = (layout / "blobs/sha256/13e107e0dd246f07ff18998a3d39e226965c41477a1bc1765f7617632ff3f283").read_bytes()
    assert referrers_index([parsed.descriptor()]) == index_raw


def test_thumbprint_is_lowercase_hex_of_der(shared_fixtures: Path) -> None:
    pem = (shared_fixtures / "notation" / "cose" / "ng_internal_cose_signature.x5chain.pem").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    from cryptography.hazmat.primitives import hashes

    assert thumbprints([cert]) == [cert.fingerprint(hashes.SHA256()).hex()]


def test_referrers_tag() -> None:
    assert referrers_tag("sha256:" + SUBJECT_HEX) == "sha256-" + SUBJECT_HEX
    with pytest.raises(InputError, match="not a digest"):
        referrers_tag("latest")


def _manifest(**override: object) -> bytes:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": NOTATION_SIGNATURE, "digest": "sha256:" + "0" * 64, "size": 2},
        "layers": [{"mediaType": COSE_MEDIA_TYPE, "digest": "sha256:" + "1" * 64, "size": 3}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "2" * 64, "size": 4},
    }
    doc.update(override)
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (_manifest(mediaType="application/vnd.oci.image.index.v1+json"), "is not an OCI image manifest"),
        (
            _manifest(config={"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "x", "size": 1}),
            "not a Notation signature",
        ),
        (_manifest(layers=[]), "exactly one layer"),
        (_manifest(layers=[{"mediaType": "text/plain", "digest": "sha256:1", "size": 1}]), "unsupported envelope"),
        (_manifest(subject=None), "subject: missing"),
        (_manifest(annotations={"a": 1}), "annotations must map"),
        (_manifest(layers=[{"mediaType": COSE_MEDIA_TYPE, "digest": "sha256:1"}]), "missing field size"),
    ],
)
def test_parse_signature_manifest_refuses(raw: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_signature_manifest(raw, where="m.json")


def test_parse_signature_manifest_size_cap() -> None:
    from dct2notation.config import Limits

    with pytest.raises(InputError, match="exceeds the 10-byte limit"):
        parse_signature_manifest(_manifest(), limits=Limits(signature_manifest_bytes=10))


def test_parse_index_refuses() -> None:
    with pytest.raises(InputError, match="not an OCI image index"):
        parse_index(_manifest(), where="idx")
    with pytest.raises(InputError, match="manifests: not a list"):
        parse_index(b'{"schemaVersion":2}', where="idx")


_A, _B, _C = ("sha256:" + c * 64 for c in "abc")


def _index(media_type: str | None, manifests: Any) -> bytes:
    doc: dict[str, Any] = {"schemaVersion": 2, "manifests": manifests}
    if media_type is not None:
        doc["mediaType"] = media_type
    return json.dumps(doc).encode()


def test_index_children_of_a_docker_manifest_list_and_an_oci_index() -> None:
    """One parser for referrers indexes and a tag's index: a Docker manifest list only where the caller accepts it."""
    entries = [
        {"mediaType": DOCKER_MANIFEST, "digest": _A, "size": 7, "platform": {"os": "linux", "architecture": "arm64",
                                                                              "variant": "v8"}},
        {"mediaType": OCI_INDEX, "digest": _B, "size": 8},  # a nested index is not a child we sign
        {"mediaType": OCI_MANIFEST, "digest": _C, "size": 9},
    ]  # fmt: skip
    listed = _index(DOCKER_MANIFEST_LIST, entries)
    with pytest.raises(InputError) as refused:
        parse_index(listed, where="idx")
    assert str(refused.value) == "idx: not an OCI image index"
    assert [d.digest for d in parse_index(listed, where="idx", media_types=INDEX_TYPES)] == [_A, _B, _C]
    expected = [Child(_A, 7, DOCKER_MANIFEST, "linux/arm64/v8"), Child(_C, 9, OCI_MANIFEST, "")]
    assert index_children(listed, "idx", DEFAULT_LIMITS) == expected
    # No mediaType at the top is an index too (as Go's encoding/json and the OCI spec allow); null is no entries.
    assert index_children(_index(None, entries), "idx", DEFAULT_LIMITS) == expected
    assert index_children(_index(OCI_INDEX, None), "idx", DEFAULT_LIMITS) == []


def test_attack_index_child_digest_with_a_trailing_newline() -> None:
    # A hostile index lists "sha256:<hex>\n": a `$`-anchored pattern matched it (``$`` matches before a final
    # newline) and the child was kept. The digest grammar is matched whole.
    raw = _index(OCI_INDEX, [{"mediaType": OCI_MANIFEST, "digest": _A + "\n", "size": 9}])
    with pytest.raises(InputError) as refused:
        index_children(raw, "idx", DEFAULT_LIMITS)
    assert str(refused.value) == f"idx: manifests[0]: {_A + chr(10)!r} is not a digest (algorithm:hex)"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_index(OCI_MANIFEST, []), "idx: not an OCI image index or Docker manifest list"),
        (b'{"schemaVersion":2}', "idx: manifests: not a list"),
        (_index(OCI_INDEX, ["x"]), "idx: manifests[0]: not a JSON object"),
        (_index(OCI_INDEX, [{"digest": _A, "size": 1}]), "idx: manifests[0]: missing field mediaType"),
        (_index(OCI_INDEX, [{"mediaType": OCI_MANIFEST, "digest": _A, "size": True}]),
         "idx: manifests[0]: size must be a non-negative integer"),
        (_index(OCI_INDEX, [{"mediaType": OCI_MANIFEST, "digest": "sha256:../x", "size": 1}]),
         "idx: manifests[0]: 'sha256:../x' is not a digest (algorithm:hex)"),
        (_index(OCI_INDEX, [{"mediaType": OCI_MANIFEST, "digest": "sha512:" + "a" * 128, "size": 1}]),
         f"idx: manifests[0]: {('sha512:' + 'a' * 128)[:80]!r}: only sha256 children are signed"),
    ],
)  # fmt: skip
def test_index_children_refuses(raw: bytes, message: str) -> None:
    with pytest.raises(InputError) as refused:
        index_children(raw, "idx", DEFAULT_LIMITS)
    assert str(refused.value) == message
