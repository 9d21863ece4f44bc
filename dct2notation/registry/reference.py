"""Image references (``host[:port]/repo[:tag][@sha256:hex]``), parsed the way docker and Notation read them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError
from ..imagename import DOCKER_HUB, REPOSITORY, split_name

DEFAULT_REGISTRY = DOCKER_HUB
# Matched with fullmatch, as imagename's: ``$`` also matches before a final newline ("sha256:<hex>\n").
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
_SHA256 = re.compile(r"sha256:[a-f0-9]{64}")


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``registry/repository``: what trust-policy registry scopes match."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """The tag or digest part as the registry API takes it."""
        ref = self.digest or self.tag
        if ref is None:
            raise UsageError(f"{self.name}: reference names neither a tag nor a digest")
        return ref

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, None, digest)

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag}" if self.tag else self.name


def validate_digest(digest: str, *, where: str = "digest") -> str:
    if not _DIGEST.fullmatch(digest):
        raise UsageError(f"{where}: {digest!r} is not a digest (algorithm:hex)")
    if digest.startswith("sha256:") and not _SHA256.fullmatch(digest):
        raise UsageError(f"{where}: {digest!r} is not a sha256 digest (64 lowercase hex digits)")
    return digest


def parse_reference(text: str, *, default_registry: str = DEFAULT_REGISTRY) -> Reference:
    """Split a reference; the first path component is a registry if it has a dot or a port or is ``localhost``."""
    original = text
    digest: str | None = None
    if "@" in text:
        text, _, digest = text.partition("@")
        validate_digest(digest, where=f"reference {original!r}")
    registry, repository, tag = split_name(text, where=f"reference {original!r}", default_registry=default_registry)
    if not REPOSITORY.fullmatch(repository):
        raise UsageError(f"reference {original!r}: invalid repository name {repository!r}")
    return Reference(registry, repository, tag, digest)


def require_digest(ref: Reference, *, command: str) -> Reference:
    """Signing by tag would sign whatever the tag points at when the registry answers: refuse it, as Notation warns."""
    if ref.digest is None:
        raise UsageError(
            f"{command}: {ref} is a tag reference; sign by digest (REPO@sha256:...) so the signed content is fixed"
        )
    return ref
