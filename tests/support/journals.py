"""Reading the journal of a batch another process is running (the tests that interrupt, kill or race it)."""

from __future__ import annotations

from pathlib import Path

from dct2notation.migrate.journal import Journal


def journal_counts(journal: Path) -> dict[str, int]:
    """Jobs per status in ``journal``; empty before the batch has made it."""
    if not journal.exists():
        return {}
    book = Journal(journal)
    try:
        return book.counts()
    finally:
        book.close()
