"""Platform manifests of a signed index (``plan --children``): each child an index lists is signed too.

DCT signs the tag's manifest list / OCI index, and that is what Ratify and Kyverno verify, so the index job stays.
A policy that resolves to the platform manifest (a runtime pulling by platform digest, a scanner's admission
check) needs a signature on the child as well. A child is planned only after it is checked: present in the
registry with the size the index lists (the index is content-addressed, so its list is what DCT vouched for);
its job names the parent index digest and tags in the signed annotations. ``sign`` checks every child job again
against the parent index it names, fetched by digest, so a child added to an edited plan is never signed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..config import Limits
from ..errors import InputError, NotFoundError
from ..notation.manifest import parse_index
from ..oci import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from ..registry.reference import parse_reference, validate_digest
from .plan import Job, Parent, Plan

if TYPE_CHECKING:
    from ..registry.store import SignatureStore

INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
CHILD_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)


@dataclasses.dataclass(frozen=True)
class Child:
    digest: str
    size: int
    media_type: str
    platform: str  # os/architecture[/variant], "" when the index names none


def index_children(raw: bytes, where: str, limits: Limits) -> list[Child]:
    """The image manifests an index lists (nested indexes and non-image entries are not children we sign)."""
    children: list[Child] = []
    for n, entry in enumerate(parse_index(raw, where=where, limits=limits, media_types=INDEX_TYPES)):
        at = f"{where}: manifests[{n}]"
        try:
            validate_digest(entry.digest, where=at)
        except Exception as exc:
            raise InputError(str(exc)) from exc
        if not entry.digest.startswith("sha256:"):
            raise InputError(f"{at}: {entry.digest[:80]!r}: only sha256 children are signed")
        if entry.media_type not in CHILD_TYPES:
            continue
        platform = entry.extra.get("platform")
        parts = [platform.get(k) for k in ("os", "architecture", "variant")] if isinstance(platform, dict) else []
        children.append(
            Child(entry.digest, entry.size, entry.media_type, "/".join(p for p in parts if isinstance(p, str) and p))
        )
    return children


async def expand_children(plan: Plan, stores: Callable[[str], SignatureStore], *, concurrency: int = 16) -> None:
    """Add a job per child of every index job whose pre-flight matched (``media_type`` is an index type)."""
    gate = asyncio.Semaphore(concurrency)
    have = {job.key for job in plan.jobs}
    parents: dict[str, list[Job]] = {}
    for job in plan.jobs:
        if job.media_type in INDEX_TYPES and job.parent is None:
            parents.setdefault(job.subject_key, []).append(job)

    async def children_of(jobs: list[Job]) -> tuple[list[Job], list[tuple[Child, str | None]]]:
        ref = parse_reference(jobs[0].reference)
        store = stores(ref.registry)
        async with gate:
            raw = await store.aget_manifest(ref.repository, jobs[0].digest)
        checked: list[tuple[Child, str | None]] = []
        for child in index_children(raw, jobs[0].reference, store.limits):
            async with gate:
                try:
                    desc = await store.aresolve(ref.with_digest(child.digest))
                except NotFoundError:
                    checked.append((child, "child-missing"))
                    continue
            checked.append((child, None if desc.size == child.size else f"child-size-mismatch:{desc.size}"))
        return jobs, checked

    results = await asyncio.gather(*(children_of(jobs) for jobs in parents.values()))
    added: list[Job] = []
    counted = 0
    for jobs, checked in results:
        for child, problem in checked:
            if problem is not None:
                kind, _, registry_size = problem.partition(":")
                detail = (
                    f"{jobs[0].repository}@{child.digest} is not in the registry; not signed"
                    if kind == "child-missing"
                    else f"registry size {registry_size} differs from the index's {child.size}; not signed"
                )
                plan.findings.append(
                    {"repository": jobs[0].repository, "digest": jobs[0].digest, "kind": kind, "child": child.digest,
                     "detail": detail}
                )  # fmt: skip
                continue
            for job in jobs:
                child_job = dataclasses.replace(
                    job,
                    digest=child.digest,
                    size=child.size,
                    tags=(),
                    media_type=child.media_type,
                    parent=Parent(job.digest, job.tags, child.platform),
                )
                if child_job.key in have:
                    continue  # the child is itself a trusted tag, or listed by an earlier index: one job
                have.add(child_job.key)
                added.append(child_job)
                counted += 1
    plan.jobs.extend(added)
    if plan.preflight is not None:
        plan.preflight["jobs"] = len(plan.jobs)
        plan.preflight["children"] = counted
        totals = plan.preflight.setdefault("findings", {})
        for kind in ("child-missing", "child-size-mismatch"):
            n = sum(1 for item in plan.findings if item["kind"] == kind)
            if n:
                totals[kind] = n


async def confirm_children(jobs: Iterable[Job], stores: Callable[[str], SignatureStore]) -> list[str]:
    """Each child job whose parent index (fetched by digest) does not list it with its size, and why."""
    problems: list[str] = []
    listed: dict[tuple[str, str], set[tuple[str, int]]] = {}
    for n, job in enumerate(jobs):
        if job.parent is None:
            continue
        ref = parse_reference(job.reference)
        key = (job.repository, job.parent.digest)
        if key not in listed:
            try:
                store = stores(ref.registry)
                raw = await store.aget_manifest(ref.repository, job.parent.digest)
                where = f"{job.repository}@{job.parent.digest}"
                listed[key] = {(c.digest, c.size) for c in index_children(raw, where, store.limits)}
            except (NotFoundError, InputError) as exc:
                problems.append(f"jobs[{n}] {job.reference}: parent index unreadable ({exc})")
                listed[key] = set()
                continue
        if (job.digest, job.size) not in listed[key]:
            problems.append(f"jobs[{n}] {job.reference}: not listed with size {job.size} by index {job.parent.digest}")
    return problems
