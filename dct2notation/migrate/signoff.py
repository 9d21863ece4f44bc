"""Decommission sign-off: an evidence bundle that proves every DCT-trusted digest is covered by Notation, offline.

Bundle layout (every path below is listed in ``MANIFEST.json`` with its sha256 and size; MANIFEST.json is written
last, so its presence means the bundle is complete)::

    archive/            the archived TUF metadata, as ``dct2notation archive`` wrote it
    inventory.json      the inventory the migration ran from (``evaluated_at`` = the DCT evaluation time)
    plan.json           the signing plan; journal-summary.json  state counts and entries of the signing journal
    signatures/<subject hex>/<manifest hex>.json|.cose   every signature manifest and its envelope
    signatures/<subject hex>/unreadable.jsonl   listed signatures that could not be read (digest, reason)
    policy/trustpolicy.json, policy/truststore/x509/...   the Notation trust policy and trust store
    check.json          the final coexistence run
    SIGNOFF.json        the verdict, its reasons and per-subject coverage; REPORT.md / REPORT.html render it

Verification re-derives the trusted digests from ``archive/`` (DCT, at the recorded evaluation time) and verifies the
bundled envelopes under the bundled policy at the recorded Notation time: a bundle checked years later judges the
evidence as it stood at sign-off, not against certificates that have since expired.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import DEFAULT_LIMITS, Clock, FixedClock, Limits, format_rfc3339, parse_rfc3339
from ..errors import ConfigError, Dct2NotationError, GateFailed, InputError, VerificationError
from ..files import (
    FileError,
    UnsafePathError,
    inside,
    open_regular,
    os_failure,
    read_capped,
    read_regular,
    walk_plain,
    write_beneath,
)
from ..jsontext import load_json_file
from ..jsontext import loads as json_loads
from ..oci import OCI_MANIFEST, Descriptor, sha256_digest
from .plan import ANNOTATION_PREFIX, Plan, plan_from_dict, untrusted_jobs
from .signoff_inputs import require_check_of_inventory, require_journal_of_plan, require_plan_of_inventory
from .waivers import Waiver, load_waivers
from .waivers import find as find_waiver

FORMAT = "dct2notation-signoff/1"
MANIFEST = "MANIFEST.json"
UNREADABLE = "unreadable.jsonl"  # per subject folder: listed signatures that could not be read, one JSON per line


class BundleIntegrityError(VerificationError):
    """A bundle file was edited, added or removed after sign-off."""


@dataclass
class Coverage:
    """One DCT-trusted digest and whether a Notation signature under the bundled policy covers it."""

    gun: str
    repository: str
    digest: str
    size: int
    tags: list[str]
    covered: bool
    reason: str
    waiver: dict[str, Any] | None = None  # an active waiver (waivers.toml) that lets this uncovered digest pass
    # A platform manifest the plan signed (plan --children): the DCT-trusted index digest that lists it.
    parent: str | None = None


@dataclass
class Verdict:
    ready: bool
    reasons: list[str]
    coverage: list[Coverage] = field(default_factory=list)
    dct_failures: dict[str, str] = field(default_factory=dict)

    @property
    def uncovered(self) -> list[Coverage]:
        """Not covered and not waived: what keeps the verdict at not ready."""
        return [c for c in self.coverage if not c.covered and c.waiver is None]

    @property
    def waived(self) -> list[Coverage]:
        return [c for c in self.coverage if not c.covered and c.waiver is not None]

    def per_repository(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for c in self.coverage:
            row = counts.setdefault(c.gun, {"digests": 0, "tags": 0, "covered": 0, "uncovered": 0})
            row["digests"] += 1
            row["tags"] += len(c.tags)
            row["covered" if c.covered else "uncovered"] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": "ready" if self.ready else "not ready",
            "reasons": self.reasons,
            "repositories": self.per_repository(),
            "dct_failures": self.dct_failures,
            "coverage": [
                {k: v for k, v in asdict(c).items() if k not in ("waiver", "parent") or v is not None}
                for c in self.coverage
            ],
            "waived": [f"{c.repository}@{c.digest}: {c.waiver['reason']} ({c.waiver['by']}, until {c.waiver['until']})"
                       for c in self.waived if c.waiver is not None],  # fmt: skip
        }


# --- integrity ----------------------------------------------------------------------------------------------


def _sha256_file(bundle: Path, relative: str) -> tuple[str, int]:
    """sha256 and size of a plain file in the bundle, both taken from the one descriptor read."""
    digest = hashlib.sha256()
    size = 0
    with open_regular(bundle, relative) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _bundle_files(bundle: Path) -> list[str]:
    # Every entry is a plain file or directory: a symlink (a directory the manifest would not cover, or a file
    # elsewhere) or a FIFO/device is refused rather than hashed, skipped or read.
    return sorted(rel for rel in walk_plain(bundle) if rel != MANIFEST)


def write_manifest(bundle: Path) -> None:
    files = []
    for rel in _bundle_files(bundle):
        sha, size = _sha256_file(bundle, rel)
        files.append({"path": rel, "sha256": sha, "size": size})
    doc = {"format": FORMAT, "files": files}
    write_beneath(bundle, MANIFEST, _manifest_text(doc))


def _manifest_text(doc: Any) -> str:
    return json.dumps(doc, indent=2) + "\n"


def bundle_digest(bundle: Path) -> str:
    """sha256 of MANIFEST.json: one value an approver can record and compare on any later re-check."""
    return "sha256:" + _sha256_file(bundle, MANIFEST)[0]


def check_integrity(bundle: Path, limits: Limits = DEFAULT_LIMITS) -> int:
    """Every listed file present with its hash and size, nothing extra. Returns the file count."""
    try:
        return _check_integrity(bundle, limits)
    except UnsafePathError as exc:
        raise BundleIntegrityError(str(exc)) from exc


def _check_integrity(bundle: Path, limits: Limits) -> int:
    path = bundle / MANIFEST
    try:
        text = read_capped(bundle, MANIFEST, limits.document_bytes).decode("utf-8")
        doc = json_loads(text)
        listed = {str(f["path"]): (str(f["sha256"]), int(f["size"])) for f in doc["files"]}
    except FileNotFoundError as exc:
        raise BundleIntegrityError(f"{path}: cannot read the bundle manifest ({exc.strerror})") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleIntegrityError(f"{path}: not a sign-off bundle manifest ({exc})") from exc
    if text != _manifest_text(doc):
        # Hashes cannot cover the manifest itself; its exact bytes are pinned by our own serialisation instead.
        raise BundleIntegrityError(f"{path}: bundle changed since sign-off: edited {MANIFEST}")
    if doc.get("format") != FORMAT:
        raise BundleIntegrityError(f"{path}: format is {doc.get('format')!r}, expected {FORMAT!r}")
    present = set(_bundle_files(bundle))
    problems = [f"missing {rel}" for rel in sorted(set(listed) - present)]
    problems += [f"added {rel}" for rel in sorted(present - set(listed))]
    for rel in sorted(set(listed) & present):
        if _sha256_file(bundle, rel) != listed[rel]:
            problems.append(f"edited {rel}")
    if problems:
        raise BundleIntegrityError(f"{bundle}: bundle changed since sign-off: {', '.join(problems)}")
    return len(listed)


# --- evaluation ---------------------------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> Any:
    return load_json_file(path, what=what, max_bytes=DEFAULT_LIMITS.document_bytes)


def _read_bundle_json(root: Path, relative: str, what: str, limits: Limits) -> Any:
    """A JSON file inside a bundle: a plain file below plain directories, at most ``document_bytes``."""
    path = root / relative
    try:
        raw = read_capped(root, relative, limits.document_bytes, what=what)
        return json_loads(raw.decode("utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror})") from exc
    except ValueError as exc:
        raise InputError(f"{path}: {what} is not valid JSON ({exc})") from exc


def _instant(value: str, path: Path, name: str) -> dt.datetime:
    try:
        return parse_rfc3339(value)
    except Dct2NotationError as exc:
        raise InputError(f"{path}: field {name!r}: not an RFC 3339 time: {value!r}") from exc


def _archive_guns(archive: Path, limits: Limits) -> list[str]:
    doc = _read_bundle_json(archive, "ARCHIVE.json", "the archive manifest", limits)
    guns = doc.get("guns") if isinstance(doc, dict) else None
    if not isinstance(guns, list) or not all(isinstance(g, str) for g in guns):
        raise InputError(f"{archive / 'ARCHIVE.json'}: field 'guns' must be a list of GUNs")
    return list(guns)


def _repositories(plan_doc: Any) -> dict[tuple[str, str], str]:
    """(gun, digest) -> the registry repository the plan signed it in (plans may map registries)."""
    out: dict[tuple[str, str], str] = {}
    for job in plan_doc.get("jobs", []) if isinstance(plan_doc, dict) else []:
        notes = job.get("annotations") or {}
        gun = notes.get(ANNOTATION_PREFIX + "gun")
        repository = job.get("repository")
        if isinstance(repository, str):
            out[(str(gun) if gun else repository, str(job.get("digest")))] = repository
            out.setdefault((repository, str(job.get("digest"))), repository)
    return out


def _signatures(signatures_dir: Path, limits: Limits) -> dict[str, list[tuple[str, bytes, int | None]]]:
    """subject digest -> [(subject media type, envelope bytes, subject size)] from the bundle's signatures/ tree.

    The size is the signature manifest's ``subject.size``: the registry's descriptor the signature was made over.
    """
    found: dict[str, list[tuple[str, bytes, int | None]]] = {}
    if not signatures_dir.is_dir():
        return found
    for manifest_path in sorted(signatures_dir.glob("*/*.json")):
        envelope_path = manifest_path.with_suffix(".cose")
        if not envelope_path.is_file():
            continue  # integrity checking names the missing envelope; here it simply covers nothing
        relative = manifest_path.relative_to(signatures_dir).as_posix()
        manifest = _read_bundle_json(signatures_dir, relative, "a signature manifest", limits)
        subject = manifest.get("subject") if isinstance(manifest, dict) else None
        media = str(subject.get("mediaType", OCI_MANIFEST)) if isinstance(subject, dict) else OCI_MANIFEST
        size = subject.get("size") if isinstance(subject, dict) else None
        # One byte past the envelope cap is enough for verification to refuse it as oversized.
        envelope = read_regular(signatures_dir, relative.removesuffix(".json") + ".cose", limits.envelope_bytes)
        subject_size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
        found.setdefault("sha256:" + manifest_path.parent.name, []).append((media, envelope, subject_size))
    return found


def _unreadable(signatures_dir: Path, limits: Limits) -> dict[str, list[str]]:
    """subject digest -> why each of its listed signatures could not be read at sign-off (``UNREADABLE`` files)."""
    found: dict[str, list[str]] = {}
    if not signatures_dir.is_dir():
        return found
    for path in sorted(signatures_dir.glob(f"*/{UNREADABLE}")):
        relative = path.relative_to(signatures_dir).as_posix()
        text = read_regular(signatures_dir, relative, limits.document_bytes).decode("utf-8", errors="replace")
        lines = text.splitlines()[: limits.max_signature_attempts]
        reasons = []
        for line in lines:
            try:
                record = json_loads(line)
                reasons.append(f"signature {record['signature']} unreadable at sign-off: {record['reason']}")
            except (ValueError, KeyError, TypeError):
                reasons.append(f"{path}: a record that is not an unreadable-signature entry")
        found["sha256:" + path.parent.name] = reasons
    return found


def evaluate(
    *,
    archive: Path,
    plan_doc: Any,
    signatures_dir: Path,
    policy_dir: Path,
    dct_at: dt.datetime,
    notation_at: dt.datetime,
    check_doc: Any = None,
    limits: Limits = DEFAULT_LIMITS,
    inventory_digest: str | None = None,  # of the bundled inventory.json; None: the bundle has none
    waivers: Sequence[Waiver] = (),
) -> Verdict:
    """Re-derive DCT-trusted digests from ``archive`` and check each has a passing Notation signature.

    The other way round too: every plan job must be a DCT-trusted digest of the archive (the plan is an editable
    file; a job added for an untrusted digest got signed), and the plan must be bound to ``inventory_digest``.
    An uncovered digest under an active waiver (at ``notation_at``) does not block the verdict and is reported.
    """
    from ..dct.inventory import build_inventory
    from ..dct.source import ArchiveSource
    from ..notation.policy import TrustPolicyDocument
    from ..notation.truststore import TrustStore

    source = ArchiveSource(archive)
    policy = TrustPolicyDocument.load_from_config(policy_dir)
    truststore = TrustStore(policy_dir / "truststore")
    repositories = _repositories(plan_doc)
    signatures = _signatures(signatures_dir, limits)
    unreadable = _unreadable(signatures_dir, limits)
    clock: Clock = FixedClock(notation_at)
    verdict = Verdict(ready=True, reasons=[])
    verified: list[dict[str, Any]] = []
    for gun in _archive_guns(archive, limits):
        try:
            inventory = build_inventory([gun], source, FixedClock(dct_at), limits)
        except Dct2NotationError as exc:
            verdict.dct_failures[gun] = str(exc)
            verdict.reasons.append(f"DCT metadata of {gun} does not verify: {exc}")
            continue
        verified.extend(inventory.repositories)
        by_digest: dict[str, tuple[int, list[str]]] = {}
        for row in inventory.repositories[0]["trusted_tags"]:
            size, tags = by_digest.setdefault(row["digest"], (int(row["size"]), []))
            tags.append(row["tag"])
        for digest, (size, tags) in sorted(by_digest.items()):
            repository = repositories.get((gun, digest), gun)
            verdict.coverage.append(
                _cover(
                    gun,
                    repository,
                    digest,
                    size,
                    tags,
                    signatures.get(digest, []),
                    policy,
                    truststore,
                    clock,
                    limits,
                    unreadable.get(digest, []),
                )
            )
    verdict.coverage.extend(
        _cover_children(plan_doc, verified, signatures, unreadable, policy, truststore, clock, limits)
    )
    for item in verdict.uncovered:
        match = _waiver_for(item, waivers)
        if match is not None and match.active(notation_at):
            item.waiver = match.to_dict()
            continue
        if match is not None:
            item.reason += f" ({match.label} expired {match.to_dict()['until']}: not honoured)"
    for item in verdict.uncovered:
        named = ", ".join(item.tags) if item.parent is None else f"platform manifest of {item.parent}"
        verdict.reasons.append(f"{item.repository}@{item.digest} ({item.gun}: {named}) is not covered: {item.reason}")
    verdict.reasons.extend(_plan_reasons(plan_from_dict(plan_doc, "plan.json"), verified, inventory_digest))
    if check_doc is not None:
        verdict.reasons.extend(_check_reasons(check_doc))
    if not verdict.coverage and not verdict.dct_failures:
        verdict.reasons.append("the archive holds no DCT-trusted digest")
    verdict.ready = not verdict.reasons
    return verdict


def _cover_children(
    plan_doc: Any,
    verified: list[dict[str, Any]],
    signatures: dict[str, list[tuple[str, bytes, int | None]]],
    unreadable: dict[str, list[str]],
    policy: Any,
    truststore: Any,
    clock: Clock,
    limits: Limits,
) -> list[Coverage]:
    """Each platform manifest the plan signs under a DCT-trusted index: covered by a passing signature, like the
    index. (That the index lists it was checked by ``plan`` and by ``sign`` against the index fetched by digest.)"""
    trusted = {(str(repo["gun"]), str(t["digest"])) for repo in verified for t in repo.get("trusted_tags", [])}
    out: list[Coverage] = []
    seen: set[tuple[str, str]] = set()
    for job in plan_from_dict(plan_doc, "plan.json").jobs:
        if job.parent is None or (job.gun, job.parent.digest) not in trusted or (job.gun, job.digest) in seen:
            continue
        seen.add((job.gun, job.digest))
        item = _cover(
            job.gun, job.repository, job.digest, job.size, [], signatures.get(job.digest, []), policy, truststore,
            clock, limits, unreadable.get(job.digest, []),
        )  # fmt: skip
        item.parent = job.parent.digest
        out.append(item)
    return out


def _plan_reasons(plan: Plan, verified: list[dict[str, Any]], inventory_digest: str | None) -> list[str]:
    """A signed job DCT never trusted (named), or a plan not made from the bundled inventory, is not ready."""
    reasons = [f"plan.json {problem} in the archived DCT metadata" for problem in untrusted_jobs(plan.jobs, verified)]
    if plan.inventory is None:
        reasons.append(
            "plan.json is not bound to an inventory (no 'inventory' field): make the plan with `dct2notation plan`"
        )
    elif plan.inventory.digest != inventory_digest:
        reasons.append(
            f"plan.json was made from inventory {plan.inventory.digest}, not the bundled inventory.json "
            f"({inventory_digest or 'absent'})"
        )
    return reasons


def _waiver_for(item: Coverage, waivers: Sequence[Waiver]) -> Waiver | None:
    tags: list[str | None] = list(item.tags) or [None]
    for tag in tags:
        found = find_waiver(list(waivers), gun=item.gun, repository=item.repository, tag=tag, digests=(item.digest,))
        if found is not None:
            return found
    return None


def _check_reasons(check_doc: Any) -> list[str]:
    """The final coexistence run must meet its gate: a tag left unmet there is a reason not to switch DCT off."""
    tags = check_doc.get("tags") if isinstance(check_doc, dict) else None
    if not isinstance(tags, list):
        return ["the final coexistence run (check.json) has no 'tags' list"]
    unmet = [t for t in tags if isinstance(t, dict) and not t.get("requirement_met")]
    names = [f"{t.get('repository')}:{t.get('tag')} ({t.get('status')})" for t in unmet]
    summary = check_doc.get("summary")
    failures = summary.get("failures") if isinstance(summary, dict) else None
    # A run that checked a GUN's nothing (a typo, an unknown GUN) or nothing at all is no evidence.
    reasons = [f"final coexistence run: {line}" for line in failures or [] if isinstance(line, str)]
    if not tags:
        reasons = reasons or ["final coexistence run: nothing to check (0 tags)"]
    if not names:
        return reasons
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    req = check_doc.get("require")
    return [f"final coexistence run: {len(names)} tag(s) do not meet --require {req}: {shown}", *reasons]


def _cover(
    gun: str,
    repository: str,
    digest: str,
    size: int,
    tags: list[str],
    envelopes: list[tuple[str, bytes, int | None]],
    policy: Any,
    truststore: Any,
    clock: Clock,
    limits: Limits,
    unreadable: Sequence[str] = (),
) -> Coverage:
    from ..notation.verify import not_counted, verify_artifact

    def result(covered: bool, reason: str) -> Coverage:
        return Coverage(gun, repository, digest, size, tags, covered, reason)

    if not envelopes:
        if unreadable:
            return result(False, "no readable Notation signature in the bundle: " + "; ".join(unreadable))
        return result(False, "no Notation signature in the bundle")
    media = envelopes[0][0]
    # docs/check.md "TUF length and registry size": the digest is what DCT trusts. A TUF length that differs from
    # the registry's size does not change the content (same sha256, same bytes); the signature covers the registry's
    # descriptor, so that is what it is verified against, as plan signs it and check judges it.
    signed_size = next((n for _, _, n in envelopes if n is not None), size)
    note = f" (TUF length {size} differs from the registry's size {signed_size}; the digest is what DCT trusts)"
    note = note if signed_size != size else ""
    try:
        outcome = verify_artifact(
            f"{repository}@{digest}",
            Descriptor(media, digest, signed_size),
            [raw for _, raw, _ in envelopes],
            policy=policy,
            truststore=truststore,
            clock=clock,
            limits=limits,
        )
    except Dct2NotationError as exc:
        return result(False, str(exc))
    if outcome.ok and outcome.passed_index is not None:
        # An audit or skip statement passes any signer: it cannot certify that DCT may be switched off.
        gap = not_counted(policy.statement_for(f"{repository}@{digest}"), outcome.results[outcome.passed_index])
        if gap is not None:
            return result(False, gap)
        return result(True, "verified" + note)
    also = f"; and {'; '.join(unreadable)}" if unreadable else ""
    return result(False, f"no signature verifies ({outcome.failed_check}: {outcome.reason}){also}")


# --- creation -----------------------------------------------------------------------------------------------


@dataclass
class SignoffInputs:
    archive: Path
    inventory: Path
    plan: Path
    policy_dir: Path
    journal: Path | None = None
    check_json: Path | None = None
    waivers: Path | None = None


def _journal_summary(path: Path) -> dict[str, Any]:
    from .journal import Journal

    if not path.is_file():
        raise InputError(f"--journal {path}: no such file")
    journal = Journal(path)
    try:
        return {
            "migration_id": journal.migration_id,
            "counts": journal.counts(),
            "entries": [asdict(e) for e in journal.entries()],
        }
    finally:
        journal.close()


def _copy_signatures(stores: Callable[[str], Any], plan_doc: Any, out: Path) -> int:
    """Every signature manifest + envelope of every planned subject, keyed by subject and manifest digest."""
    from ..registry.store import UnreadableSignature, fetch_signatures

    count = 0
    seen: set[tuple[str, str]] = set()
    for job in plan_doc.get("jobs", []):
        repository, digest = str(job["repository"]), str(job["digest"])
        if (repository, digest) in seen:
            continue
        seen.add((repository, digest))
        host, _, path = repository.partition("/")
        # A signature that cannot be read (its manifest deleted behind a dangling index entry) is recorded as
        # such and the rest are still copied: one bad referrer must not stop the sign-off or hide the others.
        bad: list[UnreadableSignature] = []
        for stored in fetch_signatures(stores(host), path, digest, bad):
            raw_manifest = stored.manifest.raw
            # The plan's digest names a folder: kept inside signatures/ whatever the plan says.
            folder = inside(out, digest.removeprefix("sha256:"), what="subject folder")
            folder.mkdir(parents=True, exist_ok=True)
            name = sha256_digest(raw_manifest).removeprefix("sha256:")
            (folder / f"{name}.json").write_bytes(raw_manifest)
            (folder / f"{name}.cose").write_bytes(stored.envelope)
            count += 1
        if bad:
            folder = inside(out, digest.removeprefix("sha256:"), what="subject folder")
            folder.mkdir(parents=True, exist_ok=True)
            lines = [json.dumps({"signature": b.digest, "reason": b.reason}) + "\n" for b in bad]
            (folder / UNREADABLE).write_text("".join(lines), encoding="utf-8")
    return count


def create_bundle(
    inputs: SignoffInputs, stores: Callable[[str], Any], output: Path, clock: Clock, limits: Limits = DEFAULT_LIMITS
) -> Verdict:
    """Assemble the bundle in a temp dir beside ``output``, evaluate it from its own copy, then rename into place."""
    from .signoff_report import write_reports

    if output.exists():
        raise InputError(f"-o {output}: already exists; sign-off never overwrites evidence")
    for label, path in (("--archive", inputs.archive), ("--policy-dir", inputs.policy_dir)):
        if not path.is_dir():
            raise InputError(f"{label} {path}: not a directory")
    if not (inputs.archive / "ARCHIVE.json").is_file():
        raise InputError(f"--archive {inputs.archive}: no ARCHIVE.json (not an archive, or an incomplete one)")
    inventory_doc = _read_json(inputs.inventory, "the inventory")
    plan_doc = _read_json(inputs.plan, "the plan")
    evaluated_at = inventory_doc.get("evaluated_at") if isinstance(inventory_doc, dict) else None
    if not isinstance(evaluated_at, str):
        raise InputError(f"{inputs.inventory}: field 'evaluated_at' is missing")
    # Parsed before anything is staged: the bundle's DCT verdict is evaluated at this instant.
    dct_at = _instant(evaluated_at, inputs.inventory, "evaluated_at")
    if not isinstance(plan_doc, dict) or not isinstance(plan_doc.get("jobs"), list):
        raise InputError(f"{inputs.plan}: field 'jobs' must be a list")
    # Every job as `sign` reads it: the bundle reads repository/digest/annotations of each.
    plan_from_dict(plan_doc, str(inputs.plan))
    # One migration's files, or no bundle: checked before anything is staged.
    require_plan_of_inventory(plan_doc, inputs.plan, inventory_doc, inputs.inventory)
    journal_summary = _journal_summary(inputs.journal) if inputs.journal is not None else None
    if inputs.journal is not None and journal_summary is not None:
        require_journal_of_plan(journal_summary["migration_id"], inputs.journal, plan_doc, inputs.plan)
    check_doc = None
    if inputs.check_json is not None:
        check_doc = _read_json(inputs.check_json, "the coexistence run")
        require_check_of_inventory(check_doc, inputs.check_json, inventory_doc, inputs.inventory)
    waivers = load_waivers(inputs.waivers) if inputs.waivers is not None else []
    # A fresh staging directory of our own: a leftover or planted "<output>.partial" is neither reused nor
    # deleted (it is not ours), and only what this run made is removed on failure.
    try:
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent))
        except FileNotFoundError:
            output.parent.mkdir(parents=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent))
    except OSError as exc:
        raise InputError(f"-o {output}: cannot create ({exc.strerror})") from exc
    try:
        shutil.copytree(inputs.archive, staging / "archive")
        shutil.copyfile(inputs.inventory, staging / "inventory.json")
        shutil.copyfile(inputs.plan, staging / "plan.json")
        if journal_summary is not None:
            text = json.dumps(journal_summary, indent=2) + "\n"
            (staging / "journal-summary.json").write_text(text, encoding="utf-8")
        _copy_policy(inputs.policy_dir, staging / "policy")
        if inputs.check_json is not None:
            shutil.copyfile(inputs.check_json, staging / "check.json")
        if inputs.waivers is not None:
            shutil.copyfile(inputs.waivers, staging / WAIVERS)  # the reviewed exceptions travel with the evidence
        _copy_signatures(stores, plan_doc, staging / "signatures")
        now = clock.now()
        stamp = format_rfc3339(now, fraction=True)
        verdict = evaluate(
            archive=staging / "archive",
            plan_doc=plan_doc,
            signatures_dir=staging / "signatures",
            policy_dir=staging / "policy",
            dct_at=dct_at,
            notation_at=now,
            check_doc=check_doc,
            limits=limits,
            inventory_digest="sha256:" + _sha256_file(staging, "inventory.json")[0],
            waivers=waivers,
        )
        record: dict[str, Any] = {
            "format": FORMAT,
            "created_at": stamp,
            "dct_evaluated_at": evaluated_at,
            "notation_verified_at": stamp,
        }
        record.update(verdict.to_dict())
        record["gaps"] = _policy_gaps(staging / "policy")
        (staging / "SIGNOFF.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        write_reports(staging, record, bundle_name=output.name)
        write_manifest(staging)
        staging.rename(output)
    except OSError as exc:
        # A full disk or a vanished input mid-copy: one line, and no half-made bundle left behind.
        shutil.rmtree(staging, ignore_errors=True)
        raise FileError(f"-o {output}: {os_failure(exc)}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return verdict


def _copy_policy(policy_dir: Path, out: Path) -> None:
    names = [n for n in ("trustpolicy.oci.json", "trustpolicy.json") if (policy_dir / n).is_file()]
    if not names:
        raise ConfigError(f"--policy-dir {policy_dir}: no trustpolicy.json or trustpolicy.oci.json")
    if not (policy_dir / "truststore").is_dir():
        raise ConfigError(f"--policy-dir {policy_dir}: no truststore/ directory")
    out.mkdir(parents=True)
    # GAPS.md / gaps.json: what the Notation policy cannot enforce that DCT did. The auditor never saw them.
    for name in [*names, *(n for n in GAP_FILES if (policy_dir / n).is_file())]:
        shutil.copyfile(policy_dir / name, out / name)
    shutil.copytree(policy_dir / "truststore", out / "truststore")


GAP_FILES = ("GAPS.md", "gaps.json")
WAIVERS = "waivers.toml"


def _policy_gaps(policy: Path) -> list[dict[str, Any]]:
    """The emitted gaps (``policy/gaps.json``) as the report shows them: what, where, what to do."""
    if not (policy / "gaps.json").is_file():
        return []
    doc = _read_json(policy / "gaps.json", "the policy gaps")
    items = doc.get("gaps") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise InputError(f"{policy / 'gaps.json'}: expected a list of gaps")
    gaps = []
    for item in items:
        if isinstance(item, dict):
            repos = item.get("repositories")
            gaps.append({"what": str(item.get("what", item.get("kind", ""))), "todo": str(item.get("todo", "")),
                         "repositories": [str(r) for r in repos] if isinstance(repos, list) else []})  # fmt: skip
    return gaps


# --- verification -------------------------------------------------------------------------------------------


@dataclass
class BundleCheck:
    files: int
    verdict: Verdict


def verify_bundle(bundle: Path, limits: Limits = DEFAULT_LIMITS) -> BundleCheck:
    """Integrity first (naming any changed file), then DCT + Notation from the bundle alone; no network."""
    if not bundle.is_dir():
        raise InputError(f"{bundle}: not a directory")
    files = check_integrity(bundle, limits)
    where = bundle / "SIGNOFF.json"
    record = _read_bundle_json(bundle, "SIGNOFF.json", "the sign-off record", limits)
    if not isinstance(record, dict):
        raise InputError(f"{where}: the sign-off record is not a JSON object")
    try:
        dct_at = _instant(str(record["dct_evaluated_at"]), where, "dct_evaluated_at")
        notation_at = _instant(str(record["notation_verified_at"]), where, "notation_verified_at")
    except KeyError as exc:
        raise InputError(f"{where}: field {exc} is missing") from exc
    if record.get("format") != FORMAT:
        raise InputError(f"{where}: format is {record.get('format')!r}, expected {FORMAT!r}")
    plan_doc = _read_bundle_json(bundle, "plan.json", "the plan", limits)
    plan_from_dict(plan_doc, str(bundle / "plan.json"))
    verdict = evaluate(
        archive=bundle / "archive",
        plan_doc=plan_doc,
        signatures_dir=bundle / "signatures",
        policy_dir=bundle / "policy",
        dct_at=dct_at,
        notation_at=notation_at,
        check_doc=_read_bundle_json(bundle, "check.json", "the coexistence run", limits)
        if (bundle / "check.json").is_file()
        else None,
        limits=limits,
        inventory_digest="sha256:" + _sha256_file(bundle, "inventory.json")[0]
        if (bundle / "inventory.json").is_file()
        else None,
        waivers=load_waivers(bundle / WAIVERS) if (bundle / WAIVERS).is_file() else [],
    )
    recorded = record.get("verdict")
    computed = "ready" if verdict.ready else "not ready"
    if recorded != computed:
        raise GateFailed(f"{bundle / 'SIGNOFF.json'}: records {recorded!r} but re-verification says {computed!r}")
    return BundleCheck(files, verdict)


def summary_line(verdict: Verdict) -> str:
    if verdict.ready:
        return "ready"
    return "not ready: " + "; ".join(verdict.reasons)


def uncovered_names(coverage: Iterable[Coverage]) -> list[str]:
    return [f"{c.repository}@{c.digest}" for c in coverage if not c.covered]
