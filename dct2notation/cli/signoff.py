"""``signoff`` (write the evidence bundle) and ``signoff verify`` (re-check it offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import GateFailed, UsageError
from ..safetext import printable
from .credentials import read_credentials, registry_options
from .options import ArchiveOpt
from .remote import CaFileOpt, InsecureOpt, PasswordStdinOpt, UserOpt

signoff_app = typer.Typer(
    help="Decommission sign-off: evidence bundle, and its offline re-verification.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@signoff_app.callback()
def signoff_command(
    ctx: typer.Context,
    archive: ArchiveOpt = None,
    inventory: Annotated[Path | None, typer.Option("--inventory", help="Inventory JSON the plan came from.")] = None,
    plan: Annotated[Path | None, typer.Option("--plan", help="The signing plan.")] = None,
    journal: Annotated[Path | None, typer.Option("--journal", help="The signing journal (sqlite).")] = None,
    policy_dir: Annotated[
        Path | None, typer.Option("--policy-dir", help="Directory with trustpolicy.json and truststore/.")
    ] = None,
    check_json: Annotated[Path | None, typer.Option("--check-json", help="Final `check --json` output.")] = None,
    oci_layout: Annotated[Path | None, typer.Option("--oci-layout", help="Signatures are in this OCI layout.")] = None,
    insecure_registry: InsecureOpt = [],  # noqa: B006 - typer reads the default, never mutates it
    ca_file: CaFileOpt = None,
    username: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="New directory for the bundle.")] = None,
    waivers: Annotated[
        Path | None, typer.Option("--waivers", help="waivers.toml: reviewed digests/tags that may stay uncovered.")
    ] = None,
) -> None:
    """Write the sign-off bundle and print the verdict (exit 1 when not ready)."""
    if ctx.invoked_subcommand is not None:
        return
    from ..config import SystemClock
    from ..migrate.signoff import SignoffInputs, bundle_digest, create_bundle, summary_line
    from ..report import stderr_console
    from .migrate import store_factory

    missing = [
        flag
        for flag, value in (
            ("--archive", archive),
            ("--inventory", inventory),
            ("--plan", plan),
            ("--policy-dir", policy_dir),
            ("-o", output),
        )
        if value is None
    ]
    if missing:
        raise UsageError(f"signoff: missing {', '.join(missing)}")
    assert archive and inventory and plan and policy_dir and output
    options = registry_options(insecure_registry, ca_file, read_credentials(username, password_stdin))
    inputs = SignoffInputs(archive, inventory, plan, policy_dir, journal, check_json, waivers)
    verdict = create_bundle(inputs, store_factory(options, oci_layout), output, SystemClock())
    stderr_console.print(f"bundle {output}: digest {bundle_digest(output)}", highlight=False, soft_wrap=True)
    print(printable(summary_line(verdict)))  # the reasons name repositories, tags and registry answers
    if not verdict.ready:
        raise typer.Exit(1)


@signoff_app.command("verify")
def verify_command(bundle: Annotated[Path, typer.Argument(help="Bundle written by `signoff`.")]) -> None:
    """Re-verify a bundle offline: file hashes, DCT from its archive, Notation from its policy and envelopes."""
    from ..migrate.signoff import bundle_digest, summary_line, verify_bundle
    from ..report import stderr_console

    checked = verify_bundle(bundle)
    stderr_console.print(
        f"{bundle}: {checked.files} file(s) intact; digest {bundle_digest(bundle)}", highlight=False, soft_wrap=True
    )
    if not checked.verdict.ready:
        raise GateFailed(f"{bundle}: {summary_line(checked.verdict)}")
    print("ready")


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.add_typer(signoff_app, name="signoff")
