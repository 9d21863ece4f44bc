"""``inventory`` and ``archive`` argv read without typer give exactly what typer gives the command, or defer."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest
import typer

from dct2notation.cli import main
from dct2notation.cli.dct import archive_command, inventory_command
from dct2notation.cli.dct_commands import (
    ARCHIVE_SPELLINGS,
    INVENTORY_SPELLINGS,
    ArchiveArgs,
    InventoryArgs,
    parse_archive_argv,
    parse_inventory_argv,
)


def typer_kwargs(argv: list[str]) -> dict[str, Any]:
    """What typer hands the command of ``argv``: a command with its signature that records its call."""
    seen: dict[str, Any] = {}

    def record(**kwargs: Any) -> None:
        seen.update(kwargs)

    command = {"inventory": inventory_command, "archive": archive_command}[argv[0]]
    record.__signature__ = inspect.signature(command, eval_str=True)  # type: ignore[attr-defined]
    app = typer.Typer(add_completion=False)
    app.command(argv[0])(record)

    @app.callback()
    def _root() -> None:
        """Two commands' worth of app, so typer keeps the command name in argv."""

    app(args=argv, standalone_mode=False)
    return seen


ACCEPTED = [
    ["inventory", "example.com/a", "--server", "http://127.0.0.1:1", "--json"],
    ["inventory", "--json", "example.com/a", "example.com/b", "--trust-dir", "/tmp/t"],
    ["inventory", "example.com/a", "--server=https://n.example", "--ca=/etc/ca.pem", "-u", "alice", "--password-stdin"],
    ["inventory", "example.com/a", "--archive", "arch", "--at", "2020-01-01T00:00:00Z", "--baseline-archive", "old"],
    ["inventory", "example.com/a", "--username", "bob", "--server", "http://x", "example.com/c"],
]


@pytest.mark.parametrize("argv", ACCEPTED, ids=lambda argv: " ".join(argv[1:]))
def test_fast_parse_equals_typer(argv: list[str]) -> None:
    parsed = parse_inventory_argv(argv)
    assert parsed is not None
    assert dataclasses.asdict(parsed) == typer_kwargs(argv)


DEFERRED = [
    ["inventory"],  # no GUN: typer's "Missing argument"
    ["inventory", "--server", "http://x", "--json"],
    ["inventory", "g", "--help"],
    ["inventory", "g", "-h"],
    ["inventory", "g", "--bogus"],
    ["inventory", "g", "--server"],  # value missing
    ["inventory", "g", "--server", "--json"],  # an option where the value should be
    ["inventory", "g", "--server="],
    ["inventory", "g", "--server", "http://a", "--server", "http://b"],  # repeated
    ["inventory", "g", "--json=yes"],
    ["inventory", "g", "-u=alice"],
    ["inventory", "g", "-ualice"],
    ["inventory", "--", "g"],
    ["inventory", "g", "-"],
    ["archive", "g", "--server", "http://x", "-o", "out"],
]


@pytest.mark.parametrize("argv", DEFERRED, ids=lambda argv: " ".join(argv))
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert parse_inventory_argv(argv) is None


def test_every_typer_option_is_known() -> None:
    """A new typer option on ``inventory`` must be taught to the fast parser (or the fast path would defer)."""
    app = typer.Typer(add_completion=False)
    app.command("inventory")(inventory_command)
    command = typer.main.get_command(app)
    spellings = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts) if opt.startswith("-")}
    assert spellings == INVENTORY_SPELLINGS
    fields = {f.name for f in dataclasses.fields(InventoryArgs)}
    assert {param.name for param in command.params} == fields


def test_deferred_argv_gets_typer_error_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory", "g", "--server", "http://a", "--bogus"]) == 2
    assert capsys.readouterr().err == "dct2notation: error: No such option: --bogus\n"


def test_fast_path_usage_error_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["inventory", "g", "--trust-dir", str(tmp_path), "--archive", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        "dct2notation: error: conflicting sources --trust-dir and --archive: "
        "give exactly one of --server URL, --trust-dir DIR, --archive DIR\n"
    )


ARCHIVE_ACCEPTED = [
    ["archive", "example.com/a", "--server", "http://127.0.0.1:1", "-o", "out"],
    ["archive", "--guns-from", "guns.txt", "--server=https://n.example", "--output", "out", "--concurrency", "32"],
    ["archive", "--server", "http://x", "--discover", "-o", "out", "--inventory", "inv.json", "-u", "alice",
     "--password-stdin", "--ca-file", "ca.pem"],  # fmt: skip
    ["archive", "example.com/a", "--trust-dir", "/tmp/t", "-o", "out", "--at", "2020-01-01T00:00:00Z"],
]


@pytest.mark.parametrize("argv", ARCHIVE_ACCEPTED, ids=lambda argv: " ".join(argv[1:]))
def test_archive_fast_parse_equals_typer(argv: list[str]) -> None:
    parsed = parse_archive_argv(argv)
    assert parsed is not None
    # typer gives no GUN as None, which archive_command reads as [] (list(guns or [])).
    assert dataclasses.asdict(parsed) == {**typer_kwargs(argv), "guns": typer_kwargs(argv)["guns"] or []}


ARCHIVE_DEFERRED = [
    ["archive", "g", "--server", "http://x"],  # no -o: typer's "Missing option"
    ["archive", "-o", "out", "--server", "http://x"],  # no GUN, no --guns-from, no --discover
    ["archive", "g", "-o", "out", "--help"],
    ["archive", "g", "-o", "out", "--json"],  # inventory's option, not archive's
    ["archive", "g", "-o=out"],
    ["archive", "g", "-o", "out", "--concurrency", "many"],
    ["archive", "g", "-o", "out", "-o", "other"],
    ["inventory", "g", "--server", "http://x"],
]


@pytest.mark.parametrize("argv", ARCHIVE_DEFERRED, ids=lambda argv: " ".join(argv))
def test_archive_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert parse_archive_argv(argv) is None


def test_every_archive_typer_option_is_known() -> None:
    """A new typer option on ``archive`` must be taught to the fast parser (or the fast path would defer)."""
    app = typer.Typer(add_completion=False)
    app.command("archive")(archive_command)
    command = typer.main.get_command(app)
    spellings = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts) if opt.startswith("-")}
    assert spellings == ARCHIVE_SPELLINGS
    assert {param.name for param in command.params} == {f.name for f in dataclasses.fields(ArchiveArgs)}


def test_archive_deferred_argv_gets_typer_error_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["archive", "g", "--server", "http://a"]) == 2
    assert capsys.readouterr().err == "dct2notation: error: Missing option '-o' / '--output'.\n"
