"""An output directory the tool owns: a manifest of the files it wrote, so a rerun replaces exactly those.

`policy -o DIR` over an existing folder overwrote files silently and kept the trust store of an identity that had
been removed from signers.toml (Notation would still trust it). Now: a new or empty DIR is written; a DIR holding
our manifest and nothing else has our old files removed and the new ones written; any file we did not write (or a
symlink, or a manifest naming a path outside DIR) makes the command refuse before anything changes. Never delete
what we did not write.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError
from ..files import UnsafePathError, read_regular, remove_beneath, segments, walk_plain, write_beneath
from ..jsontext import loads as json_loads

MANIFEST = ".dct2notation-output.json"
FORMAT = "dct2notation-output/1"
_MANIFEST_BYTES = 4 * 1024 * 1024


def claim(outdir: Path, command: str, option: str = "-o") -> list[str]:
    """Check ``outdir`` may be (re)written by ``command``; returns the files a previous run wrote there."""
    if not outdir.exists():
        return []
    if not outdir.is_dir() or outdir.is_symlink():
        raise InputError(f"{option} {outdir}: exists and is not a directory")
    try:
        present = set(walk_plain(outdir))
    except UnsafePathError as exc:
        raise InputError(f"{option} {outdir}: {exc}; not written") from exc
    if not present:
        return []
    if MANIFEST not in present:
        raise InputError(
            f"{option} {outdir}: exists and was not written by `{command}` (no {MANIFEST}); choose a new directory"
        )
    previous = _read_manifest(outdir, command, option)
    foreign = sorted(present - set(previous) - {MANIFEST})
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise InputError(f"{option} {outdir}: holds {foreign[0]}{more}, not written by `{command}`; left alone, "
                         "nothing written (move it away or choose a new directory)")  # fmt: skip
    return previous


def _read_manifest(outdir: Path, command: str, option: str) -> list[str]:
    where = outdir / MANIFEST
    try:
        doc = json_loads(read_regular(outdir, MANIFEST, _MANIFEST_BYTES).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: unreadable ({exc})") from exc
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("command") != command:
        raise InputError(f"{where}: not a `{command}` output manifest ({FORMAT}); choose a new directory")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise InputError(f"{where}: files: expected a list of relative paths")
    for name in files:
        segments(name, str(where))  # a listed ../x or /x is refused, never removed
    return list(files)


def clear(outdir: Path, previous: Iterable[str]) -> None:
    """Remove the files a previous run wrote that this run did not write again (and the directories that
    empties); nothing else. Called after the new files are written, before ``record``."""
    dirs: set[Path] = set()
    for name in previous:
        remove_beneath(outdir, name)
        parent = Path(name).parent
        while parent != Path("."):
            dirs.add(parent)
            parent = parent.parent
    for directory in sorted(dirs, key=lambda d: len(d.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty (a file we keep writing there) or already gone
            os.rmdir(outdir / directory)


def record(outdir: Path, command: str, written: Iterable[Path]) -> None:
    """Write the manifest last: its presence says the directory is one complete output of ``command``."""
    files = sorted({p.relative_to(outdir).as_posix() for p in written})
    doc = {"format": FORMAT, "command": command, "files": files}
    write_beneath(outdir, MANIFEST, json.dumps(doc, indent=2) + "\n")
