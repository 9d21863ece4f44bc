"""What every admission target reads (the finished trust policy and trust store) and what it returns."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from ...notation.policy import WILDCARD
from ..gaps import Gap
from .image_names import canonical_repository

Level = Literal["strict", "permissive", "audit"]
NOTATION_ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"
# Seconds the API server waits for the admission webhook; Kyverno's own default is 10, which a registry round trip
# per image (signature list, manifest, envelope) can exceed on a cold cache.
WEBHOOK_TIMEOUT_SECONDS = 30
# One name for the objects a runbook patches or deletes; statement-level objects append the statement name.
PREFIX = "dct2notation"
Document = dict[str, Any]
_SHA256 = hashes.SHA256()


@dataclass(frozen=True)
class DctRepository:
    """A migrated repository as DCT knew it, for validators that still check Notary v1 (Connaisseur)."""

    gun: str
    repository: str
    root_key_pem: str  # the public key of the GUN's root role, PEM
    delegations: tuple[str, ...]  # delegation names whose signatures made tags pullable (without ``targets/``)
    # Pullable tags only the Repo Admin (targets) signed, in a repository that has delegations.
    admin_only_tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class AdmissionInput:
    """The trust policy as written to ``trustpolicy.json`` plus the certificates of every store it names."""

    trust_policy: dict[str, Any]
    stores: dict[tuple[str, str], tuple[x509.Certificate, ...]]  # (kind, name) -> certificates
    level: Level
    pull_secret: str | None = None
    namespaces: tuple[str, ...] = ()
    dct: tuple[DctRepository, ...] = ()
    notary_host: str | None = None

    def statements(self) -> list[dict[str, Any]]:
        statements: list[dict[str, Any]] = self.trust_policy["trustPolicies"]
        return statements

    def store_names(self, statement: dict[str, Any], kind: str) -> list[str]:
        names = []
        for entry in statement["trustStores"]:
            store_kind, _, name = str(entry).partition(":")
            if store_kind == kind:
                names.append(name)
        return names

    def pem_bundle(self, statement: dict[str, Any], kind: str) -> str:
        """Every certificate of the statement's stores of ``kind``, concatenated in store order."""
        return "".join(pem(cert) for name in self.store_names(statement, kind) for cert in self.stores[(kind, name)])

    def all_stores(self, kind: str) -> Iterator[tuple[str, tuple[x509.Certificate, ...]]]:
        for (store_kind, name), certs in sorted(self.stores.items()):
            if store_kind == kind:
                yield name, certs

    def repositories(self) -> list[str]:
        return sorted({str(scope) for st in self.statements() for scope in st["registryScopes"]})

    def canonical_repositories(self) -> list[str]:
        """Every repository as the runtime qualifies it (``canonical_repository``), e.g. for the Gatekeeper template,
        which compares qualified image references: a scope spelled ``REG.EXAMPLE/app`` or ``docker.io/nginx`` would
        otherwise never equal one."""
        return sorted({canonical_repository(r) for r in self.repositories() if r != WILDCARD})

    def canonical_trust_policy(self) -> dict[str, Any]:
        """The trust policy with each statement's scopes followed by their qualified forms where those differ.

        For verifiers handed qualified references (Ratify behind the Gatekeeper template, Nirmata's verifier): their
        notation-go looks the reference's repository up in ``registryScopes`` exactly. A qualified form another
        statement already names is not added (a scope may belong to one statement only).
        """
        document = copy.deepcopy(self.trust_policy)
        taken = set(self.repositories())
        for statement in document["trustPolicies"]:
            for scope in list(statement["registryScopes"]):
                canonical = canonical_repository(str(scope)) if scope != WILDCARD else scope
                if canonical not in taken:
                    statement["registryScopes"].append(canonical)
                    taken.add(canonical)
        return document


@dataclass
class Rendered:
    """Files (relative path → documents) and what the target cannot carry, as gaps for GAPS.md."""

    files: list[tuple[str, list[Document]]] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def yaml_bytes(documents: list[Document]) -> bytes:
    """PyYAML dump, so PEM blocks, scopes and names are always quoted correctly."""
    text = yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False, explicit_start=True)
    return text.encode()


def any_identity_gaps(inp: AdmissionInput, kind: str = "kyverno-any-identity") -> list[Gap]:
    """Statements a chain-only verifier (Kyverno, Connaisseur) weakens: a root shared with another statement, a CA root.

    A self-signed root that is itself one of the statement's identities admits only that certificate; a root shared
    with another statement admits that statement's signers too, and a CA root admits any leaf it ever issued.
    """
    roots: dict[str, set[bytes]] = {}
    for st in inp.statements():
        roots[st["name"]] = {c.fingerprint(_SHA256) for n in inp.store_names(st, "ca") for c in inp.stores[("ca", n)]}
    gaps = []
    for st in inp.statements():
        name = st["name"]
        sharing = sorted(o for o, theirs in roots.items() if o != name and theirs & roots[name])
        identities = {str(i).removeprefix("x509.subject: ") for i in st.get("trustedIdentities", [])}
        issuing = [
            c.subject.rfc4514_string()
            for n in inp.store_names(st, "ca")
            for c in inp.stores[("ca", n)]
            if c.subject.rfc4514_string() not in identities
        ]
        reasons = []
        if sharing:
            reasons.append(f"shares a root with {', '.join(sharing)}")
        if issuing:
            reasons.append(f"CA root {', '.join(sorted(issuing))} may issue other certificates")
        if reasons:
            gaps.append(Gap(kind, f"{name} ({'; '.join(reasons)})", tuple(st["registryScopes"])))
    return gaps


def enforcing(level: Level) -> bool:
    """Only ``strict`` blocks at admission; ``permissive`` warns and ``audit`` records (runbook 04 starts there)."""
    return level == "strict"
