"""Bodies of ``archive`` and ``inventory``, and argv parsers for both that need no typer.

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
from typing import TYPE_CHECKING, Any

from ..config import DEFAULT_LIMITS, Clock, FixedClock, SystemClock, format_rfc3339, parse_at_option
from ..errors import GateFailed, UsageError
from ..safetext import printable

if TYPE_CHECKING:
    from ..dct.concurrent import SourcePool
    from ..dct.tuf import VerifiedRepository
    from ..registry.options import Basic


def _sources(
    server: str | None,
    trust_dir: Path | None,
    archive: Path | None,
    ca: Path | None,
    username: str | None,
    password_stdin: bool,
) -> SourcePool[Any]:
    """The chosen source, one per reading thread (credentials are read from stdin once, here)."""
    from ..dct.concurrent import SourcePool

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
        from .credentials import read_credentials

        return _notary_pool(server, ca, read_credentials(username, password_stdin))
    from ..dct.source import ArchiveSource, TrustDirSource

    # Files on disk: one source serves every thread.
    local: Any = TrustDirSource(trust_dir) if trust_dir is not None else ArchiveSource(archive)  # type: ignore[arg-type]
    return SourcePool(lambda: local, shared=True)


def _notary_pool(server: str, ca: Path | None, creds: Basic | None) -> SourcePool[Any]:
    from ..dct.concurrent import SourcePool
    from ..dct.source import NotaryServerSource

    def notary() -> NotaryServerSource:
        return NotaryServerSource(
            server,
            ca=ca,
            limits=DEFAULT_LIMITS,
            username=creds.username if creds else None,
            password=creds.password if creds else None,
            on_auth=pool.one_by_one,
        )

    pool = SourcePool(notary, NotaryServerSource.close)
    return pool


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
    guns_from: Path | None = None,
    concurrency: int = DEFAULT_LIMITS.concurrency,
    *,
    discover: bool = False,
    inventory: Path | None = None,
) -> None:
    """``archive``; ``discover`` reads the GUNs from the server's changefeed and ``inventory`` writes the inventory
    of what was verified: discover, archive and inventory in one process, each GUN read once."""
    from ..dct.archive import write_archive
    from ..dct.concurrent import check_concurrency
    from ..dct.discover import gun_arguments
    from ..report import progress_bar, stderr_console

    if discover and (guns or guns_from is not None):
        raise UsageError("archive --discover lists the GUNs itself; give no GUNs and no --guns-from")
    if discover and server is None:
        raise UsageError("archive --discover: give --server URL (the notary server whose changefeed lists the GUNs)")
    if not discover:
        guns = _needs_guns(gun_arguments(guns, guns_from))
    check_concurrency(concurrency, DEFAULT_LIMITS)
    clock = _clock(at)
    sources = _sources(server, trust_dir, None, ca, username, password_stdin)
    failures: list[dict[str, str]] = []
    verified: list[VerifiedRepository] = []
    try:
        if discover:
            from ..dct.discover import changefeed_guns

            # An empty or unreadable changefeed is an error (RemoteError), never an empty estate.
            with sources.separate() as feed:
                guns = changefeed_guns(feed, DEFAULT_LIMITS)
        stamp = format_rfc3339(clock.now(), fraction=True)
        with progress_bar("reading GUNs", len(guns)) as advance:
            write_archive(
                guns,
                sources.get(),
                output,
                clock,
                DEFAULT_LIMITS,
                lambda gun, skipped: _warn(skipped.warning(gun)),
                # One GUN: its own error (and exit code) as it is; several: keep going past each that fails.
                failures if len(guns) > 1 else None,
                sources=sources,
                concurrency=concurrency,
                on_done=advance,
                verified_out=verified,
            )
    finally:
        sources.close()
    archived = len(guns) - len(failures)
    if archived:
        stderr_console.print(f"archived {archived} GUN(s) to {output}", highlight=False, soft_wrap=True)
    if inventory is not None:
        from ..dct.inventory import Inventory, repository_document
        from ..files import write_atomic

        # What `inventory --archive OUTPUT --json` prints, from the same verification (evaluated when it began).
        document = Inventory(stamp, [repository_document(repo) for repo in verified], failures)
        write_atomic(inventory, document.to_json() + "\n", what="--inventory")
    _fail_for(failures, len(guns), "archive", f"{output} holds the other {archived}" if archived else "nothing written")


def _needs_guns(guns: list[str]) -> list[str]:
    if not guns:
        raise UsageError("give at least one GUN, or --guns-from FILE (dct2notation discover writes one)")
    return guns


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
    guns_from: Path | None = None
    concurrency: int = DEFAULT_LIMITS.concurrency
    output_format: str | None = None  # --format: docker (docker trust inspect's document)


INVENTORY_FORMATS = ("docker",)


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
    from ..dct.concurrent import check_concurrency
    from ..dct.discover import gun_arguments
    from ..dct.inventory import build_inventory
    from ..report import progress_bar

    guns = _needs_guns(gun_arguments(args.guns, args.guns_from))
    docker_names = None
    if args.output_format is not None:
        if args.output_format not in INVENTORY_FORMATS:
            raise UsageError(f"--format {args.output_format!r}: expected one of {', '.join(INVENTORY_FORMATS)}")
        if args.as_json:
            raise UsageError("--format docker and --json: give one of them")
        from ..dct.docker import docker_name

        # docker's short names (alpine, acme/web, IMAGE:TAG) name the GUNs docker would read.
        docker_names = [docker_name(text) for text in guns]
        guns = list(dict.fromkeys(name.gun for name in docker_names))
    check_concurrency(args.concurrency, DEFAULT_LIMITS)
    sources = _sources(args.server, args.trust_dir, args.archive, args.ca, args.username, args.password_stdin)
    floors = None
    if args.archive is not None or args.baseline is not None:
        from ..dct.archive import check_archive, read_baseline

        if args.archive is not None:
            check_archive(args.archive)
        if args.baseline is not None:
            check_archive(args.baseline)
            floors = read_baseline(args.baseline, DEFAULT_LIMITS)
    many = len(guns) > 1
    try:
        with progress_bar("reading GUNs", len(guns)) as advance:
            inventory = build_inventory(
                guns,
                sources.get(),
                _clock(args.at),
                DEFAULT_LIMITS,
                floors,
                keep_going=many,
                sources=sources,
                concurrency=args.concurrency,
                on_done=advance,
            )
    finally:
        sources.close()
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
    failed, total = inventory.failed_guns, len(guns)
    if failed and not inventory.repositories:
        _fail_for(failed, total, "inventory", "nothing printed")
    if docker_names is not None:
        from ..dct import docker

        sys.stdout.write(docker.render(docker.trust_inspect_document(docker_names, inventory.repositories)))
        sys.stdout.flush()
    elif args.as_json:
        # Compact output; an indented dump of 10,000 tags takes seconds.
        sys.stdout.write(inventory.to_json() + "\n")
        sys.stdout.flush()
    else:
        from ..dct.render import print_inventory

        print_inventory(inventory)
    _fail_for(failed, total, "inventory", f"the other {total - len(failed)} are listed (failed_guns in --json)")


_Converter = type[str] | type[Path] | type[int]
# Option spelling -> (field of InventoryArgs / ArchiveArgs, converter): the options both commands read DCT with.
_SOURCE_OPTIONS: dict[str, tuple[str, _Converter]] = {
    "--server": ("server", str),
    "--trust-dir": ("trust_dir", Path),
    "--at": ("at", str),
    "--ca": ("ca", Path),
    "--ca-file": ("ca", Path),
    "--username": ("username", str),
    "-u": ("username", str),
    "--guns-from": ("guns_from", Path),
    "--concurrency": ("concurrency", int),
}
_VALUE_OPTIONS: dict[str, tuple[str, _Converter]] = {
    **_SOURCE_OPTIONS,
    "--archive": ("archive", Path),
    "--baseline-archive": ("baseline", Path),
    "--format": ("output_format", str),
}
_FLAGS = {"--json": "as_json", "--password-stdin": "password_stdin"}
INVENTORY_SPELLINGS = frozenset(_VALUE_OPTIONS) | frozenset(_FLAGS)


def parse_inventory_argv(argv: list[str]) -> InventoryArgs | None:
    """``inventory …`` argv as typer would parse it, or None where typer must parse (and word any error)."""
    parsed = InventoryArgs()
    if not _parse_plain_argv(argv, "inventory", parsed, _VALUE_OPTIONS, _FLAGS):
        return None
    return parsed if parsed.guns or parsed.guns_from else None


@dataclass
class ArchiveArgs:
    """The ``archive`` options, named as the typer command's parameters."""

    output: Path | None = None
    guns: list[str] = field(default_factory=list)
    server: str | None = None
    trust_dir: Path | None = None
    ca: Path | None = None
    username: str | None = None
    password_stdin: bool = False
    at: str | None = None
    guns_from: Path | None = None
    concurrency: int = DEFAULT_LIMITS.concurrency
    discover: bool = False
    inventory: Path | None = None


_ARCHIVE_VALUE_OPTIONS: dict[str, tuple[str, _Converter]] = {
    **_SOURCE_OPTIONS,
    "-o": ("output", Path),
    "--output": ("output", Path),
    "--inventory": ("inventory", Path),
}
_ARCHIVE_FLAGS = {"--password-stdin": "password_stdin", "--discover": "discover"}
ARCHIVE_SPELLINGS = frozenset(_ARCHIVE_VALUE_OPTIONS) | frozenset(_ARCHIVE_FLAGS)


def parse_archive_argv(argv: list[str]) -> ArchiveArgs | None:
    """``archive …`` argv as typer would parse it, or None where typer must parse (and word any error)."""
    parsed = ArchiveArgs()
    if not _parse_plain_argv(argv, "archive", parsed, _ARCHIVE_VALUE_OPTIONS, _ARCHIVE_FLAGS):
        return None
    has_guns = parsed.guns or parsed.guns_from or parsed.discover
    return parsed if parsed.output is not None and has_guns else None


def run_archive_args(args: ArchiveArgs) -> None:
    assert args.output is not None  # parse_archive_argv answers None without it
    run_archive(
        args.guns,
        args.output,
        args.server,
        args.trust_dir,
        args.ca,
        args.username,
        args.password_stdin,
        args.at,
        args.guns_from,
        args.concurrency,
        discover=args.discover,
        inventory=args.inventory,
    )


def _parse_plain_argv(
    argv: list[str],
    command: str,
    parsed: Any,
    value_options: dict[str, tuple[str, _Converter]],
    flags: dict[str, str],
) -> bool:
    """Fill ``parsed`` (whose field ``guns`` takes the words) from ``command …`` argv; False where typer must."""
    if not argv or argv[0] != command:
        return False
    seen: set[str] = set()
    rest = iter(argv[1:])
    for word in rest:
        if not word.startswith("-"):
            parsed.guns.append(word)
            continue
        name, eq, inline = word.partition("=")
        if name in flags and not eq:
            dest: str = flags[name]
            value: object = True
        elif name in value_options and not (eq and not name.startswith("--")):
            dest, convert = value_options[name]
            text = inline if eq else next(rest, "")
            if not text or text.startswith("-"):
                return False
            if convert is int and not text.isdigit():
                return False  # typer words the error
            value = convert(text)
        else:
            return False
        if dest in seen:
            return False
        seen.add(dest)
        setattr(parsed, dest, value)
    return True


def run_discover(
    output: Path | None,
    server: str | None,
    registry: str | None,
    gun_prefix: str | None,
    ca: Path | None,
    username: str | None,
    password_stdin: bool,
    concurrency: int,
) -> None:
    """``discover``: the changefeed (``--server`` alone), or the catalog of ``--registry`` probed on ``--server``."""
    from urllib.parse import urlsplit

    from ..dct import discover
    from ..dct.concurrent import check_concurrency
    from ..files import write_atomic
    from ..report import stderr_console

    check_concurrency(concurrency, DEFAULT_LIMITS)
    if server is None:
        raise UsageError(
            "discover: give --server URL (the notary server: its changefeed, or where --registry's repositories"
            " are probed)"
        )
    if gun_prefix is not None and registry is None:
        raise UsageError("discover: --gun-prefix names the GUNs of --registry's repositories; give --registry URL")
    from .credentials import read_credentials

    creds = read_credentials(username, password_stdin)
    sources = _notary_pool(server, ca, creds)
    try:
        if registry is None:
            guns = discover.changefeed_guns(sources.get(), DEFAULT_LIMITS)
            origin = f"{server} changefeed"
        else:
            # The same -u/--password-stdin for both: they are one docker login in practice (read from stdin once).
            prefix = gun_prefix if gun_prefix is not None else urlsplit(registry).netloc
            user, password = (creds.username, creds.password) if creds else (None, None)
            with discover.catalog_reader(registry, ca, user, password, DEFAULT_LIMITS) as get:
                guns = discover.registry_guns(registry, prefix, get, sources, concurrency, DEFAULT_LIMITS)
            origin = f"{registry} catalog, probed on {server}"
    finally:
        sources.close()
    text = "".join(f"{gun}\n" for gun in guns)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomic(output, text.encode(), what="-o")
    where = f" to {output}" if output is not None else ""
    stderr_console.print(f"discovered {len(guns)} GUN(s) from {origin}{where}", highlight=False, soft_wrap=True)
