"""Migration commands: ``plan``, and ``sign_plan`` for ``sign PLANFILE``. Logic lives in dct2notation.migrate."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..config import DEFAULT_LIMITS
from ..errors import InputError, UsageError
from ..keys.base import SigningKey
from ..migrate.k8s import PodResources
from ..migrate.plan import KeyFor, Plan
from ..registry.options import RegistryOptions
from ..registry.store import SignatureStore
from ..report import print_json, stderr_console
from ..safetext import printable
from .credentials import read_credentials, registry_options
from .options import RegistryMapOpt, SignersOpt, TimestampUrlOpt
from .remote import CaFileOpt, InsecureOpt, PasswordStdinOpt, UserOpt

if TYPE_CHECKING:
    from rich.console import Console


def _signers_key_for(path: Path) -> KeyFor:
    """``signers.toml`` through the policy area's loader; its unmapped signers are all reported by ``build_plan``."""
    from ..migrate.signers import load_signers

    mapping = load_signers(path)

    def key_for(gun: str, role: str) -> str | None:
        found = mapping.key_for(gun, role)
        return None if found is None else found.spec

    return key_for


def store_factory(registry_options: RegistryOptions, oci_layout: Path | None) -> Any:
    """One store per registry host (connection pool and retry counters shared by all its jobs)."""
    from ..registry.layout import OCILayoutStore
    from ..registry.store import RegistryStore

    cache: dict[str, SignatureStore] = {}

    def stores(registry: str) -> SignatureStore:
        name = "layout" if oci_layout is not None else registry
        if name not in cache:
            if oci_layout is not None:
                cache[name] = OCILayoutStore(oci_layout, registry_options.limits)
            else:
                cache[name] = RegistryStore(registry, registry_options)
        return cache[name]

    return stores


def render_plan_table(plan: Plan, console: Console | None = None) -> None:
    """What a reviewer reads before approving a migration: every job and every pre-flight finding, one line each in
    an 80-column log. Role and key in full; the full ``REPOSITORY:TAG,…`` last on the line (never cut); digests
    shortened to 12 hex digits as docker shortens IDs (plan.json holds them in full)."""
    from ..report import SHORT_DIGEST, natural_key, short_digest

    out = console or stderr_console

    def write(line: str) -> None:
        out.print(line, soft_wrap=True, markup=False, highlight=False)

    jobs = sorted(plan.jobs, key=lambda j: (j.repository, [natural_key(t) for t in sorted(j.tags, key=natural_key)]))
    write(f"migration {printable(plan.migration_id)}: {len(plan.jobs)} signature(s)")
    if jobs:
        role_width = max(len("DCT ROLE"), *(len(printable(j.role)) for j in jobs))
        key_width = max(len("NOTATION KEY"), *(len(printable(j.identity)) for j in jobs))
        write(f"{'DIGEST':<{SHORT_DIGEST}}  {'DCT ROLE':<{role_width}}  {'NOTATION KEY':<{key_width}}  REPOSITORY:TAGS")
        for job in jobs:
            tags = ",".join(printable(t) for t in sorted(job.tags, key=natural_key)) or "-"
            write(f"{short_digest(job.digest):<{SHORT_DIGEST}}  {printable(job.role):<{role_width}}  "
                  f"{printable(job.identity):<{key_width}}  {printable(job.repository)}:{tags}")  # fmt: skip
    if plan.findings:
        write(f"pre-flight findings: {len(plan.findings)}")
        for item in plan.findings:
            write(f"{printable(item['kind'])}  {short_digest(item['digest'])}  {printable(item['repository'])}")
            write(f"    {printable(item['detail'])}")


def make_plan(
    inventory: Path,
    key_for: KeyFor,
    *,
    registry_map: list[str] | None = None,
    migration_id: str | None = None,
    registry_options: RegistryOptions | None = None,
    oci_layout: Path | None = None,
    check: bool = True,
    guns_from: Path | None = None,
    children: bool = False,
) -> Plan:
    from ..dct.inventory import load_inventory
    from ..migrate.plan import build_plan, parse_registry_map, preflight

    loaded = load_inventory(inventory)
    if guns_from is not None:
        from ..dct.discover import read_guns_file

        loaded = loaded.only(read_guns_file(guns_from), f"--guns-from {guns_from}")
    plan = build_plan(
        loaded,
        key_for,
        migration_id=migration_id,
        registry_map=parse_registry_map(registry_map or []),
    )
    if children and (not check or oci_layout is not None):
        raise UsageError("plan --children: needs the registry pre-flight (not --no-preflight, not --oci-layout)")
    if check:
        stores = store_factory(registry_options or RegistryOptions(), oci_layout)

        async def run() -> None:
            try:
                await preflight(plan, stores)
                if children:
                    from ..migrate.children import expand_children

                    await expand_children(plan, stores)
            finally:
                for registry in {j.repository.partition("/")[0] for j in plan.jobs} or {""}:
                    await stores(registry).aclose()

        asyncio.run(run())
    return plan


def sign_plan(
    *,
    plan: Path,
    key: str | None = None,
    config_dir: Path | None = None,
    form: Any = "legacy",
    oci_layout: Path | None = None,
    registry_options: RegistryOptions | None = None,
    concurrency: int | None = None,
    shard: str | None = None,
    journal: Path | None = None,
    dry_run: bool = False,
    rate_limit: float | None = None,
    timestamper: Any = None,
    timestamp_roots: str = "",
    progress: bool = True,
    signature_format: Any = "cose",
    inventory: Path | None = None,
) -> int:
    """Sign every job of ``plan`` (of one shard, and of ``key`` when given); JSON summary on stdout; 1 if any failed.

    ``inventory`` (required) is the inventory the plan was made from: every job of the plan is checked against it
    before anything is signed, so a job added to the plan file for a digest DCT never trusted is refused.
    """
    from ..dct.inventory import load_inventory
    from ..keys.resolve import load_signing_key
    from ..keys.signingkeys import notation_config_dir
    from ..migrate.batch import DEFAULT_CONCURRENCY, BatchSigner
    from ..migrate.journal import Journal
    from ..migrate.plan import check_against_inventory, load_plan, parse_shard, select_shard

    loaded = load_plan(plan)
    selected = parse_shard(shard) if shard is not None else None
    jobs = select_shard(loaded.jobs, selected)
    if key is not None:
        # A key holder runs only the jobs of the identity they hold; the other identities' owners run theirs.
        jobs = [j for j in jobs if j.identity == key]
    if concurrency is not None and concurrency < 1:
        raise UsageError("--concurrency: must be at least 1")
    if rate_limit is not None and not rate_limit > 0:  # also NaN, which compares false with everything
        raise UsageError("--rate-limit: must be greater than 0")
    if inventory is None:
        raise UsageError(
            "sign PLAN: give --inventory FILE, the inventory the plan was made from (each job is checked against it "
            "before anything is signed)"
        )
    # The whole plan, not just this shard's or this key's jobs: one untrusted job means the file was edited.
    check_against_inventory(loaded, load_inventory(inventory), plan_where=str(plan), inventory_where=str(inventory))
    if any(job.parent is not None for job in loaded.jobs):
        _confirm_children(loaded, plan, registry_options, oci_layout)
    if journal is None:
        suffix = f".shard-{selected[0]}-of-{selected[1]}" if selected else ""
        journal = plan.with_name(plan.name + suffix + ".journal.sqlite")
    if dry_run:
        render_plan_table(Plan(loaded.migration_id, jobs, findings=[]))
        print_json({"migration_id": loaded.migration_id, "shard": shard, "jobs": [j.to_dict() for j in jobs]})
        return 0
    keys: dict[str, SigningKey] = {}
    for identity in sorted({j.identity for j in jobs}):
        # Loaded before any job: a missing key or a plugin without permission fails the batch at once.
        keys[identity] = load_signing_key(identity, notation_config_dir(config_dir), DEFAULT_LIMITS)
    book = Journal(journal)
    try:
        book.claim()  # before anything is read from it: a second writer would sign every job again
        book.bind_plan(loaded.migration_id)
        if timestamp_roots:
            book.record_tsa_roots(timestamp_roots)
        signer = BatchSigner(
            jobs,
            stores=store_factory(registry_options or RegistryOptions(), oci_layout),
            keys=keys,
            journal=book,
            form=form,
            concurrency=concurrency or DEFAULT_CONCURRENCY,
            rate_limit=rate_limit,
            timestamper=timestamper,
            progress=progress,
            signature_format=signature_format,
        )

        async def run() -> Any:
            if jobs:
                await signer.preflight()
            return await signer.run()

        try:
            result = asyncio.run(run())
        except KeyboardInterrupt:
            # Ctrl-C left the JSON summary empty: say what the journal holds and how to go on, then exit 130.
            _report_interrupted(book, jobs, loaded.migration_id, shard, journal)
            raise
        summary = {"migration_id": loaded.migration_id, "shard": shard, "journal": str(journal), **result.summary()}
        print_json(summary)
        if result.reconciliation.checked:
            sys.stderr.write("\n".join(result.reconciliation.lines()) + "\n")
        failures = summary["failures"]
        if failures:
            # Plain writes: rich would wrap a long reference over two lines and break grep-ability.
            lines = [f"{len(failures)} job(s) failed (rerun to resume):"]
            lines += [printable(f"  {f['repository']}@{f['digest']} [{f['identity']}]: {f['error']}") for f in failures]
            sys.stderr.write("\n".join(lines) + "\n")
            return 1
        return 0
    finally:
        book.close()


def _confirm_children(
    loaded: Plan, plan: Path, registry_options: RegistryOptions | None, oci_layout: Path | None
) -> None:
    """Every platform-manifest job is listed, with its size, by the trusted index it names (fetched by digest)."""
    from ..migrate.children import confirm_children
    from ..migrate.plan import UntrustedJobError

    if oci_layout is not None:
        raise UsageError(f"{plan}: platform manifest jobs (plan --children) are signed in a registry, not a layout")
    stores = store_factory(registry_options or RegistryOptions(), None)

    async def run() -> list[str]:
        try:
            return await confirm_children(loaded.jobs, stores)
        finally:
            for registry in {j.repository.partition("/")[0] for j in loaded.jobs}:
                await stores(registry).aclose()

    problems = asyncio.run(run())
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise UntrustedJobError(
            f"{plan}: {len(problems)} platform manifest job(s) not vouched for; nothing signed: {shown}"
        )


def _report_interrupted(book: Any, jobs: list[Any], migration_id: str, shard: str | None, journal: Path) -> None:
    from ..migrate.journal import DONE

    states = [entry.state if (entry := book.get(job.key)) is not None else "pending" for job in jobs]
    counts: dict[str, int] = {}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    done = sum(1 for state in states if state in DONE)
    print_json({"migration_id": migration_id, "shard": shard, "journal": str(journal), "interrupted": True,
                "jobs": len(jobs), "counts": counts})  # fmt: skip
    sys.stderr.write(f"interrupted: {done} of {len(jobs)} job(s) done; rerun the same command to resume\n")


def _check_key_names(made: Plan, signers: Path, config_dir: Path | None) -> None:
    """A misspelt key in signers.toml passed `plan` and failed only at `sign`, hours later on another machine."""
    from ..keys.signingkeys import notation_config_dir, signing_keys_path, unknown_key_specs

    where = notation_config_dir(config_dir)
    # Names are checked when this machine has a signingkeys.json (the plan may be made where no key lives).
    unknown, _ = unknown_key_specs((job.identity for job in made.jobs), where)
    if unknown:
        raise InputError(
            f"--signers {signers}: key(s) {', '.join(repr(k) for k in unknown)} not found"
            f" ({signing_keys_path(where)} / key files); fix signers.toml or add the key"
        )


def plan_command(
    inventory: Annotated[Path, typer.Argument(help="Inventory JSON (dct2notation inventory --json).")],
    signers: SignersOpt[Path],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the plan here.")] = None,
    registry_map: RegistryMapOpt[list[str]] = [],  # noqa: B006 - typer reads the default, never mutates it
    migration_id: Annotated[
        str | None, typer.Option("--migration-id", help="Default: derived from the jobs (same inputs, same id).")
    ] = None,
    no_preflight: Annotated[bool, typer.Option("--no-preflight", help="Skip HEADing manifests and tags.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the reviewer table; write nothing.")] = False,
    emit_k8s_job: Annotated[
        Path | None, typer.Option("--emit-k8s-job", help="Write a Kubernetes Indexed Job running the shards.")
    ] = None,
    shards: Annotated[int, typer.Option("--shards", help="Shards of the Kubernetes Job.")] = 4,
    image: Annotated[str, typer.Option("--image", help="Container image of the Kubernetes Job.")] = "dct2notation",
    insecure_registry: InsecureOpt = [],  # noqa: B006
    ca_file: CaFileOpt = None,
    username: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
    oci_layout: Annotated[Path | None, typer.Option("--oci-layout", help="Subjects are in this OCI layout.")] = None,
    config_dir: Annotated[
        Path | None, typer.Option("--config-dir", help="Notation config whose signingkeys.json names the keys.")
    ] = None,
    from_check: Annotated[
        Path | None,
        typer.Option("--from-check", help="Remediation: only the digests this `check --json` found without Notation."),
    ] = None,
    guns_from: Annotated[
        Path | None, typer.Option("--guns-from", help="Plan only these GUNs of the inventory (one a line).")
    ] = None,
    children: Annotated[
        bool, typer.Option("--children", help="Also sign each platform manifest a trusted index lists.")
    ] = False,
) -> None:
    """Make a signing plan from a DCT inventory: one job per (repository, digest, identity), with pre-flight."""
    options = registry_options(insecure_registry, ca_file, read_credentials(username, password_stdin))
    made = make_plan(
        inventory,
        _signers_key_for(signers),
        registry_map=registry_map,
        migration_id=migration_id,
        registry_options=options,
        oci_layout=oci_layout,
        check=not no_preflight,
        guns_from=guns_from,
        children=children,
    )
    _warn_version_traps(signers, {job.identity for job in made.jobs})
    if from_check is not None:
        from ..migrate.plan import remediation_subjects

        wanted = remediation_subjects(from_check)
        made.jobs = [job for job in made.jobs if (job.repository, job.digest) in wanted]
        made.findings = [f for f in made.findings if (f["repository"], f["digest"]) in wanted]
    _check_key_names(made, signers, config_dir)
    if dry_run:
        render_plan_table(made)
        print_json(made.to_dict())
        return
    if output is None:
        raise UsageError("plan: give --output FILE (or --dry-run)")
    made.save(output)
    if emit_k8s_job is not None:
        from ..migrate.k8s import dump_manifests, indexed_job

        manifests = dump_manifests(
            indexed_job(name="dct2notation-sign", image=image, shards=shards, plan_config_map="dct2notation-plan")
        )
        from ..files import write_atomic

        write_atomic(emit_k8s_job, manifests, what="--emit-k8s-job")
        # That Job mounts no keys, credentials, CA or TSA: say which command writes one that runs as written.
        stderr_console.print(
            f"plan {emit_k8s_job}: a Job sketch without keys or credentials; `dct2notation k8s-job` writes one that "
            "runs as written (docs/k8s.md)",
            highlight=False,
            soft_wrap=True,
        )
    summary = made.preflight or {"jobs": len(made.jobs)}
    stderr_console.print(f"plan {output}: {len(made.jobs)} job(s); pre-flight {summary}", highlight=False)


def _warn_version_traps(signers: Path, identities: set[str]) -> None:
    from ..migrate.compat import plan_warnings
    from ..migrate.signers import load_signers

    used = [entry for entry in load_signers(signers).entries if entry.spec in identities]
    for line in plan_warnings(used):
        stderr_console.print(line, highlight=False, markup=False, soft_wrap=True)


def k8s_job_command(
    plan: Annotated[Path, typer.Argument(help="Plan file (dct2notation plan -o).")],
    inventory: Annotated[Path, typer.Option("--inventory", help="The inventory the plan was made from.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Write the manifests (YAML) here.")],
    docker_config_secret: Annotated[
        str, typer.Option("--docker-config-secret", help="Secret (kubernetes.io/dockerconfigjson): registry login.")
    ],
    notation_secret: Annotated[
        str, typer.Option("--notation-secret", help="Secret with signingkeys.json (and KEY.key/KEY.crt).")
    ],
    key_files: Annotated[
        list[str], typer.Option("--key-files", help="KEY (repeatable): the Secret's KEY.key and KEY.crt in localkeys/.")
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    ca_secret: Annotated[str | None, typer.Option("--ca-secret", help="Secret with ca.crt: the registry CA.")] = None,
    timestamp_url: TimestampUrlOpt = None,
    tsa_root_secret: Annotated[
        str | None, typer.Option("--tsa-root-secret", help="Secret with root.crt: the TSA root.")
    ] = None,
    plugin: Annotated[
        str | None, typer.Option("--plugin", help="NAME: a plugin key's pluginName; installed from --plugin-image.")
    ] = None,
    plugin_image: Annotated[
        str | None, typer.Option("--plugin-image", help="REF: image with the plugin (an init container copies it).")
    ] = None,
    plugin_binary: Annotated[
        str | None, typer.Option("--plugin-binary", help="The binary's path in --plugin-image (/notation-NAME).")
    ] = None,
    plugin_config_secret: Annotated[
        str | None, typer.Option("--plugin-config-secret", help="Secret of files the plugin reads, at /plugin-config.")
    ] = None,
    plugin_env_secret: Annotated[
        str | None, typer.Option("--plugin-env-secret", help="Secret whose keys are the plugin's environment.")
    ] = None,
    image_pull_secret: Annotated[
        list[str], typer.Option("--image-pull-secret", help="Secret (repeatable) the kubelet pulls the images with.")
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    service_account: Annotated[
        str | None, typer.Option("--service-account", help="ServiceAccount of the pods (a KMS workload identity).")
    ] = None,
    signing_keys: Annotated[
        Path | None,
        typer.Option("--signing-keys", help="The notation Secret's signingkeys.json: each plan identity is checked."),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Job name (a DNS label).")] = "dct2notation-sign",
    image: Annotated[str, typer.Option("--image", help="REF: the tool's image, built from Containerfile.")] = "",
    shards: Annotated[int, typer.Option("--shards", help="Pods (completions) of the Indexed Job.")] = 4,
    key: Annotated[str | None, typer.Option("--key", help="Sign only this identity's jobs.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Parallel signatures per pod.")] = 16,
    cpu: Annotated[str, typer.Option("--cpu", help="CPU request of a signing pod.")] = PodResources.cpu,
    memory: Annotated[str, typer.Option("--memory", help="Memory request and limit of a pod.")] = PodResources.memory,
    journal_storage: Annotated[
        str, typer.Option("--journal-storage", help="Size of the journals' ReadWriteMany claim.")
    ] = PodResources.journal_storage,
    storage_class: Annotated[
        str | None, typer.Option("--storage-class", help="StorageClass of the claim (one offering ReadWriteMany).")
    ] = None,
    backoff_limit_per_index: Annotated[
        int, typer.Option("--backoff-limit-per-index", help="Retries of a failed index.")
    ] = PodResources.backoff_limit_per_index,
    ttl_seconds_after_finished: Annotated[
        int, typer.Option("--ttl-seconds-after-finished", help="Delete the finished Job (not the journals) after.")
    ] = PodResources.ttl_seconds_after_finished,
    insecure_registry: InsecureOpt = [],  # noqa: B006
) -> None:
    """Write an Indexed Job that signs the plan on Kubernetes (the plan and inventory gzipped, split, content-addressed
    into ConfigMaps; credentials, keys, CA and TSA from Secrets; a plugin from its image). The plan is not changed."""
    from ..files import read_document, write_atomic
    from ..migrate.k8s import JobMounts, PluginImage, check_pod_keys, dump_manifests, estate_job
    from ..migrate.k8s_parts import split
    from ..migrate.plan import check_against_inventory, load_plan

    if not image:
        raise UsageError("k8s-job: --image REF is required (the tool's image, built from Containerfile)")
    if (plugin is None) != (plugin_image is None):
        raise UsageError("--plugin NAME and --plugin-image REF go together")
    if plugin_binary is not None and plugin is None:
        raise UsageError("--plugin-binary needs --plugin NAME and --plugin-image REF")
    resources = PodResources(cpu, memory, journal_storage, storage_class, backoff_limit_per_index,
                             ttl_seconds_after_finished)  # fmt: skip
    mounts = JobMounts(docker_config_secret, notation_secret, tuple(key_files), ca_secret, tsa_root_secret,
                       timestamp_url, plugin_config_secret, plugin_env_secret, tuple(image_pull_secret),
                       service_account)  # fmt: skip
    plugin_from = PluginImage(plugin, plugin_image, plugin_binary) if plugin and plugin_image else None
    loaded = load_plan(plan)
    from ..dct.inventory import load_inventory

    # A Job that would refuse every pod is refused here: the plan must be bound to this inventory.
    check_against_inventory(loaded, load_inventory(inventory), plan_where=str(plan), inventory_where=str(inventory))
    identities = {job.identity for job in loaded.jobs if key is None or job.identity == key}
    check_pod_keys(identities, key_files=tuple(key_files), plugin=plugin_from, signing_keys=signing_keys)
    raws = {
        "plan.json": read_document(plan, DEFAULT_LIMITS.document_bytes),
        "inventory.json": read_document(inventory, DEFAULT_LIMITS.document_bytes),
    }
    index, parts = split(name, raws, DEFAULT_LIMITS)
    docs = estate_job(name=name, image=image, shards=shards, index=index, parts=parts, mounts=mounts, key=key,
                      concurrency=concurrency, insecure_registries=tuple(insecure_registry), plugin=plugin_from,
                      resources=resources)  # fmt: skip
    write_atomic(output, dump_manifests(docs), what="-o")
    stderr_console.print(
        f"k8s-job {output}: {len(loaded.jobs)} job(s) in {shards} shard(s); plan and inventory in {len(parts)} part(s)",
        highlight=False,
        soft_wrap=True,
    )


def k8s_run_command(
    ctx: typer.Context,
    index: Annotated[Path, typer.Argument(help="The parts index (mounted from the Job's ConfigMap).")],
    parts: Annotated[Path, typer.Option("--parts", help="Directory of the mounted parts.")],
    work: Annotated[Path, typer.Option("--work", help="Writable directory for the joined plan and inventory.")],
) -> int:
    """In a pod of the Job: join and check the plan's parts, then run the given `sign …` on them."""
    from ..migrate.k8s_parts import assemble
    from . import main

    rest = list(ctx.args)
    if rest[:1] != ["sign"]:
        raise UsageError("k8s-run: after the options, give the sign command (-- sign /work/plan.json …)")
    assemble(index, parts, work, DEFAULT_LIMITS)
    return main(rest)


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.command("plan")(plan_command)
    app.command("k8s-job")(k8s_job_command)
    app.command("k8s-run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(k8s_run_command)
