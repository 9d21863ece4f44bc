"""Reading JSON (and the UTF-8 text it is made of) from other tools and from the network: ``loads`` refuses with a
``ValueError``, the file readers with one ``InputError`` line naming the file and what it should have held."""

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


def loads_capped(raw: bytes, *, where: str, max_bytes: int, error: type[InputError] = InputError) -> Any:
    """JSON another party sent (a registry's manifest or index, an envelope), at most ``max_bytes`` of it: one
    ``error`` line ``WHERE: N bytes exceeds the L-byte limit`` or ``WHERE: not JSON (reason)``."""
    if len(raw) > max_bytes:
        raise error(f"{where}: {len(raw)} bytes exceeds the {max_bytes}-byte limit")
    try:
        return loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"{where}: not JSON ({exc})") from exc


def read_json_file(
    path: Path, *, what: str, max_bytes: int, where: str | None = None, error: type[InputError] = InputError
) -> tuple[bytes, Any]:
    """The bytes and the JSON document of a file the user named, read through ``files.read_document`` (regular
    file, at most ``max_bytes``) and decoded as UTF-8. Every refusal is one ``error`` line starting with ``where``
    (the path): ``cannot read WHAT (reason)`` or ``WHAT is not valid JSON (reason)``; the caller checks the shape."""
    where = str(path) if where is None else where
    raw = _read(path, max_bytes, f"{where}: cannot read {what}", error, missing_ok=False)
    assert raw is not None  # missing_ok=False raises instead
    return raw, _parse(raw, f"{where}: {what} is not valid JSON", error)


def load_json_file(
    path: Path,
    *,
    what: str,
    max_bytes: int,
    where: str | None = None,
    error: type[InputError] = InputError,
    missing: Any = None,
) -> Any:
    """The JSON document of ``read_json_file``, for a caller that does not need the bytes; ``missing``, when not
    None, is the answer for a file that does not exist (an optional configuration file)."""
    where = str(path) if where is None else where
    raw = _read(path, max_bytes, f"{where}: cannot read {what}", error, missing_ok=missing is not None)
    return missing if raw is None else _parse(raw, f"{where}: {what} is not valid JSON", error)


def read_text_file(
    path: Path, *, what: str, max_bytes: int, where: str | None = None, error: type[InputError] = InputError
) -> str:
    """The UTF-8 text of a file the user named (``--guns-from``, a trust policy), read as ``read_json_file`` reads:
    one ``error`` line ``WHERE: cannot read WHAT (reason)`` or ``WHERE: WHAT is not UTF-8 text (byte N)``; an empty
    ``what`` leaves the noun out (``WHERE: not UTF-8 text (byte N)``)."""
    where = str(path) if where is None else where
    noun = f" {what}" if what else ""
    raw = _read(path, max_bytes, f"{where}: cannot read{noun}", error, missing_ok=False)
    assert raw is not None  # missing_ok=False raises instead
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{where}:{noun + ' is' if what else ''} not UTF-8 text (byte {exc.start})") from exc


def _read(path: Path, max_bytes: int, failure: str, error: type[InputError], *, missing_ok: bool) -> bytes | None:
    try:
        return read_document(path, max_bytes)
    except OSError as exc:
        if missing_ok and isinstance(exc, FileNotFoundError):
            return None
        raise error(f"{failure} ({exc.strerror})") from exc


def _parse(raw: bytes, failure: str, error: type[InputError]) -> Any:
    try:
        return loads(raw.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError is one
        raise error(f"{failure} ({exc})") from exc
