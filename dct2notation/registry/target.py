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


def open_target(text: str, *, options: RegistryOptions, oci_layout: Path | None = None, create: bool = False) -> Target:
    if oci_layout is not None:
        store = OCILayoutStore(oci_layout, options.limits, create=create)
        return Target(parse_layout_reference(text, oci_layout), store, "oci-layout")
    ref = parse_reference(text)
    return Target(ref, RegistryStore(ref.registry, options), "registry")
