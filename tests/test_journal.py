"""The sqlite WAL journal: states, durability across connections, binding to one migration, bad files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dct2notation.errors import InputError
from dct2notation.migrate.journal import Entry, Journal


def test_states_and_attempts_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    book = Journal(path)
    book.bind_plan("m")
    book.add(["a", "b", "c"])
    book.intent("a")
    book.done("a", "signed", "sha256:aa")
    book.intent("b")
    book.fail("b", "registry said 500")
    book.intent("b")
    book.add(["a"])  # adding again keeps the recorded state
    book.close()
    # No explicit commit: every change must already be on disk for a crashed process's successor.
    again = Journal(path)
    assert again.entries() == [
        Entry("a", "signed", "sha256:aa", 1, None),
        Entry("b", "pushing", None, 2, None),
        Entry("c", "pending", None, 0, None),
    ]
    assert again.counts() == {"pending": 1, "pushing": 1, "signed": 1, "reused": 0, "failed": 0}
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)
    again.close()


def test_done_accepts_only_final_states(tmp_path: Path) -> None:
    book = Journal(tmp_path / "j.sqlite")
    book.add(["a"])
    with pytest.raises(ValueError):
        book.done("a", "failed", "sha256:aa")
    book.done("a", "reused", "sha256:bb")
    assert book.get("a") == Entry("a", "reused", "sha256:bb", 0, None)
    assert book.get("zz") is None
    book.close()


def test_journal_is_bound_to_one_migration(tmp_path: Path) -> None:
    book = Journal(tmp_path / "j.sqlite")
    book.bind_plan("m1")
    book.bind_plan("m1")
    with pytest.raises(InputError) as caught:
        book.bind_plan("m2")
    assert caught.value.message == f"{tmp_path / 'j.sqlite'}: journal belongs to migration 'm1', not 'm2'"
    book.close()


def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.sqlite").write_bytes(b"this is not sqlite at all, just text" * 10)
    with pytest.raises(InputError) as caught:
        Journal(tmp_path / "x.sqlite")
    assert caught.value.message.startswith(f"{tmp_path / 'x.sqlite'}: not a usable journal (")
