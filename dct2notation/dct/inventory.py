"""Docker's view of verified Notary data: trusted tags (``docker pull``) and ``docker trust inspect`` rows."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Clock, Limits
from ..errors import InputError
from .tuf import MetadataSource, VerifiedRepository, verify_repository

FORMAT = "dct2notation-inventory/1"
RELEASES = "targets/releases"
RELEASED_ROLES = (RELEASES, "targets")
REPO_ADMIN = "Repo Admin"


_RUNS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """docker's ``sortorder.NaturalLess``: digit runs compare as numbers."""
    # split() with a capture group alternates text, digits, text, …: odd positions are the digit runs.
    parts = _RUNS.split(text)
    return tuple((0, int(part)) if i % 2 else (1, part) for i, part in enumerate(parts) if part)


def _signer_name(role: str) -> str:
    return REPO_ADMIN if role in RELEASED_ROLES else role.removeprefix("targets/")


@dataclass
class Inventory:
    evaluated_at: str
    repositories: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "evaluated_at": self.evaluated_at, "repositories": self.repositories}

    def repository(self, gun: str) -> dict[str, Any]:
        for repo in self.repositories:
            if repo["gun"] == gun:
                return repo
        raise KeyError(gun)


def repository_document(repo: VerifiedRepository) -> dict[str, Any]:
    """One ``repositories[]`` entry (docs/CONTRACTS.md) from a verified repository."""
    roles = repo.roles
    trusted: dict[str, dict[str, Any]] = {}
    for released in RELEASED_ROLES:  # releases shadows targets; other delegations are not trusted for pull
        verified = roles.get(released)
        if verified is None:
            continue
        for target in verified.targets.values():
            if target.name not in trusted:
                trusted[target.name] = {
                    "tag": target.name,
                    "digest": target.digest,
                    "size": target.size,
                    "role": released,
                }
    trusted_tags = [trusted[name] for name in sorted(trusted, key=natural_key)]

    # docker trust inspect: rows keyed by (tag, digest) from released roles; signers are the other roles
    # holding the same tag and digest, in walk order.
    rows: dict[tuple[str, str], list[str]] = {}
    for role in roles.values():
        if role.name in RELEASED_ROLES:
            for target in role.targets.values():
                rows.setdefault((target.name, target.digest), [])
    for role in roles.values():
        if role.name in RELEASED_ROLES:
            continue
        for target in role.targets.values():
            holders = rows.get((target.name, target.digest))
            if holders is not None:
                holders.append(_signer_name(role.name))
    signed_tags = [
        {"tag": tag, "digest": digest, "signers": holders or [REPO_ADMIN]}
        for (tag, digest), holders in sorted(rows.items(), key=lambda item: (natural_key(item[0][0]), item[0][1]))
    ]

    signer_keys: dict[str, set[str]] = {}
    for deleg in repo.delegations:
        if deleg.role == RELEASES:
            continue
        signer_keys.setdefault(_signer_name(deleg.role), set()).update(k.canonical_id for k in deleg.keys)
    signers = [
        {"name": name, "keys": [{"id": key} for key in sorted(signer_keys[name])]}
        for name in sorted(signer_keys, reverse=True)
    ]
    administrative_keys = [
        {"name": "Root", "keys": [{"id": key} for key in sorted(repo.root_keys)]},
        {"name": "Repository", "keys": [{"id": key} for key in sorted(repo.targets_keys)]},
    ]

    by_tag: dict[str, dict[str, str]] = {}
    for role in roles.values():
        for target in role.targets.values():
            by_tag.setdefault(target.name, {})[role.name] = target.digest
    clashing = [tag for tag, digests in by_tag.items() if len(digests) > 1 and len(set(digests.values())) > 1]
    conflicts = [{"tag": tag, "digests": by_tag[tag]} for tag in sorted(clashing, key=natural_key)]
    delegations = [
        {
            "role": deleg.role,
            "threshold": deleg.threshold,
            "paths": list(deleg.paths),
            "keys": [
                {"id": k.id, "canonical_id": k.canonical_id, "keytype": k.keytype, "certificate_pem": k.certificate_pem}
                for k in deleg.keys
            ],
        }
        for deleg in repo.delegations
    ]
    role_targets = {
        role.name: [{"tag": t.name, "digest": t.digest, "size": t.size} for t in role.targets.values()]
        for role in roles.values()
    }
    return {
        "gun": repo.gun,
        "trusted_tags": trusted_tags,
        "signed_tags": signed_tags,
        "signers": signers,
        "administrative_keys": administrative_keys,
        "conflicts": conflicts,
        "delegations": delegations,
        "role_targets": role_targets,
        "root_version": repo.root_version,
    }


def build_inventory(
    guns: Iterable[str],
    source: MetadataSource,
    clock: Clock,
    limits: Limits,
    trusted_versions: dict[str, dict[str, int]] | None = None,
) -> Inventory:
    """Verify every GUN, then apply Docker's rules. ``trusted_versions[gun]`` guards against rollback."""
    now = clock.now()
    repositories = []
    for gun in guns:
        repo = verify_repository(gun, source, clock, limits, (trusted_versions or {}).get(gun))
        repositories.append(repository_document(repo))
    stamp = now.isoformat().replace("+00:00", "Z")
    return Inventory(evaluated_at=stamp, repositories=repositories)


def load_inventory(path: Path) -> Inventory:
    """Read back a ``--json`` inventory document."""
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: cannot read inventory ({exc.strerror})") from exc
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{path}: format: expected {FORMAT!r}")
    repos = data.get("repositories")
    if not isinstance(repos, list) or not all(isinstance(r, dict) and isinstance(r.get("gun"), str) for r in repos):
        raise InputError(f"{path}: repositories: expected a list of objects with a gun")
    stamp = data.get("evaluated_at")
    if not isinstance(stamp, str):
        raise InputError(f"{path}: evaluated_at: expected an RFC 3339 string")
    return Inventory(evaluated_at=stamp, repositories=repos)
