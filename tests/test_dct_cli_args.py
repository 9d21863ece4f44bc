"""``inventory`` argv read without typer gives exactly what typer gives the command, or defers to typer."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest
import typer

from dct2notation.cli import main
from dct2notation.cli.dct import inventory_command
from dct2notation.cli.dct_commands import INVENTORY_SPELLINGS, InventoryArgs, parse_inventory_argv


def typer_kwargs(argv: list[str]) -> dict[str, Any]:
    """What typer hands ``inventory_command`` for ``argv``: a command with its signature that records its call."""
    seen: dict[str, Any] = {}

    def record(**kwargs: Any) -> None:
        seen.update(kwargs)

    record.__signature__ = inspect.signature(inventory_command, eval_str=True)  # type: ignore[attr-defined]
    app = typer.Typer(add_completion=False)
    app.command("inventory")(record)

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
