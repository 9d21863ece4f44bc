"""Sign-off inputs belong to one migration: the plan made from this inventory, its journal, a check of these GUNs.

A bundle assembled from mismatched files proves nothing: a plan from another inventory made 311 digests "not
covered" although they were signed, and a journal of another migration was bundled without a word. Each mismatch
is refused with one line naming the two files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError


def trusted_digests(inventory_doc: Mapping[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(GUN, digest) -> tags, for every trusted tag (docker pull semantics) of an inventory document."""
    out: dict[tuple[str, str], set[str]] = {}
    for repo in inventory_doc.get("repositories", []) or []:
        if not isinstance(repo, dict):
            continue
        for tag in repo.get("trusted_tags", []) or []:
            if isinstance(tag, dict):
                out.setdefault((str(repo.get("gun")), str(tag.get("digest"))), set()).add(str(tag.get("tag")))
    return out


def _gun_of(job: Mapping[str, Any]) -> str:
    annotations = job.get("annotations")
    gun = annotations.get("io.dct2notation.migration.gun") if isinstance(annotations, dict) else None
    return str(gun if gun is not None else job.get("repository"))


def require_plan_of_inventory(
    plan_doc: Mapping[str, Any], plan: Path, inventory_doc: Mapping[str, Any], inventory: Path
) -> None:
    """The plan was made from this inventory: its recorded inventory digest (when the plan carries one) is this
    file's, and its jobs are exactly the inventory's trusted digests."""
    binding = plan_doc.get("inventory")
    recorded = binding.get("digest") if isinstance(binding, dict) else None
    if isinstance(recorded, str):
        actual = "sha256:" + hashlib.sha256(inventory.read_bytes()).hexdigest()
        if recorded != actual:
            raise InputError(f"--plan {plan}: made from inventory {recorded}, not --inventory {inventory} ({actual})")
    trusted = set(trusted_digests(inventory_doc))
    planned: set[tuple[str, str]] = set()
    for job in plan_doc.get("jobs", []):
        if not isinstance(job, dict):
            continue
        parent = job.get("parent")
        # A platform manifest (plan --children) is trusted through its index: the index's digest must be trusted.
        digest = parent.get("digest") if isinstance(parent, dict) else job.get("digest")
        planned.add((_gun_of(job), str(digest)))
    # The pre-flight drops a job whose manifest the registry lacks and records it as a finding: not a mismatch.
    findings = plan_doc.get("findings", []) or []
    dropped = {str(f.get("digest")) for f in findings if isinstance(f, dict) and f.get("kind") == "missing-manifest"}
    missing = {(gun, digest) for gun, digest in trusted - planned if digest not in dropped}
    foreign = planned - trusted
    if missing or foreign:
        parts = []
        if missing:
            gun, digest = sorted(missing)[0]
            parts.append(f"{len(missing)} trusted digest(s) of the inventory are not in the plan (e.g. {gun}@{digest})")
        if foreign:
            gun, digest = sorted(foreign)[0]
            parts.append(f"{len(foreign)} job(s) sign what the inventory does not trust (e.g. {gun}@{digest})")
        raise InputError(
            f"--plan {plan} was not made from --inventory {inventory}: {'; '.join(parts)}; re-run plan from it"
        )


def require_journal_of_plan(
    journal_migration: str | None, journal: Path, plan_doc: Mapping[str, Any], plan: Path
) -> None:
    migration = plan_doc.get("migration_id")
    if journal_migration is None:
        raise InputError(f"--journal {journal}: no batch ran on this journal (it is bound to no migration)")
    if journal_migration != migration:
        raise InputError(
            f"--journal {journal}: belongs to migration {journal_migration!r}, --plan {plan} is {migration!r}"
        )


def require_check_of_inventory(check_doc: Any, check: Path, inventory_doc: Mapping[str, Any], inventory: Path) -> None:
    """The final check ran over the inventory's GUNs and saw the same DCT digests (a check run of another estate,
    or of DCT as it stood before a re-sign, is not this migration's evidence)."""
    tags = check_doc.get("tags") if isinstance(check_doc, dict) else None
    if not isinstance(tags, list):
        return  # the verdict reports a check without tags
    guns = {str(r.get("gun")) for r in inventory_doc.get("repositories", []) or [] if isinstance(r, dict)}
    checked = {str(t.get("gun")) for t in tags if isinstance(t, dict)}
    summary = check_doc.get("summary") if isinstance(check_doc, dict) else None
    empty = summary.get("empty_guns") if isinstance(summary, dict) else None
    checked |= {str(g.get("gun")) for g in empty or [] if isinstance(g, dict)}
    unchecked = sorted(guns - checked)
    if unchecked:
        raise InputError(f"--check-json {check}: does not cover GUN {unchecked[0]} of --inventory {inventory}"
                         f" ({len(unchecked)} GUN(s) unchecked)")  # fmt: skip
    trusted = {(gun, tag): digest for (gun, digest), names in trusted_digests(inventory_doc).items() for tag in names}
    for row in tags:
        if not isinstance(row, dict) or row.get("dct") != "valid":
            continue
        key = (str(row.get("gun")), str(row.get("tag")))
        if key in trusted and row.get("dct_digest") != trusted[key]:
            raise InputError(
                f"--check-json {check}: {key[0]}:{key[1]} DCT digest {row.get('dct_digest')} is not --inventory"
                f" {inventory}'s {trusted[key]}: the check saw other DCT data; re-run inventory, plan and sign"
            )
