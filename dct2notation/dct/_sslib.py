"""securesystemslib's key and signature types, imported without its optional AWS signer's boto3 (~0.15 s).

We verify with local public keys only; boto3 stays importable for any other module that needs it later.
"""

from __future__ import annotations

import sys

_blocked = [name for name in ("boto3", "botocore") if name not in sys.modules]
for _name in _blocked:
    sys.modules[_name] = None  # type: ignore[assignment]
try:
    from securesystemslib.signer import Signature, SSlibKey  # type: ignore[attr-defined]  # noqa: E402
finally:
    for _name in _blocked:
        del sys.modules[_name]

__all__ = ["SSlibKey", "Signature"]
