"""Small image manifests for tests and benches: a subject to sign, in a registry or an OCI layout."""

from __future__ import annotations

from pathlib import Path

from dct2notation.oci import EMPTY_JSON, OCI_MANIFEST, Descriptor, go_json, sha256_digest
from dct2notation.registry.layout import OCILayout

IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"


def image_manifest(label: str | None = None) -> bytes:
    """An image manifest over the empty config; distinct labels give distinct digests."""
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": IMAGE_CONFIG, "digest": sha256_digest(EMPTY_JSON), "size": 2},
        "layers": [],
    }
    if label is not None:
        doc["annotations"] = {"label": label}
    return go_json(doc)


def layout_with_image(root: Path, tag: str = "v1") -> tuple[Path, str]:
    """An OCI layout under ``root/layout`` holding one image tagged ``tag``; returns (layout dir, image digest)."""
    layout = OCILayout(root / "layout")
    layout.init()
    layout.put_blob(EMPTY_JSON)
    raw = image_manifest()
    layout.put_blob(raw)
    with layout.locked():
        layout.tag(Descriptor(OCI_MANIFEST, sha256_digest(raw), len(raw)), tag)
    return root / "layout", sha256_digest(raw)
