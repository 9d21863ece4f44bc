"""The one set of connection options of every command that talks to a registry or a notary server.

``--ca-file`` (``--ca`` is the same option) is added to the OS trust store and docker's per-host directories
(``dct2notation.tlstrust``); ``-u/--username`` with ``--password-stdin`` are the credentials for every server the
command reaches (docker ``config.json`` and its credential helpers otherwise, per host); ``--insecure-registry HOST``
is plain HTTP for that registry host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password of --username from stdin.")
]
PasswordOpt = Annotated[
    str | None,
    typer.Option(
        "--password", "-p", help="Registry password (Notation's flag; default $NOTATION_PASSWORD; prefer stdin)."
    ),
]
PlainHttpOpt = Annotated[
    bool, typer.Option("--plain-http", help="The reference's registry over plain HTTP (as --insecure-registry HOST).")
]
