"""``check``: the coexistence matrix and its CI gate. Logic lives in dct2notation.migrate.coexist / check_report."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, TaskID

from ..config import DEFAULT_LIMITS, Clock, FixedClock, SystemClock, parse_at_option
from ..errors import UsageError
from ..registry.options import RegistryOptions
from ..safetext import printable
from .credentials import read_credentials, registry_options
from .options import RegistryMapOpt, ServerOpt
from .remote import CaFileOpt, InsecureOpt, PasswordStdinOpt, UserOpt

RequireOpt = Annotated[str, typer.Option("--require", help="Gate: both | notation | either (docs/check.md).")]


def _dct(
    guns: list[str],
    server: str | None,
    archive: Path | None,
    inventory: Path | None,
    options: RegistryOptions,
    clock: Clock,
) -> list[Any]:
    from ..dct.archive import check_archive
    from ..dct.inventory import load_inventory
    from ..dct.source import ArchiveSource, NotaryServerSource
    from ..migrate.coexist import DctRepository, dct_from_source, dct_repositories

    sources = (("--server", server), ("--archive", archive), ("--inventory", inventory))
    given = [name for name, value in sources if value]
    if len(given) != 1:
        raise UsageError("check: give exactly one of GUN… --server URL, GUN… --archive DIR, --inventory FILE")
    if inventory is not None:
        if guns:
            raise UsageError("check: --inventory already names its GUNs; do not list GUNs as well")
        loaded = load_inventory(inventory)
        # A GUN the inventory could not read is checked as unreadable, never dropped from the gate.
        failed = [
            DctRepository(f["gun"], {}, f"not in --inventory {inventory}: {f['reason']}") for f in loaded.failed_guns
        ]
        return dct_repositories(loaded.repositories) + failed
    if not guns:
        raise UsageError(f"check: {given[0]} needs at least one GUN")
    if archive is not None:
        # The same integrity gate as `inventory --archive`: a damaged archive is bad input, not a DCT verdict.
        check_archive(archive)
        return dct_from_source(guns, ArchiveSource(archive), clock, DEFAULT_LIMITS)
    creds = options.credentials
    source = NotaryServerSource(
        str(server),
        ca=options.ca_file,
        limits=DEFAULT_LIMITS,
        username=creds.username if creds else None,
        password=creds.password if creds else None,
    )
    return dct_from_source(guns, source, clock, DEFAULT_LIMITS)


_JSON_BATCH = 8192  # encoder chunks per write: a few hundred KiB


def _print_json(doc: dict[str, Any]) -> None:
    # Streamed: one 100,000-tag document as a single string would double the peak memory of the run. Written in
    # batches: json.dump's one write per chunk (~50 per tag) cost 0.7 s of CPU at 10,000 tags, 8x the encoding.
    # Same encoder settings as json.dump(indent=2, ensure_ascii=False), so the bytes are identical.
    batch: list[str] = []
    for chunk in json.JSONEncoder(indent=2, ensure_ascii=False).iterencode(doc):
        batch.append(chunk)
        if len(batch) >= _JSON_BATCH:
            sys.stdout.write("".join(batch))
            batch.clear()
    batch.append("\n")
    sys.stdout.write("".join(batch))
    sys.stdout.flush()


def _write(option: str, path: Path, data: bytes) -> None:
    from ..files import write_atomic

    write_atomic(path, data, what=option)


@contextlib.contextmanager
def _progress(console: Console, *, enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A transient bar per phase on stderr, each with its total: the tags to resolve, and the distinct digests to
    verify (known as tags resolve: complete once the last tag has resolved)."""
    if not enabled:
        yield None
        return
    with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=console, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(phase: str, n: int, total: int) -> None:
            if phase not in tasks:
                label = "resolving tags" if phase == "resolve" else "verifying digests"
                tasks[phase] = bar.add_task(label, total=total)
            bar.update(tasks[phase], advance=n, total=total)

        yield advance


def check_command(
    guns: Annotated[list[str] | None, typer.Argument(help="GUNs to check (with --server or --archive).")] = None,
    server: ServerOpt = None,
    archive: Annotated[Path | None, typer.Option("--archive", help="DCT archive directory.")] = None,
    inventory: Annotated[Path | None, typer.Option("--inventory", help="Inventory JSON (`inventory --json`).")] = None,
    ca_file: CaFileOpt = None,
    username: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Trust policy (default: $NOTATION_CONFIG's, as notation verify).")
    ] = None,
    truststore: Annotated[
        Path | None, typer.Option("--truststore", help="Trust store directory (default: $NOTATION_CONFIG/truststore).")
    ] = None,
    require: RequireOpt = "both",
    json_out: Annotated[bool, typer.Option("--json", help="The check document (or the diff) on stdout.")] = False,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML, one test case per tag.")] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Write a Markdown summary.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Parallel registry requests.")] = 16,
    registry_map: RegistryMapOpt[list[str] | None] = None,
    oci_layout: Annotated[Path | None, typer.Option("--oci-layout", help="Read images from an OCI layout.")] = None,
    insecure_registry: InsecureOpt = [],  # noqa: B006 - typer reads the default, never mutates it
    at: Annotated[str | None, typer.Option("--at", help="Evaluate expiry at this RFC 3339 time.")] = None,
    since: Annotated[Path | None, typer.Option("--since", help="Report only changes since this --json.")] = None,
    watch: Annotated[float | None, typer.Option("--watch", help="Re-run every INTERVAL seconds.")] = None,
    max_runs: Annotated[int | None, typer.Option("--max-runs", help="Stop --watch after N runs.")] = None,
    table: Annotated[bool, typer.Option("--table/--no-table", help="Rich table and counts on stderr.")] = True,
    only_unmet: Annotated[
        bool, typer.Option("--only-unmet", help="Table: only the tags not meeting --require (the counts stay).")
    ] = False,
    waivers: Annotated[
        Path | None, typer.Option("--waivers", help="waivers.toml: reviewed tags/digests that may miss the gate.")
    ] = None,
    guns_from: Annotated[
        Path | None, typer.Option("--guns-from", help="GUNs to check, one a line (with --server or --archive).")
    ] = None,
    children: Annotated[
        bool, typer.Option("--children", help="Also verify each platform manifest an index lists (plan --children).")
    ] = False,
) -> int:
    """Per tag: DCT verdict x registry digest x Notation verdict; exit 0 only when every tag meets --require."""
    from ..migrate.check_report import (
        diff_since,
        load_previous,
        render_junit,
        render_markdown,
        render_table,
        rows_by_key,
    )
    from ..migrate.coexist import REQUIRE_MODES, registry_view, run_check
    from ..migrate.plan import map_repository, parse_registry_map, require_used_prefixes
    from ..notation.policy import TrustPolicyDocument
    from ..notation.truststore import TrustStore
    from ..report import stderr_console

    # Read once: stdin holds one password, for the notary server and the registry alike.
    options = registry_options(insecure_registry, ca_file, read_credentials(username, password_stdin))
    if require not in REQUIRE_MODES:
        raise UsageError(f"--require {require!r}: expected one of {', '.join(REQUIRE_MODES)}")
    from ..notation.policy import notation_trust_files

    policy, truststore = notation_trust_files(policy, truststore)  # as notation verify: $NOTATION_CONFIG's
    if watch is not None and (max_runs is None or max_runs < 1 or watch < 0):
        raise UsageError("--watch INTERVAL needs --max-runs N (N ≥ 1, INTERVAL ≥ 0): a scheduled run must be bounded")
    if not truststore.is_dir():
        raise UsageError(f"--truststore {truststore}: not a directory")
    fixed = FixedClock(parse_at_option(at)) if at is not None else None
    if guns_from is not None:
        from ..dct.discover import gun_arguments

        guns = gun_arguments(guns or [], guns_from)
    document = TrustPolicyDocument.load(policy)
    store = TrustStore(truststore)
    mapping = parse_registry_map(registry_map or [])
    previous = load_previous(since) if since is not None else None
    from ..migrate.waivers import load_waivers

    waiver_list = load_waivers(waivers) if waivers is not None else None
    runs = max_runs if watch is not None and max_runs is not None else 1
    code = 0
    for run in range(runs):
        if run:
            time.sleep(watch or 0)
        clock: Clock = fixed or SystemClock()
        repositories = _dct(list(guns or []), server, archive, inventory, options, clock)
        require_used_prefixes((repo.gun for repo in repositories), mapping)
        view, close = registry_view(options, oci_layout)
        try:
            with _progress(stderr_console, enabled=table) as advance:
                result = run_check(
                    repositories,
                    view,
                    policy=document,
                    truststore=store,
                    clock=clock,
                    limits=DEFAULT_LIMITS,
                    require=require,
                    registry_map=lambda gun: map_repository(gun, mapping),
                    concurrency=concurrency,
                    progress=advance,
                    children=children,
                )
        finally:
            close()
        if waiver_list is not None:
            result.apply_waivers(waiver_list, clock.now())
            for record in result.expired_waivers.values():
                sys.stderr.write(f"dct2notation: check: {record['label']} expired {record['until']}: not honoured\n")
        if json_out:
            _print_json(diff_since(previous, result) if previous is not None else result.to_dict())
        if table:
            render_table(result, stderr_console, only_unmet=only_unmet)
        if junit is not None:
            _write("--junit", junit, render_junit(result))
        if markdown is not None:
            _write("--markdown", markdown, render_markdown(result).encode("utf-8"))
        for line in result.failures:
            # Plain writes, table or not: a gate that checked nothing must say so in any CI log.
            sys.stderr.write(f"dct2notation: check: {printable(line)}\n")
        if watch is not None:
            previous = rows_by_key(result)
        code = result.exit_code
    return code


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.command("check")(check_command)
