"""Durations as Go's ``time.ParseDuration`` reads them, because Notation's ``--expiry`` is a Go ``time.Duration``.

``1.5h``, ``2000ms``, ``1h30m``, ``300us``; ``0`` alone needs no unit. The value is bounded by Go's int64
nanoseconds (about 292 years): Notation refuses longer ones, and they would overflow a ``timedelta`` or a date.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from .errors import UsageError

# Nanoseconds per unit, the units Go accepts (both spellings of micro).
_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
MAX_NANOSECONDS = 2**63 - 1  # Go's time.Duration is an int64 of nanoseconds
MAX_TEXT = "2562047h47m16.854775807s"


def parse_go_duration(text: str, *, option: str = "--expiry") -> dt.timedelta:
    """The duration ``text`` names (never negative: a signature cannot expire before it is made)."""
    body = text[1:] if text[:1] == "+" else text
    if body == "0":
        return dt.timedelta(0)
    if text.startswith("-"):
        raise UsageError(f"{option}: {text!r} is negative; give a duration such as 24h, 1.5h or 2000ms (0: none)")
    parts = _PART.findall(body)
    if not body or _PART.sub("", body) != "":
        raise UsageError(
            f"{option}: {text!r} is not a duration such as 24h, 1h30m, 1.5h or 2000ms (Go's units: ns us ms s m h)"
        )
    nanoseconds = sum(Decimal(number) * _UNITS[unit] for number, unit in parts)
    if nanoseconds > MAX_NANOSECONDS:
        raise UsageError(f"{option}: {text!r} is longer than Notation accepts (at most {MAX_TEXT})")
    return dt.timedelta(microseconds=int(nanoseconds) // 1000)
