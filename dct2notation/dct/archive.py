"""Archive a GUN's trust data: verify first, write into a temp dir, rename, ``ARCHIVE.json`` last."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..config import DEFAULT_LIMITS, Clock, Limits
from ..errors import InputError
from ..files import FileError, inside, os_reason, read_capped, read_regular, write_error
from ..jsontext import loads as json_loads
from .concurrent import SourcePool, verify_all
from .tuf import MetadataSource, SkippedRole, TrustedState, VerifiedRepository

FORMAT = "dct2notation-archive/1"
MANIFEST = "ARCHIVE.json"


def write_archive(
    guns: Iterable[str],
    source: MetadataSource,
    output: Path,
    clock: Clock,
    limits: Limits,
    on_skipped: Callable[[str, SkippedRole], None] | None = None,
    failures: list[dict[str, str]] | None = None,
    *,
    sources: SourcePool[Any] | None = None,
    concurrency: int = 1,
    on_done: Callable[[str], None] | None = None,
    verified_out: list[VerifiedRepository] | None = None,
) -> Path:
    """Verify every GUN from ``source`` and write its raw bytes under ``output``; returns ``output``.

    A delegation notary would skip (expired, under-signed) is archived as served and reported to ``on_skipped``.
    ``failures`` given: a GUN that is unknown or does not verify is appended there ({"gun", "reason"}, also recorded
    in ARCHIVE.json) and the others are still archived (one expired GUN lost the whole estate's archive); nothing is
    written when none verifies. Without it the first such error is raised. ``sources`` (one per thread) with
    ``concurrency`` reads GUNs at once (``concurrent.verify_all``); the archive lists them in the order given.
    ``verified_out`` receives what was verified, in that order, once the archive is written (an inventory of the
    very bytes archived, without reading them back).
    """
    gun_list = list(guns)
    if output.exists() and not output.is_dir():
        raise InputError(f"-o {output}: exists and is not a directory")
    if output.exists() and any(output.iterdir()):
        raise InputError(f"-o {output}: exists and is not empty; choose a new directory")
    # Everything is verified before a byte is written, so a refused GUN leaves nothing of its own behind.
    verified = []
    failed: list[dict[str, str]] = []
    pool = sources if sources is not None else SourcePool(lambda: source, shared=True)
    for gun, outcome in verify_all(
        gun_list, pool, clock, limits, concurrency=concurrency, keep_files=True, on_done=on_done
    ):
        if isinstance(outcome, Exception):
            if failures is None:
                raise outcome
            failed.append({"gun": gun, "reason": str(outcome)})
        else:
            verified.append(outcome)
    if failures is not None:
        failures.extend(failed)
        if not verified:
            return output
    for repo in verified:
        for skipped in repo.skipped:
            if on_skipped is not None:
                on_skipped(repo.gun, skipped)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    except OSError as exc:
        raise FileError(f"-o {output}: cannot create ({os_reason(exc)})") from exc
    try:
        files: list[dict[str, Any]] = []
        for repo in verified:
            for name in sorted(repo.files):
                raw = repo.files[name]
                relative = f"{repo.gun}/{name}.json"
                # Role names are checked when verified; this is the second wall, for any name that slips past.
                target = inside(staging, relative, what=f"{repo.gun}: role file")
                _write_new(target, raw, output)
                files.append({"path": relative, "sha256": hashlib.sha256(raw).hexdigest(), "length": len(raw)})
        manifest: dict[str, Any] = {"format": FORMAT, "guns": [repo.gun for repo in verified], "files": files}
        if failed:
            manifest["failed_guns"] = failed
        # The manifest's presence is what marks the archive complete, so it is written after every file.
        _write_new(staging / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode(), output)
        try:
            if output.exists():
                output.rmdir()
            os.replace(staging, output)
        except OSError as exc:
            raise FileError(f"-o {output}: cannot create ({os_reason(exc)})") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if verified_out is not None:
        verified_out.extend(verified)
    return output


def _write_new(target: Path, raw: bytes, output: Path) -> None:
    # Staging is a fresh private directory: plain writes suffice, the directory rename is the atomic step.
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(raw)
    except OSError as exc:
        raise write_error(target, exc, f"-o {output}:") from exc


def read_baseline(directory: Path, limits: Limits = DEFAULT_LIMITS) -> dict[str, TrustedState]:
    """What an archive verified, per GUN: its root (the anchor of later roots) and each role's version (floors)."""
    manifest = read_manifest(directory, limits)
    versions: dict[str, dict[str, int]] = {}
    roots: dict[str, bytes] = {}
    for entry in manifest["files"]:
        path = str(entry["path"])
        for gun in manifest["guns"]:
            prefix = f"{gun}/"
            if not path.startswith(prefix) or not path.endswith(".json"):
                continue
            name = path[len(prefix) : -len(".json")]
            if name.split(".", 1)[0].isdigit():
                continue
            try:
                raw = read_capped(directory, path, limits.metadata_bytes)
                doc = json_loads(raw)
                version = int(doc["signed"]["version"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise InputError(f"{directory / path}: unreadable archived metadata") from exc
            versions.setdefault(gun, {})[name] = version
            if name == "root":
                roots[gun] = raw
    return {gun: TrustedState(roots.get(gun), floors) for gun, floors in versions.items()}


def read_manifest(directory: Path, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        data = json_loads(read_regular(directory, MANIFEST, limits.metadata_bytes))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: missing (not an archive, or an incomplete one)") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable archive manifest ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{path}: format: expected {FORMAT!r}")
    if not isinstance(data.get("guns"), list) or not isinstance(data.get("files"), list):
        raise InputError(f"{path}: guns/files: expected lists")
    if not all(isinstance(gun, str) for gun in data["guns"]):
        raise InputError(f"{path}: guns: expected a list of strings")
    for n, entry in enumerate(data["files"]):
        _check_file_entry(entry, f"{path}: files[{n}]")
    return data


def _check_file_entry(entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected an object with path, sha256 and length")
    name = entry.get("path")
    # Inside the archive only: an absolute or ../ path would make the integrity check read files elsewhere.
    if not isinstance(name, str) or not name or name.startswith("/") or ".." in name.split("/"):
        raise InputError(f"{where}.path: expected a relative path inside the archive")
    if not isinstance(entry.get("sha256"), str):
        raise InputError(f"{where}.sha256: expected a hex string")
    length = entry.get("length")
    if not isinstance(length, int) or isinstance(length, bool):
        raise InputError(f"{where}.length: expected an integer")


def check_archive(directory: Path, limits: Limits = DEFAULT_LIMITS) -> None:
    """Every file the manifest lists is present with its recorded length and sha256."""
    for entry in read_manifest(directory, limits)["files"]:
        path = directory / str(entry.get("path"))
        try:
            raw = read_regular(directory, str(entry.get("path")), limits.metadata_bytes)
        except FileNotFoundError as exc:
            raise InputError(f"{path}: listed in {MANIFEST} but unreadable") from exc
        if len(raw) != entry.get("length") or hashlib.sha256(raw).hexdigest() != entry.get("sha256"):
            raise InputError(f"{path}: does not match the length/sha256 in {MANIFEST}")
