"""Coexistence check: per tag, DCT verdict x registry digest x Notation verdict -> one status, and the CI gate.

Decision table (first matching row wins; ``R`` = the registry's current digest for the tag):

=======================  =============================================================
``dct-invalid``          the GUN's DCT metadata did not verify (every tag of that GUN)
``manifest-missing``     DCT has the tag but the registry serves no manifest for it
``dct-missing``          the registry has the tag but DCT does not (published after the freeze)
``drift``                the DCT digest differs from ``R``
``notation-missing``     no Notation signature is associated with ``R``
``notation-invalid``     signatures exist on ``R`` but none verifies (``failed_check`` names why)
``notation-unenforced``  a signature on ``R`` passes only because the policy does not enforce authenticity
                         (level ``audit`` or ``skip``): it proves no trusted signer, so it never meets a gate
``ok``                   DCT digest == ``R`` and a signature on ``R`` verifies
=======================  =============================================================

The Notation verdict on ``R`` is recorded for every status where ``R`` exists, so the ``--require`` gates
(``requirement_met``) can ignore DCT when the operator asks for Notation only.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, get_args

import httpx

from ..config import Clock, Limits, format_rfc3339
from ..dct.inventory import build_inventory
from ..dct.tuf import MetadataSource
from ..errors import (
    ConfigError,
    Dct2NotationError,
    DCTVerificationError,
    DigestMismatchError,
    InputError,
    NotFoundError,
    UsageError,
)
from ..notation.manifest import parse_index, parse_signature_manifest, referrers_tag
from ..notation.policy import TrustPolicyDocument
from ..notation.truststore import TrustStore
from ..notation.verify import VerificationResult, not_counted, verify_artifact
from ..oci import OCI_MANIFEST, Descriptor
from ..registry.client import registry_auth, tls_context
from ..registry.layout import REF_NAME, OCILayoutStore
from ..registry.options import RegistryOptions
from ..registry.reference import Reference
from ..registry.store import RegistryStore, SignatureStore, unique_signatures
from .waivers import Waiver
from .waivers import find as find_waiver

T = TypeVar("T")
Status = Literal[
    "ok",
    "notation-missing",
    "notation-invalid",
    "notation-unenforced",
    "drift",
    "dct-missing",
    "dct-invalid",
    "manifest-missing",
]
STATUSES: tuple[Status, ...] = get_args(Status)  # the order of the decision table and of every counts map
Require = Literal["both", "notation", "either"]
REQUIRE_MODES: tuple[Require, ...] = get_args(Require)
DctVerdict = Literal["valid", "missing", "invalid"]
# "unenforced": a signature passed under a statement that does not enforce integrity and authenticity.
NotationVerdict = Literal["valid", "missing", "invalid", "unenforced", "not-checked"]


@dataclass(frozen=True, slots=True)
class NotationResult:
    verdict: NotationVerdict
    failed_check: str | None = None
    reason: str = ""
    signature: str | None = None  # digest of the signature manifest that verified


NOT_CHECKED = NotationResult("not-checked")


@dataclass(frozen=True, slots=True)
class TagStatus:
    """One row of the matrix. No timestamps here: two runs over the same state give identical rows."""

    gun: str
    repository: str
    tag: str
    status: Status
    dct: DctVerdict
    dct_digest: str | None
    registry_digest: str | None
    notation: NotationResult
    reason: str
    # check --children: each platform manifest the registry's index lists, with its own Notation verdict.
    children: tuple[ChildStatus, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.repository}:{self.tag}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "gun": self.gun,
            "repository": self.repository,
            "tag": self.tag,
            "status": self.status,
            "dct": self.dct,
            "dct_digest": self.dct_digest,
            "registry_digest": self.registry_digest,
            "notation": self.notation.verdict,
            "failed_check": self.notation.failed_check,
            "signature": self.notation.signature,
            "reason": self.reason,
            **({"children": [child.to_dict() for child in self.children]} if self.children else {}),
        }


@dataclass(frozen=True, slots=True)
class ChildStatus:
    digest: str
    platform: str
    notation: NotationResult

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "platform": self.platform, "notation": self.notation.verdict,
                "failed_check": self.notation.failed_check, "reason": self.notation.reason}  # fmt: skip


def decide(
    *,
    dct: DctVerdict,
    dct_digest: str | None,
    registry_digest: str | None,
    notation: NotationResult,
    dct_reason: str = "",
) -> tuple[Status, str]:
    """The decision table in the module docstring, with a one-line reason."""
    if dct == "invalid":
        return "dct-invalid", f"DCT metadata did not verify: {dct_reason}"
    if registry_digest is None:
        return "manifest-missing", f"DCT trusts {dct_digest} but the registry serves no manifest for the tag"
    if dct == "missing":
        return "dct-missing", f"the registry has the tag but {dct_reason or 'DCT does not sign it'}"
    if dct_digest != registry_digest:
        return "drift", f"DCT trusts {dct_digest} but the registry serves {registry_digest}"
    if notation.verdict == "missing":
        return "notation-missing", "no Notation signature is associated with the digest"
    if notation.verdict == "invalid":
        return "notation-invalid", f"{notation.failed_check}: {notation.reason}"
    if notation.verdict == "unenforced":
        return "notation-unenforced", notation.reason
    return "ok", "DCT and Notation both verify the registry's digest"


def requirement_met(row: TagStatus, require: Require) -> bool:
    """``--require``, always judged on the registry's CURRENT digest (what a pull would get).

    both: DCT valid for that digest AND Notation valid on it (= status ``ok``);
    notation: Notation valid on it, whatever DCT says; either: at least one of the two valid on it.
    """
    if row.registry_digest is None:
        return False
    notation_ok = row.notation.verdict == "valid"
    dct_ok = row.dct == "valid" and row.dct_digest == row.registry_digest
    if require == "both":
        return notation_ok and dct_ok
    if require == "notation":
        return notation_ok
    return notation_ok or dct_ok


@dataclass
class CheckResult:
    """All rows, sorted by (repository, tag); ``to_dict`` is the ``--json`` document."""

    rows: list[TagStatus]
    require: Require
    evaluated_at: str
    verified_digests: int = 0
    # GUNs that gave no row at all (unknown to the notary server, unreadable, or no tag on either side), as
    # {"gun", "repository", "reason"}: each fails the gate, as does a run with nothing to check. A typo'd GUN
    # (acme/wbe) checked 0 tags and passed.
    empty_guns: list[dict[str, str]] = field(default_factory=list)
    # --waivers: rows (by key) an active waiver lets pass, rows whose waiver expired, waivers that matched nothing.
    waived: dict[str, dict[str, Any]] = field(default_factory=dict)
    expired_waivers: dict[str, dict[str, Any]] = field(default_factory=dict)
    unused_waivers: list[str] = field(default_factory=list)
    waivers_applied: bool = False

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for row in self.rows:
            counts[row.status] += 1
        return counts

    @property
    def unmet(self) -> list[TagStatus]:
        return [row for row in self.rows if not requirement_met(row, self.require) and row.key not in self.waived]

    @property
    def failures(self) -> list[str]:
        """One line per reason the gate fails besides unmet tags: an empty GUN, or nothing to check at all."""
        lines = [f"{g['gun']}: nothing checked: {g['reason']}" for g in self.empty_guns]
        if not self.rows and not lines:
            lines.append("nothing to check: no GUN and no tag")
        return lines

    @property
    def unmet_count(self) -> int:
        """Unmet tags plus the gate's other failures: ``summary.unmet == 0`` holds only when the gate passes."""
        return len(self.unmet) + len(self.failures)

    @property
    def exit_code(self) -> int:
        return 0 if not self.unmet_count else 1

    def to_dict(self) -> dict[str, Any]:
        unmet = {row.key for row in self.unmet}
        return {
            "format": CHECK_FORMAT,
            "evaluated_at": self.evaluated_at,
            "require": self.require,
            "summary": {
                "total": len(self.rows),
                "unmet": len(unmet) + len(self.failures),
                "counts": self.counts,
                "empty_guns": list(self.empty_guns),
                "failures": self.failures,
                **(self._waiver_summary() if self.waivers_applied else {}),
            },
            "tags": [self._row(row, unmet) for row in self.rows],
        }

    def _waiver_summary(self) -> dict[str, Any]:
        return {
            "waived": len(self.waived),
            "expired_waivers": sorted({w["label"] for w in self.expired_waivers.values()}),
            "unused_waivers": list(self.unused_waivers),
        }

    def _row(self, row: TagStatus, unmet: set[str]) -> dict[str, Any]:
        out = dict(row.to_dict(), requirement_met=row.key not in unmet)
        if row.key in self.waived:
            out["waiver"] = self.waived[row.key]
        elif row.key in self.expired_waivers:
            out["waiver_expired"] = self.expired_waivers[row.key]
        return out

    def apply_waivers(self, waivers: Sequence[Waiver], now: dt.datetime) -> None:
        """Let an unmet row pass under an active waiver of its tag or digest; report expired and unused ones."""
        used: set[int] = set()
        for row in self.rows:
            if requirement_met(row, self.require):
                continue
            found = find_waiver(list(waivers), gun=row.gun, repository=row.repository, tag=row.tag,
                                digests=(row.dct_digest, row.registry_digest))  # fmt: skip
            if found is None:
                continue
            used.add(found.index)
            record = dict(found.to_dict(), label=found.label)
            if found.active(now):
                self.waived[row.key] = record
            else:
                self.expired_waivers[row.key] = record
        self.unused_waivers = [w.label for w in waivers if w.index not in used]
        self.waivers_applied = True


CHECK_FORMAT = "dct2notation-check/1"


# --- inputs ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DctRepository:
    """One GUN as the check sees it: its trusted tags (docker pull semantics), or why it did not verify."""

    gun: str
    trusted: Mapping[str, str] = field(default_factory=dict)  # tag -> digest
    error: str | None = None
    # tag -> the roles that sign it, for tags signed only in delegations docker pull does not trust (targets/alice):
    # such a tag is reported as that, not as "DCT does not sign it".
    untrusted_signers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def dct_repositories(inventory_repositories: Iterable[Mapping[str, Any]]) -> list[DctRepository]:
    """From inventory documents (``Inventory.repositories``)."""
    out = []
    for repo in inventory_repositories:
        trusted = {str(t["tag"]): str(t["digest"]) for t in repo.get("trusted_tags", [])}
        others: dict[str, set[str]] = {}
        role_targets = repo.get("role_targets")
        for role, targets in (role_targets.items() if isinstance(role_targets, dict) else ()):
            for target in targets if isinstance(targets, list) else ():
                tag = target.get("tag") if isinstance(target, dict) else None
                if isinstance(tag, str) and tag not in trusted:
                    others.setdefault(tag, set()).add(str(role))
        untrusted = {tag: tuple(sorted(roles)) for tag, roles in others.items()}
        out.append(DctRepository(str(repo["gun"]), trusted, untrusted_signers=untrusted))
    return out


class RegistryView(Protocol):
    """What the check reads from where images live."""

    def list_tags(self, repository: str) -> list[str]: ...

    def resolve(self, repository: str, tag: str) -> Descriptor | None: ...

    def envelopes(self, repository: str, digest: str) -> list[tuple[str, bytes | None, str]]:
        """(signature manifest digest, envelope or None when unreadable, why unreadable) per stored signature."""
        ...

    def manifest(self, repository: str, digest: str) -> bytes:
        """The manifest by digest (checked against it): an index whose children ``check --children`` verifies."""
        ...


class StoreView:
    """A :class:`RegistryView` over a registry ``RegistryStore`` (one per host) or an ``OCILayoutStore``."""

    def __init__(self, store_for: Callable[[str], SignatureStore], list_tags: Callable[[str], list[str]]) -> None:
        self._store_for = store_for
        self._list_tags = list_tags
        # repository -> its sha256-<hex> tags, from the listing this run made anyway (see _signatures)
        self._index_tags: dict[str, frozenset[str]] = {}

    def list_tags(self, repository: str) -> list[str]:
        try:
            tags = self._list_tags(repository)
        except NotFoundError:
            tags = []  # an unknown repository has no tags; DCT's tags then show as manifest-missing
        self._index_tags[repository] = frozenset(t for t in tags if _REFERRERS_TAG.fullmatch(t))
        return tags

    def resolve(self, repository: str, tag: str) -> Descriptor | None:
        host, _, repo = repository.partition("/")
        try:
            return self._store_for(repository).resolve(Reference(host, repo, tag))
        except NotFoundError:
            return None

    def _signatures(self, store: SignatureStore, repository: str, digest: str) -> list[Descriptor]:
        # Without the referrers API a registry's signatures are listed by the sha256-<hex> tag index only, so a
        # subject whose tag the run's own tag listing lacks has none: no request needed (most unsigned digests).
        # A signature pushed after the listing is missed, as is a tag re-pushed after its HEAD: one snapshot.
        listed = self._index_tags.get(repository)
        if listed is not None and store.index_tag_required and referrers_tag(digest) not in listed:
            return []
        return store.list_signatures(repository.partition("/")[2], digest)

    def manifest(self, repository: str, digest: str) -> bytes:
        return self._store_for(repository).get_manifest(repository.partition("/")[2], digest)

    def envelopes(self, repository: str, digest: str) -> list[tuple[str, bytes | None, str]]:
        _, _, repo = repository.partition("/")
        store = self._store_for(repository)
        out: list[tuple[str, bytes | None, str]] = []
        for desc in self._signatures(store, repository, digest):
            try:
                manifest = parse_signature_manifest(
                    store.get_manifest(repo, desc.digest),
                    where=f"signature manifest {desc.digest}",
                    limits=store.limits,
                )
                if manifest.subject.digest != digest:
                    continue  # a referrer listed under the wrong subject proves nothing about this one
                out.append((desc.digest, store.get_blob(repo, manifest.envelope.digest), ""))
            except (DigestMismatchError, InputError) as exc:
                # A stored signature whose bytes no longer match their digest is a tampered signature (integrity),
                # not an outage.
                out.append((desc.digest, None, str(exc)))
            except Dct2NotationError as exc:
                # A dangling index entry (its manifest deleted), a refused or failing read: that one signature is
                # invalid for this digest. Raising would abort the whole check and leave the gate with no tags.
                out.append((desc.digest, None, f"signature {desc.digest} is unreadable: {exc}"))
        return out


class LayoutView(StoreView):
    """One OCI layout for every repository, read from ONE snapshot of index.json.

    The layout store's own lookups scan index.json per call; over 100,000 tags that is quadratic, so tags and the
    subject -> signatures graph are indexed once here.
    """

    def __init__(self, store: OCILayoutStore) -> None:
        super().__init__(lambda _: store, lambda _: [])
        self._store = store
        self._tags: dict[str, Descriptor] = {}
        self._untagged: list[Descriptor] = []
        for desc in store.layout.manifests():  # capped at layout_index_bytes, as for every command
            name = (desc.annotations or {}).get(REF_NAME)
            if name is None:
                self._untagged.append(desc)
            else:
                self._tags[name] = Descriptor(desc.media_type, desc.digest, desc.size)
        self._graph: dict[str, list[Descriptor]] | None = None
        self._graph_lock = threading.Lock()

    def list_tags(self, repository: str) -> list[str]:
        # A ref.name "REPOSITORY:TAG" (a layout holding several repositories, as the demo estate does) belongs to
        # that repository only; a bare TAG belongs to every repository.
        out = []
        for name in self._tags:
            repo, sep, tag = name.rpartition(":")
            if sep and "/" in repo and "/" not in tag:
                if repo == repository:
                    out.append(tag)
            else:
                out.append(name)
        return out

    def resolve(self, repository: str, tag: str) -> Descriptor | None:
        return self._tags.get(f"{repository}:{tag}") or self._tags.get(tag)

    def _subject_graph(self) -> dict[str, list[Descriptor]]:
        # Notation lists signature manifests untagged in index.json; images are the tagged entries.
        with self._graph_lock:
            if self._graph is None:
                graph: dict[str, list[Descriptor]] = {}
                limits = self._store.limits
                for desc in self._untagged:
                    if desc.media_type != OCI_MANIFEST or desc.size > limits.signature_manifest_bytes:
                        continue
                    try:
                        raw = self._store.layout.get_blob(desc.digest, limits.signature_manifest_bytes)
                        manifest = parse_signature_manifest(raw, limits=limits)
                    except (InputError, NotFoundError):
                        continue  # an untagged image or a foreign artifact
                    graph.setdefault(manifest.subject.digest, []).append(manifest.descriptor())
                self._graph = graph
            return self._graph

    def _signatures(self, store: SignatureStore, repository: str, digest: str) -> list[Descriptor]:
        found = list(self._subject_graph().get(digest, []))
        index = self._tags.get(referrers_tag(digest))
        if index is not None:
            raw = self._store.layout.get_blob(index.digest, self._store.limits.referrers_index_bytes)
            # distribution-spec: a tag that is not an index means no referrers
            with contextlib.suppress(InputError):
                found += parse_index(raw, where=f"referrers index {index.digest}", limits=self._store.limits)
        return unique_signatures(found)


def layout_view(store: OCILayoutStore) -> StoreView:
    return LayoutView(store)


# --- the check ---------------------------------------------------------------------------------------
@dataclass
class _Pending:
    gun: str
    repository: str
    tag: str
    dct: DctVerdict
    dct_digest: str | None
    dct_reason: str = ""
    subject: Descriptor | None = None

    @property
    def registry_digest(self) -> str | None:
        return self.subject.digest if self.subject is not None else None


def verify_digest(
    view: RegistryView,
    repository: str,
    subject: Descriptor,
    *,
    policy: TrustPolicyDocument,
    truststore: TrustStore,
    clock: Clock,
    limits: Limits,
) -> NotationResult:
    """Notation's rule on one digest: the first signature that verifies wins; else name the first failed check."""
    reference = f"{repository}@{subject.digest}"
    try:
        statement = policy.statement_for(reference)
    except ConfigError as exc:
        # No statement covers the repository: an admission controller would refuse it, so it is not valid.
        return NotationResult("invalid", "trustPolicy", str(exc))
    found = view.envelopes(repository, subject.digest)
    if not found:
        return NotationResult("missing", None, "no signature is associated with the artifact")
    outcome = verify_artifact(
        reference,
        subject,
        [raw if raw is not None else VerificationResult(False, "integrity", why) for _, raw, why in found],
        policy=policy,
        truststore=truststore,
        clock=clock,
        limits=limits,
    )
    if outcome.passed_index is not None:
        signature = found[outcome.passed_index][0]
        gap = not_counted(statement, outcome.results[outcome.passed_index])
        if gap is not None:
            return NotationResult("unenforced", "trustPolicy", gap, signature)
        return NotationResult("valid", None, "verified", signature)
    reason = outcome.results[-1].reason if outcome.gave_up else outcome.reason
    return NotationResult("invalid", outcome.failed_check or "signature", reason)


def run_check(
    repositories: Sequence[DctRepository],
    view: RegistryView,
    *,
    policy: TrustPolicyDocument,
    truststore: TrustStore,
    clock: Clock,
    limits: Limits,
    require: Require = "both",
    registry_map: Callable[[str], str] = lambda gun: gun,
    concurrency: int = 16,
    progress: Callable[[str, int, int], None] | None = None,
    children: bool = False,
) -> CheckResult:
    """Resolve every tag, verify every distinct (repository, digest) once, and assemble the matrix.

    One pass: the worker whose tag first resolves to a digest verifies that digest at once, so signature reads
    overlap the remaining manifest HEADs instead of waiting for all of them.
    ``progress(phase, n, total)`` is told how many tags resolved / digests verified and of how many (the digest
    total grows as tags resolve to new digests; for a progress bar).
    """
    if require not in REQUIRE_MODES:
        raise UsageError(f"--require {require!r}: expected one of {', '.join(REQUIRE_MODES)}")
    if concurrency < 1:
        raise UsageError(f"--concurrency {concurrency}: expected at least 1")
    evaluated_at = format_rfc3339(clock.now(), fraction=True)
    mapped = [(repo, registry_map(repo.gun)) for repo in repositories]
    listed: dict[int, list[str]] = {}

    def list_tags(index: int) -> None:
        listed[index] = view.list_tags(mapped[index][1])

    _run_workers(list_tags, range(len(mapped)), concurrency)
    pending: list[_Pending] = []
    for index, (repo, repository) in enumerate(mapped):
        pending.extend(_rows_for(repo, repository, listed[index]))

    # The cache: a digest under ten tags is verified once, by whichever worker claims it first.
    cache: dict[tuple[str, str], NotationResult] = {}
    child_cache: dict[tuple[str, str], tuple[ChildStatus, ...]] = {}
    claimed: set[tuple[str, str]] = set()
    lock = threading.Lock()
    report = _progress_reporter(progress)

    def resolve(row: _Pending) -> None:
        subject = row.subject = view.resolve(row.repository, row.tag)
        report("resolve", len(pending))
        if subject is None:
            return
        key = (row.repository, subject.digest)
        with lock:
            if key in claimed:
                return
            claimed.add(key)
        result = verify_digest(
            view, row.repository, subject, policy=policy, truststore=truststore, clock=clock, limits=limits
        )
        kids = _verify_children(view, row.repository, subject, policy, truststore, clock, limits) if children else ()
        with lock:
            cache[key] = result
            child_cache[key] = kids
        report("verify", len(claimed))

    _run_workers(resolve, pending, concurrency)
    rows = []
    for p in pending:
        notation = cache[(p.repository, p.registry_digest)] if p.registry_digest is not None else NOT_CHECKED
        status, reason = decide(
            dct=p.dct,
            dct_digest=p.dct_digest,
            registry_digest=p.registry_digest,
            notation=notation,
            dct_reason=p.dct_reason,
        )
        kids = child_cache.get((p.repository, p.registry_digest), ()) if p.registry_digest is not None else ()
        rows.append(
            TagStatus(
                p.gun, p.repository, p.tag, status, p.dct, p.dct_digest, p.registry_digest, notation, reason, kids
            )
        )
    rows.sort(key=lambda r: (r.repository, r.tag))
    seen = {row.gun for row in rows}
    empty = [
        {"gun": repo.gun, "repository": repository, "reason": repo.error or f"DCT trusts no tag, {repository} has none"}
        for repo, repository in mapped
        if repo.gun not in seen
    ]
    return CheckResult(rows, require, evaluated_at, verified_digests=len(cache), empty_guns=empty)


def _verify_children(
    view: RegistryView,
    repository: str,
    subject: Descriptor,
    policy: TrustPolicyDocument,
    truststore: TrustStore,
    clock: Clock,
    limits: Limits,
) -> tuple[ChildStatus, ...]:
    """Each image manifest an index lists, verified as its own subject (what a runtime pulling by platform checks)."""
    from .children import INDEX_TYPES, index_children

    if subject.media_type not in INDEX_TYPES:
        return ()
    reference = f"{repository}@{subject.digest}"
    try:
        listed = index_children(view.manifest(repository, subject.digest), reference, limits)
    except Dct2NotationError as exc:
        return (ChildStatus(subject.digest, "", NotationResult("invalid", "integrity", f"index unreadable: {exc}")),)
    return tuple(
        ChildStatus(
            child.digest,
            child.platform,
            verify_digest(
                view,
                repository,
                Descriptor(child.media_type, child.digest, child.size),
                policy=policy,
                truststore=truststore,
                clock=clock,
                limits=limits,
            ),  # fmt: skip
        )
        for child in listed
    )


def _run_workers(fn: Callable[[T], None], items: Sequence[T], workers: int) -> None:
    """``fn`` over ``items`` on ``workers`` threads that pull from one iterator; re-raise the first error.

    No future per item: at 10,000 tags the executor's futures, wake-ups and bounded window cost ~8% of the run's
    CPU, and 100,000 pending futures would cost ~100 MB by themselves. After an error (e.g. RemoteError -> exit 3)
    or an interrupt, workers finish their current item and take no more. Worker ``n`` runs in lane ``n``
    (``_worker_lane``): the registry client of lane ``n`` is reused by the next call's worker ``n``.
    """
    source = iter(items)
    lock = threading.Lock()
    failures: list[BaseException] = []

    def work(lane: int) -> None:
        _worker_lane.set(lane)
        while True:
            with lock:
                if failures:
                    return
                try:
                    item = next(source)
                except StopIteration:
                    return
            try:
                fn(item)
            except BaseException as exc:  # handed to the caller's thread below
                with lock:
                    failures.append(exc)
                return

    # No more threads than items: --concurrency 1000000 on ten tags must not start a million idle threads.
    threads = [threading.Thread(target=work, args=(n,), name=f"check-{n}") for n in range(min(workers, len(items)))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException as exc:  # Ctrl-C while waiting: let the workers stop after their current request
        with lock:
            failures.append(exc)
        raise
    if failures:
        raise failures[0]


def _progress_reporter(progress: Callable[[str, int, int], None] | None) -> Callable[[str, int], None]:
    """``progress(phase, 1, total)`` from the worker threads, one call at a time (a progress bar need not be
    thread-safe)."""
    if progress is None:
        return lambda _phase, _total: None
    lock = threading.Lock()

    def report(phase: str, total: int) -> None:
        with lock:
            progress(phase, 1, total)

    return report


# Which worker of ``_run_workers`` runs on this thread (None outside them); see ``registry_view``.
_worker_lane: contextvars.ContextVar[int | None] = contextvars.ContextVar("check_worker_lane", default=None)

# Tags Notation 1.x / oras create for the referrers tag schema; they are signatures, not images. Matched with
# fullmatch: ``$`` also matched before a final newline, so a served tag "sha256-<hex>\n" was hidden from the check.
_REFERRERS_TAG = re.compile(r"sha256-[0-9a-f]{64}")


def _rows_for(repo: DctRepository, repository: str, listed: Iterable[str]) -> Iterator[_Pending]:
    registry_tags = {t for t in listed if not _REFERRERS_TAG.fullmatch(t)}
    if repo.error is not None:
        # Without verified metadata the DCT tag list is unknown; every tag the registry serves is affected.
        for tag in sorted(registry_tags):
            yield _Pending(repo.gun, repository, tag, "invalid", None, repo.error)
        return
    for tag in sorted(registry_tags | set(repo.trusted)):
        digest = repo.trusted.get(tag)
        roles = repo.untrusted_signers.get(tag)
        why = (
            f"DCT signs it only in {', '.join(roles)}, which docker pull does not trust "
            "(only targets/releases, then targets)"
            if roles and not digest
            else ""
        )
        yield _Pending(repo.gun, repository, tag, "valid" if digest else "missing", digest, why)


def dct_from_source(guns: Iterable[str], source: MetadataSource, clock: Clock, limits: Limits) -> list[DctRepository]:
    """Verify each GUN on its own, so one GUN's broken or expired metadata marks only its own tags ``dct-invalid``."""
    out = []
    for gun in guns:
        try:
            inventory = build_inventory([gun], source, clock, limits)
        except (DCTVerificationError, NotFoundError) as exc:
            out.append(DctRepository(gun, {}, str(exc)))
            continue
        out.extend(dct_repositories(inventory.repositories))
    return out


def registry_view(options: RegistryOptions, oci_layout: Path | None = None) -> tuple[StoreView, Callable[[], None]]:
    """A view over registries (one store per host) or one OCI layout; the second value closes the stores."""
    if oci_layout is not None:
        layout = OCILayoutStore(oci_layout, options.limits)
        return layout_view(layout), layout.close
    # One store per (host, worker thread): a thread's own client keeps its one connection, where a shared httpx
    # pool takes a lock and scans every pooled connection (a poll() each) on every request; that was ~15% of the
    # check's CPU at 16 threads. The threads share one auth per host, so a token is fetched once.
    # They also share one TLS context per host (cached by tlstrust): each new one loads CA bundles (~25 ms of CPU).
    # The store belongs to the worker's lane, not to its thread: the tag listing's workers and the resolving
    # workers after them (new threads) share lane n's connection, so a run opens at most --concurrency connections
    # (it opened one set per phase: 2 x 64 at --concurrency 64 over 64+ GUNs, each with its own referrers probe).
    auths: dict[str, httpx.Auth | None] = {}
    made: list[RegistryStore] = []
    stores: dict[tuple[str, int | str], RegistryStore] = {}
    lock = threading.Lock()

    def store_for(repository: str) -> RegistryStore:
        host = repository.partition("/")[0]
        lane = _worker_lane.get()
        key = (host, f"thread {threading.get_ident()}" if lane is None else lane)
        store = stores.get(key)
        if store is None:
            with lock:
                if host not in auths:
                    auths[host] = registry_auth(host, options)
                transport = httpx.HTTPTransport(verify=tls_context(options, host))
                store = stores[key] = RegistryStore(host, options, auth=auths[host], transport=transport)
                made.append(store)
        return store

    def list_tags(repository: str) -> list[str]:
        return store_for(repository).list_tags(repository.partition("/")[2])

    def close() -> None:
        for store in made:
            store.close()

    return StoreView(store_for, list_tags), close
