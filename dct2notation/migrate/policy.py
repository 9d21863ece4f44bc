"""Notation trust policy + trust store emitted from a DCT inventory and the signer mapping.

Repositories whose DCT signers map to the same certificate identities share one statement; the statement name is
derived from those identities, so adding or changing a delegation only touches the statements it belongs to.
"""

from __future__ import annotations

import base64
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

from ..config import DEFAULT_LIMITS, FixedClock, Limits, parse_rfc3339
from ..errors import ConfigError
from ..files import read_document, write_atomic, write_error
from ..keys.signingkeys import SigningKeys, notation_config_dir, signing_keys_path
from ..notation.certs import is_self_signed
from ..notation.policy import TrustPolicyDocument
from . import owned_output
from .admission import connaisseur, kyverno_clusterpolicy, kyverno_ivp, nirmata, ratify_v1, ratify_v2
from .admission.base import AdmissionInput, DctRepository, Level, Rendered, yaml_bytes
from .gaps import Gap, GapCollector, gaps_json, gaps_markdown
from .signers import RELEASES_ROLE, REPO_ADMIN_ROLE, MappedKey, RegistryMap, SignerMapping, signers_of_repository

KyvernoForm = Literal["ivp", "clusterpolicy", "none"]
RatifyVersion = Literal["v1", "v2", "none"]
VerifyTimestamp = Literal["always", "afterCertExpiry"]
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

    def to_dict(
        self, level: Level, tsa_stores: Sequence[str] = (), verify_timestamp: VerifyTimestamp = "always"
    ) -> dict[str, Any]:
        verification: dict[str, Any] = {"level": level}
        if tsa_stores:
            # Notation honours a timestamp only when the statement names a tsa store; without one every signature
            # fails authenticTimestamp the day its signing certificate expires.
            verification["verifyTimestamp"] = verify_timestamp
        return {
            "name": self.name,
            "registryScopes": list(self.repositories),
            "signatureVerification": verification,
            "trustStores": [f"ca:{store}" for store in self.stores] + [f"tsa:{store}" for store in tsa_stores],
            "trustedIdentities": [f"x509.subject: {identity}" for identity in self.identities],
        }


@dataclass
class Emission:
    statements: list[Statement]
    roots: dict[str, x509.Certificate]
    gaps: list[Gap]
    level: Level = "strict"
    certificates: dict[str, list[x509.Certificate]] = field(default_factory=dict)
    tsa_roots: dict[str, x509.Certificate] = field(default_factory=dict)
    verify_timestamp: VerifyTimestamp = "afterCertExpiry"

    def trust_policy(self) -> dict[str, Any]:
        tsa = sorted(self.tsa_roots)
        return {
            "version": "1.0",
            "trustPolicies": [s.to_dict(self.level, tsa, self.verify_timestamp) for s in self.statements],
        }

    def stores(self) -> dict[tuple[str, str], tuple[x509.Certificate, ...]]:
        found: dict[tuple[str, str], tuple[x509.Certificate, ...]] = {
            ("ca", name): (root,) for name, root in self.roots.items()
        }
        found.update({("tsa", name): (root,) for name, root in self.tsa_roots.items()})
        return found


@dataclass(frozen=True)
class AdmissionOptions:
    """Which admission targets to render and the cluster facts they need (``policy --kyverno/--ratify/...``)."""

    kyverno: KyvernoForm = "ivp"
    ratify: RatifyVersion = "v1"
    pull_secret: str | None = None
    namespaces: tuple[str, ...] = ()
    dct: tuple[DctRepository, ...] = ()
    notary_host: str | None = None


def tsa_stores(certs: Sequence[x509.Certificate]) -> dict[str, x509.Certificate]:
    """One tsa trust store per TSA root, named like the ca stores (CN + fingerprint prefix), duplicates merged."""
    return {"tsa-" + store_name(cert): cert for cert in certs}


def load_tsa_roots(paths: Sequence[Path]) -> dict[str, x509.Certificate]:
    """``--timestamp-root-cert`` files (PEM or DER, each a self-signed root: Notation's tsa store rule)."""
    from ..notation.timestamp import load_tsa_roots as load_roots

    return tsa_stores([cert for path in paths for cert in load_roots(path)])


def journal_tsa_roots(paths: Sequence[Path]) -> dict[str, x509.Certificate]:
    """The TSA roots ``sign PLAN --journal J --timestamp-url ...`` recorded in each journal (``policy --journal``)."""
    from .journal import read_tsa_roots

    certs: list[x509.Certificate] = []
    for path in paths:
        text = read_tsa_roots(path)
        if not text:
            raise ConfigError(f"--journal {path}: its signatures were not timestamped (no TSA root recorded)")
        try:
            found = x509.load_pem_x509_certificates(text.encode())
        except ValueError as exc:
            raise ConfigError(f"--journal {path}: recorded TSA roots are not PEM certificates ({exc})") from None
        for cert in found:
            if not is_self_signed(cert):
                raise ConfigError(f"--journal {path}: recorded TSA root {cert.subject.rfc4514_string()} is not a root")
        certs += found
    return tsa_stores(certs)


def _pem_certs(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(read_document(path, DEFAULT_LIMITS.config_file_bytes))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
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
    except OSError as exc:
        raise write_error(path, exc) from exc
    write_atomic(path, data)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def admission_input(emission: Emission, options: AdmissionOptions) -> AdmissionInput:
    return AdmissionInput(
        trust_policy=emission.trust_policy(),
        stores=emission.stores(),
        level=emission.level,
        pull_secret=options.pull_secret,
        namespaces=options.namespaces,
        dct=options.dct,
        notary_host=options.notary_host,
    )


def render_admission(inp: AdmissionInput, options: AdmissionOptions) -> list[Rendered]:
    """Every selected target's documents; Nirmata's identity-preserving resources always, Connaisseur with DCT keys."""
    rendered = []
    if options.kyverno == "ivp":
        rendered.append(kyverno_ivp.render(inp))
    elif options.kyverno == "clusterpolicy":
        rendered.append(kyverno_clusterpolicy.render(inp))
    if options.ratify == "v1":
        rendered.append(ratify_v1.render(inp))
    elif options.ratify == "v2":
        rendered.append(ratify_v2.render(inp))
    rendered.append(nirmata.render(inp))
    rendered.append(connaisseur.render(inp))
    return rendered


def write_emission(
    emission: Emission, outdir: Path, *, notation_version: int = 1, options: AdmissionOptions | None = None
) -> list[Path]:
    """Write trust policy, trust store, admission manifests and gaps; validates the policy before writing it."""
    options = options or AdmissionOptions()
    if not emission.statements:
        # The gaps are the reasons; they were announced ("see the gaps listed") but never printed.
        reasons = [f"{gap.what} ({', '.join(gap.repositories)}); {gap.todo}" for gap in emission.gaps[:3]]
        more = f" (and {len(emission.gaps) - 3} more)" if len(emission.gaps) > 3 else ""
        why = "; ".join(reasons) + more if reasons else "the inventory has no repository with a trusted tag"
        raise ConfigError(f"policy: no repository has a mapped signer with a usable certificate: {why}")
    previous = owned_output.claim(outdir, "policy")  # refuses a folder holding anything we did not write
    policy = emission.trust_policy()
    TrustPolicyDocument.from_dict(policy, "emitted trust policy")
    policy_bytes = (json.dumps(policy, indent=2) + "\n").encode()
    written: list[Path] = []
    names = ["trustpolicy.json"] + (["trustpolicy.oci.json"] if notation_version >= 2 else [])
    for name in names:
        _write(outdir / name, policy_bytes)
        written.append(outdir / name)
    for (kind, store), certs in sorted(emission.stores().items()):
        path = outdir / "truststore" / "x509" / kind / store / f"{store}.pem"
        _write(path, b"".join(pem(cert) for cert in certs))
        written.append(path)
    gaps = GapCollector()
    for gap in emission.gaps:
        for repository in gap.repositories:
            gaps.add(gap.kind, gap.detail, repository)
    for rendered in render_admission(admission_input(emission, options), options):
        for name, documents in rendered.files:
            _write(outdir / name, yaml_bytes(documents))
            written.append(outdir / name)
        for gap in rendered.gaps:
            for repository in gap.repositories:
                gaps.add(gap.kind, gap.detail, repository)
    emission.gaps = gaps.gaps()
    _write(outdir / "gaps.json", gaps_json(emission.gaps))
    _write(outdir / "GAPS.md", gaps_markdown(emission.gaps))
    written += [outdir / "gaps.json", outdir / "GAPS.md"]
    # A removed identity's trust store (and any file the new emission does not write) goes; only ours.
    now = {p.relative_to(outdir).as_posix() for p in written}
    owned_output.clear(outdir, [name for name in previous if name not in now])
    owned_output.record(outdir, "policy", written)
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


def dct_repositories(
    inventory: Any, archive: Path, *, registry_map: RegistryMap | None = None, limits: Limits = DEFAULT_LIMITS
) -> tuple[DctRepository, ...]:
    """Root key and delegations per GUN for Connaisseur's notaryv1 validator, re-verified from the archive.

    The archive is verified at the inventory's ``evaluated_at`` (it is hostile input like any other); the root key is
    the root role's certificate key, and the delegations are those that hold every pullable tag at its digest.
    """
    from ..dct.source import ArchiveSource
    from ..dct.tuf import verify_repository

    rmap = registry_map or RegistryMap()
    evaluated = inventory.get("evaluated_at") if isinstance(inventory, Mapping) else inventory.evaluated_at
    clock = FixedClock(parse_rfc3339(str(evaluated)))
    repos = inventory.get("repositories", []) if isinstance(inventory, Mapping) else inventory.repositories
    source = ArchiveSource(archive)
    found = []
    for repo in repos:
        gun = str(repo["gun"])
        verified = verify_repository(gun, source, clock, limits, keep_files=True)
        root = json.loads(verified.files["root"])["signed"]
        key_id = sorted(root["roles"]["root"]["keyids"])[0]
        cert = x509.load_pem_x509_certificate(base64.b64decode(root["keys"][key_id]["keyval"]["public"]))
        key_pem = cert.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        trusted = [(str(t["tag"]), str(t["digest"])) for t in repo.get("trusted_tags", [])]
        holders = [
            {role for role, targets in repo.get("role_targets", {}).items()
             if any((str(t["tag"]), str(t["digest"])) == tag for t in targets)}
            for tag in trusted
        ]  # fmt: skip
        common = set.intersection(*holders) if holders else set()
        delegations = tuple(sorted(r.removeprefix("targets/") for r in common if r != REPO_ADMIN_ROLE))
        # With delegations present and none required, Connaisseur reads targets/releases only (not docker's order).
        admin_only = sorted(
            str(t["tag"])
            for t in repo.get("trusted_tags", [])
            if repo.get("delegations") and t["role"] == REPO_ADMIN_ROLE
        )
        found.append(DctRepository(gun, rmap.apply(gun), key_pem.decode(), delegations, tuple(admin_only)))
    return tuple(found)
