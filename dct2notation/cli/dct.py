"""``archive`` and ``inventory``: read Docker Content Trust data (issue #2). Bodies live in ``dct_commands``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import DEFAULT_LIMITS
from .dct_commands import InventoryArgs, run_archive, run_discover, run_inventory
from .options import ArchiveOpt, ServerOpt

GunsArg = Annotated[
    list[str] | None, typer.Argument(help="GUNs, fully qualified (docker.io/library/alpine); or --guns-from FILE.")
]
GunsFromOpt = Annotated[
    Path | None, typer.Option("--guns-from", help="File of GUNs, one a line (dct2notation discover -o FILE).")
]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", help="GUNs read at once from the notary server.")]
TrustDirOpt = Annotated[Path | None, typer.Option("--trust-dir", help="Notary/docker trust dir (~/.docker/trust).")]
CaOpt = Annotated[
    Path | None,
    typer.Option("--ca-file", "--ca", help="CA bundle trusted for the notary server, besides the OS store."),
]
UserOpt = Annotated[str | None, typer.Option("--username", "-u", help="Notary server user name.")]
PassOpt = Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")]
AtOpt = Annotated[str | None, typer.Option("--at", help="Evaluate expiry at this RFC 3339 instant.")]


def archive_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="New directory for the archive.")],
    guns: GunsArg = None,
    server: ServerOpt = None,
    trust_dir: TrustDirOpt = None,
    ca: CaOpt = None,
    username: UserOpt = None,
    password_stdin: PassOpt = False,
    at: AtOpt = None,
    guns_from: GunsFromOpt = None,
    concurrency: ConcurrencyOpt = DEFAULT_LIMITS.concurrency,
    discover: Annotated[
        bool, typer.Option("--discover", help="Every GUN of --server's changefeed (what `discover --server` lists).")
    ] = False,
    inventory: Annotated[
        Path | None,
        typer.Option("--inventory", help="Also write the inventory of what was archived (`inventory --json`)."),
    ] = None,
) -> None:
    """Verify and archive every role of each GUN (raw bytes, every root version, ARCHIVE.json last)."""
    run_archive(
        list(guns or []),
        output,
        server,
        trust_dir,
        ca,
        username,
        password_stdin,
        at,
        guns_from,
        concurrency,
        discover=discover,
        inventory=inventory,
    )


def inventory_command(
    guns: GunsArg = None,
    server: ServerOpt = None,
    trust_dir: TrustDirOpt = None,
    archive: ArchiveOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the inventory document.")] = False,
    output_format: Annotated[
        str | None,
        typer.Option("--format", help="docker: exactly what `docker trust inspect NAME…` prints (docker's names)."),
    ] = None,
    at: AtOpt = None,
    ca: CaOpt = None,
    username: UserOpt = None,
    password_stdin: PassOpt = False,
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline-archive", help="Refuse role versions lower than this earlier archive's (rollback)."),
    ] = None,
    guns_from: GunsFromOpt = None,
    concurrency: ConcurrencyOpt = DEFAULT_LIMITS.concurrency,
) -> None:
    """Verified trusted tags, signed tags and signers of each GUN."""
    # The same fields as InventoryArgs: main() builds that directly from argv when typer is not needed.
    run_inventory(
        InventoryArgs(
            guns=list(guns or []),
            server=server,
            trust_dir=trust_dir,
            archive=archive,
            as_json=as_json,
            at=at,
            ca=ca,
            username=username,
            password_stdin=password_stdin,
            baseline=baseline,
            guns_from=guns_from,
            concurrency=concurrency,
            output_format=output_format,
        )
    )


def discover_command(
    server: Annotated[
        str | None, typer.Option("--server", help="Notary server: its changefeed, or where repositories are probed.")
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option("--registry", help="Registry URL: list its catalog and probe each repository on --server."),
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the GUNs here (default stdout).")] = None,
    gun_prefix: Annotated[
        str | None, typer.Option("--gun-prefix", help="GUN of a catalog repository is PREFIX/REPO (default: host).")
    ] = None,
    ca: CaOpt = None,
    username: UserOpt = None,
    password_stdin: PassOpt = False,
    concurrency: ConcurrencyOpt = DEFAULT_LIMITS.concurrency,
) -> None:
    """Every GUN with trust data: the notary changefeed, or a registry catalog probed on the notary server."""
    run_discover(output, server, registry, gun_prefix, ca, username, password_stdin, concurrency)


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.command("archive")(archive_command)
    app.command("inventory")(inventory_command)
    app.command("discover")(discover_command)
