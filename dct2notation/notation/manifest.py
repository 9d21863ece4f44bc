"""Signature manifests and referrers indexes, byte-identical to what Notation writes.

Notation 1.x (notation-go <= v1.3.2) writes the *legacy* form (``config.mediaType`` =
``application/vnd.cncf.notary.signature``, no ``artifactType``); Notation 2 writes the *artifact* form
(``artifactType`` + empty-JSON config carrying ``"data":"e30="``). We write either and read both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ..config import DEFAULT_LIMITS, Limits, format_rfc3339
from ..errors import InputError
from ..jsontext import loads_capped
from ..oci import (
    COSE_MEDIA_TYPE,
    CREATED_ANNOTATION,
    DOCKER_MANIFEST_LIST,
    EMPTY_JSON_DIGEST,
    JWS_MEDIA_TYPE,
    NOTATION_SIGNATURE,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    THUMBPRINT_ANNOTATION,
    Descriptor,
    go_json,
    sha256_digest,
)
from .envelope import SignedEnvelope

ManifestForm = Literal["legacy", "artifact"]
FORMS: tuple[ManifestForm, ...] = ("legacy", "artifact")
ENVELOPE_MEDIA_TYPES = (COSE_MEDIA_TYPE, JWS_MEDIA_TYPE)


def thumbprints(cert_chain: Sequence[x509.Certificate]) -> list[str]:
    """Lowercase hex SHA-256 of each certificate's DER, in chain order (notation-go uses hex.EncodeToString)."""
    return [hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest() for cert in cert_chain]


# The ``created`` annotation's layout; registry/* still imports it by this name (one function, config.format_rfc3339).
format_created = format_rfc3339


def signature_annotations(cert_chain: Sequence[x509.Certificate], signing_time: dt.datetime) -> dict[str, str]:
    # Go's json.Marshal of []string: compact, no spaces.
    return {
        THUMBPRINT_ANNOTATION: json.dumps(thumbprints(cert_chain), separators=(",", ":")),
        CREATED_ANNOTATION: format_rfc3339(signing_time),
    }


def plain(desc: Descriptor) -> Descriptor:
    """mediaType/digest/size only: Notation's subject never carries the tag's annotations or platform."""
    return Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size)


def signature_manifest(
    envelope_desc: Descriptor,
    subject: Descriptor,
    cert_chain: Sequence[x509.Certificate],
    signing_time: dt.datetime,
    form: ManifestForm = "legacy",
    extra_annotations: Mapping[str, str] | None = None,
) -> bytes:
    """The signature manifest Notation pushes for one envelope (Go field order, compact JSON).

    ``extra_annotations`` are the ones an envelope plugin asks for; as in notation-go they are merged under the
    thumbprint and creation annotations (which win), and written in Go's sorted map order."""
    annotations = {**(extra_annotations or {}), **signature_annotations(cert_chain, signing_time)}
    return signature_manifest_with_annotations(envelope_desc, subject, dict(sorted(annotations.items())), form)


def envelope_signature_manifest(
    envelope_desc: Descriptor, subject: Descriptor, signed: SignedEnvelope, form: ManifestForm = "legacy"
) -> SignatureManifest:
    """The signature manifest every store writes for ``signed`` once its envelope is stored as ``envelope_desc``,
    parsed back as any reader would parse it (its ``raw`` is the bytes to write)."""
    raw = signature_manifest(
        envelope_desc, subject, signed.cert_chain, signed.signing_time, form, signed.manifest_annotations
    )
    return parse_signature_manifest(raw)


def signature_manifest_with_annotations(
    envelope_desc: Descriptor, subject: Descriptor, annotations: dict[str, str], form: ManifestForm = "legacy"
) -> bytes:
    if form not in FORMS:
        raise InputError(f"--signature-manifest: unknown form {form!r} (expected legacy or artifact)")
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if form == "artifact":
        doc["artifactType"] = NOTATION_SIGNATURE
        doc["config"] = {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2, "data": "e30="}
    else:
        doc["config"] = {"mediaType": NOTATION_SIGNATURE, "digest": EMPTY_JSON_DIGEST, "size": 2}
    doc["layers"] = [plain(envelope_desc).to_dict()]
    doc["subject"] = plain(subject).to_dict()
    doc["annotations"] = dict(annotations)
    return go_json(doc)


def referrers_index(descriptors: Iterable[Descriptor]) -> bytes:
    """The image index served by the referrers API or stored under the ``sha256-<hex>`` tag."""
    return go_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d.to_dict() for d in descriptors]})


def referrers_tag(subject_digest: str) -> str:
    """``<alg>-<encoded>`` (distribution-spec "Referrers Tag Schema"; oras-go buildReferrersTag)."""
    alg, sep, encoded = subject_digest.partition(":")
    if not sep or not alg or not encoded:
        raise InputError(f"not a digest: {subject_digest!r}")
    return f"{alg[:32]}-{encoded[:64]}"


@dataclass(frozen=True)
class SignatureManifest:
    """A parsed signature manifest of either form."""

    raw: bytes
    digest: str
    form: ManifestForm
    envelope: Descriptor
    subject: Descriptor
    annotations: dict[str, str]

    @property
    def artifact_type(self) -> str:
        return NOTATION_SIGNATURE

    @property
    def envelope_media_type(self) -> str:
        return self.envelope.media_type

    def descriptor(self) -> Descriptor:
        """As listed by the referrers API / tag index: artifactType and all the manifest's annotations."""
        return Descriptor(
            media_type=OCI_MANIFEST,
            digest=self.digest,
            size=len(self.raw),
            annotations=dict(self.annotations) or None,
            artifact_type=NOTATION_SIGNATURE,
        )


def parse_signature_manifest(
    raw: bytes, *, where: str = "signature manifest", limits: Limits = DEFAULT_LIMITS
) -> SignatureManifest:
    """Read either form; refuse anything that is not a Notation signature manifest with one envelope layer."""
    doc = loads_capped(raw, where=where, max_bytes=limits.signature_manifest_bytes)
    if not isinstance(doc, dict):
        raise InputError(f"{where}: not a JSON object")
    if doc.get("mediaType", OCI_MANIFEST) != OCI_MANIFEST:
        raise InputError(f"{where}: mediaType {doc.get('mediaType')!r} is not an OCI image manifest")
    config = Descriptor.from_dict(doc.get("config"), where=f"{where}: config")
    artifact_type = doc.get("artifactType")
    form: ManifestForm
    if artifact_type == NOTATION_SIGNATURE:
        form = "artifact"
    elif artifact_type is None and config.media_type == NOTATION_SIGNATURE:
        form = "legacy"
    else:
        raise InputError(
            f"{where}: not a Notation signature (artifactType {artifact_type!r}, config {config.media_type!r})"
        )
    layers = doc.get("layers")
    if not isinstance(layers, list) or len(layers) != 1:
        raise InputError(f"{where}: layers: a signature manifest has exactly one layer")
    envelope = Descriptor.from_dict(layers[0], where=f"{where}: layers[0]")
    if envelope.media_type not in ENVELOPE_MEDIA_TYPES:
        raise InputError(f"{where}: layers[0]: unsupported envelope media type {envelope.media_type!r}")
    if "subject" not in doc:
        raise InputError(f"{where}: subject: missing")
    subject = Descriptor.from_dict(doc["subject"], where=f"{where}: subject")
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        raise InputError(f"{where}: annotations must map strings to strings")
    return SignatureManifest(
        raw=raw, digest=sha256_digest(raw), form=form, envelope=envelope, subject=subject, annotations=annotations
    )


_INDEX_NAMES = {OCI_INDEX: "OCI image index", DOCKER_MANIFEST_LIST: "Docker manifest list"}


def parse_index(
    raw: bytes, *, where: str, limits: Limits = DEFAULT_LIMITS, media_types: tuple[str, ...] = (OCI_INDEX,)
) -> list[Descriptor]:
    """Descriptors of an index whose ``mediaType``, when present, is one of ``media_types``; else InputError.

    A referrers index is an OCI image index (the default); the index a tag names may also be a Docker manifest list.
    """
    doc = loads_capped(raw, where=where, max_bytes=limits.referrers_index_bytes)
    if not isinstance(doc, dict) or doc.get("mediaType", media_types[0]) not in media_types:
        raise InputError(f"{where}: not an {' or '.join(_INDEX_NAMES.get(t, t) for t in media_types)}")
    manifests = doc.get("manifests")
    if manifests is None and "manifests" in doc:
        # JSON null is an empty list to Go's encoding/json (Notation, oras-go), and it is how olareg answers the
        # Referrers API for a subject with no referrers; refusing it made the real API look absent.
        manifests = []
    if not isinstance(manifests, list):
        raise InputError(f"{where}: manifests: not a list")
    return [Descriptor.from_dict(m, where=f"{where}: manifests[{i}]") for i, m in enumerate(manifests)]


def is_signature(desc: Descriptor) -> bool:
    return desc.artifact_type == NOTATION_SIGNATURE
