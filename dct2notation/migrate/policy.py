"""Notation trust policy + trust store emitted from a DCT inventory and the signer mapping.

Repositories whose DCT signers map to the same certificate identities share one statement; the statement name is
derived from those identities, so adding or changing a delegation only touches the statements it belongs to.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from ..errors import ConfigError, InputError
from ..keys.signingkeys import SigningKeys, notation_config_dir, signing_keys_path
from ..notation.certs import is_self_signed
from ..notation.policy import TrustPolicyDocument
from .gaps import Gap, GapCollector
from .signers import RELEASES_ROLE, REPO_ADMIN_ROLE, MappedKey, RegistryMap, SignerMapping, signers_of_repository

Level = Literal["strict", "permissive", "audit"]
RELEASED_ROLES = (REPO_ADMIN_ROLE, RELEASES_ROLE)
_STORE_SAFE = re.compile(r"[^a-zA-Z0-9_.-]+")


@dataclass(frozen=True)
class Signer:
    """A mapped key whose certificate can be named: its identity and the root its chain ends in."""

    identity: str
    leaf: x509.Certificate
    root: x509.Certificate
    store: str


@dataclass(frozen=True)
class Statement:
    name: str
    repositories: tuple[str, ...]
    identities: tuple[str, ...]
    stores: tuple[str, ...]

    def to_dict(self, level: Level) -> dict[str, Any]:
        return {
            "name": self.name,
            "registryScopes": list(self.repositories),
            "signatureVerification": {"level": level},
            "trustStores": [f"ca:{store}" for store in self.stores],
            "trustedIdentities": [f"x509.subject: {identity}" for identity in self.identities],
        }


@dataclass
class Emission:
    statements: list[Statement]
    roots: dict[str, x509.Certificate]
    gaps: list[Gap]
    level: Level = "strict"
    certificates: dict[str, list[x509.Certificate]] = field(default_factory=dict)

    def trust_policy(self) -> dict[str, Any]:
        return {"version": "1.0", "trustPolicies": [s.to_dict(self.level) for s in self.statements]}


def _pem_certs(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a PEM certificate file ({exc})") from None


def mapped_chain(key: MappedKey, config_dir: Path | None = None) -> list[x509.Certificate]:
    """The chain a mapped key signs with (leaf first), then its ``ca_file`` roots; empty when none is known."""
    chain: list[x509.Certificate] = []
    if key.cert_file is not None:
        chain = _pem_certs(key.cert_file)
    elif key.key_name is not None:
        directory = notation_config_dir(config_dir)
        entries = SigningKeys.load(signing_keys_path(directory)).keys
        entry = next((e for e in entries if e.name == key.key_name), None)
        if entry is not None and entry.cert_path:
            chain = _pem_certs(Path(entry.cert_path))
    if key.ca_file is not None and chain:
        chain = chain + _pem_certs(key.ca_file)
    return chain


def subject_identity(cert: x509.Certificate) -> str | None:
    """RFC 4514 subject as Notation matches it, or None when C, ST or O is missing (Notation requires them)."""
    attrs = {a.oid for a in cert.subject}
    if not {NameOID.COUNTRY_NAME, NameOID.STATE_OR_PROVINCE_NAME, NameOID.ORGANIZATION_NAME} <= attrs:
        return None
    return cert.subject.rfc4514_string()


def store_name(root: x509.Certificate) -> str:
    """Readable and unique: the root's CN plus a fingerprint prefix (two roots may share a CN)."""
    cns = root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    label = _STORE_SAFE.sub("-", str(cns[0].value)).strip("-.").lower() if cns else "root"
    digest = root.fingerprint(hashes.SHA256()).hex()[:12]
    return f"{label or 'root'}-{digest}"


def _signer(key: MappedKey, chain: Sequence[x509.Certificate]) -> Signer | None:
    leaf = chain[0]
    identity = subject_identity(leaf)
    if identity is None:
        return None
    root = chain[-1]
    return Signer(identity=identity, leaf=leaf, root=root, store=store_name(root))


def _delegation_gaps(repo: Mapping[str, Any], repository: str, gaps: GapCollector) -> None:
    for deleg in repo.get("delegations", []):
        role = str(deleg["role"])
        # Reported even when the role signed nothing trusted: the restriction is still lost on migration.
        if int(deleg.get("threshold", 1)) > 1:
            gaps.add("threshold", f"{role} (threshold {deleg['threshold']})", repository)
        paths = [str(p) for p in deleg.get("paths", [])]
        if "" not in paths:
            gaps.add("path-restricted", f"{role} ({', '.join(paths) or 'no paths'})", repository)
    trusted = {str(t["tag"]) for t in repo.get("trusted_tags", [])}
    for role, targets in sorted(repo.get("role_targets", {}).items()):
        if role in RELEASED_ROLES:
            continue
        for target in targets:
            if str(target["tag"]) not in trusted:
                gaps.add("non-release-only", f"{target['tag']} ({role})", repository)


def build_emission(
    inventory: Any,
    mapping: SignerMapping,
    *,
    level: Level = "strict",
    registry_map: RegistryMap | None = None,
    config_dir: Path | None = None,
) -> Emission:
    """Statements, trust-store roots and gaps for every repository of ``inventory`` (object or JSON document)."""
    rmap = registry_map or RegistryMap()
    repos = inventory.get("repositories", []) if isinstance(inventory, Mapping) else inventory.repositories
    gaps = GapCollector()
    groups: dict[tuple[str, ...], tuple[set[str], set[str]]] = {}
    roots: dict[str, x509.Certificate] = {}
    chains: dict[int, list[x509.Certificate]] = {}
    for repo in repos:
        gun = str(repo["gun"])
        repository = rmap.apply(gun)
        roles = signers_of_repository(repo)
        _delegation_gaps(repo, repository, gaps)
        signers: list[Signer] = []
        for role in roles:
            key = mapping.key_for(gun, role)
            if key is None:
                gaps.add("unmapped-signer", f"{gun} {role}", repository)
                continue
            if key.index not in chains:
                chains[key.index] = mapped_chain(key, config_dir)
            chain = chains[key.index]
            if not chain:
                gaps.add("no-certificate", f"{gun} {role} ({key.label})", repository)
                continue
            signer = _signer(key, chain)
            if signer is None:
                gaps.add("incomplete-subject", f"{gun} {role} ({chain[0].subject.rfc4514_string()})", repository)
                continue
            if not is_self_signed(signer.root):
                raise ConfigError(
                    f"{mapping.path}: signer[{key.index}]: chain of {signer.identity} does not end in a root; "
                    "set ca_file to its root certificate"
                )
            signers.append(signer)
        if not signers:
            continue
        identities = tuple(sorted({s.identity for s in signers}))
        group = groups.setdefault(identities, (set(), set()))
        group[0].add(repository)
        for s in signers:
            group[1].add(s.store)
            roots[s.store] = s.root
    statements = [
        Statement(
            name="dct-" + hashlib.sha256("\n".join(identities).encode()).hexdigest()[:12],
            repositories=tuple(sorted(repositories)),
            identities=identities,
            stores=tuple(sorted(stores)),
        )
        for identities, (repositories, stores) in groups.items()
    ]
    statements.sort(key=lambda s: s.name)
    return Emission(statements=statements, roots=roots, gaps=gaps.gaps(), level=level)


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror})") from exc


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_emission(emission: Emission, outdir: Path, *, notation_version: int = 1) -> list[Path]:
    """Write trust policy, trust store, admission manifests and gaps; validates the policy before writing it."""
    from .admission import kyverno_documents, ratify_documents, yaml_bytes
    from .gaps import gaps_json, gaps_markdown

    if not emission.statements:
        raise ConfigError("policy: no repository has a mapped signer with a usable certificate; see the gaps listed")
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"-o {outdir}: exists and is not a directory")
    policy = emission.trust_policy()
    TrustPolicyDocument.from_dict(policy, "emitted trust policy")
    policy_bytes = (json.dumps(policy, indent=2) + "\n").encode()
    written: list[Path] = []
    names = ["trustpolicy.json"] + (["trustpolicy.oci.json"] if notation_version >= 2 else [])
    for name in names:
        _write(outdir / name, policy_bytes)
        written.append(outdir / name)
    for store, root in sorted(emission.roots.items()):
        path = outdir / "truststore" / "x509" / "ca" / store / f"{store}.pem"
        _write(path, pem(root))
        written.append(path)
    for name, doc in ratify_documents(emission):
        _write(outdir / "ratify" / name, yaml_bytes(doc))
        written.append(outdir / "ratify" / name)
    for name, doc in kyverno_documents(emission):
        _write(outdir / "kyverno" / name, yaml_bytes(doc))
        written.append(outdir / "kyverno" / name)
    _write(outdir / "gaps.json", gaps_json(emission.gaps))
    _write(outdir / "GAPS.md", gaps_markdown(emission.gaps))
    written += [outdir / "gaps.json", outdir / "GAPS.md"]
    return written


def check_policy_dir(outdir: Path) -> list[str]:
    """Re-read an emitted directory as Notation would (``NOTATION_CONFIG=OUTDIR``); one line per statement."""
    from ..notation.truststore import TrustStore

    if not outdir.is_dir():
        raise ConfigError(f"{outdir}: policy directory does not exist")
    document = TrustPolicyDocument.load_from_config(outdir)
    store = TrustStore(outdir / "truststore")
    lines = []
    for statement in document.statements:
        count = 0
        for kind, name in statement.trust_stores:
            certs = store.certificates(kind, name)
            if not certs:
                raise ConfigError(f"{outdir}: trust store {kind}:{name} of statement {statement.name!r} is empty")
            count += len(certs)
        lines.append(
            f"{statement.name}: {len(statement.registry_scopes)} repositories, "
            f"{len(statement.trusted_identities)} identities, {count} trusted certificates"
        )
    return lines
