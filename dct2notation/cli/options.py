"""The options several commands take with the same meaning: each declared once, so its flag and help read the same
wherever it appears (docs/CLI.md). The connection options are ``cli/remote.py``'s.

An alias with ``_T`` is given its type where it is used (``RegistryMapOpt[list[str] | None]``): a command may make
the option required or give it another default, the flag and its help stay these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

import typer

_T = TypeVar("_T")

ServerOpt = Annotated[str | None, typer.Option("--server", help="Notary server URL.")]
ArchiveOpt = Annotated[Path | None, typer.Option("--archive", help="Archive written by `archive`.")]
RegistryMapOpt = Annotated[_T, typer.Option("--registry-map", help="GUN_PREFIX=REGISTRY_PREFIX (repeatable).")]
SignersOpt = Annotated[_T, typer.Option("--signers", help="signers.toml: DCT signer → Notation key.")]
PluginConfigOpt = Annotated[
    list[str], typer.Option("--plugin-config", help="With --plugin: KEY=VALUE for the plugin (repeatable).")
]
TimestampUrlOpt = Annotated[str | None, typer.Option("--timestamp-url", help="RFC 3161 TSA URL.")]
