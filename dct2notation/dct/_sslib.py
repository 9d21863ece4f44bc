"""securesystemslib's key and signature types, imported without its optional AWS signer's boto3 (~0.15 s).

We verify with local public keys only; boto3 stays importable for any other module that needs it later.
"""

from __future__ import annotations

from .._imports import optional_modules_hidden

with optional_modules_hidden("boto3", "botocore"):
    from securesystemslib.signer import Signature, SSlibKey  # type: ignore[attr-defined]

__all__ = ["SSlibKey", "Signature"]
