"""httpx and its transport, imported without the optional modules a synchronous client never touches (~50 ms).

httpcore imports ``trio`` (when installed) for its async locks, and httpx imports ``click``/``rich``/``pygments``
for its own command-line client. A Notary read uses neither, yet every ``inventory`` process paid for both.
Hiding them during this one import makes those optional imports fail the way they do when the package is absent;
they stay importable for any other module afterwards. A process that already loaded them is left as it is.
"""

from __future__ import annotations

from .._imports import optional_modules_hidden

with optional_modules_hidden("trio", "click"):
    import httpcore  # noqa: F401  # loaded here, not lazily by the first Client, so trio stays hidden
    import httpx

__all__ = ["httpx"]
