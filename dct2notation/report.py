"""Output helpers: machine-readable JSON on stdout, human tables and progress on stderr."""

from __future__ import annotations

import json
import sys
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


def dumps_json(obj: Any) -> str:
    """The tool's stable JSON form: 2-space indent, keys in the order the model gives, UTF-8."""
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def print_json(obj: Any) -> None:
    sys.stdout.write(dumps_json(obj))
    sys.stdout.flush()
