"""The trust policy of a Notation config directory: ``notation policy import FILE [--force]`` and ``policy show``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import DEFAULT_LIMITS
from ..errors import ConfigError, Dct2NotationError
from ..files import read_document, write_atomic
from ..jsontext import loads as json_loads
from ..jsontext import read_text_file
from .policy import TrustPolicyDocument, policy_file


def _validated(path: Path, data: bytes | str) -> None:
    try:
        obj = json_loads(data)
    except ValueError as exc:
        raise ConfigError(f"{path}: malformed trust policy, not valid JSON ({exc})") from exc
    TrustPolicyDocument.from_dict(obj, str(path))


def _existing(config_dir: Path) -> Path | None:
    try:
        return policy_file(config_dir)
    except ConfigError:
        return None


def import_policy(source: Path, config_dir: Path, *, force: bool = False) -> Path:
    """Validate ``source`` as an OCI trust policy and write its bytes unchanged into ``config_dir``; the path written.

    The target is the file ``verify`` would read (``trustpolicy.oci.json`` when that one exists, else
    ``trustpolicy.json``), so what was imported is what ``policy show`` and ``verify`` see next. An existing policy
    is kept unless ``force``: Notation asks before overwriting, and a non-interactive tool cannot ask.
    """
    try:
        data = read_document(source, DEFAULT_LIMITS.config_file_bytes)  # regular file only: a FIFO would hang
    except FileNotFoundError as exc:
        raise ConfigError(f"{source}: cannot read trust policy (no such file)") from exc
    _validated(source, data)
    existing = _existing(config_dir)
    if existing is not None and not force:
        raise ConfigError(f"{existing}: a trust policy exists already (give --force to overwrite it)")
    target = existing if existing is not None else config_dir / "trustpolicy.json"
    config_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(target, data, what="trust policy")
    return target


@dataclass(frozen=True)
class ShownPolicy:
    path: Path
    text: str
    error: Dct2NotationError | None  # set when the file is not a valid trust policy: Notation shows it, then warns


def show_policy(config_dir: Path) -> ShownPolicy:
    """The trust policy ``verify`` reads from ``config_dir``, as text, and why it is invalid if it is."""
    path = _existing(config_dir)
    if path is None:
        raise ConfigError(
            f"{config_dir}: no trustpolicy.oci.json or trustpolicy.json (`policy import FILE` writes one)"
        )
    if path.is_symlink():
        raise ConfigError(f"{path}: trust policy is a symlink, which Notation refuses")
    text = read_text_file(path, what="trust policy", max_bytes=DEFAULT_LIMITS.config_file_bytes, error=ConfigError)
    try:
        _validated(path, text)
    except ConfigError as exc:
        return ShownPolicy(path, text, exc)
    return ShownPolicy(path, text, None)
