"""Docker's image-name grammar (distribution/reference's ``ParseNormalizedNamed``), once for every reader of it: the
GUNs ``discover`` lists, ``docker trust inspect``'s names and the image references of ``registry.reference``.

It sits below them all (the data flows one way: the DCT side may not import the registry's modules). Patterns are
for ``fullmatch``: ``$`` would also match before a final newline.
"""

from __future__ import annotations

import re

from .errors import UsageError

DOCKER_HUB = "docker.io"
# One path component: lowercase alphanumerics joined by ".", "_", "__" or dashes.
COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY = re.compile(rf"{COMPONENT}(?:/{COMPONENT})*")
TAG = re.compile(r"[\w][\w.-]{0,127}")


def names_registry(component: str) -> bool:
    """Whether the first component of a name is a registry host, as docker reads it: it has a dot or a port, or is
    ``localhost`` (anything else is the first path component of a Docker Hub repository)."""
    return "." in component or ":" in component or component == "localhost"


def split_name(text: str, *, where: str, default_registry: str = DOCKER_HUB) -> tuple[str, str, str | None]:
    """``NAME[:TAG]`` as docker splits it: ``(registry, repository, tag)``. The first component is the registry when
    ``names_registry`` says so; a Docker Hub name of one component is ``library/NAME``. The tag is
    checked (``WHERE: invalid tag 'T'``); the repository is the caller's to check against ``REPOSITORY``, each in
    its own words."""
    tag: str | None = None
    colon = text.rfind(":")
    if colon > text.rfind("/"):
        text, tag = text[:colon], text[colon + 1 :]
        if not TAG.fullmatch(tag):
            raise UsageError(f"{where}: invalid tag {tag!r}")
    first, sep, rest = text.partition("/")
    if sep and names_registry(first):
        return first, rest, tag
    if default_registry == DOCKER_HUB and not sep:
        return default_registry, f"library/{text}", tag
    return default_registry, text, tag
