"""Reading JSON from other tools and from the network: every refusal is a ``ValueError``."""

from __future__ import annotations

import json
from typing import Any


def loads(data: str | bytes) -> Any:
    """``json.loads``, except that input nested too deeply is a ``ValueError`` like any other malformed JSON.

    The decoder recurses per nested array/object and raises ``RecursionError`` past the interpreter's limit (a few
    thousand ``[``); callers name one exception for "not valid JSON" instead of two at every site.
    """
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise ValueError(str(exc)) from None
