"""``policy``: emit a Notation trust policy (and Ratify/Kyverno resources) from a DCT inventory; logic in migrate/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, cast

import typer

from ..errors import UsageError
from ..report import shown, stderr_console
from .options import RegistryMapOpt, SignersOpt

LEVELS = ("strict", "permissive", "audit")
KYVERNO_FORMS = ("ivp", "clusterpolicy", "none")
RATIFY_VERSIONS = ("v1", "v2", "none")
VERIFY_TIMESTAMP = ("afterCertExpiry", "always")
# Kubernetes object names (RFC 1123 subdomain) and namespace names (RFC 1123 label).
_OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def policy_command(
    inventory: Annotated[Path | None, typer.Argument(help="Inventory JSON (`inventory --json`).")] = None,
    signers: SignersOpt[Path | None] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Directory to write.")] = None,
    level: Annotated[str, typer.Option("--level", help="strict | permissive | audit.")] = "strict",
    notation_version: Annotated[
        int, typer.Option("--notation-version", help="1, or 2 to also write trustpolicy.oci.json.")
    ] = 1,
    registry_map: RegistryMapOpt[list[str] | None] = None,
    config_dir: Annotated[
        Path | None, typer.Option("--config-dir", help="Notation config holding signingkeys.json.")
    ] = None,
    check: Annotated[Path | None, typer.Option("--check", help="Validate an emitted directory instead.")] = None,
    kyverno: Annotated[
        str, typer.Option("--kyverno", help="ivp (ImageValidatingPolicy, Kyverno >= 1.17) | clusterpolicy | none.")
    ] = "ivp",
    ratify: Annotated[str, typer.Option("--ratify", help="v1 | v2 (config.ratify.sh Executor) | none.")] = "v1",
    timestamp_root_cert: Annotated[
        list[Path] | None, typer.Option("--timestamp-root-cert", help="TSA root the signatures were stamped under.")
    ] = None,
    journal: Annotated[
        list[Path] | None, typer.Option("--journal", help="Signing journal: trust the TSA roots it signed under.")
    ] = None,
    verify_timestamp: Annotated[
        str, typer.Option("--verify-timestamp", help="afterCertExpiry | always (with --timestamp-root-cert).")
    ] = "afterCertExpiry",
    pull_secret: Annotated[
        str | None, typer.Option("--pull-secret", help="Registry pull secret the admission controllers use.")
    ] = None,
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", help="Limit admission to this namespace (repeatable).")
    ] = None,
    archive: Annotated[
        Path | None, typer.Option("--archive", help="DCT archive: root keys for Connaisseur's notaryv1 validator.")
    ] = None,
    notary_host: Annotated[
        str | None, typer.Option("--notary-host", help="Notary server Connaisseur reads DCT trust data from.")
    ] = None,
) -> None:
    """Write trustpolicy.json, truststore/, kyverno/, ratify/, nirmata/, connaisseur/, GAPS.md, gaps.json.

    `policy import FILE [--force]` and `policy show` manage $NOTATION_CONFIG's trust policy, as Notation's do.
    """
    from ..migrate.admission.base import Level
    from ..migrate.policy import (
        AdmissionOptions,
        KyvernoForm,
        RatifyVersion,
        VerifyTimestamp,
        build_emission,
        check_policy_dir,
        dct_repositories,
        journal_tsa_roots,
        load_tsa_roots,
        write_emission,
    )
    from ..migrate.signers import RegistryMap, load_signers

    if check is not None:
        if inventory is not None or signers is not None or output is not None:
            raise UsageError("policy --check OUTDIR: takes no INVENTORY, --signers or -o")
        for line in check_policy_dir(check):
            typer.echo(line)
        return
    if inventory is None or signers is None or output is None:
        raise UsageError("policy: INVENTORY, --signers FILE and -o OUTDIR are required (or --check OUTDIR)")
    _one_of("--level", level, LEVELS)
    if notation_version not in (1, 2):
        raise UsageError(f"--notation-version {notation_version}: expected 1 or 2")
    _one_of("--kyverno", kyverno, KYVERNO_FORMS)
    _one_of("--ratify", ratify, RATIFY_VERSIONS)
    _one_of("--verify-timestamp", verify_timestamp, VERIFY_TIMESTAMP)
    if pull_secret is not None and not _OBJECT_NAME.fullmatch(pull_secret):
        raise UsageError(f"--pull-secret {pull_secret!r}: not a Kubernetes secret name (RFC 1123 subdomain)")
    for ns in namespace or []:
        if not _NAMESPACE.fullmatch(ns):
            raise UsageError(f"--namespace {ns!r}: not a Kubernetes namespace name (RFC 1123 label)")
    if notary_host is not None and "://" in notary_host and not notary_host.startswith(("http://", "https://")):
        raise UsageError(f"--notary-host {notary_host!r}: expected HOST[:PORT] or an http(s) URL")
    if (archive is None) != (notary_host is None):
        raise UsageError("--archive and --notary-host go together (Connaisseur's notaryv1 validator needs both)")
    from ..dct.inventory import load_inventory

    loaded = load_inventory(inventory)
    rmap = RegistryMap.parse(registry_map or [])
    emission = build_emission(
        loaded, load_signers(signers), level=cast(Level, level), registry_map=rmap, config_dir=config_dir
    )
    emission.tsa_roots = {**load_tsa_roots(timestamp_root_cert or []), **journal_tsa_roots(journal or [])}
    emission.verify_timestamp = cast(VerifyTimestamp, verify_timestamp)
    options = AdmissionOptions(
        kyverno=cast(KyvernoForm, kyverno),
        ratify=cast(RatifyVersion, ratify),
        pull_secret=pull_secret,
        namespaces=tuple(sorted(set(namespace or []))),
        dct=dct_repositories(loaded, archive, registry_map=rmap) if archive is not None else (),
        notary_host=notary_host,
    )
    write_emission(emission, output, notation_version=notation_version, options=options)
    stderr_console.print(
        f"{len(emission.statements)} statements, {len(emission.roots)} trust stores written to {output}"
    )
    for gap in emission.gaps:
        # Gap texts quote certificate subjects and repository names from the archived DCT metadata.
        stderr_console.print(f"gap: {shown(gap.what)} ({shown(', '.join(gap.repositories))})")


def _one_of(option: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UsageError(f"{option} {value!r}: expected one of {', '.join(allowed)}")


# `policy import FILE` / `policy show` are Notation's commands; `policy` itself is the generator, whose INVENTORY
# positional would swallow the word, so ``main`` sends those two words here before typer parses (`./import` is an
# inventory file literally named so).


def import_command(
    file: Annotated[Path, typer.Argument(help="Trust policy JSON to import.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing trust policy.")] = False,
) -> None:
    """As `notation policy import`: validate FILE, then write it into $NOTATION_CONFIG (or ~/.config/notation)."""
    from ..keys.signingkeys import notation_config_dir
    from ..notation.policyconfig import import_policy

    target = import_policy(file, notation_config_dir(None), force=force)
    typer.echo(f"Trust policy configuration imported successfully to {target}")


def show_command() -> None:
    """As `notation policy show`: print the trust policy verify reads; an invalid one is printed, then refused."""
    from ..keys.signingkeys import notation_config_dir
    from ..notation.policyconfig import show_policy

    shown_policy = show_policy(notation_config_dir(None))
    typer.echo(shown_policy.text, nl=not shown_policy.text.endswith("\n"))
    if shown_policy.error is not None:
        raise shown_policy.error


def policy_admin_app() -> typer.Typer:
    """The app for `policy import|show` (its own: see the comment above `import_command`)."""
    app = typer.Typer(
        name="policy",
        help="Manage the Notation trust policy verify reads.",
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.command("import")(import_command)
    app.command("show")(show_command)
    return app


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.command("policy")(policy_command)
