"""Limits and the clock: one place for every size cap, and time that tests can pin."""

from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import dataclass
from typing import Protocol

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Upper bounds on everything we download or read, so a hostile server cannot feed endless data."""

    # Notary v1 (notary: const.go MaxTimestampSize = 1 MiB, MaxDownloadSize = 100 MiB)
    timestamp_bytes: int = 1 * MiB
    root_bytes: int = 2 * MiB
    metadata_bytes: int = 100 * MiB
    max_root_rotations: int = 1024
    # Every file of one GUN together (root versions, snapshot, targets, delegations): each cap above holds per file,
    # so without this a server could make us read 1024 root versions of 2 MiB each.
    gun_bytes: int = 256 * MiB
    max_delegations: int = 10_000
    # Notation (notation-go registry/repository.go: manifest 4 MiB, envelope blob 32 MiB)
    signature_manifest_bytes: int = 4 * MiB
    envelope_bytes: int = 32 * MiB
    referrers_index_bytes: int = 16 * MiB
    manifest_bytes: int = 4 * MiB
    max_signature_attempts: int = 50
    # An OCI layout's index.json lists every tag: ~220 bytes per entry, so 100,000 tags is ~22 MiB.
    layout_index_bytes: int = 256 * MiB
    # A JSON document the tool wrote itself (plan, inventory, check run, sign-off record and manifest), read back
    # from a bundle: 100,000 jobs or tags are ~50 MiB.
    document_bytes: int = 512 * MiB
    # A trust policy or one trust store certificate file: kilobytes in practice.
    config_file_bytes: int = 16 * MiB
    # Plugins (plugin-extensibility spec: each channel capped at 64 MiB)
    plugin_output_bytes: int = 64 * MiB
    plugin_timeout_seconds: float = 60.0
    # RFC 3161 TSA (tspclient-go http.go maxBodyLength = 1 MiB; a reply with its chain is usually < 10 KiB).
    # The skew bound refuses a genTime this far ahead of our clock: a TSA clock that wrong cannot be trusted.
    tsa_response_bytes: int = 1 * MiB
    tsa_max_clock_skew_seconds: float = 300.0
    # HTTP: each connect/read/write gets the timeout; each whole request (its redirects, its token fetch, its body)
    # the deadline, so a server that drips a byte at a time cannot hold a command (DCT2NOTATION_HTTP_DEADLINE).
    http_timeout_seconds: float = 30.0
    http_deadline_seconds: float = 300.0
    retry_attempts: int = 5
    retry_max_wait_seconds: float = 30.0
    # The batch's reconciliation pass lists a subject again after each repair; a listing still changing after this
    # many rounds (writers racing on it) leaves its unconfirmed jobs failed for a rerun.
    reconcile_rounds: int = 5
    # Discovery (notary changefeed, registry catalog): a page is ~200 bytes per record; a feed that never ends, or
    # a catalog that pages forever, stops at these bounds with an error instead of growing memory.
    discover_page_records: int = 1000
    discover_page_bytes: int = 16 * MiB
    discover_max_pages: int = 10_000
    discover_max_guns: int = 1_000_000
    # A part of the plan or inventory in one ConfigMap (k8s-job): etcd caps an object at 1 MiB and binaryData is
    # base64 (4/3), so 700 KiB of gzip is ~933 KiB in the object with room for its metadata.
    k8s_part_bytes: int = 700 * 1024
    # GUNs read at once from one notary server (archive, inventory, discovery probes): --concurrency.
    concurrency: int = 16
    max_concurrency: int = 256


def _deadline_from_environment(default: float) -> float:
    raw = os.environ.get("DCT2NOTATION_HTTP_DEADLINE")
    if raw is None or not raw.strip():
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (0 < seconds < math.inf):
        from .errors import UsageError

        raise UsageError(f"DCT2NOTATION_HTTP_DEADLINE: {raw[:40]!r} is not a positive number of seconds")
    return seconds


DEFAULT_LIMITS = Limits(http_deadline_seconds=_deadline_from_environment(Limits.http_deadline_seconds))


class Clock(Protocol):
    def now(self) -> _dt.datetime:
        """Current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> _dt.datetime:
        return _dt.datetime.now(_dt.UTC)


@dataclass(frozen=True)
class FixedClock:
    """A pinned instant (``--at``); public fixtures have expired, so tests evaluate them at a fixed time."""

    instant: _dt.datetime

    def now(self) -> _dt.datetime:
        return self.instant


def parse_at_option(value: str) -> _dt.datetime:
    """``--at VALUE``: an RFC 3339 instant; a bad one is a usage error that names the option."""
    from .errors import UsageError

    try:
        return parse_rfc3339(value)
    except UsageError as exc:
        raise UsageError(f"--at: {exc}") from exc


def format_rfc3339(when: _dt.datetime, *, fraction: bool = False) -> str:
    """The instant in UTC as RFC 3339 with ``Z``, in one of two layouts.

    By default Go's ``time.RFC3339``: whole seconds, cut as Go's ``Truncate(time.Second)`` does; the layout Notation
    writes (signing time, expiry, the ``created`` annotation) and our verify messages quote. With ``fraction``, the
    microseconds too when there are any (Python's ``isoformat``): the evaluation times our own documents record.
    """
    if when.tzinfo is None:
        raise ValueError("time must be timezone-aware")
    utc = when.astimezone(_dt.UTC)
    return utc.isoformat().replace("+00:00", "Z") if fraction else utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str) -> _dt.datetime:
    """Parse an RFC 3339 instant (``Z`` or offset, any fraction) into aware UTC."""
    from .errors import UsageError

    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Go writes nanoseconds; Python keeps microseconds, which is enough for expiry comparisons.
    if "." in text:
        head, _, rest = text.partition(".")
        frac = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            frac += rest[i]
            i += 1
        text = f"{head}.{frac[:6].ljust(6, '0')}{rest[i:]}"
    try:
        parsed = _dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"not an RFC 3339 time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise UsageError(f"RFC 3339 time needs a zone (Z or ±hh:mm): {value!r}")
    return parsed.astimezone(_dt.UTC)
