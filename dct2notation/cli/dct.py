"""``archive`` and ``inventory``: read Docker Content Trust data (issue #2)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import DEFAULT_LIMITS, Clock, FixedClock, SystemClock, parse_rfc3339
from ..errors import UsageError


def _source(
    server: str | None,
    trust_dir: Path | None,
    archive: Path | None,
    ca: Path | None,
    username: str | None,
    password_stdin: bool,
) -> Any:
    from ..dct.source import ArchiveSource, NotaryServerSource, TrustDirSource

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
        password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
        if password_stdin and not username:
            raise UsageError("--password-stdin needs --username")
        return NotaryServerSource(server, ca=ca, limits=DEFAULT_LIMITS, username=username, password=password)
    if trust_dir is not None:
        return TrustDirSource(trust_dir)
    assert archive is not None
    return ArchiveSource(archive)


def _clock(at: str | None) -> Clock:
    return FixedClock(parse_rfc3339(at)) if at else SystemClock()


GunsArg = Annotated[list[str], typer.Argument(help="GUNs, fully qualified (docker.io/library/alpine).")]
ServerOpt = Annotated[str | None, typer.Option("--server", help="Notary server URL.")]
TrustDirOpt = Annotated[Path | None, typer.Option("--trust-dir", help="Notary/docker trust dir (~/.docker/trust).")]
CaOpt = Annotated[Path | None, typer.Option("--ca", help="CA bundle for an HTTPS notary server.")]
UserOpt = Annotated[str | None, typer.Option("--username", "-u", help="Notary server user name.")]
PassOpt = Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")]
AtOpt = Annotated[str | None, typer.Option("--at", help="Evaluate expiry at this RFC 3339 instant.")]


def archive_command(
    guns: GunsArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="New directory for the archive.")],
    server: ServerOpt = None,
    trust_dir: TrustDirOpt = None,
    ca: CaOpt = None,
    username: UserOpt = None,
    password_stdin: PassOpt = False,
    at: AtOpt = None,
) -> None:
    """Verify and archive every role of each GUN (raw bytes, every root version, ARCHIVE.json last)."""
    from ..dct.archive import write_archive
    from ..report import stderr_console

    source = _source(server, trust_dir, None, ca, username, password_stdin)
    write_archive(guns, source, output, _clock(at), DEFAULT_LIMITS)
    stderr_console.print(f"archived {len(guns)} GUN(s) to {output}")


def inventory_command(
    guns: GunsArg,
    server: ServerOpt = None,
    trust_dir: TrustDirOpt = None,
    archive: Annotated[Path | None, typer.Option("--archive", help="Archive written by `archive`.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the inventory document.")] = False,
    at: AtOpt = None,
    ca: CaOpt = None,
    username: UserOpt = None,
    password_stdin: PassOpt = False,
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline-archive", help="Refuse role versions lower than this earlier archive's (rollback)."),
    ] = None,
) -> None:
    """Verified trusted tags, signed tags and signers of each GUN."""
    from ..dct.archive import archive_versions, check_archive
    from ..dct.inventory import build_inventory

    source = _source(server, trust_dir, archive, ca, username, password_stdin)
    floors = None
    if archive is not None:
        check_archive(archive)
    if baseline is not None:
        check_archive(baseline)
        floors = archive_versions(baseline)
    inventory = build_inventory(guns, source, _clock(at), DEFAULT_LIMITS, floors)
    if as_json:
        # Compact output goes through json's C encoder; an indented dump of 10,000 tags takes seconds.
        sys.stdout.write(json.dumps(inventory.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")
        sys.stdout.flush()
        return
    from ..dct.render import print_inventory

    print_inventory(inventory)


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.command("archive")(archive_command)
    app.command("inventory")(inventory_command)
