"""Reviewed waivers: a tag or digest that may miss the gate, with why, who decided and until when.

A drifted or never-pushed tag keeps a coexistence gate red forever: nothing the tool does can make DCT trust what
the registry serves, or push what was never pushed. A waiver (``waivers.toml``) names it once, with a reason, the
person who accepted the risk and an expiry; `check` and `signoff` honour an active waiver and report it, an expired
one is reported and not honoured, and one that matches nothing is listed so stale entries get removed::

    [[waiver]]
    gun = "docker.io/acme/web"        # or repository = "registry.example.com/acme/web"
    tag = "v1.2"                      # or digest = "sha256:…"
    reason = "hotfix pushed outside DCT; rebuilt in 1.3"
    by = "alice@example.com"
    until = "2026-12-31T00:00:00Z"
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import format_rfc3339, parse_rfc3339
from ..errors import ConfigError, UsageError
from ..tomlfile import load_tables

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_FIELDS = {"gun", "repository", "tag", "digest", "reason", "by", "until"}


@dataclass(frozen=True)
class Waiver:
    index: int
    reason: str
    by: str
    until: dt.datetime
    gun: str | None = None
    repository: str | None = None
    tag: str | None = None
    digest: str | None = None

    @property
    def label(self) -> str:
        where = self.gun or self.repository or ""
        return f"waiver[{self.index}] {where}{':' + self.tag if self.tag else '@' + str(self.digest)}"

    def matches(self, *, gun: str, repository: str, tag: str | None, digests: tuple[str | None, ...]) -> bool:
        if self.gun is not None and self.gun != gun:
            return False
        if self.repository is not None and self.repository != repository:
            return False
        if self.tag is not None:
            return tag == self.tag
        return self.digest in digests

    def active(self, now: dt.datetime) -> bool:
        return now < self.until

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason": self.reason, "by": self.by, "until": format_rfc3339(self.until, fraction=True)}
        scope = {"gun": self.gun, "repository": self.repository, "tag": self.tag, "digest": self.digest}
        out.update((name, value) for name, value in scope.items() if value is not None)
        return out


def load_waivers(path: Path) -> list[Waiver]:
    """``waivers.toml``; every problem is one ``ConfigError`` naming the file, the entry and the field."""
    entries = load_tables(path, "waiver", where=f"--waivers {path}", missing=f"--waivers {path}: no such file")
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: waiver: expected [[waiver]] tables")
    return [_waiver(path, n, entry) for n, entry in enumerate(entries)]


def _waiver(path: Path, n: int, entry: Any) -> Waiver:
    where = f"{path}: waiver[{n}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a table")
    extra = sorted(set(entry) - _FIELDS)
    if extra:
        raise ConfigError(f"{where}: {extra[0]}: unknown field")
    for name in _FIELDS:
        if name in entry and not isinstance(entry[name], str | dt.datetime):
            raise ConfigError(f"{where}: {name}: expected a string")
    for name in ("reason", "by", "until"):
        if not str(entry.get(name, "")).strip():
            raise ConfigError(f"{where}: {name}: required (what is accepted, who accepted it, until when)")
    if ("gun" in entry) == ("repository" in entry):
        raise ConfigError(f"{where}: give exactly one of gun or repository")
    if ("tag" in entry) == ("digest" in entry):
        raise ConfigError(f"{where}: give exactly one of tag or digest")
    if "digest" in entry and not _DIGEST.fullmatch(str(entry["digest"])):
        raise ConfigError(f"{where}: digest: expected sha256:<64 hex>")
    until = entry["until"]
    if isinstance(until, dt.datetime):  # a TOML datetime literal
        if until.tzinfo is None:
            raise ConfigError(f"{where}: until: give a time zone (e.g. 2026-12-31T00:00:00Z)")
        when = until.astimezone(dt.UTC)
    else:
        try:
            when = parse_rfc3339(str(until))
        except UsageError as exc:
            raise ConfigError(f"{where}: until: not an RFC 3339 time: {until!r}") from exc
    return Waiver(
        index=n,
        reason=str(entry["reason"]).strip(),
        by=str(entry["by"]).strip(),
        until=when,
        gun=entry.get("gun"),
        repository=entry.get("repository"),
        tag=entry.get("tag"),
        digest=entry.get("digest"),
    )


def find(
    waivers: list[Waiver], *, gun: str, repository: str, tag: str | None, digests: tuple[str | None, ...]
) -> Waiver | None:
    """The first waiver matching this tag or digest (active or not: the caller reports an expired one)."""
    return next((w for w in waivers if w.matches(gun=gun, repository=repository, tag=tag, digests=digests)), None)
