"""The migration plan: one job per (repository, digest, identity), built from a verified DCT inventory.

The document is stable and documented in docs/plan.md. Sharding hashes the SUBJECT (repository, digest), never the
identity, so every signature of one subject is written by one process (parallel tag-schema writers drop entries).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import DEFAULT_LIMITS
from ..dct.inventory import Inventory
from ..errors import InputError, UsageError
from ..files import write_atomic
from ..jsontext import load_json_file

if TYPE_CHECKING:
    from ..registry.store import SignatureStore

FORMAT = "dct2notation-plan/1"
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
ANNOTATION_PREFIX = "io.dct2notation.migration."
KeyFor = Callable[[str, str], "str | None"]


class UnmappedSignersError(InputError):
    """Trusted DCT roles with no Notation key: listed all at once so one edit of signers.toml fixes them."""


class UntrustedJobError(InputError):
    """Plan jobs that sign something no DCT role trusted: the plan was edited (or made from another inventory)."""


@dataclass(frozen=True)
class InventoryBinding:
    """The inventory a plan was made from: the sha256 of its file and its DCT evaluation time.

    The plan is an editable file (a ConfigMap in Kubernetes); ``sign`` is handed the inventory separately and checks
    both that it is this one and that every job is one of its trusted digests, so an added job is never signed.
    """

    digest: str
    evaluated_at: str

    def to_dict(self) -> dict[str, str]:
        return {"digest": self.digest, "evaluated_at": self.evaluated_at}


@dataclass(frozen=True)
class Parent:
    """The index a platform manifest job was found in (``plan --children``): its digest, tags and the platform."""

    digest: str
    tags: tuple[str, ...]
    platform: str

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "tags": list(self.tags), "platform": self.platform}


@dataclass(frozen=True)
class Job:
    repository: str  # registry host + repository path, e.g. ``127.0.0.1:5000/app``
    digest: str
    size: int
    identity: str  # the Notation key spec that inherits the DCT signer's authority
    gun: str
    role: str
    tags: tuple[str, ...]
    migration_id: str
    # The subject's manifest media type as the pre-flight HEAD saw it (its size matched): sign builds the subject
    # descriptor from the plan instead of HEADing each manifest again. None (no pre-flight): sign HEADs it.
    media_type: str | None = None
    # Set on a child job: the DCT-trusted index that lists this platform manifest (its tags are the index's).
    parent: Parent | None = None

    @property
    def key(self) -> str:
        return f"{self.repository}@{self.digest}#{self.identity}"

    @property
    def subject_key(self) -> str:
        return f"{self.repository}@{self.digest}"

    @property
    def reference(self) -> str:
        return f"{self.repository}@{self.digest}"

    def annotations(self) -> dict[str, str]:
        """Provenance carried into the signed payload's user metadata."""
        out = {
            ANNOTATION_PREFIX + "gun": self.gun,
            ANNOTATION_PREFIX + "tags": ",".join(self.tags),
            ANNOTATION_PREFIX + "role": self.role,
            # Docker's TUF target hash is the manifest's sha256, kept under its TUF name for auditors.
            ANNOTATION_PREFIX + "tuf-sha256": self.digest.removeprefix("sha256:"),
            ANNOTATION_PREFIX + "id": self.migration_id,
        }
        if self.parent is not None:
            # Which trusted index vouched for this platform manifest: an auditor follows it back to the DCT tag.
            out[ANNOTATION_PREFIX + "index-digest"] = self.parent.digest
            out[ANNOTATION_PREFIX + "index-tags"] = ",".join(self.parent.tags)
            if self.parent.platform:
                out[ANNOTATION_PREFIX + "platform"] = self.parent.platform
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "repository": self.repository,
            "digest": self.digest,
            "size": self.size,
            "identity": self.identity,
            "tags": list(self.tags),
            "annotations": self.annotations(),
        }
        if self.media_type is not None:
            out["mediaType"] = self.media_type
        if self.parent is not None:
            out["parent"] = self.parent.to_dict()
        return out


@dataclass
class Plan:
    migration_id: str
    jobs: list[Job]
    preflight: dict[str, Any] | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    inventory: InventoryBinding | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT, "migration_id": self.migration_id}
        if self.inventory is not None:
            out["inventory"] = self.inventory.to_dict()
        out["jobs"] = [j.to_dict() for j in self.jobs]
        if self.preflight is not None:
            out["preflight"] = self.preflight
        if self.findings:
            out["findings"] = self.findings
        return out

    def save(self, path: Path) -> None:
        # Temp file + rename: a failed rewrite (a full disk) leaves the previous plan whole.
        write_atomic(path, json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n", noun="the plan")


def shard_of(repository: str, digest: str, count: int) -> int:
    """Stable across processes, hosts and Python versions (no ``hash()``: it is salted per process)."""
    raw = hashlib.sha256(f"{repository}@{digest}".encode()).digest()
    return int.from_bytes(raw[:8], "big") % count


def parse_shard(text: str) -> tuple[int, int]:
    """``i/N`` with 0 <= i < N (0-based, as ``JOB_COMPLETION_INDEX``)."""
    index, sep, count = text.partition("/")
    if not sep or not index.isdigit() or not count.isdigit():
        raise UsageError(f"--shard {text!r}: expected i/N, e.g. 0/4")
    i, n = int(index), int(count)
    if n < 1 or i >= n:
        raise UsageError(f"--shard {text!r}: index must be in 0..N-1 and N at least 1")
    return i, n


def select_shard(jobs: Iterable[Job], shard: tuple[int, int] | None) -> list[Job]:
    if shard is None:
        return list(jobs)
    i, n = shard
    return [j for j in jobs if shard_of(j.repository, j.digest, n) == i]


def parse_registry_map(items: Iterable[str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for item in items:
        gun_prefix, sep, registry_prefix = item.partition("=")
        if not sep or not gun_prefix or not registry_prefix:
            raise UsageError(f"--registry-map {item!r}: expected GUN_PREFIX=REGISTRY_PREFIX")
        pairs.append((gun_prefix.rstrip("/"), registry_prefix.rstrip("/")))
    # Longest prefix first, so a specific mapping wins over a general one.
    return sorted(pairs, key=lambda p: len(p[0]), reverse=True)


def map_repository(gun: str, registry_map: Iterable[tuple[str, str]]) -> str:
    for gun_prefix, registry_prefix in registry_map:
        if gun == gun_prefix or gun.startswith(gun_prefix + "/"):
            return registry_prefix + gun[len(gun_prefix) :]
    return gun


def unused_prefixes(guns: Iterable[str], registry_map: Iterable[tuple[str, str]]) -> list[str]:
    """``--registry-map`` entries that map none of ``guns``: a typo'd prefix silently sent its GUNs to their own
    registry host (docker.io for Docker Hub GUNs)."""
    names = list(guns)
    return [
        f"{gun_prefix}={registry_prefix}"
        for gun_prefix, registry_prefix in registry_map
        if not any(g == gun_prefix or g.startswith(gun_prefix + "/") for g in names)
    ]


def require_used_prefixes(guns: Iterable[str], registry_map: Iterable[tuple[str, str]]) -> None:
    names = sorted(set(guns))
    unused = unused_prefixes(names, registry_map)
    if unused:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise UsageError(f"--registry-map {', '.join(unused)}: matches no GUN ({shown or 'no GUN'})")


def derived_migration_id(jobs: Iterable[Job]) -> str:
    """A UUID from what the plan signs (each job's repository, digest, size, key, GUN, role and tags): the same
    inventory and signers give the same id, so re-running `plan` (say with --emit-k8s-job) keeps the journal and the
    signatures already made valid; a plan that signs anything else is another migration."""
    canonical = json.dumps(
        [[j.repository, j.digest, j.size, j.identity, j.gun, j.role, list(j.tags)] for j in jobs],
        separators=(",", ":"),
    )
    return str(uuid.uuid5(_MIGRATION_NAMESPACE, canonical))


_MIGRATION_NAMESPACE = uuid.UUID("6f0c7d1e-3f1b-5b8e-9a44-2d6a7c1e0b15")


def build_plan(
    inventory: Inventory,
    key_for: KeyFor,
    *,
    migration_id: str | None = None,
    registry_map: Iterable[tuple[str, str]] = (),
) -> Plan:
    """Jobs for every trusted tag (docker pull semantics): a tag only in another delegation is never signed.

    ``key_for(gun, role)`` gives the Notation key mapped to a DCT role, or None; every unmapped role is reported.
    ``migration_id`` None: derived from the jobs (``derived_migration_id``).
    """
    mapping = list(registry_map)
    require_used_prefixes((str(repo["gun"]) for repo in inventory.repositories), mapping)
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    unmapped: set[tuple[str, str]] = set()
    for repo in inventory.repositories:
        gun = str(repo["gun"])
        repository = map_repository(gun, mapping)
        for tag in repo.get("trusted_tags", []):
            role = str(tag["role"])
            identity = key_for(gun, role)
            if identity is None:
                unmapped.add((gun, role))
                continue
            slot = merged.setdefault(
                (repository, str(tag["digest"]), identity),
                {"size": int(tag["size"]), "gun": gun, "roles": set(), "tags": set()},
            )
            slot["roles"].add(role)
            slot["tags"].add(str(tag["tag"]))
    if unmapped:
        listed = ", ".join(f"{gun} {role}" for gun, role in sorted(unmapped))
        raise UnmappedSignersError(f"signers: no Notation key mapped for DCT signer(s): {listed}")
    jobs = [
        Job(
            repository=repository,
            digest=digest,
            size=slot["size"],
            identity=identity,
            gun=slot["gun"],
            role=",".join(sorted(slot["roles"])),
            tags=tuple(sorted(slot["tags"])),
            migration_id=migration_id or "",
        )
        for (repository, digest, identity), slot in sorted(merged.items())
    ]
    if migration_id is None:
        migration_id = derived_migration_id(jobs)
        jobs = [dataclasses.replace(job, migration_id=migration_id) for job in jobs]
    binding = InventoryBinding(inventory.digest, inventory.evaluated_at) if inventory.digest else None
    return Plan(migration_id, jobs, inventory=binding)


def untrusted_jobs(jobs: Iterable[Job], repositories: Iterable[Mapping[str, Any]]) -> list[str]:
    """Each job that is not a DCT-trusted digest of its GUN in ``repositories`` (inventory documents), and why.

    Trusted means what the plan is made from (``trusted_tags``, docker pull semantics): the job's (GUN, digest) is
    there, with the job's size (TUF length), and every tag and role the job carries into the signature.
    """
    trusted: dict[tuple[str, str], tuple[int, set[str], set[str]]] = {}
    for repo in repositories:
        for tag in repo.get("trusted_tags", []):
            slot = trusted.setdefault((str(repo["gun"]), str(tag["digest"])), (int(tag["size"]), set(), set()))
            slot[1].add(str(tag["tag"]))
            slot[2].add(str(tag["role"]))
    out: list[str] = []
    for n, job in enumerate(jobs):
        at = f"jobs[{n}] {job.repository}@{job.digest} [{job.identity}]"
        if job.parent is not None:
            # A child is trusted through its index (sign checks the index lists it: children.confirm_children);
            # it carries no tag of its own.
            parent = trusted.get((job.gun, job.parent.digest))
            if parent is None:
                out.append(f"{at}: parent index {job.parent.digest} is not a digest DCT trusted for GUN {job.gun!r}")
                continue
            if job.tags:
                out.append(f"{at}: a platform manifest job carries no tags of its own")
            extra = sorted(set(job.parent.tags) - parent[1]) + sorted(set(job.role.split(",")) - parent[2])
            if extra:
                out.append(f"{at}: tag(s)/role(s) {', '.join(extra)} not trusted at its parent index")
            continue
        found = trusted.get((job.gun, job.digest))
        if found is None:
            out.append(f"{at}: not a digest DCT trusted for GUN {job.gun!r}")
            continue
        size, tags, roles = found
        if job.size != size:
            out.append(f"{at}: size {job.size} is not the trusted TUF length {size}")
        extra_tags = sorted(set(job.tags) - tags)
        if extra_tags:
            out.append(f"{at}: tag(s) {', '.join(extra_tags)} not trusted at this digest")
        extra_roles = sorted(set(job.role.split(",")) - roles)
        if extra_roles:
            out.append(f"{at}: role(s) {', '.join(extra_roles)} did not sign this digest")
    return out


def check_against_inventory(plan: Plan, inventory: Inventory, *, plan_where: str, inventory_where: str) -> None:
    """Before anything is signed: ``inventory`` is the one the plan was made from, and every job is trusted by it."""
    if plan.inventory is None:
        raise InputError(
            f"{plan_where}: field 'inventory' is missing: the plan is not bound to the inventory it was made from, so "
            "its jobs cannot be checked against what DCT trusted (make it again with `dct2notation plan`)"
        )
    if inventory.digest != plan.inventory.digest:
        raise InputError(
            f"--inventory {inventory_where}: {inventory.digest} is not the inventory {plan_where} was made from "
            f"({plan.inventory.digest})"
        )
    problems = untrusted_jobs(plan.jobs, inventory.repositories)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise UntrustedJobError(
            f"{plan_where}: {len(problems)} job(s) do not match what DCT trusted in {inventory_where}; "
            f"nothing signed: {shown}"
        )


def _field(obj: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(f"{where}: field {name!r} must be {kind.__name__}")
    return value


def plan_from_dict(doc: Any, where: str) -> Plan:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(f"{where}: not a plan (expected format {FORMAT!r})")
    migration_id = _field(doc, "migration_id", str, where)
    raw_jobs = _field(doc, "jobs", list, where)
    jobs: list[Job] = []
    seen: set[str] = set()
    for n, raw in enumerate(raw_jobs):
        at = f"{where}: jobs[{n}]"
        if not isinstance(raw, dict):
            raise InputError(f"{at}: must be an object")
        digest = _field(raw, "digest", str, at)
        if not digest.startswith("sha256:") or len(digest) != 71:
            raise InputError(f"{at}: field 'digest' must be sha256:<64 hex>")
        annotations = raw.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise InputError(f"{at}: field 'annotations' must be an object")
        tags = _field(raw, "tags", list, at)
        media_type = raw.get("mediaType")
        if media_type is not None and (not isinstance(media_type, str) or not media_type):
            raise InputError(f"{at}: field 'mediaType' must be a non-empty string")
        job = Job(
            parent=_parent(raw.get("parent"), at),
            repository=_field(raw, "repository", str, at),
            digest=digest,
            size=_field(raw, "size", int, at),
            identity=_field(raw, "identity", str, at),
            gun=str(annotations.get(ANNOTATION_PREFIX + "gun", "")),
            role=str(annotations.get(ANNOTATION_PREFIX + "role", "")),
            tags=tuple(str(t) for t in tags),
            migration_id=migration_id,
            media_type=media_type,
        )
        if job.key in seen:
            raise InputError(f"{at}: duplicate job {job.key}")
        seen.add(job.key)
        jobs.append(job)
    plan = Plan(migration_id, jobs, inventory=_binding(doc.get("inventory"), where))
    pre = doc.get("preflight")
    plan.preflight = pre if isinstance(pre, dict) else None
    return plan


def _parent(raw: Any, at: str) -> Parent | None:
    if raw is None:
        return None
    digest = raw.get("digest") if isinstance(raw, dict) else None
    tags = raw.get("tags") if isinstance(raw, dict) else None
    platform = raw.get("platform", "") if isinstance(raw, dict) else None
    if (
        not isinstance(digest, str)
        or not _SHA256.fullmatch(digest)
        or not isinstance(tags, list)
        or not all(isinstance(t, str) for t in tags)
        or not isinstance(platform, str)
    ):
        shape = '{"digest": "sha256:<64 hex>", "tags": [...], "platform": "os/arch"}'
        raise InputError(f"{at}: field 'parent' must be {shape}")
    return Parent(digest, tuple(tags), platform)


def _binding(raw: Any, where: str) -> InventoryBinding | None:
    if raw is None:
        return None
    digest = raw.get("digest") if isinstance(raw, dict) else None
    stamp = raw.get("evaluated_at") if isinstance(raw, dict) else None
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest) or not isinstance(stamp, str):
        raise InputError(
            f'{where}: field \'inventory\' must be {{"digest": "sha256:<64 hex>", "evaluated_at": "<RFC 3339>"}}'
        )
    return InventoryBinding(digest, stamp)


def load_plan(path: Path) -> Plan:
    doc = load_json_file(path, what="plan", max_bytes=DEFAULT_LIMITS.document_bytes)
    return plan_from_dict(doc, str(path))


async def _check_job(job: Job, store: SignatureStore) -> tuple[str | None, list[dict[str, Any]]]:
    """(the subject's media type when the registry's size matches the TUF length, findings)."""
    from ..errors import NotFoundError
    from ..registry.reference import Reference

    base = store.subject_reference(job.repository, job.digest)
    found: list[dict[str, Any]] = []
    try:
        desc = await store.aresolve(base)
    except NotFoundError:
        return None, [
            {"kind": "missing-manifest", "detail": f"{job.reference} is not in the registry; nothing to sign"}
        ]
    media_type: str | None = desc.media_type
    if desc.size != job.size:
        media_type = None  # sign HEADs it again and signs what the registry holds
        found.append(
            {"kind": "size-mismatch", "detail": f"registry size {desc.size} differs from TUF length {job.size}"}
        )
    for tag in job.tags:
        try:
            tagged = await store.aresolve(Reference(base.registry, base.repository, tag, None))
        except NotFoundError:
            found.append({"kind": "tag-missing", "tag": tag, "detail": f"tag {tag} no longer exists in the registry"})
            continue
        if tagged.digest != job.digest:
            found.append(
                {
                    "kind": "tag-drift",
                    "tag": tag,
                    "registry_digest": tagged.digest,
                    "detail": f"tag {tag} now points at {tagged.digest}; the trusted DCT digest is signed",
                }
            )
    return media_type, found


async def preflight(plan: Plan, stores: Callable[[str], SignatureStore], *, concurrency: int = 16) -> None:
    """HEAD every subject and tag: missing manifests, size ≠ TUF length and tag drift, per job and in total.

    A job whose manifest is gone is dropped from the plan (it cannot be signed); drift only warns, because the
    trusted digest is what the migration signs.
    """
    gate = asyncio.Semaphore(concurrency)
    subjects: dict[str, list[Job]] = {}
    for job in plan.jobs:
        subjects.setdefault(job.subject_key, []).append(job)

    async def check(jobs: list[Job]) -> tuple[list[Job], str | None, list[dict[str, Any]]]:
        async with gate:
            return jobs, *await _check_job(jobs[0], stores(jobs[0].repository.partition("/")[0]))

    results = await asyncio.gather(*(check(j) for j in subjects.values()))
    totals: dict[str, int] = {}
    findings: list[dict[str, Any]] = []
    missing: set[str] = set()
    media_types: dict[str, str] = {}
    for jobs, media_type, found in results:
        if media_type:
            media_types[jobs[0].subject_key] = media_type
        for item in found:
            totals[item["kind"]] = totals.get(item["kind"], 0) + 1
            findings.append({"repository": jobs[0].repository, "digest": jobs[0].digest, **item})
            if item["kind"] == "missing-manifest":
                missing.add(jobs[0].subject_key)
    plan.findings = findings
    plan.jobs = [
        dataclasses.replace(j, media_type=media_types.get(j.subject_key))
        for j in plan.jobs
        if j.subject_key not in missing
    ]
    plan.preflight = {"subjects": len(subjects), "jobs": len(plan.jobs), "findings": totals}


# Statuses a signing batch can fix: the DCT-trusted digest is in the registry but has no valid Notation signature.
REMEDIABLE = ("notation-missing", "notation-invalid", "notation-unenforced")


def remediation_subjects(check: Path) -> set[tuple[str, str]]:
    """(repository, digest) of every unmet, unwaived tag of a ``check --json`` run that signing fixes (``REMEDIABLE``,
    DCT valid on the registry's digest). Drift, dct-missing and manifest-missing need DCT or the registry instead."""
    doc = load_json_file(
        check, what="`check --json` output", max_bytes=DEFAULT_LIMITS.document_bytes, where=f"--from-check {check}"
    )
    tags = doc.get("tags") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("format") != "dct2notation-check/1" or not isinstance(tags, list):
        raise InputError(f"--from-check {check}: not a `check --json` document (format dct2notation-check/1)")
    out: set[tuple[str, str]] = set()
    for row in tags:
        if not isinstance(row, dict) or row.get("requirement_met") or row.get("status") not in REMEDIABLE:
            continue
        if row.get("dct") == "valid" and row.get("dct_digest") == row.get("registry_digest"):
            out.add((str(row.get("repository")), str(row.get("dct_digest"))))
    return out
