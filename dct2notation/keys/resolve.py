"""One string names a signing key: a ``signingkeys.json`` name, ``key.pem:chain.pem``, or ``plugin:NAME:KEYID``."""

from __future__ import annotations

from pathlib import Path

from ..config import DEFAULT_LIMITS, Limits
from ..errors import UsageError
from .base import SigningKey
from .local import load_local_key
from .plugin import PluginKey
from .signingkeys import KeyEntry, SigningKeys, signing_keys_path


def key_from_entry(entry: KeyEntry, config_dir: Path, limits: Limits = DEFAULT_LIMITS) -> SigningKey:
    if entry.is_plugin:
        assert entry.plugin_name is not None and entry.id is not None
        return PluginKey(
            entry.name,
            plugin_name=entry.plugin_name,
            key_id=entry.id,
            config_dir=config_dir,
            plugin_config=entry.plugin_config,
            limits=limits,
        )
    assert entry.key_path is not None and entry.cert_path is not None
    return load_local_key(Path(entry.key_path), Path(entry.cert_path), name=entry.name)


def plugin_signing_key(
    plugin_name: str, key_id: str, plugin_config: dict[str, str], config_dir: Path, limits: Limits = DEFAULT_LIMITS
) -> SigningKey:
    """Notation's ``--plugin NAME --id KEYID [--plugin-config k=v]``: the key ``plugin:NAME:KEYID`` with that config."""
    if not plugin_name or not key_id:
        raise UsageError("--plugin NAME and --id KEYID go together")
    return PluginKey(
        f"plugin:{plugin_name}:{key_id}",
        plugin_name=plugin_name,
        key_id=key_id,
        config_dir=config_dir,
        plugin_config=plugin_config,
        limits=limits,
    )


def load_signing_key(spec: str | None, config_dir: Path, limits: Limits = DEFAULT_LIMITS) -> SigningKey:
    """Resolve ``spec``; ``None`` or ``""`` means the default key of ``signingkeys.json``."""
    if spec and spec.startswith("plugin:"):
        parts = spec.split(":", 2)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise UsageError(f"key {spec!r}: plugin keys are written plugin:NAME:KEYID")
        return PluginKey(spec, plugin_name=parts[1], key_id=parts[2], config_dir=config_dir, limits=limits)
    if spec and ":" in spec:
        key_file, _, chain_file = spec.partition(":")
        if not key_file or not chain_file:
            raise UsageError(f"key {spec!r}: file keys are written KEY.pem:CHAIN.pem")
        return load_local_key(Path(key_file), Path(chain_file))
    keys = SigningKeys.load(signing_keys_path(config_dir))
    return key_from_entry(keys.get(spec), config_dir, limits)
