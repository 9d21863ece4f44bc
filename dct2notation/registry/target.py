"""Turn a command's REF (+ ``--oci-layout``) into a reference and the store that holds its signatures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from .layout import OCILayoutStore
from .options import RegistryOptions
from .reference import Reference, parse_reference, validate_digest
from .store import RegistryStore, SignatureStore

LAYOUT_REGISTRY = "local"


@dataclass
class Target:
    reference: Reference
    store: SignatureStore
    kind: str  # "registry" | "oci-layout"

    @property
    def repo(self) -> str:
        return self.reference.repository

    def close(self) -> None:
        self.store.close()


def parse_layout_reference(text: str, layout: Path) -> Reference:
    """In a layout the REF is ``[NAME]@sha256:…``, ``sha256:…`` or ``[NAME:]TAG`` (a ``ref.name`` in index.json)."""
    name = layout.resolve().name.lower() or "layout"
    if "@" in text:
        text = text.partition("@")[2]
    if text.startswith("sha256:"):
        return Reference(LAYOUT_REGISTRY, name, None, validate_digest(text, where=f"reference {text!r}"))
    tag = text.rpartition(":")[2]
    if not tag:
        raise UsageError(f"reference {text!r}: give a tag or a digest inside the OCI layout {layout}")
    return Reference(LAYOUT_REGISTRY, name, tag, None)


def split_layout_reference(text: str) -> tuple[Path, str]:
    """Notation's ``--oci-layout`` reference, ``DIR@sha256:…`` or ``DIR:TAG``: the layout directory and the digest or
    tag inside it (a tag is an ``org.opencontainers.image.ref.name`` of the layout's index.json)."""
    if "@" in text:
        directory, _, inside = text.rpartition("@")
    else:
        colon = text.rfind(":")
        if colon <= text.rfind("/") or colon in (0, len(text) - 1):
            raise UsageError(f"--oci-layout {text!r}: give DIR@sha256:… or DIR:TAG (the layout and the artifact in it)")
        directory, inside = text[:colon], text[colon + 1 :]
    if not directory or not inside:
        raise UsageError(f"--oci-layout {text!r}: give DIR@sha256:… or DIR:TAG (the layout and the artifact in it)")
    return Path(directory), inside


def open_target(text: str, *, options: RegistryOptions, oci_layout: Path | None = None, create: bool = False) -> Target:
    if oci_layout is not None:
        store = OCILayoutStore(oci_layout, options.limits, create=create)
        reference = parse_layout_reference(text, oci_layout)
        if reference.tag is not None and reference.tag != text and not create:
            # `NAME:TAG` as index.json names it (a ref.name holding the repository too, as skopeo and buildx write).
            named = store.layout.tagged(text)
            if named is not None:
                reference = reference.with_digest(named.digest)
        return Target(reference, store, "oci-layout")
    ref = parse_reference(text)
    return Target(ref, RegistryStore(ref.registry, options), "registry")
