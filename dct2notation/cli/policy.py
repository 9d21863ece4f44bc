"""``policy``: emit a Notation trust policy (and Ratify/Kyverno resources) from a DCT inventory; logic in migrate/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer

from ..errors import UsageError
from ..report import stderr_console

LEVELS = ("strict", "permissive", "audit")


def policy_command(
    inventory: Annotated[Path | None, typer.Argument(help="Inventory JSON (`inventory --json`).")] = None,
    signers: Annotated[Path | None, typer.Option("--signers", help="signers.toml: DCT signer → Notation key.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Directory to write.")] = None,
    level: Annotated[str, typer.Option("--level", help="strict | permissive | audit.")] = "strict",
    notation_version: Annotated[
        int, typer.Option("--notation-version", help="1, or 2 to also write trustpolicy.oci.json.")
    ] = 1,
    registry_map: Annotated[
        list[str] | None, typer.Option("--registry-map", help="GUN_PREFIX=REGISTRY_PREFIX (repeatable).")
    ] = None,
    config_dir: Annotated[
        Path | None, typer.Option("--config-dir", help="Notation config holding signingkeys.json.")
    ] = None,
    check: Annotated[Path | None, typer.Option("--check", help="Validate an emitted directory instead.")] = None,
) -> None:
    """Write trustpolicy.json, truststore/, ratify/, kyverno/, GAPS.md and gaps.json (docs/signers.md)."""
    from ..migrate.policy import Level, build_emission, check_policy_dir, write_emission
    from ..migrate.signers import RegistryMap, load_signers

    if check is not None:
        if inventory is not None or signers is not None or output is not None:
            raise UsageError("policy --check OUTDIR: takes no INVENTORY, --signers or -o")
        for line in check_policy_dir(check):
            typer.echo(line)
        return
    if inventory is None or signers is None or output is None:
        raise UsageError("policy: INVENTORY, --signers FILE and -o OUTDIR are required (or --check OUTDIR)")
    if level not in LEVELS:
        raise UsageError(f"--level {level!r}: expected one of {', '.join(LEVELS)}")
    if notation_version not in (1, 2):
        raise UsageError(f"--notation-version {notation_version}: expected 1 or 2")
    from ..dct.inventory import load_inventory

    emission = build_emission(
        load_inventory(inventory),
        load_signers(signers),
        level=cast(Level, level),
        registry_map=RegistryMap.parse(registry_map or []),
        config_dir=config_dir,
    )
    write_emission(emission, output, notation_version=notation_version)
    stderr_console.print(
        f"{len(emission.statements)} statements, {len(emission.roots)} trust stores written to {output}"
    )
    for gap in emission.gaps:
        stderr_console.print(f"gap: {gap.what} ({', '.join(gap.repositories)})")


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.command("policy")(policy_command)
