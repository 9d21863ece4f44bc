"""The per-shard sqlite (WAL) journal: each job's state, so a rerun resumes and never signs twice.

States: ``pending`` → ``pushing`` (intent recorded BEFORE the push) → ``signed`` | ``reused`` | ``failed``.
A job left in ``pushing`` by a crash is reconciled on resume by listing the subject's signatures for the same
certificate thumbprint, so a SIGKILL between push and journal write never leads to a duplicate.

One journal has one writer (:meth:`Journal.claim`): two ``sign`` processes on one journal would each see every job
``pending`` and both sign it. The claim is an exclusive ``flock`` on ``<journal>.lock``, which the kernel drops when
the holder dies (even by SIGKILL), so a crashed run never blocks its own resume.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..files import write_error
from ..jsontext import loads as json_loads

STATES = ("pending", "pushing", "signed", "reused", "failed")
DONE = frozenset({"signed", "reused"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('pending','pushing','signed','reused','failed')),
    signature TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_HOLDER_BYTES = 4096  # the lock file holds one small JSON object: who writes the journal


class JournalBusyError(InputError):
    """Another process writes this journal: naming it lets the operator find it (or give this run its own)."""


_COLUMNS = {"jobs": ("key", "state", "signature", "attempts", "error"), "meta": ("name", "value")}


@dataclass(frozen=True)
class Entry:
    key: str
    state: str
    signature: str | None
    attempts: int
    error: str | None


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        if not os.path.lexists(path):
            _create(path)
        try:
            # autocommit: every state change is durable on its own, which is what resume relies on.
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            # CREATE IF NOT EXISTS keeps a same-named table of another shape (another tool's database): its
            # first query would fail mid-run, so refuse it here, before a job is signed.
            for table, columns in _COLUMNS.items():
                found = tuple(row[1] for row in self._db.execute(f"PRAGMA table_info({table})"))
                if not set(columns) <= set(found):
                    self._db.close()
                    raise InputError(
                        f"{path}: not a usable journal (table {table} has columns {', '.join(found)}; "
                        f"expected {', '.join(columns)})"
                    )
            # A good header over damaged pages opens fine and fails at some later query, mid-batch: check every
            # page now (quick_check reads each once; a 100,000-job journal takes milliseconds).
            problems = [str(row[0]) for row in self._db.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                self._db.close()
                raise InputError(f"{path}: the journal is damaged ({'; '.join(problems)})")
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{path}: not a usable journal ({exc})") from exc

    @contextmanager
    def _errors(self) -> Iterator[None]:
        # The disk can still fill or fail after the open: one line naming the journal, never a traceback.
        try:
            yield
        except sqlite3.Error as exc:
            raise InputError(f"{self.path}: the journal failed ({exc})") from exc

    _lock_fd: int | None = None

    def claim(self) -> None:
        """Become the journal's only writer, or refuse at once naming the process that is."""
        path = self.path.with_name(self.path.name + ".lock")
        try:
            # No O_TRUNC: the holder's record must survive our open until we own the lock.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise InputError(f"{path}: cannot open the journal lock ({exc.strerror})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(os.pread(fd, _HOLDER_BYTES, 0))
            os.close(fd)
            raise JournalBusyError(
                f"{self.path}: journal is in use by another sign process ({holder}); one journal has one writer: "
                "wait for it to end, or give this run its own --journal (each --shard gets its own)"
            ) from None
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        self._lock_fd = fd

    def close(self) -> None:
        self._db.close()
        if self._lock_fd is not None:
            # Closing drops the flock; the file stays (removing it would race a process that just opened it).
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def migration_id(self) -> str | None:
        """The migration this journal is bound to (None: no batch has run on it yet)."""
        row = self._db.execute("SELECT value FROM meta WHERE name='migration_id'").fetchone()
        return None if row is None else str(row[0])

    def bind_plan(self, migration_id: str) -> None:
        """A journal belongs to one migration: reusing it for another plan would mark foreign jobs done."""
        with self._errors():
            row = self._db.execute("SELECT value FROM meta WHERE name='migration_id'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('migration_id', ?)", (migration_id,))
            elif row[0] != migration_id:
                raise InputError(f"{self.path}: journal belongs to migration {row[0]!r}, not {migration_id!r}")

    def record_tsa_roots(self, pem: str) -> None:
        """Remember the TSA roots this journal's signatures were stamped under, so ``policy --journal`` trusts them.

        A resumed run may use another TSA: the roots of every run are kept (each PEM block once).
        """
        row = self._db.execute("SELECT value FROM meta WHERE name='tsa_roots'").fetchone()
        blocks = _pem_blocks(row[0] if row else "")
        blocks += [b for b in _pem_blocks(pem) if b not in blocks]
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('tsa_roots', ?)", ("".join(blocks),))

    def add(self, keys: Iterable[str]) -> None:
        rows = ((k,) for k in keys)
        with self._errors(), self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO jobs(key, state) VALUES (?, 'pending')", rows)

    def get(self, key: str) -> Entry | None:
        query = "SELECT key, state, signature, attempts, error FROM jobs WHERE key=?"
        with self._errors():
            row = self._db.execute(query, (key,)).fetchone()
        return None if row is None else Entry(*row)

    def entries(self) -> list[Entry]:
        with self._errors():
            rows = self._db.execute("SELECT key, state, signature, attempts, error FROM jobs ORDER BY key").fetchall()
            return [Entry(*r) for r in rows]

    def intent(self, key: str) -> None:
        with self._errors():
            self._db.execute("UPDATE jobs SET state='pushing', attempts=attempts+1, error=NULL WHERE key=?", (key,))

    def done(self, key: str, state: str, signature: str) -> None:
        if state not in DONE:
            raise ValueError(state)
        with self._errors():
            self._db.execute("UPDATE jobs SET state=?, signature=?, error=NULL WHERE key=?", (state, signature, key))

    def fail(self, key: str, error: str) -> None:
        # A failure before the signing step (resolve, listing) is an attempt too: `attempts: 0` on a failed job
        # read as "never tried". One that failed after intent() was already counted there.
        with self._errors():
            self._db.execute(
                "UPDATE jobs SET state='failed', error=?, attempts=attempts + (state != 'pushing') WHERE key=?",
                (error, key),
            )

    def counts(self) -> dict[str, int]:
        with self._errors():
            out = dict.fromkeys(STATES, 0)
            for state, n in self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
                out[state] = n
            return out


def _create(path: Path) -> None:
    """A new journal is built under a temp name and linked into place: never a half-made file at ``path``."""
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    try:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
        finally:
            db.close()
        with contextlib.suppress(FileExistsError):  # another run made it first: use theirs, never replace it
            os.link(tmp, path)
    except sqlite3.Error as exc:
        raise InputError(f"{path}: cannot create the journal ({exc})") from exc
    except OSError as exc:
        raise write_error(path, exc, noun="the journal") from exc
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)


_PEM_END = "-----END CERTIFICATE-----\n"


def _pem_blocks(text: str) -> list[str]:
    return [block.strip() + "\n" + _PEM_END for block in text.split(_PEM_END) if block.strip()]


def read_tsa_roots(path: Path) -> str:
    """The TSA roots a journal recorded (PEM, may be empty), read without creating or changing the file."""
    if not path.is_file():
        raise InputError(f"--journal {path}: no such journal")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            row = db.execute("SELECT value FROM meta WHERE name='tsa_roots'").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise InputError(f"--journal {path}: not a usable journal ({exc})") from exc
    return str(row[0]) if row else ""


def _holder(raw: bytes) -> str:
    """``pid N on host H`` from a lock file's record, which another process wrote (so: untrusted, maybe empty)."""
    try:
        doc = json_loads(raw.decode("utf-8"))
        pid, host = doc["pid"], doc["host"]
    except (ValueError, KeyError, TypeError):
        return "holder not recorded yet"
    if not isinstance(pid, int) or not isinstance(host, str):
        return "holder not recorded yet"
    return f"pid {pid} on host {host[:255]!r}"
