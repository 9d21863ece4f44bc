"""How to reach a registry: plain HTTP hosts, CA bundle, credentials, limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..config import DEFAULT_LIMITS, Limits

ReferrersMode = Literal["auto", "api", "tag"]


@dataclass(frozen=True)
class Basic:
    """``--username``/``--password-stdin``; the password never appears in repr, logs or errors."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class RegistryOptions:
    # Plain HTTP is opt-in per host, as with docker's insecure-registries and notation's --insecure-registry.
    insecure_registries: frozenset[str] = frozenset()
    ca_file: Path | None = None
    credentials: Basic | None = None
    docker_config: Path | None = None  # directory holding config.json; None = $DOCKER_CONFIG or ~/.docker
    # "auto": Referrers API when the registry answers a subject push with OCI-Subject, else the tag schema
    # (what Notation 2 and oras do); "tag" always maintains the sha256-<hex> index (Notation 1.x default).
    referrers: ReferrersMode = "auto"
    limits: Limits = DEFAULT_LIMITS

    def scheme(self, host: str) -> str:
        return "http" if host in self.insecure_registries else "https"
