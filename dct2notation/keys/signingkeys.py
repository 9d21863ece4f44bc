"""Notation's config directory and its ``signingkeys.json`` (notation-go ``config/keys.go``).

Parsing is lossless: fields we do not know survive a load/save round trip, so editing the file never drops what a
newer Notation wrote.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import DEFAULT_LIMITS
from ..errors import ConfigError, UsageError
from ..files import write_beneath, write_error
from ..jsontext import load_json_file

# Matched with fullmatch: ``$`` also matches before a final newline, which let "release\n" be a key (file) name.
NAME_PATTERN = re.compile(r"[a-zA-Z0-9_.-]+")


def notation_config_dir(explicit: Path | str | None = None) -> Path:
    """``--config-dir``, else ``NOTATION_CONFIG``, else the OS user config dir + ``notation`` (Linux layout)."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("NOTATION_CONFIG")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path.home() / ".config"
    return base / "notation"


@dataclass
class KeyEntry:
    name: str
    key_path: str | None = None
    cert_path: str | None = None
    id: str | None = None
    plugin_name: str | None = None
    plugin_config: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_plugin(self) -> bool:
        return self.plugin_name is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.is_plugin:
            out["id"] = self.id
            out["pluginName"] = self.plugin_name
            if self.plugin_config:
                out["pluginConfig"] = dict(self.plugin_config)
        else:
            out["keyPath"] = self.key_path
            out["certPath"] = self.cert_path
        out.update(self.extra)
        return out


_ENTRY_FIELDS = {"name", "keyPath", "certPath", "id", "pluginName", "pluginConfig"}


def _entry(obj: Any, where: str) -> KeyEntry:
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: not a JSON object")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: name is required")
    for key in ("keyPath", "certPath", "id", "pluginName"):
        if key in obj and not isinstance(obj[key], str):
            raise ConfigError(f"{where} ({name}): {key} must be a string")
    config = obj.get("pluginConfig")
    if config is not None and not (isinstance(config, dict) and all(isinstance(v, str) for v in config.values())):
        raise ConfigError(f"{where} ({name}): pluginConfig must map strings to strings")
    entry = KeyEntry(
        name=name,
        key_path=obj.get("keyPath"),
        cert_path=obj.get("certPath"),
        id=obj.get("id"),
        plugin_name=obj.get("pluginName"),
        plugin_config=config,
        extra={k: v for k, v in obj.items() if k not in _ENTRY_FIELDS},
    )
    if entry.is_plugin:
        if not entry.id:
            raise ConfigError(f"{where} ({name}): a plugin key needs an id")
        if entry.key_path or entry.cert_path:
            raise ConfigError(f"{where} ({name}): a key has either keyPath/certPath or pluginName, not both")
    elif not entry.key_path or not entry.cert_path:
        raise ConfigError(f"{where} ({name}): keyPath and certPath are both required (or id + pluginName)")
    return entry


@dataclass
class SigningKeys:
    default: str | None = None
    keys: list[KeyEntry] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> SigningKeys:
        """The file's entries; an absent file is an empty configuration, as in Notation."""
        if not path.exists():
            return cls()
        limit = DEFAULT_LIMITS.config_file_bytes
        obj = load_json_file(path, what="signingkeys.json", max_bytes=limit, error=ConfigError)
        return cls.from_dict(obj, where=str(path))

    @classmethod
    def from_dict(cls, obj: Any, *, where: str = "signingkeys.json") -> SigningKeys:
        if not isinstance(obj, dict):
            raise ConfigError(f"{where}: not a JSON object")
        default = obj.get("default")
        if default is not None and not isinstance(default, str):
            raise ConfigError(f"{where}: default must be a string")
        raw_keys = obj.get("keys", [])
        if not isinstance(raw_keys, list):
            raise ConfigError(f"{where}: keys must be an array")
        keys = [_entry(item, f"{where}: keys[{i}]") for i, item in enumerate(raw_keys)]
        names = [k.name for k in keys]
        for name in names:
            if names.count(name) > 1:
                raise ConfigError(f"{where}: key name {name!r} is used more than once")
        if default and default not in names:
            raise ConfigError(f"{where}: default key {default!r} is not among the keys")
        return cls(default=default, keys=keys, extra={k: v for k, v in obj.items() if k not in {"default", "keys"}})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.default:
            out["default"] = self.default
        out["keys"] = [k.to_dict() for k in self.keys]
        out.update(self.extra)
        return out

    def save(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(path, exc) from exc
        # A fresh O_EXCL temp name (a fixed one could be a planted symlink), 0600 from creation, then a rename.
        # In the config directory nothing is followed: a symlink planted at signingkeys.json is replaced, not
        # written through.
        write_beneath(path.parent, path.name, json.dumps(self.to_dict(), indent=4) + "\n", private=True)

    def get(self, name: str | None) -> KeyEntry:
        wanted = name or self.default
        if not wanted:
            raise ConfigError("signingkeys.json: no key name given and no default key set")
        for entry in self.keys:
            if entry.name == wanted:
                return entry
        raise ConfigError(f"signingkeys.json: no signing key named {wanted!r}")

    def add(self, entry: KeyEntry, *, make_default: bool = False) -> None:
        if any(k.name == entry.name for k in self.keys):
            raise ConfigError(f"signingkeys.json: signing key {entry.name!r} already exists")
        self.keys.append(entry)
        if make_default:
            self.default = entry.name

    def remove(self, names: Iterable[str]) -> list[str]:
        """``notation key delete``: drop the entries (all names checked first); the key files stay where they are.
        Deleting the default key leaves no default, as in Notation."""
        wanted = list(dict.fromkeys(names))
        held = {k.name for k in self.keys}
        for name in wanted:
            if name not in held:
                raise ConfigError(f"signingkeys.json: no signing key named {name!r}")
        self.keys = [k for k in self.keys if k.name not in wanted]
        if self.default in wanted:
            self.default = None
        return wanted


def signing_keys_path(config_dir: Path) -> Path:
    return config_dir / "signingkeys.json"


def add_signing_key(config_dir: Path, entry: KeyEntry, *, make_default: bool = False) -> Path:
    """``notation key add``: one more entry in ``signingkeys.json``. A local key's files must hold a key that matches
    the leaf certificate (checked here, not at the first signing); a duplicate name is refused."""
    from .local import load_local_key

    if not NAME_PATTERN.fullmatch(entry.name):
        raise UsageError(f"key name {entry.name!r} is not valid: use letters, digits, '_', '.' and '-' only")
    path = signing_keys_path(config_dir)
    keys = SigningKeys.load(path)
    if any(k.name == entry.name for k in keys.keys):
        raise ConfigError(f"{path}: signing key {entry.name!r} already exists")
    if not entry.is_plugin:
        if not entry.key_path or not entry.cert_path:
            raise UsageError("key add: --key-file and --cert-file go together (or --plugin NAME --id KEYID)")
        load_local_key(Path(entry.key_path), Path(entry.cert_path), name=entry.name)
    keys.add(entry, make_default=make_default)
    keys.save(path)
    return path


def unknown_key_specs(specs: Iterable[str], config_dir: Path) -> tuple[list[str], bool]:
    """The key specs that name no key: signingkeys.json names it does not hold, KEY.pem:CHAIN.pem files that do not
    exist (plugin keys are the plugin's to know). The second value is False when there is no signingkeys.json to
    check names against."""
    path = signing_keys_path(config_dir)
    present = path.exists()
    names = {entry.name for entry in SigningKeys.load(path).keys} if present else set()
    unknown = []
    for spec in sorted(set(specs)):
        if spec.startswith("plugin:"):
            continue
        if ":" in spec:
            if not all(Path(part).is_file() for part in spec.split(":", 1)):
                unknown.append(spec)
        elif present and spec not in names:
            unknown.append(spec)
    return unknown, present
