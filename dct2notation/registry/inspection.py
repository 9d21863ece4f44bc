"""What is attached to an artifact: the ``ls`` summary and the ``inspect`` details."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ..errors import Dct2NotationError, NotFoundError
from ..jsontext import loads as json_loads
from ..notation.formats import parse_signature_envelope
from ..notation.manifest import format_created, parse_signature_manifest
from ..oci import CREATED_ANNOTATION, THUMBPRINT_ANNOTATION, Descriptor
from .store import fetch_signatures
from .target import Target


@dataclass(frozen=True)
class SignatureSummary:
    digest: str
    artifact_type: str | None
    form: str
    envelope_media_type: str
    signing_time: str | None
    thumbprints: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "artifactType": self.artifact_type,
            "form": self.form,
            "envelopeMediaType": self.envelope_media_type,
            "signingTime": self.signing_time,
            "thumbprints": self.thumbprints,
        }


def resolve_subject(target: Target) -> Descriptor:
    return target.store.resolve(target.reference)


def _thumbprints(annotations: dict[str, str]) -> list[str]:
    try:
        value = json_loads(annotations.get(THUMBPRINT_ANNOTATION, "[]"))
    except ValueError:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def list_attached(target: Target, subject: Descriptor) -> list[SignatureSummary]:
    """One line per signature manifest, from the manifests themselves (index entries may be stale)."""
    out: list[SignatureSummary] = []
    for desc in target.store.list_signatures(target.repo, subject.digest):
        manifest = parse_signature_manifest(
            target.store.get_manifest(target.repo, desc.digest), where=f"signature manifest {desc.digest}"
        )
        out.append(
            SignatureSummary(
                digest=desc.digest,
                artifact_type=desc.artifact_type,
                form=manifest.form,
                envelope_media_type=manifest.envelope.media_type,
                signing_time=manifest.annotations.get(CREATED_ANNOTATION),
                thumbprints=_thumbprints(manifest.annotations),
            )
        )
    return out


def describe_certificate(cert: x509.Certificate) -> dict[str, Any]:
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serialNumber": format(cert.serial_number, "x"),
        "notBefore": format_created(cert.not_valid_before_utc),
        "notAfter": format_created(cert.not_valid_after_utc),
        "sha256Thumbprint": cert.fingerprint(hashes.SHA256()).hex(),
    }


def inspect_attached(target: Target, subject: Descriptor) -> list[dict[str, Any]]:
    """Envelope details, certificate chain and manifest annotations of every signature."""
    details: list[dict[str, Any]] = []
    for stored in fetch_signatures(target.store, target.repo, subject.digest):
        manifest = stored.manifest
        entry: dict[str, Any] = {
            "digest": manifest.digest,
            "form": manifest.form,
            "mediaType": manifest.envelope.media_type,
            "envelopeDigest": manifest.envelope.digest,
            "envelopeSize": manifest.envelope.size,
            "annotations": dict(manifest.annotations),
        }
        try:
            env = parse_signature_envelope(stored.envelope, manifest.envelope.media_type, target.store.limits)
        except Dct2NotationError as exc:
            entry["error"] = str(exc)
            details.append(entry)
            continue
        entry.update(
            {
                "signatureAlgorithm": env.algorithm.name,
                "signingScheme": env.signing_scheme,
                "signingTime": format_created(env.signing_time) if env.signing_time else None,
                "authenticSigningTime": (
                    format_created(env.authentic_signing_time) if env.authentic_signing_time else None
                ),
                "expiry": format_created(env.expiry) if env.expiry else None,
                "signingAgent": env.signing_agent,
                "timestamped": env.timestamp_token is not None,
                "signedArtifact": env.target_artifact.to_dict(),
                "userMetadata": env.user_metadata,
                "certificates": [describe_certificate(c) for c in env.cert_chain],
            }
        )
        details.append(entry)
    return details


def require_signatures(target: Target, subject: Descriptor) -> None:
    if not target.store.list_signatures(target.repo, subject.digest):
        raise NotFoundError(f"{target.reference}: no signatures found")


def _notation_time(value: dt.datetime) -> str:
    # Go's time.Time in JSON is RFC 3339 with nanoseconds when there are any; ours are whole seconds or micro.
    text = value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return text.replace(".000000Z", "Z")


def _notation_certificate(cert: x509.Certificate) -> dict[str, Any]:
    return {
        "SHA256Fingerprint": cert.fingerprint(hashes.SHA256()).hex(),
        "issuedTo": cert.subject.rfc4514_string(),
        "issuedBy": cert.issuer.rfc4514_string(),
        "expiry": _notation_time(cert.not_valid_after_utc),
    }


def _timestamp_signature(token: bytes, signature: bytes) -> dict[str, Any]:
    from ..notation.timestamp import read_timestamp

    try:
        info, certificates = read_timestamp(token, signature)
    except Dct2NotationError as exc:
        return {"error": f"failed to parse timestamp countersignature: {exc}"}
    return {
        "timestamp": f"[{_notation_time(info.not_before)}, {_notation_time(info.not_after)}]",
        "certificates": [_notation_certificate(c) for c in certificates],
    }


def notation_inspect_document(target: Target, subject: Descriptor) -> dict[str, Any]:
    """``notation inspect -o json``'s document as notation **1.3.2** prints it (checked against the binary in
    test_interop_notation_reads.py): ``mediaType`` of the subject, then ``Signatures`` (capital S in 1.x; 2.x writes
    ``signatures`` and adds ``signedAttributes.contentType``), each with the envelope's ``mediaType`` first. Go
    writes the attribute maps with sorted keys. A signature whose envelope cannot be read is listed with its
    ``error`` (Notation stops at the first)."""
    signatures: list[dict[str, Any]] = []
    for stored in fetch_signatures(target.store, target.repo, subject.digest):
        manifest = stored.manifest
        media_type = manifest.envelope.media_type
        try:
            env = parse_signature_envelope(stored.envelope, media_type, target.store.limits)
        except Dct2NotationError as exc:
            signatures.append({"mediaType": media_type, "digest": manifest.digest, "error": str(exc)})
            continue
        signed: dict[str, Any] = {"signingScheme": env.signing_scheme}
        signing_time = env.signing_time or env.authentic_signing_time
        if signing_time is not None:
            signed["signingTime"] = _notation_time(signing_time)
        if env.expiry is not None:
            signed["expiry"] = _notation_time(env.expiry)
        unsigned: dict[str, Any] = {}
        if env.signing_agent:
            unsigned["signingAgent"] = env.signing_agent
        if env.timestamp_token is not None:
            unsigned["timestampSignature"] = _timestamp_signature(env.timestamp_token, env.signature)
        artifact = env.target_artifact
        metadata = dict(sorted(env.user_metadata.items())) if env.user_metadata else None
        signatures.append(
            {
                "mediaType": media_type,
                "digest": manifest.digest,
                "signatureAlgorithm": env.algorithm.signing_algorithm,
                "signedAttributes": dict(sorted(signed.items())),
                "userDefinedAttributes": metadata,
                "unsignedAttributes": dict(sorted(unsigned.items())),
                "certificates": [_notation_certificate(c) for c in env.cert_chain],
                "signedArtifact": {"mediaType": artifact.media_type, "digest": artifact.digest, "size": artifact.size},
            }
        )
    return {"mediaType": subject.media_type, "Signatures": signatures}
