"""Connection settings from the options of ``cli/remote.py``, without typer: ``inventory``'s fast path uses them."""

from __future__ import annotations

import os
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


def notation_credentials(username: str | None, password: str | None, password_stdin: bool) -> Basic | None:
    """Registry credentials as ``notation`` takes them: ``-u``/``-p`` (or ``--password-stdin``), each defaulting to
    ``$NOTATION_USERNAME`` / ``$NOTATION_PASSWORD``; docker's stored credentials when none is given."""
    if password is not None and password_stdin:
        raise UsageError("--password and --password-stdin: give one of them")
    username = username or os.environ.get("NOTATION_USERNAME") or None
    if password_stdin:
        return read_credentials(username, True)
    password = password if password is not None else os.environ.get("NOTATION_PASSWORD") or None
    if username is None and password is None:
        return None
    if username is None:
        raise UsageError("--password (or $NOTATION_PASSWORD) needs --username (or $NOTATION_USERNAME)")
    if not password:
        raise UsageError("--username (or $NOTATION_USERNAME) needs --password, --password-stdin or $NOTATION_PASSWORD")
    return Basic(username, password)


def with_plain_http(insecure: list[str], plain_http: bool, reference: str | None) -> list[str]:
    """Notation's ``--plain-http``: the registry of ``reference`` over plain HTTP (``--insecure-registry HOST``)."""
    if not plain_http or reference is None:
        return insecure
    from ..registry.reference import parse_reference

    return [*insecure, parse_reference(reference).registry]


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
