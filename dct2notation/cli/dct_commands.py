"""Bodies of ``archive`` and ``inventory``, and an argv parser for ``inventory`` that needs no typer.

Typer (0.29) builds a pydantic ``TypeAdapter`` per option and imports pydantic for it: about 0.1 s per process,
more than ``notary list`` spends on a whole 10,000-tag GUN. ``parse_inventory_argv`` reads the plain forms of the
``inventory`` options (the typer declarations in ``cli/dct.py``) and answers None for anything else — help, a typo,
a repeated or missing value, ``--`` — so typer then parses that argv and keeps its own help and error texts.
"""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import DEFAULT_LIMITS, Clock, FixedClock, SystemClock, parse_at_option
from ..errors import GateFailed, UsageError
from ..safetext import printable


def _source(
    server: str | None,
    trust_dir: Path | None,
    archive: Path | None,
    ca: Path | None,
    username: str | None,
    password_stdin: bool,
) -> Any:
    chosen = [
        name
        for name, value in (("--server", server), ("--trust-dir", trust_dir), ("--archive", archive))
        if value is not None
    ]
    if len(chosen) != 1:
        what = "no source given" if not chosen else f"conflicting sources {' and '.join(chosen)}"
        raise UsageError(
            f"{what}: give exactly one of --server URL, --trust-dir DIR"
            + (", --archive DIR" if archive is not None or trust_dir is None else "")
        )
    if server is not None:
        from ..dct.source import NotaryServerSource
        from .credentials import read_credentials

        creds = read_credentials(username, password_stdin)
        return NotaryServerSource(
            server,
            ca=ca,
            limits=DEFAULT_LIMITS,
            username=creds.username if creds else None,
            password=creds.password if creds else None,
        )
    from ..dct.source import ArchiveSource, TrustDirSource

    if trust_dir is not None:
        return TrustDirSource(trust_dir)
    assert archive is not None
    return ArchiveSource(archive)


def _warn(line: str) -> None:
    print(f"dct2notation: warning: {printable(line)}", file=sys.stderr)


def _clock(at: str | None) -> Clock:
    return FixedClock(parse_at_option(at)) if at else SystemClock()


def run_archive(
    guns: list[str],
    output: Path,
    server: str | None,
    trust_dir: Path | None,
    ca: Path | None,
    username: str | None,
    password_stdin: bool,
    at: str | None,
) -> None:
    from ..dct.archive import write_archive
    from ..report import stderr_console

    source = _source(server, trust_dir, None, ca, username, password_stdin)
    failures: list[dict[str, str]] = []
    write_archive(
        guns,
        source,
        output,
        _clock(at),
        DEFAULT_LIMITS,
        lambda gun, skipped: _warn(skipped.warning(gun)),
        # One GUN: its own error (and exit code) as it is; several: keep going past each that fails.
        failures if len(guns) > 1 else None,
    )
    archived = len(guns) - len(failures)
    if archived:
        stderr_console.print(f"archived {archived} GUN(s) to {output}", highlight=False, soft_wrap=True)
    _fail_for(failures, len(guns), "archive", f"{output} holds the other {archived}" if archived else "nothing written")


def _fail_for(failures: list[dict[str, str]], total: int, command: str, rest: str) -> None:
    """One line per GUN that could not be read, then exit 1: the others were still done (never all or nothing)."""
    if not failures:
        return
    for failure in failures:
        gun, reason = failure["gun"], failure["reason"]
        # The verification errors already start with the GUN.
        line = reason if reason.startswith(gun + ":") else f"{gun}: {reason}"
        print(f"dct2notation: {command}: {printable(line)}", file=sys.stderr)
    raise GateFailed(f"{command}: {len(failures)} of {total} GUN(s) could not be read; {rest}")


@dataclass
class InventoryArgs:
    """The ``inventory`` options, named as the typer command's parameters."""

    guns: list[str] = field(default_factory=list)
    server: str | None = None
    trust_dir: Path | None = None
    archive: Path | None = None
    as_json: bool = False
    at: str | None = None
    ca: Path | None = None
    username: str | None = None
    password_stdin: bool = False
    baseline: Path | None = None


def run_inventory(args: InventoryArgs) -> None:
    # Verification builds ~10 objects per tag and frees none before the end; the cyclic collector would walk
    # that growing heap (and every imported module) again and again for nothing: ~30 ms on 10,000 tags.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _inventory(args)
    finally:
        if collecting:
            gc.enable()


def _inventory(args: InventoryArgs) -> None:
    from ..dct.inventory import build_inventory

    source = _source(args.server, args.trust_dir, args.archive, args.ca, args.username, args.password_stdin)
    floors = None
    if args.archive is not None or args.baseline is not None:
        from ..dct.archive import check_archive, read_baseline

        if args.archive is not None:
            check_archive(args.archive)
        if args.baseline is not None:
            check_archive(args.baseline)
            floors = read_baseline(args.baseline, DEFAULT_LIMITS)
    many = len(args.guns) > 1
    inventory = build_inventory(args.guns, source, _clock(args.at), DEFAULT_LIMITS, floors, keep_going=many)
    if any(repo["skipped_roles"] for repo in inventory.repositories):
        from ..dct.tuf import SkippedRole

        for repo in inventory.repositories:
            for skipped in repo["skipped_roles"]:
                _warn(SkippedRole(skipped["role"], skipped["reason"]).warning(repo["gun"]))
    if args.trust_dir is not None:
        for repo in inventory.repositories:
            if not repo["trusted_tags"]:
                # docker's trust dir is a cache of the last pull or sign on this machine: no tag there is no
                # evidence that the GUN has none (it said 0 tags, exit 0, and nothing else).
                _warn(
                    f"{repo['gun']}: no trusted tag in --trust-dir {args.trust_dir}; docker's trust cache is only"
                    " as fresh as this machine's last pull or sign: read the notary server with --server URL"
                )
    failed, total = inventory.failed_guns, len(args.guns)
    if failed and not inventory.repositories:
        _fail_for(failed, total, "inventory", "nothing printed")
    if args.as_json:
        # Compact output; an indented dump of 10,000 tags takes seconds.
        sys.stdout.write(inventory.to_json() + "\n")
        sys.stdout.flush()
    else:
        from ..dct.render import print_inventory

        print_inventory(inventory)
    _fail_for(failed, total, "inventory", f"the other {total - len(failed)} are listed (failed_guns in --json)")


# Option spelling -> (InventoryArgs field, converter); converter None marks a flag.
_VALUE_OPTIONS: dict[str, tuple[str, type[str] | type[Path]]] = {
    "--server": ("server", str),
    "--trust-dir": ("trust_dir", Path),
    "--archive": ("archive", Path),
    "--at": ("at", str),
    "--ca": ("ca", Path),
    "--ca-file": ("ca", Path),
    "--username": ("username", str),
    "-u": ("username", str),
    "--baseline-archive": ("baseline", Path),
}
_FLAGS = {"--json": "as_json", "--password-stdin": "password_stdin"}
INVENTORY_SPELLINGS = frozenset(_VALUE_OPTIONS) | frozenset(_FLAGS)


def parse_inventory_argv(argv: list[str]) -> InventoryArgs | None:
    """``inventory …`` argv as typer would parse it, or None where typer must parse (and word any error)."""
    if not argv or argv[0] != "inventory":
        return None
    parsed = InventoryArgs()
    seen: set[str] = set()
    rest = iter(argv[1:])
    for word in rest:
        if not word.startswith("-"):
            parsed.guns.append(word)
            continue
        name, eq, inline = word.partition("=")
        if name in _FLAGS and not eq:
            dest: str = _FLAGS[name]
            value: object = True
        elif name in _VALUE_OPTIONS and not (eq and not name.startswith("--")):
            dest, convert = _VALUE_OPTIONS[name]
            text = inline if eq else next(rest, "")
            if not text or text.startswith("-"):
                return None
            value = convert(text)
        else:
            return None
        if dest in seen:
            return None
        seen.add(dest)
        setattr(parsed, dest, value)
    return parsed if parsed.guns else None
