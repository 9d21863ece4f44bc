"""OCI descriptors and media types shared by the Notation core, the registry client and the layout."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
NOTATION_SIGNATURE = "application/vnd.cncf.notary.signature"
COSE_MEDIA_TYPE = "application/cose"
JWS_MEDIA_TYPE = "application/jose+json"
NOTATION_PAYLOAD = "application/vnd.cncf.notary.payload.v1+json"

EMPTY_JSON = b"{}"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

THUMBPRINT_ANNOTATION = "io.cncf.notary.x509chain.thumbprint#S256"
CREATED_ANNOTATION = "org.opencontainers.image.created"

MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor. ``to_dict`` keeps Go's field order so our JSON matches Notation's bytes."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    data: str | None = None
    artifact_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # unknown fields survive a round trip

    def to_dict(self) -> dict[str, Any]:
        # Go struct order (image-spec specs-go Descriptor): mediaType, digest, size, urls, annotations, data,
        # platform, artifactType.
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        for key in ("urls",):
            if key in self.extra:
                out[key] = self.extra[key]
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.data is not None:
            out["data"] = self.data
        if "platform" in self.extra:
            out["platform"] = self.extra["platform"]
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        for key, value in self.extra.items():
            if key not in out:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, obj: Any, *, where: str = "descriptor") -> Descriptor:
        from .errors import InputError

        if not isinstance(obj, dict):
            raise InputError(f"{where}: not a JSON object")
        try:
            media_type = obj["mediaType"]
            digest = obj["digest"]
            size = obj["size"]
        except KeyError as exc:
            raise InputError(f"{where}: missing field {exc.args[0]}") from exc
        if not isinstance(media_type, str) or not isinstance(digest, str) or not isinstance(size, int):
            raise InputError(f"{where}: mediaType/digest must be strings and size an integer")
        if isinstance(size, bool) or size < 0:
            raise InputError(f"{where}: size must be a non-negative integer")
        annotations = obj.get("annotations")
        if annotations is not None and not (
            isinstance(annotations, dict) and all(isinstance(v, str) for v in annotations.values())
        ):
            raise InputError(f"{where}: annotations must map strings to strings")
        known = {"mediaType", "digest", "size", "annotations", "data", "artifactType"}
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations=annotations,
            data=obj.get("data"),
            artifact_type=obj.get("artifactType"),
            extra={k: v for k, v in obj.items() if k not in known},
        )


def go_json(obj: Any) -> bytes:
    """Compact JSON as Go's encoding/json writes it (dict order preserved; <, >, & escaped; raw UTF-8)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()
