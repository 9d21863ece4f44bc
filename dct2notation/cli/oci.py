"""``sign``, ``ls``, ``inspect`` and ``verify``: options in, library calls, output out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ..config import DEFAULT_LIMITS, SystemClock
from ..duration import parse_go_duration
from ..errors import UsageError
from ..keys.base import SigningKey
from ..notation.formats import signature_format as signature_format_of
from ..notation.manifest import FORMS, ManifestForm
from ..oci import Descriptor
from ..registry.options import RegistryOptions
from ..registry.reference import require_digest
from ..registry.target import Target, open_target, split_layout_reference
from ..report import print_json, shown, stderr_console
from ..safetext import printable
from .credentials import registry_options, with_plain_http
from .options import PluginConfigOpt, TimestampUrlOpt
from .remote import RegistryAccess, with_registry_access

if TYPE_CHECKING:
    from ..notation.timestamp import HttpTimestamper

_T = TypeVar("_T")

LayoutOpt = Annotated[
    str | None,
    typer.Option(
        "--oci-layout",
        help="An OCI image layout instead of a registry: as Notation, a flag with REF DIR@sha256:… or DIR:TAG; "
        "or --oci-layout DIR with REF inside it (TAG, NAME:TAG as index.json names it, or a digest).",
    ),
]
# `--oci-layout` given as Notation's flag (no value): main() passes it as `--oci-layout=` (cli._layout_flag_argv).
LAYOUT_FLAG = ""
ForceTagOpt = Annotated[
    bool,
    typer.Option(
        "--force-referrers-tag",
        help="Always maintain the sha256-<hex> referrers index (Notation 1.x), even where the Referrers API exists.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
MetadataOpt = Annotated[
    list[str], typer.Option("--user-metadata", "-m", help="KEY=VALUE added to (or required in) the payload.")
]


def layout_and_reference(oci_layout: str | None, reference: str | None) -> tuple[Path | None, str]:
    """The layout directory (None for a registry) and the REF inside it or in the registry."""
    if reference is None and oci_layout in (None, LAYOUT_FLAG):
        raise UsageError("give the artifact REF (with --oci-layout: DIR@sha256:… or DIR:TAG)")
    if oci_layout is None:
        return None, str(reference)
    if oci_layout == LAYOUT_FLAG:
        return split_layout_reference(str(reference))
    if reference is None:
        return split_layout_reference(oci_layout)
    return Path(oci_layout), reference


def _shown_reference(layout: Path | None, pinned: str) -> str:
    """Notation names a layout's artifact DIR@sha256:…; a registry's REGISTRY/REPO@sha256:…."""
    return pinned if layout is None else f"{layout}@{pinned.rpartition('@')[2]}"


def _pairs(items: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{option}: {item!r} is not KEY=VALUE")
        if key in out:
            raise UsageError(f"{option}: key {key!r} given twice")
        out[key] = value
    return out


def parse_user_metadata(items: list[str]) -> dict[str, str]:
    return _pairs(items, "--user-metadata")


def _form(value: str) -> ManifestForm:
    if value not in FORMS:
        raise UsageError(f"--signature-manifest: {value!r} is not one of {', '.join(FORMS)}")
    return value


def _load_key(
    spec: str | None, config_dir: Path | None, plugin: str | None = None, key_id: str | None = None,
    plugin_config: list[str] | None = None,
) -> SigningKey:
    from ..keys.resolve import load_signing_key, plugin_signing_key
    from ..keys.signingkeys import notation_config_dir

    if plugin is None and key_id is None and not plugin_config:
        return load_signing_key(spec, notation_config_dir(config_dir), DEFAULT_LIMITS)
    if spec is not None:
        raise UsageError("--key and --plugin: give one of them")
    if plugin is None or key_id is None:
        raise UsageError("--plugin NAME and --id KEYID go together (--plugin-config needs both)")
    config = _pairs(plugin_config or [], "--plugin-config")
    return plugin_signing_key(plugin, key_id, config, notation_config_dir(config_dir), DEFAULT_LIMITS)


def _pem(certs: list[Any]) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return "".join(c.public_bytes(Encoding.PEM).decode() for c in certs)


def _timestamper(url: str | None, root_cert: Path | None) -> HttpTimestamper | None:
    if url is None and root_cert is None:
        return None
    if url is None or root_cert is None:
        raise UsageError("--timestamp-url and --timestamp-root-cert go together")
    from ..notation.timestamp import HttpTimestamper  # imported when used: the TSA client is not startup cost

    return HttpTimestamper(url, root_cert, limits=DEFAULT_LIMITS, clock=SystemClock())


def _looks_like_a_path(text: str) -> bool:
    """A file name rather than an image reference: relative or absolute path syntax, or a file-like suffix."""
    return text.startswith((".", "/", "~")) or Path(text).suffix.lower() in (".json", ".jsn", ".jsonl", ".txt")


def _warn_form(form: str, kind: str) -> None:
    from ..migrate.compat import layout_form_warning

    warning = layout_form_warning(form, kind)
    if warning is not None:
        stderr_console.print(warning, highlight=False, markup=False, soft_wrap=True)


def _report_retries(target: Target) -> dict[str, Any] | None:
    stats = target.store.retry_stats()
    return None if stats is None else dict(stats.to_dict())


@with_registry_access
def sign(
    target: Annotated[
        str | None, typer.Argument(help="REF@sha256:… to sign (with --oci-layout DIR@sha256:…), or a plan file.")
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key", "-k", help="signingkeys.json name (default: its default), KEY.pem:CHAIN.pem or plugin:NAME:KEYID."
        ),
    ] = None,
    user_metadata: MetadataOpt = [],  # noqa: B006 - typer reads the default, never mutates it
    plugin: Annotated[str | None, typer.Option("--plugin", help="Sign with this plugin's key --id.")] = None,
    key_id: Annotated[str | None, typer.Option("--id", help="With --plugin: the key id in the plugin.")] = None,
    plugin_config: PluginConfigOpt = [],  # noqa: B006
    signature_manifest: Annotated[
        str, typer.Option("--signature-manifest", help="legacy (Notation 1.x) or artifact.")
    ] = "legacy",
    signature_format: Annotated[
        str,
        typer.Option(
            "--signature-format",
            help="cose (default, see docs/INTEROP.md) or jws (what plain notation sign writes).",
        ),
    ] = "cose",
    oci_layout: LayoutOpt = None,
    expiry: Annotated[
        str | None, typer.Option("--expiry", "-e", help="Lifetime, a Go duration: 8760h, 1.5h, 2000ms; 0: none.")
    ] = None,
    timestamp_url: TimestampUrlOpt = None,
    timestamp_root_cert: Annotated[
        Path | None, typer.Option("--timestamp-root-cert", help="TSA root certificate.")
    ] = None,
    *,
    access: RegistryAccess,
    force_referrers_tag: ForceTagOpt = False,
    config_dir: Annotated[
        Path | None, typer.Option("--config-dir", help="Notation config dir (signingkeys.json).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", help="Plan signing: parallel signatures.")] = None,
    shard: Annotated[str | None, typer.Option("--shard", help="Plan signing: i/N.")] = None,
    journal: Annotated[Path | None, typer.Option("--journal", help="Plan signing: journal file.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan signing: check, sign nothing.")] = False,
    rate_limit: Annotated[float | None, typer.Option("--rate-limit", help="Plan signing: requests per second.")] = None,
    inventory: Annotated[
        Path | None, typer.Option("--inventory", help="Plan signing: the inventory the plan was made from (required).")
    ] = None,
) -> None:
    """Sign an artifact by digest (or every job of a plan) and store the signature next to it."""
    form = _form(signature_manifest)
    envelope_format = signature_format_of(signature_format)
    credentials = access.credentials()
    if target is not None and Path(target).is_file():
        if plugin is not None or key_id is not None or plugin_config:
            raise UsageError("--plugin/--id/--plugin-config sign one artifact; a plan names its keys per identity")
        options = registry_options(access.insecure_registry, access.ca_file, credentials, force_referrers_tag)
        from .migrate import sign_plan  # imported when used: the batch machinery is not startup cost

        stamper = _timestamper(timestamp_url, timestamp_root_cert)
        code = sign_plan(
            plan=Path(target),
            key=key,
            config_dir=config_dir,
            form=form,
            oci_layout=Path(oci_layout) if oci_layout else None,
            registry_options=options,
            concurrency=concurrency,
            shard=shard,
            journal=journal,
            dry_run=dry_run,
            rate_limit=rate_limit,
            timestamper=stamper,
            signature_format=envelope_format,
            # `policy --journal` reads them back to write the tsa trust store the signatures need.
            timestamp_roots=_pem(stamper.roots) if stamper else "",
            inventory=inventory,
        )
        _warn_form(form, "oci-layout" if oci_layout is not None else "registry")
        if code:
            raise typer.Exit(code)
        return
    layout, target = layout_and_reference(oci_layout, target)
    insecure = with_plain_http(access.insecure_registry, access.plain_http and layout is None, target)
    options = registry_options(insecure, access.ca_file, credentials, force_referrers_tag)
    if "@" not in target and _looks_like_a_path(target):
        # `sign ./plan.jsn` (a typo) was "--key is required": say which reading failed.
        raise UsageError(f"sign: {target}: no such plan file (one artifact is signed as REF@sha256:…)")
    # Plan-only options would be silently dropped for one signature (`--dry-run` signed and pushed).
    plan_only = [name for name, value in (("--concurrency", concurrency), ("--shard", shard), ("--journal", journal),
                 ("--dry-run", dry_run or None), ("--rate-limit", rate_limit)) if value is not None]  # fmt: skip
    if plan_only:
        raise UsageError(f"sign {target}: {', '.join(plan_only)} only apply to signing a plan file")
    from ..registry.signing import sign_artifact

    lifetime = parse_go_duration(expiry) if expiry is not None else None
    lifetime = lifetime or None  # Notation: 0 is no expiry
    metadata = parse_user_metadata(user_metadata)
    stamper = _timestamper(timestamp_url, timestamp_root_cert)
    handle = open_target(target, options=options, oci_layout=layout, create=True)
    try:
        require_digest(handle.reference, command="sign")  # before any key or network work
        signing_key = _load_key(key, config_dir, plugin, key_id, plugin_config)
        result = sign_artifact(
            handle,
            signing_key,
            clock=SystemClock(),
            form=form,
            user_metadata=metadata,
            expiry=lifetime,
            timestamper=stamper,
            signature_format=envelope_format,
        )
        doc = result.to_dict()
        doc["retries"] = _report_retries(handle)
        print_json(doc)
        _warn_form(form, handle.kind)
    finally:
        handle.close()


def _attached(
    reference: str,
    options: RegistryOptions,
    oci_layout: Path | None,
    gather: Callable[[Target, Descriptor], _T],
) -> tuple[str, Descriptor, _T]:
    """Resolve REF and gather what is attached to its subject (``ls``/``inspect``); REF comes back pinned by digest."""
    from ..registry.inspection import resolve_subject

    handle = open_target(reference, options=options, oci_layout=oci_layout)
    try:
        subject = resolve_subject(handle)
        gathered = gather(handle, subject)
    finally:
        handle.close()
    return str(handle.reference.with_digest(subject.digest)), subject, gathered


RefArg = Annotated[
    str | None, typer.Argument(help="REF: REGISTRY/REPO:TAG or @sha256:…; with --oci-layout DIR@sha256:… or DIR:TAG.")
]
OutputOpt = Annotated[str | None, typer.Option("--output", "-o", help="json: Notation's JSON document on stdout.")]
ScopeOpt = Annotated[
    str | None,
    typer.Option("--scope", help="With --oci-layout: the repository the trust policy scopes match (Notation's)."),
]


def _notation_output(value: str | None) -> bool:
    if value in (None, "text"):
        return False
    if value != "json":
        raise UsageError(f"--output {value!r}: expected json or text")
    return True


def _registry_access(
    oci_layout: str | None, reference: str | None, access: RegistryAccess
) -> tuple[Path | None, str, RegistryOptions]:
    """(layout, reference, options) of a command that reads one artifact's signatures (ls, inspect, verify)."""
    layout, ref = layout_and_reference(oci_layout, reference)
    insecure = with_plain_http(access.insecure_registry, access.plain_http and layout is None, ref)
    return layout, ref, registry_options(insecure, access.ca_file, access.credentials())


@with_registry_access
def ls(
    reference: RefArg = None,
    json_out: JsonOpt = False,
    output: OutputOpt = None,
    oci_layout: LayoutOpt = None,
    *,
    access: RegistryAccess,
) -> None:
    """List the Notation signatures attached to an artifact (Notation's tree on stdout, full digests)."""
    from ..registry.inspection import list_attached

    layout, ref, options = _registry_access(oci_layout, reference, access)
    pinned, subject, summaries = _attached(ref, options, layout, list_attached)
    if json_out or _notation_output(output):
        print_json({"reference": pinned, "subject": subject.to_dict(), "signatures": [s.to_dict() for s in summaries]})
        return
    # `notation ls`: the artifact, then its signatures under the signature artifact type.
    print(shown(_shown_reference(layout, pinned)))
    if not summaries:
        stderr_console.print(f"{shown(_shown_reference(layout, pinned))} has no associated signature", markup=False)
        return
    print("└── application/vnd.cncf.notary.signature")
    for i, s in enumerate(summaries):
        print(f"    {'└──' if i == len(summaries) - 1 else '├──'} {shown(s.digest)}")


@with_registry_access
def inspect(
    reference: RefArg = None,
    json_out: Annotated[bool, typer.Option("--json", help="This tool's JSON document on stdout.")] = False,
    output: OutputOpt = None,
    oci_layout: LayoutOpt = None,
    *,
    access: RegistryAccess,
) -> None:
    """Show each signature's envelope, certificate chain and annotations (-o json: Notation 1.3's document)."""
    from ..registry.inspection import inspect_attached, notation_inspect_document

    layout, ref, options = _registry_access(oci_layout, reference, access)
    if _notation_output(output):
        _, _, notation_doc = _attached(ref, options, layout, notation_inspect_document)
        print_json(notation_doc)
        return
    pinned, subject, details = _attached(ref, options, layout, inspect_attached)
    doc = {"reference": pinned, "subject": subject.to_dict(), "signatures": details}
    if json_out:
        print_json(doc)
        return
    # Everything below comes from the registry or from whoever pushed the signature: shown() on each value.
    stderr_console.print(f"[bold]{shown(pinned)}[/bold]: {len(details)} signature(s)")
    for entry in details:
        stderr_console.print(f"└── {shown(entry['digest'])} ({shown(entry['form'])}, {shown(entry['mediaType'])})")
        for key in ("signatureAlgorithm", "signingTime", "expiry", "signingAgent", "timestamped", "error"):
            if entry.get(key) is not None:
                stderr_console.print(f"    {key}: {shown(str(entry[key]))}")
        for name, value in entry.get("userMetadata", {}).items():
            stderr_console.print(f"    metadata {shown(name)}: {shown(value)}")
        for cert in entry.get("certificates", []):
            stderr_console.print(
                f"    cert {shown(cert['subject'])} sha256:{cert['sha256Thumbprint']} until {cert['notAfter']}"
            )


# notation 1.3's words, on stderr, when the artifact was named by a tag.
TAG_WARNING = (
    "Warning: Always verify the artifact using digest(@sha256:...) rather than a tag(:{tag}) because resolved "
    "digest may not point to the same signed artifact, as tags are mutable."
)


def _scope(scope: str | None, layout: Path | None) -> str | None:
    if scope is None:
        return None
    if layout is None:
        raise UsageError("--scope applies to --oci-layout only (a registry reference is its own scope)")
    # What a trust policy's registryScopes hold: REGISTRY/REPOSITORY, no tag or digest (Notation: local/hello-world).
    if "/" not in scope.strip("/") or "@" in scope or ":" in scope.rpartition("/")[2] or scope != scope.strip():
        raise UsageError(f"--scope {scope!r}: give a repository such as example.com/my/repository (no tag or digest)")
    return scope


def _metadata_table(metadata: dict[str, str]) -> str:
    """notation verify's listing of the signed user metadata: Go's tabwriter (padding 3) over KEY and VALUE, sorted
    by key (Go's map order is random)."""
    rows = [("KEY", "VALUE"), *((printable(k), printable(v)) for k, v in sorted(metadata.items()))]
    widths = [max(len(row[i]) for row in rows) + 3 for i in (0, 1)]
    lines = "".join(f"{key:<{widths[0]}}{value:<{widths[1]}}\n" for key, value in rows)
    return f"\nThe artifact was signed with the following user metadata.\n\n{lines}"


@with_registry_access
def verify(
    reference: RefArg = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="trustpolicy.json (default: Notation's, in $NOTATION_CONFIG).")
    ] = None,
    truststore: Annotated[
        Path | None,
        typer.Option("--truststore", help="Trust store root x509/{ca,signingAuthority,tsa} (default: Notation's)."),
    ] = None,
    user_metadata: MetadataOpt = [],  # noqa: B006
    json_out: JsonOpt = False,
    output: OutputOpt = None,
    oci_layout: LayoutOpt = None,
    scope: ScopeOpt = None,
    *,
    access: RegistryAccess,
) -> None:
    """Verify an artifact's signatures against a trust policy (exit 1 when no signature passes)."""
    from ..registry.verification import verify_target

    layout, ref, options = _registry_access(oci_layout, reference, access)
    from ..notation.policy import notation_trust_files

    policy_path, store_path = notation_trust_files(policy, truststore)
    policy_scope = _scope(scope, layout)
    metadata = parse_user_metadata(user_metadata)
    handle = open_target(ref, options=options, oci_layout=layout)
    try:
        report = verify_target(
            handle, policy=policy_path, truststore=store_path, user_metadata=metadata, scope=policy_scope
        )
    finally:
        handle.close()
    # On success only: a failure stays the one error line; the warning is about trusting what passed.
    if report.ok and "@" not in ref and not ref.startswith("sha256:"):
        stderr_console.print(TAG_WARNING.format(tag=shown(ref.rpartition(":")[2])), markup=False, soft_wrap=True)
    if json_out or _notation_output(output):
        print_json(report.to_dict())
    elif report.ok:
        print(f"Successfully verified signature for {shown(_shown_reference(layout, report.reference))}")
        if report.user_metadata:
            print(_metadata_table(report.user_metadata), end="")
    if not report.ok:
        report.raise_failure()


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.command("sign")(sign)
    app.command("ls")(ls)
    app.command("inspect")(inspect)
    app.command("verify")(verify)
