"""``sign``, ``ls``, ``inspect`` and ``verify``: options in, library calls, output out."""

from __future__ import annotations

import datetime as dt
import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ..config import DEFAULT_LIMITS, SystemClock
from ..errors import UsageError
from ..keys.base import SigningKey
from ..notation.formats import signature_format as signature_format_of
from ..notation.manifest import FORMS, ManifestForm
from ..oci import Descriptor
from ..registry.options import RegistryOptions
from ..registry.reference import require_digest
from ..registry.target import Target, open_target
from ..report import print_json, shown, stderr_console
from .credentials import read_credentials, registry_options
from .remote import CaFileOpt, InsecureOpt, PasswordStdinOpt, UserOpt

_T = TypeVar("_T")

_DURATION = re.compile(r"(\d+)(h|m|s)")

LayoutOpt = Annotated[
    Path | None, typer.Option("--oci-layout", help="Use this OCI image layout instead of a registry.")
]
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


def parse_duration(text: str) -> dt.timedelta:
    """Go-style durations as Notation's ``--expiry`` takes them: ``24h``, ``1h30m``, ``90s``."""
    if not text or _DURATION.sub("", text) != "":
        raise UsageError(f"--expiry: {text!r} is not a duration such as 24h, 30m or 1h30m")
    seconds = sum(int(n) * {"h": 3600, "m": 60, "s": 1}[unit] for n, unit in _DURATION.findall(text))
    if seconds <= 0:
        raise UsageError(f"--expiry: {text!r} must be positive")
    if seconds > MAX_EXPIRY_SECONDS:
        raise UsageError(f"--expiry: {text!r} is longer than Notation accepts (at most 2562047h47m16s)")
    return dt.timedelta(seconds=seconds)


# Go's time.Duration (int64 nanoseconds), which Notation parses --expiry into: ~292 years. Longer values overflowed
# timedelta or the expiry date instead.
MAX_EXPIRY_SECONDS = (2**63 - 1) // 10**9


def parse_user_metadata(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--user-metadata: {item!r} is not KEY=VALUE")
        if key in out:
            raise UsageError(f"--user-metadata: key {key!r} given twice")
        out[key] = value
    return out


def _form(value: str) -> ManifestForm:
    if value not in FORMS:
        raise UsageError(f"--signature-manifest: {value!r} is not one of {', '.join(FORMS)}")
    return value


def _load_key(spec: str | None, config_dir: Path | None) -> SigningKey:
    from ..keys.resolve import load_signing_key
    from ..keys.signingkeys import notation_config_dir

    return load_signing_key(spec, notation_config_dir(config_dir), DEFAULT_LIMITS)


def _pem(certs: list[Any]) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return "".join(c.public_bytes(Encoding.PEM).decode() for c in certs)


def _timestamper(url: str | None, root_cert: Path | None) -> Any:
    if url is None and root_cert is None:
        return None
    if url is None or root_cert is None:
        raise UsageError("--timestamp-url and --timestamp-root-cert go together")
    try:
        timestamp = importlib.import_module("dct2notation.notation.timestamp")
    except ImportError as exc:
        raise UsageError("--timestamp-url: timestamping is not available in this build") from exc
    return timestamp.HttpTimestamper(url, root_cert, limits=DEFAULT_LIMITS, clock=SystemClock())


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


def sign(
    target: Annotated[str, typer.Argument(help="REF@sha256:… to sign, or a plan file for batch signing.")],
    key: Annotated[
        str | None,
        typer.Option(
            "--key", "-k", help="signingkeys.json name (default: its default), KEY.pem:CHAIN.pem or plugin:NAME:KEYID."
        ),
    ] = None,
    user_metadata: MetadataOpt = [],  # noqa: B006 - typer reads the default, never mutates it
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
    expiry: Annotated[str | None, typer.Option("--expiry", "-e", help="Signature lifetime, e.g. 8760h.")] = None,
    timestamp_url: Annotated[str | None, typer.Option("--timestamp-url", help="RFC 3161 TSA URL.")] = None,
    timestamp_root_cert: Annotated[
        Path | None, typer.Option("--timestamp-root-cert", help="TSA root certificate.")
    ] = None,
    insecure_registry: InsecureOpt = [],  # noqa: B006
    ca_file: CaFileOpt = None,
    username: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
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
    credentials = read_credentials(username, password_stdin)
    options = registry_options(insecure_registry, ca_file, credentials, force_referrers_tag)
    if Path(target).is_file():
        migrate_cli = importlib.import_module("dct2notation.cli.migrate")
        sign_plan = getattr(migrate_cli, "sign_plan", None)
        if sign_plan is None:
            raise UsageError("batch signing from a plan is not available")
        stamper = _timestamper(timestamp_url, timestamp_root_cert)
        result = sign_plan(
            plan=Path(target),
            key=key,
            config_dir=config_dir,
            form=form,
            oci_layout=oci_layout,
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
        if isinstance(result, int) and result:
            raise typer.Exit(result)
        return
    if "@" not in target and _looks_like_a_path(target):
        # `sign ./plan.jsn` (a typo) was "--key is required": say which reading failed.
        raise UsageError(f"sign: {target}: no such plan file (one artifact is signed as REF@sha256:…)")
    # Plan-only options would be silently dropped for one signature (`--dry-run` signed and pushed).
    plan_only = [name for name, value in (("--concurrency", concurrency), ("--shard", shard), ("--journal", journal),
                 ("--dry-run", dry_run or None), ("--rate-limit", rate_limit)) if value is not None]  # fmt: skip
    if plan_only:
        raise UsageError(f"sign {target}: {', '.join(plan_only)} only apply to signing a plan file")
    from ..registry.signing import sign_artifact

    lifetime = parse_duration(expiry) if expiry is not None else None
    metadata = parse_user_metadata(user_metadata)
    stamper = _timestamper(timestamp_url, timestamp_root_cert)
    handle = open_target(target, options=options, oci_layout=oci_layout, create=True)
    try:
        require_digest(handle.reference, command="sign")  # before any key or network work
        signing_key = _load_key(key, config_dir)
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


def ls(
    reference: Annotated[str, typer.Argument(help="REF (tag or digest) whose signatures to list.")],
    json_out: JsonOpt = False,
    oci_layout: LayoutOpt = None,
    insecure_registry: InsecureOpt = [],  # noqa: B006
    ca_file: CaFileOpt = None,
    username: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """List the Notation signatures attached to an artifact."""
    from ..registry.inspection import list_attached

    options = registry_options(insecure_registry, ca_file, read_credentials(username, password_stdin))
    pinned, subject, summaries = _attached(reference, options, oci_layout, list_attached)
    if json_out:
        print_json({"reference": pinned, "subject": subject.to_dict(), "signatures": [s.to_dict() for s in summaries]})
        return
    from rich.table import Table

    table = Table(title=f"{shown(pinned)}: {len(summaries)} signature(s)")
    for column in ("DIGEST", "FORM", "ENVELOPE", "SIGNED", "CERT SHA256"):
        table.add_column(column)
    for s in summaries:
        cells = (s.digest, s.form, s.envelope_media_type, s.signing_time or "-", ", ".join(s.thumbprints))
        table.add_row(*map(shown, cells))
    stderr_console.print(table)


def inspect(
    reference: Annotated[str, typer.Argument(help="REF (tag or digest) whose signatures to inspect.")],
    json_out: JsonOpt = False,
    oci_layout: LayoutOpt = None,
    insecure_registry: InsecureOpt = [],  # noqa: B006
    ca_file: CaFileOpt = None,
    username: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Show each signature's envelope, certificate chain and annotations."""
    from ..registry.inspection import inspect_attached

    options = registry_options(insecure_registry, ca_file, read_credentials(username, password_stdin))
    pinned, subject, details = _attached(reference, options, oci_layout, inspect_attached)
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


def verify(
    reference: Annotated[str, typer.Argument(help="REF to verify (a digest is resolved and reported).")],
    policy: Annotated[Path, typer.Option("--policy", help="trustpolicy.json")],
    truststore: Annotated[
        Path, typer.Option("--truststore", help="Trust store root (x509/{ca,signingAuthority,tsa}).")
    ],
    user_metadata: MetadataOpt = [],  # noqa: B006
    json_out: JsonOpt = False,
    oci_layout: LayoutOpt = None,
    insecure_registry: InsecureOpt = [],  # noqa: B006
    ca_file: CaFileOpt = None,
    username: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Verify an artifact's signatures against a trust policy (exit 1 when no signature passes)."""
    from ..registry.verification import verify_target

    options = registry_options(insecure_registry, ca_file, read_credentials(username, password_stdin))
    metadata = parse_user_metadata(user_metadata)
    handle = open_target(reference, options=options, oci_layout=oci_layout)
    try:
        report = verify_target(handle, policy=policy, truststore=truststore, user_metadata=metadata)
    finally:
        handle.close()
    if json_out:
        print_json(report.to_dict())
    elif report.ok:
        stderr_console.print(f"Successfully verified signature for {shown(report.reference)}")
    if not report.ok:
        report.raise_failure()


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.command("sign")(sign)
    app.command("ls")(ls)
    app.command("inspect")(inspect)
    app.command("verify")(verify)
