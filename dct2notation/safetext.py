"""Text shown to a person: remote text without terminal control characters, URLs without their secrets.

A notary server, registry, token service or signature chooses error bodies, tag and role names, certificate
subjects and user metadata. Printed raw, an escape sequence in any of them can rewrite the terminal (clear it, set
its title, fake an "ok" line, hide a warning); bidirectional overrides reorder what is read. ``printable`` is the
one filter such text passes through before it reaches stderr or stdout as human output.
"""

from __future__ import annotations

import re

# C0 controls, DEL and C1 controls (CSI is U+009B), and the Unicode bidirectional embeddings, overrides and isolates.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@]*@")


def printable(text: str) -> str:
    """``text`` with each control character written as a visible escape (``\\x1b``, ``\\u202e``)."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def redact_url(url: str) -> str:
    """``scheme://user:secret@host/…`` → ``scheme://***@host/…``: a URL fit for an error line."""
    return _USERINFO.sub(r"\1***@", url)


def has_userinfo(url: str) -> bool:
    return _USERINFO.match(url) is not None
