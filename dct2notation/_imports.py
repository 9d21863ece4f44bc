"""Import a library without the optional modules it would pull in for features we never use."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def optional_modules_hidden(*names: str) -> Iterator[None]:
    """Make ``import NAME`` fail inside the block as it does when NAME is not installed.

    Libraries guard their optional imports with ``try: import x / except ImportError``; hiding ``x`` during their
    import skips its cost. A module already loaded is left alone, and each stays importable after the block.
    """
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "known absent" marker
    try:
        yield
    finally:
        for name in hidden:
            del sys.modules[name]
