"""Reading JSON from other tools and from the network: every refusal is a ``ValueError``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import InputError
from .files import read_document


def loads(data: str | bytes) -> Any:
    """``json.loads``, except that input nested too deeply is a ``ValueError`` like any other malformed JSON.

    The decoder recurses per nested array/object and raises ``RecursionError`` past the interpreter's limit (a few
    thousand ``[``); callers name one exception for "not valid JSON" instead of two at every site.
    """
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise ValueError(str(exc)) from None


def read_json_file(
    path: Path, *, what: str, max_bytes: int, where: str | None = None, error: type[InputError] = InputError
) -> tuple[bytes, Any]:
    """The bytes and the JSON document of a file the user named, read through ``files.read_document`` (regular
    file, at most ``max_bytes``) and decoded as UTF-8. Every refusal is one ``error`` line starting with ``where``
    (the path): ``cannot read WHAT (reason)`` or ``WHAT is not valid JSON (reason)``; the caller checks the shape."""
    where = str(path) if where is None else where
    try:
        raw = read_document(path, max_bytes)
    except OSError as exc:
        raise error(f"{where}: cannot read {what} ({exc.strerror})") from exc
    try:
        return raw, loads(raw.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError is one
        raise error(f"{where}: {what} is not valid JSON ({exc})") from exc


def load_json_file(
    path: Path, *, what: str, max_bytes: int, where: str | None = None, error: type[InputError] = InputError
) -> Any:
    """The JSON document of ``read_json_file``, for a caller that does not need the bytes."""
    return read_json_file(path, what=what, max_bytes=max_bytes, where=where, error=error)[1]
