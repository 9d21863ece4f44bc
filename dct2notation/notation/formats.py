"""The two envelope formats Notation signs and verifies, behind one parse/sign/check surface.

COSE (``application/cose``, envelope.py) is what this tool writes by default; JWS (``application/jose+json``,
jws.py) is Notation's default and what a pipeline running plain ``notation sign`` produces. Readers dispatch on
the signature manifest's layer media type; where only the bytes are at hand the first byte tells them apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Literal

from ..config import DEFAULT_LIMITS, Clock, Limits
from ..errors import UsageError
from ..keys.base import SigningKey, algorithm_for, key_spec_of
from ..oci import COSE_MEDIA_TYPE, JWS_MEDIA_TYPE, Descriptor
from .envelope import DEFAULT_SIGNING_AGENT, Envelope, EnvelopeError, SignedEnvelope, Timestamper, parse_envelope
from .envelope import sign_envelope as sign_cose_envelope
from .jws import is_jws, jws_signature_valid, parse_jws_envelope, sign_jws_envelope

SignatureFormat = Literal["cose", "jws"]
SIGNATURE_FORMATS: dict[str, str] = {"cose": COSE_MEDIA_TYPE, "jws": JWS_MEDIA_TYPE}


def signature_format(value: str) -> SignatureFormat:
    if value == "cose":
        return "cose"
    if value == "jws":
        return "jws"
    raise UsageError(f"--signature-format: {value!r} is not one of cose, jws")


def parse_signature_envelope(raw: bytes, media_type: str | None = None, limits: Limits = DEFAULT_LIMITS) -> Envelope:
    """Parse an envelope of either format; ``media_type`` (the manifest layer's) must match the bytes when given."""
    if media_type is None:
        media_type = JWS_MEDIA_TYPE if is_jws(raw) else COSE_MEDIA_TYPE
    if media_type == JWS_MEDIA_TYPE:
        return parse_jws_envelope(raw, limits)
    if media_type == COSE_MEDIA_TYPE:
        return parse_envelope(raw, limits)
    raise EnvelopeError(f"envelope media type {media_type!r} is not application/cose or application/jose+json")


def signature_valid(env: Envelope, limits: Limits = DEFAULT_LIMITS) -> bool:
    """The envelope's signature verifies under its leaf key with the alg that key dictates (JWS: by joserfc)."""
    if env.media_type != JWS_MEDIA_TYPE:
        return env.signature_valid()
    leaf_spec = key_spec_of(env.cert_chain[0].public_key(), where="signing certificate")
    return algorithm_for(leaf_spec) == env.algorithm and jws_signature_valid(env, limits)


def sign_in_format(
    fmt: SignatureFormat,
    target: Descriptor,
    key: SigningKey,
    *,
    clock: Clock,
    expiry: dt.datetime | None = None,
    user_metadata: Mapping[str, str] | None = None,
    timestamper: Timestamper | None = None,
    signing_agent: str = DEFAULT_SIGNING_AGENT,
) -> SignedEnvelope:
    sign = sign_jws_envelope if fmt == "jws" else sign_cose_envelope
    return sign(
        target,
        key,
        clock=clock,
        expiry=expiry,
        user_metadata=user_metadata,
        timestamper=timestamper,
        signing_agent=signing_agent,
    )
