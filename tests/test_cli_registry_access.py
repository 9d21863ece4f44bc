"""``cli/remote.with_registry_access``: one ``access`` parameter shown to typer as the six connection options."""

from __future__ import annotations

import inspect
from pathlib import Path

import typer
from typer.testing import CliRunner

from dct2notation.cli.remote import RegistryAccess, with_registry_access

seen: list[tuple[str, RegistryAccess, bool]] = []


@with_registry_access
def _command(
    name: str = typer.Argument("n"), *, access: RegistryAccess, after: bool = typer.Option(False, "--after")
) -> None:
    seen.append((name, access, after))


def test_the_six_options_stand_where_access_is_declared() -> None:
    assert list(inspect.signature(_command).parameters) == [
        "name",
        "insecure_registry",
        "plain_http",
        "ca_file",
        "username",
        "password",
        "password_stdin",
        "after",
    ]


def test_their_values_reach_the_command_as_one_registry_access(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(_command)
    seen.clear()
    argv = ["ref", "--insecure-registry", "a:5000", "--insecure-registry", "b", "--plain-http", "--ca", "ca.pem"]
    result = CliRunner().invoke(app, [*argv, "-u", "me", "-p", "pw", "--after"])
    assert (result.exit_code, result.output) == (0, "")
    assert seen == [("ref", RegistryAccess(["a:5000", "b"], True, Path("ca.pem"), "me", "pw", False), True)]
    seen.clear()
    assert CliRunner().invoke(app, []).exit_code == 0
    assert seen == [("n", RegistryAccess([], False, None, None, None, False), False)]
