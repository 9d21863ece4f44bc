"""File access where the names or the tree come from someone else, and every file the tool writes.

Names taken from a server, an archive, a layout or a bundle only ever become paths through :func:`inside` (or
:func:`read_regular`, which walks the same way), so no name can point outside the directory it belongs to. Reads
open each component with ``O_NOFOLLOW`` and check the opened descriptor, so a symlink, a FIFO or a device swapped in
is refused rather than followed, waited on or read forever, and at most ``max_bytes + 1`` bytes are read whatever the
file claims to hold. Writes go to a fresh temp file beside the target and are renamed over it, so a failed rewrite
(a full disk) leaves the previous file whole; every OS failure becomes one :class:`FileError` line.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import InputError

_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer that never comes.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class FileError(InputError):
    """A file cannot be read or written (names the path and the OS reason), or is not one we may touch."""


class UnsafePathError(FileError):
    """A path built from untrusted data would leave its root, or names a symlink or a non-regular file."""


def os_reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


def write_error(path: Path, exc: OSError, what: str = "") -> FileError:
    prefix = f"{what} " if what else ""
    return FileError(f"{prefix}{path}: cannot write ({os_reason(exc)})")


def segments(relative: str, where: str) -> list[str]:
    """The components of a relative path that stays where it is put: no absolute path, no empty, ``.``/``..``."""
    parts = relative.split("/")
    if not relative or "\x00" in relative or any(p in ("", ".", "..") for p in parts):
        raise UnsafePathError(f"{where}: {relative!r} is not a plain relative path (empty, '.', '..' or '/' part)")
    return parts


def inside(root: Path, relative: str, *, what: str = "path") -> Path:
    """``root/relative``, refused when it is not plainly relative or resolves (through symlinks) outside ``root``."""
    target = root.joinpath(*segments(relative, f"{root}: {what}"))
    # Lexically clean is not enough: a symlinked directory on the way would still lead elsewhere.
    if not target.resolve().is_relative_to(root.resolve()):
        raise UnsafePathError(f"{root}: {what} {relative!r} resolves outside {root}")
    return target


def _open_at(name: str | Path, flags: int, dir_fd: int | None, path: Path) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            try:
                link = stat.S_ISLNK(os.lstat(path).st_mode)
            except OSError:
                link = False
            kind = "a symbolic link" if link else "not a directory"
            raise UnsafePathError(f"{path}: is {kind}; refused (only plain files and directories are read)") from exc
        raise FileError(f"{path}: cannot read ({os_reason(exc)})") from exc


def open_regular(root: Path, relative: str, *, what: str = "file") -> BinaryIO:
    """Open ``root/relative`` for reading, each component without following symlinks; a regular file only.

    ``FileNotFoundError`` passes through (callers name what is missing); other failures are :class:`FileError`.
    """
    parts = segments(relative, f"{root}: {what}")
    path = root.joinpath(*parts)
    fd = _open_at(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, None, root)  # the root is the user's choice
    try:
        for depth, part in enumerate(parts[:-1], 1):
            child = _open_at(part, _DIR_FLAGS, fd, root.joinpath(*parts[:depth]))
            os.close(fd)
            fd = child
        file_fd = _open_at(parts[-1], _FILE_FLAGS, fd, path)
    finally:
        os.close(fd)
    # The check is on the descriptor we read from, so nothing can be swapped in between.
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise UnsafePathError(f"{path}: not a regular file; refused")
    os.set_blocking(file_fd, True)
    return os.fdopen(file_fd, "rb")


def read_at_most(handle: BinaryIO, max_bytes: int, path: Path) -> bytes:
    """At most ``max_bytes + 1`` bytes: one past the cap tells the caller the file is too large."""
    chunks: list[bytes] = []
    total = 0
    try:
        while total <= max_bytes:
            chunk = handle.read(min(_CHUNK, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise FileError(f"{path}: cannot read ({os_reason(exc)})") from exc
    return b"".join(chunks)


def read_regular(root: Path, relative: str, max_bytes: int, *, what: str = "file") -> bytes:
    """The bytes of ``root/relative`` (see :func:`open_regular`), at most ``max_bytes + 1`` of them."""
    with open_regular(root, relative, what=what) as handle:
        return read_at_most(handle, max_bytes, root / relative)


def read_capped(root: Path, relative: str, max_bytes: int, *, what: str = "file") -> bytes:
    """:func:`read_regular`, refusing a file larger than ``max_bytes`` with a line naming the limit."""
    data = read_regular(root, relative, max_bytes, what=what)
    if len(data) > max_bytes:
        raise FileError(f"{root / relative}: larger than the {max_bytes}-byte limit")
    return data


def walk_plain(root: Path) -> Iterator[str]:
    """Every regular file under ``root`` as a relative POSIX path; a symlink or special file anywhere is refused."""
    for directory, dirs, names in os.walk(root, onerror=_raise):
        base = Path(directory)
        for name in sorted(dirs + names):
            path = base / name
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
                raise UnsafePathError(f"{path}: is {kind}; refused")
            yield path.relative_to(root).as_posix()


def _raise(exc: OSError) -> None:
    raise FileError(f"{exc.filename}: cannot read ({os_reason(exc)})") from exc


@contextmanager
def _new_file(path: Path, mode: int) -> Iterator[BinaryIO]:
    fd = os.open(path, _NEW_FLAGS, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes | str, *, what: str = "", private: bool = False) -> None:
    """Replace ``path`` with ``data`` through a temp file in the same directory and a rename.

    The temp name is fresh and created ``O_EXCL|O_NOFOLLOW``, so nothing planted there is written through; the
    rename replaces a symlink at ``path`` rather than following it. ``private`` files are created 0600.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with _new_file(tmp, 0o600 if private else 0o666) as handle:
            handle.write(raw)
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise write_error(path, exc, what) from exc


def create_private(path: Path, data: bytes, *, what: str = "") -> None:
    """A new 0600 file (a private key): refused if anything, a file or a symlink, is already at ``path``."""
    try:
        with _new_file(path, 0o600) as handle:
            handle.write(data)
    except FileExistsError as exc:
        prefix = f"{what} " if what else ""
        raise FileError(f"{prefix}{path}: already exists; refusing to replace it (remove it first)") from exc
    except OSError as exc:
        raise write_error(path, exc, what) from exc
