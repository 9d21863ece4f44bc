"""The names under which a pod's image pulls from a migrated repository, as each controller's patterns must see them.

A container runtime qualifies an image before pulling it: ``alpine:3.20``, ``library/alpine``, ``index.docker.io/…``
and ``docker.io/library/alpine`` are one Docker Hub repository, ``registry-1.docker.io`` is Docker Hub's API host,
and host names are case-insensitive (``REG.EXAMPLE:5000/app`` pulls from ``reg.example:5000/app``). The
controllers do not all qualify the same way before matching our patterns (see docs/INTEROP.md):

- Kyverno's ImageValidatingPolicy matches ``matchImageReferences`` globs (gobwas/glob) against the image string
  exactly as the pod spells it: every spelling needs its own glob, host letters as ``[xX]`` classes.
- Kyverno's ClusterPolicy matches ``imageReferences`` (IGLOU-EU/go-wildcard: ``*`` and ``?`` only, case-sensitive)
  against its own rendering ``registry/path:tag`` or ``registry/path@digest``: ``docker.io`` is prefixed to a
  host-less name but ``library/`` is not added, ``index.docker.io`` is not folded into ``docker.io``, a tag-less name
  gets ``:latest``, a tag beside a digest is dropped, and the host keeps its case, which only ``?`` can match.
- Connaisseur matches gobwas globs, each given a leading and trailing ``*``, against go-containerregistry's
  qualified name (``index.docker.io/library/…``, host case kept, ``:tag`` and/or ``@digest`` always present).
"""

from __future__ import annotations

import re

from ...imagename import names_registry

# Docker Hub answers under each of these host names (the runtime maps docker.io to registry-1.docker.io).
DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")
_LETTER = re.compile("[A-Za-z]")


def pull_names(repository: str) -> list[str]:
    """Every ``[host/]path`` a pod may write that the runtime pulls from ``repository`` (hosts in lower case).

    For Docker Hub that is each of its hosts, or none, with the ``library/`` of an official image or without it.
    """
    host, _, path = repository.partition("/")
    host = host.lower()
    if host not in DOCKER_HUB_HOSTS:
        return [f"{host}/{path}"]
    if "/" not in path:
        path = f"library/{path}"  # docker.io/alpine is the official image, as the runtime reads it
    paths = [path]
    if path.startswith("library/") and path.count("/") == 1:
        paths.append(path.removeprefix("library/"))
    return [f"{h}/{p}" for h in DOCKER_HUB_HOSTS for p in paths] + paths


def canonical_repository(repository: str) -> str:
    """``repository`` as the runtime (and distribution's ``ParseDockerRef``) qualifies it: host in lower case, Docker
    Hub as ``docker.io/library/…`` for an official image; the form the Gatekeeper template asks Ratify about."""
    return pull_names(repository)[0]


def _fold_host(name: str, letter: str) -> str:
    """``name`` with each letter of its host (the part before the first ``/`` of a hosted name) as ``letter``."""
    host, slash, path = name.partition("/")
    if not slash or not names_registry(host):
        return name  # a host-less Docker Hub name: a path, lower case by the reference grammar
    return _LETTER.sub(lambda m: letter.format(lo=m.group().lower(), up=m.group().upper()), host) + slash + path


def ivp_globs(repository: str) -> list[str]:
    """Kyverno ImageValidatingPolicy ``matchImageReferences`` globs: each raw spelling, tag-less, by tag, by digest."""
    names = [_fold_host(n, "[{lo}{up}]") for n in pull_names(repository)]
    return [g for n in names for g in (n, f"{n}:*", f"{n}@*")]


def clusterpolicy_globs(repository: str) -> list[str]:
    """Kyverno ClusterPolicy ``imageReferences``: by tag and by digest, each host letter as ``?`` (any case).

    ``?`` matches any one character, so a host of the same shape is verified too: that only ever denies more.
    Host-less names cover Kyverno run with ``enableDefaultRegistryMutation: false``, which then drops the registry.
    """
    names = [_fold_host(n, "?") for n in pull_names(repository)]
    return [g for n in names for g in (f"{n}:*", f"{n}@*")]


def connaisseur_globs(repository: str) -> list[str]:
    """Connaisseur rule patterns: by tag and by digest, host letters as ``[xX]`` classes.

    Connaisseur puts ``*`` before every pattern, so ``docker.io/…`` also covers ``index.docker.io/…`` (what it
    qualifies a Docker Hub name to) and ``registry-1.docker.io/…``; host-less patterns would match any repository
    ending in the same name, so they are left out.
    """
    hub = repository.partition("/")[0].lower() in DOCKER_HUB_HOSTS
    names = [n for n in pull_names(repository) if "/" in n and (not hub or n.startswith("docker.io/"))]
    folded = [_fold_host(n, "[{lo}{up}]") for n in names]
    return [g for n in folded for g in (f"{n}:*", f"{n}@*")]
