"""Output helpers: machine-readable JSON on stdout, human tables and progress on stderr."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape

from .safetext import printable

# Human output goes to stderr so that ``--json`` on stdout stays a single parseable document.
stderr_console = Console(stderr=True)


def shown(text: str) -> str:
    """Remote text (a tag, a name, a server's message) for a rich table cell or markup string: control characters
    written as escapes (``safetext.printable``), and ``[`` escaped so the text cannot open markup of its own
    (a hostile tag ``[link=https://…]`` would otherwise become a hyperlink)."""
    return escape(printable(text))


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders the numbers inside names by value: ``1.0.2`` before ``1.0.10``, ``v9`` before ``v10``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(text) if part)


SHORT_DIGEST = 12  # hex digits, as docker shortens image IDs; --json and the files carry the full digest


def short_digest(digest: str | None) -> str:
    """``sha256:1a2b…`` as its first 12 hex digits, for tables (``-`` for none)."""
    return "-" if not digest else digest.partition(":")[2][:SHORT_DIGEST] or digest[:SHORT_DIGEST]


def dumps_json(obj: Any) -> str:
    """The tool's stable JSON form: 2-space indent, keys in the order the model gives, UTF-8."""
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def print_json(obj: Any) -> None:
    sys.stdout.write(dumps_json(obj))
    sys.stdout.flush()


@contextlib.contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[str], None]]:
    """A transient bar on stderr advanced once per item (thread-safe: rich locks its tasks); nothing is drawn when
    stderr is not a terminal, so logs and captured stderr keep only the lines that matter."""
    if not stderr_console.is_terminal or total < 2:
        yield lambda _item: None
        return
    from rich.progress import MofNCompleteColumn, Progress

    with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=stderr_console, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda _item: bar.advance(task)
