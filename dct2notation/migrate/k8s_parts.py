"""The plan and its inventory, carried to the pods past the ConfigMap size limit: gzip, split, content-addressed.

A ConfigMap holds at most 1 MiB (etcd's request limit): a plan of ~1,450 jobs. Each file (plan.json,
inventory.json) is gzipped and cut into parts of at most ``Limits.k8s_part_bytes``; each part is a ConfigMap named
by the sha256 of its bytes, and an index ConfigMap lists, per file, its sha256, size and parts in order. In the pod
(``k8s-run``) every part is checked against its name, the file against its sha256 (so a part edited in the cluster,
or a part of another plan, is refused), and only then written for ``sign``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

from ..config import DEFAULT_LIMITS, Limits
from ..errors import InputError
from ..files import read_document, read_regular, write_atomic

FORMAT = "dct2notation-k8s-parts/1"
FILES = ("plan.json", "inventory.json")
PART_KEY = "part"


def split(
    name: str, files: dict[str, bytes], limits: Limits = DEFAULT_LIMITS
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(index document, part ConfigMaps) for ``files``; the same bytes always give the same names."""
    index: dict[str, Any] = {"format": FORMAT, "files": {}}
    parts: dict[str, dict[str, Any]] = {}
    for filename, raw in files.items():
        packed = gzip.compress(raw, compresslevel=9, mtime=0)
        names = []
        for start in range(0, len(packed), limits.k8s_part_bytes):
            chunk = packed[start : start + limits.k8s_part_bytes]
            digest = hashlib.sha256(chunk).hexdigest()
            names.append(digest)
            parts[digest] = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": part_name(name, digest), "labels": {"app.kubernetes.io/part-of": name}},
                "immutable": True,
                "binaryData": {PART_KEY: base64.b64encode(chunk).decode("ascii")},
            }
        index["files"][filename] = {"sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw), "parts": names}
    return index, list(parts.values())


def part_name(name: str, digest: str) -> str:
    # 63 characters at most (a DNS label): the name's 30 and 24 hex digits of the sha256 (96 bits).
    return f"{name[:30]}-part-{digest[:24]}"


def assemble(index_path: Path, parts_dir: Path, out_dir: Path, limits: Limits = DEFAULT_LIMITS) -> None:
    """Check and join the parts under ``parts_dir`` (``<sha256>`` files) into ``out_dir``'s plan and inventory."""
    try:
        index = json.loads(read_document(index_path, limits.config_file_bytes))
    except (OSError, ValueError) as exc:
        raise InputError(f"{index_path}: unreadable parts index ({exc})") from exc
    entries = index.get("files") if isinstance(index, dict) and index.get("format") == FORMAT else None
    if not isinstance(entries, dict) or set(entries) != set(FILES):
        raise InputError(f"{index_path}: not a {FORMAT} index naming {' and '.join(FILES)}")
    for filename in FILES:
        entry = entries[filename]
        where = f"{index_path}: {filename}"
        names = entry.get("parts") if isinstance(entry, dict) else None
        want, size = (entry.get("sha256"), entry.get("size")) if isinstance(entry, dict) else (None, None)
        if not isinstance(names, list) or not isinstance(want, str) or not isinstance(size, int):
            raise InputError(f"{where}: expected sha256, size and parts")
        if not 0 <= size <= limits.document_bytes:
            raise InputError(f"{where}: size {size} exceeds the document limit ({limits.document_bytes})")
        packed = bytearray()
        for digest in names:
            if not isinstance(digest, str) or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
                raise InputError(f"{where}: part {str(digest)[:70]!r} is not a sha256")
            try:
                chunk = read_regular(parts_dir, digest, limits.k8s_part_bytes)
            except FileNotFoundError as exc:
                raise InputError(f"{where}: part {digest} is not mounted under {parts_dir}") from exc
            if hashlib.sha256(chunk).hexdigest() != digest:
                raise InputError(f"{where}: part {digest} does not match its name (edited in the cluster?)")
            packed += chunk
        raw = _gunzip(bytes(packed), size, where)
        if len(raw) != size or hashlib.sha256(raw).hexdigest() != want:
            raise InputError(f"{where}: joined parts do not match sha256 {want}")
        write_atomic(out_dir / filename, raw, what=f"--work {out_dir}")


def _gunzip(packed: bytes, size: int, where: str) -> bytes:
    # Bounded: a part set that inflates past the size the index states is refused, not expanded into memory.
    inflater = zlib.decompressobj(wbits=31)
    try:
        raw = inflater.decompress(packed, size + 1)
    except zlib.error as exc:
        raise InputError(f"{where}: parts are not gzip ({exc})") from exc
    if len(raw) > size or inflater.unconsumed_tail:
        raise InputError(f"{where}: parts inflate past the stated size {size}")
    return raw
