"""A TOML file of ``[[NAME]]`` tables (signers.toml, waivers.toml), read with the config size cap: one-line errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from .config import DEFAULT_LIMITS
from .errors import ConfigError
from .files import read_document


def load_tables(path: Path, name: str, *, where: str, missing: str) -> Any:
    """The value of ``name`` (normally a list of tables) in ``path``; any other top-level key is refused.

    ``where`` prefixes the reading errors (the file, or the option that named it); ``missing`` is the whole message
    for an absent file."""
    try:
        data = tomllib.loads(read_document(path, DEFAULT_LIMITS.config_file_bytes).decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(missing) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses per nested array/table
        raise ConfigError(f"{where}: not valid TOML: nested too deeply") from None
    unknown = sorted(set(data) - {name})
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown field (entries are [[{name}]] tables)")
    return data.get(name, [])
