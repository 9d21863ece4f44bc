"""The bytes Notary signs: docker/go canonical JSON of the ``signed`` object, as notary re-encodes it to verify.

Notary decodes ``signed`` into generic Go values (every number a float64) and re-encodes it in canonical mode
(``vendor/github.com/docker/go/canonical/json/encode.go``): keys sorted by byte order, no whitespace, strings
escaping only ``\\`` and ``"`` (control characters, ``<>&``, U+2028 and non-ASCII are written raw), integral
numbers as integers, any other number an error. ``encode`` gets those bytes from orjson (sorted keys), which agrees
except on control characters (it escapes them), lone surrogates (Go decoding made them U+FFFD), floats and integers
past 2**53 (Go rounds through float64). ``loads`` turns the numbers that need Go's treatment into ``GoNumber``,
which orjson refuses, as it refuses lone surrogates and integers past 64 bits; that or a control-character escape
sends the document to the exact (slow, pure Python) encoder. The fast path never decides alone when it might
differ.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# Up to 15 digits always fits a float64 exactly, so Python's int and Go's float64 print the same.
_EXACT_DIGITS = 15
_GO_INT64 = 2**63
# Any backslash escape json.dumps writes for a control character (it may also hit an escaped backslash followed
# by one of these letters; that only costs the slow path).
_CONTROL_ESCAPE = re.compile(rb"\\[bfnrtu]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class CanonicalError(ValueError):
    """The value has no docker/go canonical form (a non-integral or out-of-range number)."""


class GoNumber:
    """A JSON number Go reads as a float64 differently from Python: a float, or an integer past 15 digits."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"GoNumber({self.text!r})"


def _go_number(text: str) -> int | GoNumber:
    # Called for every integer of a 10,000-target file: the common short case decides on the length alone.
    if len(text) <= _EXACT_DIGITS or (text[0] == "-" and len(text) == _EXACT_DIGITS + 1):
        return int(text)
    return GoNumber(text)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(raw: bytes) -> Any:
    """``json.loads`` that keeps what Go would read differently as ``GoNumber`` and refuses NaN/Infinity."""
    return json.loads(raw, parse_float=GoNumber, parse_int=_go_number, parse_constant=_no_constants)


def encode(obj: Any) -> bytes:
    """docker/go canonical JSON of ``obj`` (the payload notary's signatures cover), numbers as ``loads`` left them."""
    try:
        data = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # GoNumber, a lone surrogate, an integer past 64 bits, a float NaN/Infinity (JSONEncodeError)
        return encode_exact(obj)
    if b"\\" in data and _CONTROL_ESCAPE.search(data):
        return encode_exact(obj)
    return data


def encode_exact(obj: Any) -> bytes:
    """docker/go canonical JSON, value by value in Python: the reference ``encode`` must equal."""
    out: list[str] = []
    _write(obj, out)
    return "".join(out).encode("utf-8")


def go_string(text: str) -> str:
    """The string as Go decoded it: a lone surrogate escape becomes U+FFFD (what notary signs and shows)."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def _quote(text: str) -> str:
    return '"' + go_string(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _go_float(value: float, shown: str) -> str:
    if value != value or value in (float("inf"), float("-inf")) or value != int(value):
        raise CanonicalError(f"number {shown} is not a finite integer")
    if abs(value) >= _GO_INT64:
        raise CanonicalError(f"number {shown} is outside Go's int64 range")
    return str(int(value))


def _write(obj: Any, out: list[str]) -> None:
    if isinstance(obj, str):
        out.append(_quote(obj))
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif obj is None:
        out.append("null")
    elif isinstance(obj, int):
        out.append(str(obj) if abs(obj) <= 2**53 else _go_float(_as_float(obj, str(obj)), str(obj)))
    elif isinstance(obj, GoNumber):
        out.append(_go_float(_as_float(obj.text, obj.text), obj.text))
    elif isinstance(obj, float):
        out.append(_go_float(obj, repr(obj)))
    elif isinstance(obj, dict):
        # Keys that Go decoded to the same string collapse, the last one winning, as in a Go map.
        items = {go_string(key): value for key, value in obj.items()}
        out.append("{")
        for i, key in enumerate(sorted(items)):
            if i:
                out.append(",")
            out.append(_quote(key))
            out.append(":")
            _write(items[key], out)
        out.append("}")
    elif isinstance(obj, list | tuple):
        out.append("[")
        for i, item in enumerate(obj):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise CanonicalError(f"{type(obj).__name__} has no JSON form")


def _as_float(value: int | str, shown: str) -> float:
    try:
        return float(value)
    except OverflowError as exc:
        raise CanonicalError(f"number {shown} is outside float64") from exc
