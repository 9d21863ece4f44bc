"""The one set of connection options of every command that talks to a registry or a notary server.

``--ca-file`` (``--ca`` is the same option) is added to the OS trust store and docker's per-host directories
(``dct2notation.tlstrust``); ``-u/--username`` with ``--password-stdin`` are the credentials for every server the
command reaches (docker ``config.json`` and its credential helpers otherwise, per host); ``--insecure-registry HOST``
is plain HTTP for that registry host.

``sign``, ``ls``, ``inspect`` and ``verify`` take all six, Notation's way (``-p`` and ``--plain-http`` too): they
declare one ``access: RegistryAccess`` parameter and ``@with_registry_access`` shows it to typer as the six options.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ..registry.options import Basic
from .credentials import notation_credentials

_R = TypeVar("_R")

InsecureOpt = Annotated[
    list[str],
    typer.Option("--insecure-registry", help="HOST[:PORT] reached over plain HTTP (repeatable)."),
]
CaFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-file", "--ca", help="PEM CA bundle trusted for the registry and notary server, besides the OS store."
    ),
]
UserOpt = Annotated[str | None, typer.Option("--username", "-u", help="Registry / notary server user name.")]
PasswordStdinOpt = Annotated[bool, typer.Option("--password-stdin", help="Read the password of --username from stdin.")]
PasswordOpt = Annotated[
    str | None,
    typer.Option(
        "--password", "-p", help="Registry password (Notation's flag; default $NOTATION_PASSWORD; prefer stdin)."
    ),
]
PlainHttpOpt = Annotated[
    bool, typer.Option("--plain-http", help="The reference's registry over plain HTTP (as --insecure-registry HOST).")
]


@dataclass(frozen=True)
class RegistryAccess:
    """The six connection options of a command that reaches one artifact's registry, as given."""

    insecure_registry: list[str]
    plain_http: bool
    ca_file: Path | None
    username: str | None
    password: str | None
    password_stdin: bool

    def credentials(self) -> Basic | None:
        """Notation's ``-u``/``-p``/``--password-stdin`` (stdin is read here: call once per command)."""
        return notation_credentials(self.username, self.password, self.password_stdin)


def _keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


# RegistryAccess's fields as typer options, in the order --help lists them.
_ACCESS_OPTIONS = (
    _keyword("insecure_registry", InsecureOpt, []),
    _keyword("plain_http", PlainHttpOpt, False),
    _keyword("ca_file", CaFileOpt, None),
    _keyword("username", UserOpt, None),
    _keyword("password", PasswordOpt, None),
    _keyword("password_stdin", PasswordStdinOpt, False),
)


def with_registry_access(command: Callable[..., _R]) -> Callable[..., _R]:
    """``command`` declares a keyword-only ``access: RegistryAccess``; typer reads the signature, so the one shown in
    its place is the six options, and the call gathers their values back into ``access``."""
    signature = inspect.signature(command, eval_str=True)  # typer takes a given __signature__ as it is: evaluated
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        parameters.extend(_ACCESS_OPTIONS if parameter.name == "access" else (parameter,))

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> _R:
        access = RegistryAccess(*(kwargs.pop(option.name) for option in _ACCESS_OPTIONS))
        return command(*args, access=access, **kwargs)

    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return run
