"""Output helpers: machine-readable JSON on stdout, human tables and progress on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

# Human output goes to stderr so that ``--json`` on stdout stays a single parseable document.
stderr_console = Console(stderr=True)


def dumps_json(obj: Any) -> str:
    """The tool's stable JSON form: 2-space indent, keys in the order the model gives, UTF-8."""
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def print_json(obj: Any) -> None:
    sys.stdout.write(dumps_json(obj))
    sys.stdout.flush()
