"""Connection settings from the options of ``cli/remote.py``, without typer: ``inventory``'s fast path uses them."""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import DEFAULT_LIMITS
from ..errors import UsageError
from ..registry.options import Basic, RegistryOptions


def read_credentials(username: str | None, password_stdin: bool) -> Basic | None:
    """``-u NAME --password-stdin``: the password from stdin's first line. One without the other is refused: a user
    name without its password would silently fall back to docker's stored credentials (or none)."""
    if password_stdin and not username:
        raise UsageError("--password-stdin needs --username")
    if not username:
        return None
    if not password_stdin:
        raise UsageError("--username needs --password-stdin (passwords are never taken as arguments)")
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("--password-stdin: no password on stdin")
    return Basic(username, password)


def registry_options(
    insecure: list[str] | None,
    ca_file: Path | None,
    credentials: Basic | None,
    force_referrers_tag: bool = False,
) -> RegistryOptions:
    if ca_file is not None and not ca_file.is_file():
        raise UsageError(f"--ca-file {ca_file}: no such file")
    return RegistryOptions(
        insecure_registries=frozenset(insecure or []),
        ca_file=ca_file,
        credentials=credentials,
        referrers="tag" if force_referrers_tag else "auto",
        limits=DEFAULT_LIMITS,
    )
