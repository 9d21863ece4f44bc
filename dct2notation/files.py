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
import re
import shutil
import stat
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from .errors import InputError

_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer that never comes.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_SYMLINK = "is a symbolic link; refused (only plain files and directories are read)"
_SPECIAL = "is not a regular file; refused"
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class FileError(InputError):
    """A file cannot be read or written (names the path and the OS reason), or is not one we may touch."""


class UnsafePathError(FileError):
    """A path built from untrusted data would leave its root, or names a symlink or a non-regular file."""


def os_reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


def os_failure(exc: OSError) -> str:
    """``PATH: OS reason`` for any OSError, including ``shutil.Error``'s list of per-file failures."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        _src, dst, why = exc.args[0][0]
        more = len(exc.args[0]) - 1
        # copytree keeps only str(error): "[Errno 28] No space left on device: 'src' -> 'dst'"; keep the reason.
        reason = re.match(r"(?:\[Errno \d+\] )?([^:]*)", str(why))
        return f"{dst}: {reason.group(1) if reason else why}" + (f" (and {more} more)" if more else "")
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{os_reason(exc)}"


def write_error(path: Path, exc: OSError, what: str = "", noun: str = "") -> FileError:
    """``[WHAT ]PATH: cannot write[ NOUN] (OS reason)``: WHAT is the option that named the file."""
    prefix = f"{what} " if what else ""
    object_ = f" {noun}" if noun else ""
    return FileError(f"{prefix}{path}: cannot write{object_} ({os_reason(exc)})")


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
            raise UnsafePathError(f"{path}: {_SYMLINK if link else 'is not a directory; refused'}") from exc
        raise FileError(f"{path}: cannot read ({os_reason(exc)})") from exc


def _walk_dirs(root: Path, parts: list[str], *, create: bool = False) -> int:
    """A descriptor of ``root/parts…``, each component opened without following symlinks (made if ``create``)."""
    fd = _open_at(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, None, root)  # the root is the user's choice
    try:
        for depth, part in enumerate(parts, 1):
            where = root.joinpath(*parts[:depth])
            if create:
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise write_error(where, exc) from exc
            child = _open_at(part, _DIR_FLAGS, fd, where)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(root: Path, relative: str, *, what: str = "file") -> BinaryIO:
    """Open ``root/relative`` for reading, each component without following symlinks; a regular file only.

    ``FileNotFoundError`` passes through (callers name what is missing); other failures are :class:`FileError`.
    """
    parts = segments(relative, f"{root}: {what}")
    path = root.joinpath(*parts)
    fd = _walk_dirs(root, parts[:-1])
    try:
        file_fd = _open_at(parts[-1], _FILE_FLAGS, fd, path)
    finally:
        os.close(fd)
    # The check is on the descriptor we read from, so nothing can be swapped in between.
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise UnsafePathError(f"{path}: {_SPECIAL}")
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


def read_document(path: Path, max_bytes: int) -> bytes:
    """A file the user named (symlinks followed: the path is theirs), regular only, at most ``max_bytes + 1`` bytes.

    A FIFO or device given as a plan or an inventory would hang or never end; ``FileNotFoundError`` passes
    through, every other failure is a :class:`FileError` naming the path.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise FileError(f"{path}: cannot read ({os_reason(exc)})") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePathError(f"{path}: {_SPECIAL}")
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as handle:
        data = read_at_most(handle, max_bytes, path)
    if len(data) > max_bytes:
        raise FileError(f"{path}: larger than the {max_bytes}-byte limit")
    return data


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
                raise UnsafePathError(f"{path}: {_SYMLINK if stat.S_ISLNK(mode) else _SPECIAL}")
            yield path.relative_to(root).as_posix()


def _raise(exc: OSError) -> None:
    raise FileError(f"{exc.filename}: cannot read ({os_reason(exc)})") from exc


def write_beneath(
    root: Path,
    relative: str,
    data: bytes | str,
    *,
    what: str = "",
    noun: str = "",
    private: bool = False,
    mode: int | None = None,
) -> None:
    """Replace ``root/relative`` with ``data`` through a temp file in the same directory and a rename.

    Directories below ``root`` are made as needed and never followed through a symlink (a layout whose
    ``blobs/sha256`` is a symlink is not written through); the temp name is fresh and created
    ``O_EXCL|O_NOFOLLOW``; the rename replaces a symlink at the target rather than following it, and a failure
    (a full disk) leaves the previous file whole. ``private`` files are created 0600; ``mode`` (the replaced
    file's) is kept when given.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    parts = segments(relative, f"{root}: {what or 'file'}")
    path = root.joinpath(*parts)
    tmp = f".{parts[-1]}.{os.urandom(6).hex()}.tmp"
    try:
        dir_fd = _walk_dirs(root, parts[:-1], create=True)
    except FileNotFoundError as exc:
        raise write_error(path, exc, what, noun) from exc
    try:
        fd = os.open(tmp, _NEW_FLAGS, 0o600 if private else 0o666, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
                if mode is not None:
                    os.fchmod(handle.fileno(), mode)
            os.replace(tmp, parts[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
    except OSError as exc:
        raise write_error(path, exc, what, noun) from exc
    finally:
        os.close(dir_fd)


def write_atomic(path: Path, data: bytes | str, *, what: str = "", noun: str = "", private: bool = False) -> None:
    """:func:`write_beneath` for a path the user named: its directory, and a symlink there, are theirs to choose.

    A symlink to a file is kept and the file it names replaced; a FIFO or a device (``/dev/null``,
    ``/dev/stdout``) is written into, never renamed over (as root that would replace the device node itself).
    """
    try:
        status: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        status = None
    except OSError as exc:
        raise write_error(path, exc, what, noun) from exc
    if status is not None and not stat.S_ISREG(status.st_mode):
        if stat.S_ISDIR(status.st_mode):
            raise write_error(path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)), what, noun)
        _write_into(path, data.encode("utf-8") if isinstance(data, str) else data, what, noun)
        return
    target = Path(os.path.realpath(path)) if status is not None else path
    # A rewrite keeps the file's mode: a plan the user made 0600 does not become world-readable.
    kept = None if status is None or private else stat.S_IMODE(status.st_mode)
    write_beneath(target.parent, target.name, data, what=what, noun=noun, private=private, mode=kept)


def _write_into(path: Path, raw: bytes, what: str, noun: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
    except OSError as exc:
        raise write_error(path, exc, what, noun) from exc


def remove_beneath(root: Path, relative: str) -> None:
    """Delete ``root/relative`` if present, never through a symlinked directory (it would delete elsewhere)."""
    parts = segments(relative, f"{root}: file")
    try:
        dir_fd = _walk_dirs(root, parts[:-1])
    except FileNotFoundError:
        return
    try:
        os.unlink(parts[-1], dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise FileError(f"{root.joinpath(*parts)}: cannot remove ({os_reason(exc)})") from exc
    finally:
        os.close(dir_fd)


def remove_regular(root: Path, relative: str, *, what: str = "file") -> Path:
    """Delete the regular file ``root/relative`` the user named: no component is followed through a symlink, and a
    symlink, directory or device at the name is refused rather than removed (it is not a file of ours to delete)."""
    parts = segments(relative, f"{root}: {what}")
    path = root.joinpath(*parts)
    try:
        dir_fd = _walk_dirs(root, parts[:-1])
    except FileNotFoundError as exc:
        raise FileError(f"{path}: no such {what}") from exc
    try:
        mode = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafePathError(f"{path}: {_SYMLINK if stat.S_ISLNK(mode) else _SPECIAL}")
        os.unlink(parts[-1], dir_fd=dir_fd)
    except FileNotFoundError as exc:
        raise FileError(f"{path}: no such {what}") from exc
    except OSError as exc:
        raise FileError(f"{path}: cannot remove ({os_reason(exc)})") from exc
    finally:
        os.close(dir_fd)
    return path


def create_private(path: Path, data: bytes, *, what: str = "") -> None:
    """A new 0600 file (a private key): refused if anything, a file or a symlink, is already at ``path``."""
    try:
        fd = os.open(path, _NEW_FLAGS, 0o600)
    except FileExistsError as exc:
        prefix = f"{what} " if what else ""
        raise FileError(f"{prefix}{path}: already exists; refusing to replace it (remove it first)") from exc
    except OSError as exc:
        raise write_error(path, exc, what) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except BaseException as exc:
        path.unlink(missing_ok=True)  # ours: created O_EXCL just above
        if isinstance(exc, OSError):
            raise write_error(path, exc, what) from exc
        raise
