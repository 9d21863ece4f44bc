"""Which Notation key signs for which DCT signer: the ``signers.toml`` mapping.

Format (TOML; relative paths are resolved against the directory of ``signers.toml``)::

    [[signer]]
    gun = "registry.example.com/team/*"   # fnmatch pattern over the DCT GUN (required)
    role = "targets/releases"             # DCT role: targets (Repo Admin), targets/releases,
                                          # targets/NAME; an fnmatch pattern; default "*"
    # exactly one key kind:
    key = "release"                       # a signingkeys.json key name
    # key_file = "keys/release.key"       # or a PEM private key ...
    # plugin = "azure-kv"                 # or a KMS plugin ...
    # key_id = "https://vault/keys/rel"   #    ... with its key id
    # plugin_config = { region = "x" }    #    ... and optional plugin config (strings)
    cert_file = "keys/release.crt"        # chain the key signs with, leaf first (required with key_file;
                                          # optional otherwise: the trust policy needs it to name the identity)
    ca_file = "keys/root.crt"             # optional: root(s) for the trust store when the chain lacks its root

Entries are tried in file order; the first whose ``gun`` and ``role`` both match wins.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UsageError
from ..tomlfile import load_tables

REPO_ADMIN_ROLE = "targets"
RELEASES_ROLE = "targets/releases"

_KNOWN_FIELDS = frozenset(
    {"gun", "role", "key", "key_file", "cert_file", "ca_file", "plugin", "key_id", "plugin_config"}
)


@dataclass(frozen=True)
class MappedKey:
    """One Notation key mapped to DCT signers; ``spec`` is the string ``keys.resolve.load_signing_key`` takes."""

    gun_pattern: str
    role_pattern: str
    key_name: str | None = None
    key_file: Path | None = None
    cert_file: Path | None = None
    ca_file: Path | None = None
    plugin: str | None = None
    key_id: str | None = None
    plugin_config: Mapping[str, str] = field(default_factory=dict)
    index: int = 0

    @property
    def spec(self) -> str:
        if self.plugin is not None:
            return f"plugin:{self.plugin}:{self.key_id}"
        if self.key_file is not None:
            return f"{self.key_file}:{self.cert_file}"
        assert self.key_name is not None
        return self.key_name

    @property
    def label(self) -> str:
        """Human name for reports: what the operator wrote."""
        if self.plugin is not None:
            return f"plugin {self.plugin} key {self.key_id}"
        if self.key_file is not None:
            return f"key file {self.key_file}"
        return f"key {self.key_name}"


@dataclass(frozen=True)
class SignerMapping:
    path: Path
    entries: tuple[MappedKey, ...]

    def key_for(self, gun: str, role: str) -> MappedKey | None:
        for entry in self.entries:
            if fnmatch.fnmatchcase(gun, entry.gun_pattern) and fnmatch.fnmatchcase(role, entry.role_pattern):
                return entry
        return None


def _string(path: Path, index: int, table: Mapping[str, Any], name: str) -> str | None:
    value = table.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: signer[{index}].{name}: must be a non-empty string")
    return value


def _file(path: Path, index: int, table: Mapping[str, Any], name: str) -> Path | None:
    value = _string(path, index, table, name)
    if value is None:
        return None
    resolved = Path(value) if Path(value).is_absolute() else path.parent / value
    if not resolved.is_file():
        raise ConfigError(f"{path}: signer[{index}].{name}: {resolved} does not exist")
    return resolved


def _entry(path: Path, index: int, table: Any) -> MappedKey:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: signer[{index}]: must be a table")
    unknown = sorted(set(table) - _KNOWN_FIELDS)
    if unknown:
        raise ConfigError(f"{path}: signer[{index}].{unknown[0]}: unknown field")
    gun = _string(path, index, table, "gun")
    if gun is None:
        raise ConfigError(f"{path}: signer[{index}].gun: missing")
    role = _string(path, index, table, "role") or "*"
    key_name = _string(path, index, table, "key")
    plugin = _string(path, index, table, "plugin")
    key_id = _string(path, index, table, "key_id")
    kinds = [name for name in ("key", "key_file", "plugin") if table.get(name) is not None]
    if len(kinds) != 1:
        raise ConfigError(f"{path}: signer[{index}]: exactly one of key, key_file, plugin is required")
    if plugin is not None and key_id is None:
        raise ConfigError(f"{path}: signer[{index}].key_id: missing (required with plugin)")
    if plugin is None and key_id is not None:
        raise ConfigError(f"{path}: signer[{index}].key_id: only allowed with plugin")
    config = table.get("plugin_config", {})
    if not isinstance(config, dict) or not all(isinstance(v, str) for v in config.values()):
        raise ConfigError(f"{path}: signer[{index}].plugin_config: must be a table of strings")
    if config and plugin is None:
        raise ConfigError(f"{path}: signer[{index}].plugin_config: only allowed with plugin")
    key_file = _file(path, index, table, "key_file")
    cert_file = _file(path, index, table, "cert_file")
    if key_file is not None and cert_file is None:
        raise ConfigError(f"{path}: signer[{index}].cert_file: missing (required with key_file)")
    return MappedKey(
        gun_pattern=gun,
        role_pattern=role,
        key_name=key_name,
        key_file=key_file,
        cert_file=cert_file,
        ca_file=_file(path, index, table, "ca_file"),
        plugin=plugin,
        key_id=key_id,
        plugin_config=dict(config),
        index=index,
    )


def load_signers(path: Path | str) -> SignerMapping:
    """Read ``signers.toml``; every problem is one ``ConfigError`` naming the file and field."""
    path = Path(path)
    tables = load_tables(path, "signer", where=str(path), missing=f"{path}: signer mapping file does not exist")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{path}: signer: at least one [[signer]] table is required")
    return SignerMapping(path=path, entries=tuple(_entry(path, i, t) for i, t in enumerate(tables)))


def signers_of_repository(repo: Mapping[str, Any]) -> list[str]:
    """DCT roles whose signatures count for this GUN: Repo Admin, releases, and delegations that signed a trusted tag.

    A delegation "signed" a trusted tag when its own targets hold that tag at the digest ``docker pull`` resolves.
    """
    trusted = {(str(t["tag"]), str(t["digest"])) for t in repo.get("trusted_tags", [])}
    roles: set[str] = {str(t["role"]) for t in repo.get("trusted_tags", [])}
    for role, targets in repo.get("role_targets", {}).items():
        if any((str(t["tag"]), str(t["digest"])) in trusted for t in targets):
            roles.add(str(role))
    return sorted(roles)


def unmapped(inventory: Any, mapping: SignerMapping) -> list[tuple[str, str]]:
    """Every (GUN, role) signer with no mapped key, sorted, so one error can list them all."""
    missing: list[tuple[str, str]] = []
    for repo in _repositories(inventory):
        gun = str(repo["gun"])
        missing.extend((gun, role) for role in signers_of_repository(repo) if mapping.key_for(gun, role) is None)
    return sorted(missing)


def _repositories(inventory: Any) -> Sequence[Mapping[str, Any]]:
    repos = inventory.get("repositories", []) if isinstance(inventory, Mapping) else inventory.repositories
    return list(repos)


@dataclass(frozen=True)
class RegistryMap:
    """``GUN_PREFIX=REGISTRY_PREFIX`` rewrites: where a notary GUN's images live now; longest prefix wins."""

    rules: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, items: Iterable[str]) -> RegistryMap:
        rules: list[tuple[str, str]] = []
        for item in items:
            source, sep, target = item.partition("=")
            if not sep or not source or not target:
                raise UsageError(f"--registry-map {item!r}: expected GUN_PREFIX=REGISTRY_PREFIX")
            if any(c in target for c in "*?[]"):
                raise UsageError(f"--registry-map {item!r}: wildcards are not allowed in repository scopes")
            rules.append((source, target))
        return cls(tuple(sorted(rules, key=lambda rule: -len(rule[0]))))

    def apply(self, gun: str) -> str:
        for source, target in self.rules:
            if gun == source or gun.startswith(source.rstrip("/") + "/"):
                return target + gun[len(source) :]
        return gun

    def pairs(self) -> list[tuple[str, str]]:
        return list(self.rules)
