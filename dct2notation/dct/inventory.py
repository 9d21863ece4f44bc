"""Docker's view of verified Notary data: trusted tags (``docker pull``) and ``docker trust inspect`` rows."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..config import DEFAULT_LIMITS, Clock, Limits, format_rfc3339
from ..errors import InputError
from ..jsontext import read_json_file
from .concurrent import SourcePool, verify_all
from .tuf import RELEASES, MetadataSource, TrustedState, VerifiedRepository

FORMAT = "dct2notation-inventory/1"
RELEASED_ROLES = (RELEASES, "targets")
REPO_ADMIN = "Repo Admin"


_RUNS = re.compile(r"(\d+)")
_TEXT_THEN_NUMBER = re.compile(r"(\D*)(\d+)")


NaturalKey = tuple[tuple[int, int | str], ...]


def natural_key(text: str) -> NaturalKey:
    """docker's ``sortorder.NaturalLess``: digit runs compare as numbers."""
    # Most tags are text then one number ("v12", "build-345"): one match instead of a split.
    simple = _TEXT_THEN_NUMBER.fullmatch(text)
    if simple is not None:
        head, digits = simple.groups()
        return ((1, head), (0, int(digits))) if head else ((0, int(digits)),)
    # split() with a capture group alternates text, digits, text, …: odd positions are the digit runs.
    parts = _RUNS.split(text)
    return tuple([(0, int(part)) if i & 1 else (1, part) for i, part in enumerate(parts) if part])


def _signer_name(role: str) -> str:
    return REPO_ADMIN if role in RELEASED_ROLES else role.removeprefix("targets/")


@dataclass
class Inventory:
    evaluated_at: str
    repositories: list[dict[str, Any]]
    # GUNs that could not be read ({"gun", "reason"}): unknown to the server, expired, refused by verification.
    failed_guns: list[dict[str, str]] = field(default_factory=list)
    # sha256 of the document's bytes when read from a file (load_inventory): a plan made from it carries this digest,
    # so `sign` can tell that the inventory it is given is the one the plan came from.
    digest: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"format": FORMAT, "evaluated_at": self.evaluated_at, "repositories": self.repositories}
        if self.failed_guns:
            doc["failed_guns"] = self.failed_guns
        return doc

    def to_json(self) -> str:
        """The compact ``--json`` text: what ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` writes.

        orjson writes the same text ~10x faster (a 10,000-tag GUN: 3 MB in 3 ms instead of 25 ms); json covers
        what orjson refuses (a lone surrogate in a tag, an integer past 64 bits).
        """
        doc = self.to_dict()
        try:
            return orjson.dumps(doc).decode("utf-8")
        except TypeError:
            return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))

    def only(self, guns: Iterable[str], where: str) -> Inventory:
        """The part of this inventory for ``guns`` (``--guns-from``); a GUN it does not hold is an error, since a
        plan that silently leaves out a listed repository is the gap a migration must not have."""
        wanted = list(guns)
        held = {str(repo["gun"]) for repo in self.repositories} | {f["gun"] for f in self.failed_guns}
        absent = [gun for gun in wanted if gun not in held]
        if absent:
            more = f" and {len(absent) - 3} more" if len(absent) > 3 else ""
            raise InputError(f"{where}: {', '.join(absent[:3])}{more} not in the inventory; run inventory for them")
        keep = set(wanted)
        return Inventory(
            self.evaluated_at,
            [repo for repo in self.repositories if repo["gun"] in keep],
            [f for f in self.failed_guns if f["gun"] in keep],
            # The same file: a plan of the selection stays bound to it (sign checks every job against it).
            digest=self.digest,
        )

    def repository(self, gun: str) -> dict[str, Any]:
        for repo in self.repositories:
            if repo["gun"] == gun:
                return repo
        raise KeyError(gun)


def repository_document(repo: VerifiedRepository) -> dict[str, Any]:
    """One ``repositories[]`` entry (docs/CONTRACTS.md) from a verified repository."""
    roles = repo.roles
    trusted = _pull_trusted(repo)
    # Every sort below orders these tags (and ties keep insertion order): each natural key is computed once.
    sort_key = {name: natural_key(name) for name in trusted}
    trusted_tags = [trusted[name] for name in sorted(trusted, key=sort_key.__getitem__)]

    # docker trust inspect: rows keyed by (tag, digest) from released roles; signers are the other roles
    # holding the same tag and digest, in walk order.
    rows: dict[tuple[str, str], list[str]] = {}
    for role in roles.values():
        if role.name in RELEASED_ROLES:
            for name, target in role.targets.items():
                rows.setdefault((name, target.digest), [])
    for role in roles.values():
        if role.name in RELEASED_ROLES:
            continue
        signer = _signer_name(role.name)
        for name, target in role.targets.items():
            holders = rows.get((name, target.digest))
            if holders is not None:
                holders.append(signer)
    for tag, _ in rows:
        if tag not in sort_key:  # released by targets, but docker resolves it to a nested releases role
            sort_key[tag] = natural_key(tag)
    signed_tags = [
        {"tag": tag, "digest": digest, "signers": holders or [REPO_ADMIN]}
        for (tag, digest), holders in sorted(rows.items(), key=lambda item: (sort_key[item[0][0]], item[0][1]))
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

    conflicts = _conflicts(repo, sort_key)
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
        "skipped_roles": [{"role": skip.role, "reason": skip.reason} for skip in repo.skipped],
    }


def _pull_trusted(repo: VerifiedRepository) -> dict[str, dict[str, Any]]:
    """The tags ``docker pull`` trusts, as docker/cli resolves each: ``GetTargetByName(tag, releases, targets)``.

    notary walks the ``targets/releases`` subtree breadth-first and the first role holding the tag answers; only
    if none does is ``targets`` asked. docker then keeps the answer only when its role is exactly
    ``targets/releases`` or ``targets``: a tag whose first holder is a nested ``targets/releases/x`` is not
    trusted at all, and does not fall back to ``targets``' digest.
    """
    first: dict[str, tuple[str, Any]] = {}
    subtree = RELEASES + "/"
    for role in repo.roles.values():  # breadth-first from targets, so the subtree comes in notary's walk order
        if role.name == RELEASES or role.name.startswith(subtree):
            for name, target in role.targets.items():
                if name not in first:
                    first[name] = (role.name, target)
    top = repo.roles.get("targets")
    for name, target in top.targets.items() if top is not None else ():
        if name not in first:
            first[name] = ("targets", target)
    return {
        name: {"tag": name, "digest": target.digest, "size": target.size, "role": role}
        for name, (role, target) in first.items()
        if role in RELEASED_ROLES
    }


def _conflicts(repo: VerifiedRepository, sort_key: dict[str, NaturalKey]) -> list[dict[str, Any]]:
    """Tags that roles sign with different digests, each with every role's digest in walk order."""
    first: dict[str, tuple[str, str]] = {}  # tag -> (role, digest) of the first role holding it
    shared: dict[str, dict[str, str]] = {}  # only tags held by more than one role
    for role in repo.roles.values():
        for name, target in role.targets.items():
            seen = first.get(name)
            if seen is None:
                first[name] = (role.name, target.digest)
            elif name in shared:
                shared[name][role.name] = target.digest
            else:
                shared[name] = {seen[0]: seen[1], role.name: target.digest}
    # First-seen order, as ties in the natural sort keep it.
    clashing = [tag for tag in first if tag in shared and len(set(shared[tag].values())) > 1] if shared else []
    clashing.sort(key=lambda tag: sort_key[tag] if tag in sort_key else natural_key(tag))
    return [{"tag": tag, "digests": shared[tag]} for tag in clashing]


def build_inventory(
    guns: Iterable[str],
    source: MetadataSource,
    clock: Clock,
    limits: Limits,
    baseline: dict[str, TrustedState] | None = None,
    *,
    keep_going: bool = False,
    sources: SourcePool[Any] | None = None,
    concurrency: int = 1,
    on_done: Callable[[str], None] | None = None,
) -> Inventory:
    """Verify every GUN, then apply Docker's rules. ``baseline[gun]`` anchors its root and guards against rollback.

    ``keep_going``: a GUN that is unknown, does not verify or that its server keeps failing for is recorded in
    ``failed_guns`` and the others are still read (one expired GUN made a whole estate's inventory fail with nothing
    written); otherwise its error is raised. ``sources`` (one per thread) with ``concurrency`` reads GUNs at once;
    the document lists them in the order given whatever order they finish in.
    """
    now = clock.now()
    repositories = []
    failed: list[dict[str, str]] = []
    pool = sources if sources is not None else SourcePool(lambda: source, shared=True)
    outcomes = verify_all(guns, pool, clock, limits, concurrency=concurrency, baseline=baseline, on_done=on_done)
    for gun, outcome in outcomes:
        if isinstance(outcome, Exception):
            if not keep_going:
                raise outcome
            failed.append({"gun": gun, "reason": str(outcome)})
            continue
        repositories.append(repository_document(outcome))
    stamp = format_rfc3339(now, fraction=True)
    return Inventory(evaluated_at=stamp, repositories=repositories, failed_guns=failed)


def load_inventory(path: Path) -> Inventory:
    """Read back a ``--json`` inventory document."""
    raw, data = read_json_file(path, what="inventory", max_bytes=DEFAULT_LIMITS.document_bytes)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{path}: format: expected {FORMAT!r}")
    repos = data.get("repositories")
    if not isinstance(repos, list) or not all(isinstance(r, dict) and isinstance(r.get("gun"), str) for r in repos):
        raise InputError(f"{path}: repositories: expected a list of objects with a gun")
    stamp = data.get("evaluated_at")
    if not isinstance(stamp, str):
        raise InputError(f"{path}: evaluated_at: expected an RFC 3339 string")
    for n, repo in enumerate(repos):
        _check_repository(repo, f"{path}: repositories[{n}]")
    failed = data.get("failed_guns", [])
    if not isinstance(failed, list) or not all(
        isinstance(f, dict) and isinstance(f.get("gun"), str) and isinstance(f.get("reason"), str) for f in failed
    ):
        raise InputError(f"{path}: failed_guns: expected a list of objects with gun and reason")
    return Inventory(
        evaluated_at=stamp,
        repositories=repos,
        failed_guns=failed,
        digest="sha256:" + hashlib.sha256(raw).hexdigest(),
    )


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _check_repository(repo: dict[str, Any], where: str) -> None:
    """The fields plan, policy and check read, so a hand-edited document fails here with its path, not later."""
    for n, tag in enumerate(_list_field(repo, "trusted_tags", where)):
        at = f"{where}.trusted_tags[{n}]"
        _target(tag, at)
        _typed(tag, "size", int, "an integer", at)
        _typed(tag, "role", str, "a string", at)
    role_targets = repo.get("role_targets", {})
    if not isinstance(role_targets, dict):
        raise InputError(f"{where}.role_targets: expected an object of role -> targets")
    for role, targets in role_targets.items():
        if not isinstance(targets, list):
            raise InputError(f"{where}.role_targets[{role!r}]: expected a list")
        for n, target in enumerate(targets):
            _target(target, f"{where}.role_targets[{role!r}][{n}]")
    for n, deleg in enumerate(_list_field(repo, "delegations", where)):
        at = f"{where}.delegations[{n}]"
        if not isinstance(deleg, dict):
            raise InputError(f"{at}: expected an object")
        _typed(deleg, "role", str, "a string", at)
        if "threshold" in deleg:
            _typed(deleg, "threshold", int, "an integer", at)
        paths = deleg.get("paths", [])
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise InputError(f"{at}.paths: expected a list of strings")


def _list_field(obj: dict[str, Any], name: str, where: str) -> list[Any]:
    value = obj.get(name, [])
    if not isinstance(value, list):
        raise InputError(f"{where}.{name}: expected a list")
    return value


def _target(target: Any, at: str) -> None:
    if not isinstance(target, dict):
        raise InputError(f"{at}: expected an object")
    _typed(target, "tag", str, "a string", at)
    digest = _typed(target, "digest", str, "a string", at)
    if not _DIGEST.fullmatch(digest):
        raise InputError(f"{at}.digest: expected sha256:<64 lowercase hex>, got {digest[:80]!r}")


def _typed(obj: dict[str, Any], name: str, kind: type, described: str, at: str) -> Any:
    value = obj.get(name)
    # bool is an int subclass; True is no size or threshold.
    if not isinstance(value, kind) or isinstance(value, bool):
        shown = "missing" if name not in obj else f"got {type(value).__name__ if value is not None else 'null'}"
        raise InputError(f"{at}.{name}: expected {described} ({shown})")
    return value
