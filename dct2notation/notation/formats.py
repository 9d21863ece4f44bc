"""The two envelope formats Notation signs and verifies, behind one parse/sign/check surface.

COSE (``application/cose``, envelope.py) is what this tool writes by default; JWS (``application/jose+json``,
jws.py) is Notation's default and what a pipeline running plain ``notation sign`` produces. Readers dispatch on
the signature manifest's layer media type; where only the bytes are at hand the first byte tells them apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Literal, cast

from ..config import DEFAULT_LIMITS, Clock, Limits
from ..errors import InputError, SigningKeyError, UsageError
from ..jsontext import loads as json_loads
from ..keys.base import EnvelopeGenerator, SigningKey, algorithm_for, key_spec_of
from ..oci import COSE_MEDIA_TYPE, JWS_MEDIA_TYPE, Descriptor
from .certs import validate_code_signing_chain
from .envelope import (
    DEFAULT_SIGNING_AGENT,
    Envelope,
    EnvelopeError,
    SignedEnvelope,
    Timestamper,
    build_payload,
    parse_envelope,
    parse_payload,
)
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


# The targetArtifact fields a plugin's envelope may carry (notation-go signer.areUnknownAttributesAdded).
_DESCRIPTOR_FIELDS = frozenset(
    {"mediaType", "digest", "size", "urls", "annotations", "data", "platform", "artifactType"}
)


def sign_with_envelope_plugin(
    fmt: SignatureFormat,
    target: Descriptor,
    generator: EnvelopeGenerator,
    *,
    clock: Clock,
    expiry: dt.datetime | None = None,
    user_metadata: Mapping[str, str] | None = None,
    timestamper: Timestamper | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> SignedEnvelope:
    """Have the plugin make the whole envelope, then check it as notation-go's PluginSigner does: the requested
    format, a valid signature, the certificate requirements, and the signed artifact unchanged (annotations may
    only be added to, no unknown fields)."""
    where = f'plugin "{generator.plugin_name}" generate-envelope'
    if timestamper is not None:
        # notation-go timestamps only envelopes it assembles itself (RAW plugins, local keys), never a plugin's.
        raise UsageError(f"{where}: an envelope made by the plugin cannot be timestamped (Notation does not either)")
    media_type = SIGNATURE_FORMATS[fmt]
    payload = build_payload(target, user_metadata)
    now = clock.now().replace(microsecond=0)
    expiry_seconds = None if expiry is None else int((expiry - now).total_seconds())
    if expiry_seconds is not None and expiry_seconds <= 0:
        raise InputError("expiry must be after the signing time")
    raw, annotations = generator.generate_envelope(payload, media_type, expiry_seconds)
    try:
        env = parse_signature_envelope(raw, media_type, limits)
    except InputError as exc:
        raise SigningKeyError(f"{where}: {exc}") from exc
    if not signature_valid(env, limits):
        raise SigningKeyError(f"{where}: the envelope's signature does not verify with its signing certificate")
    signing_time = env.signing_time or env.authentic_signing_time
    assert signing_time is not None  # parse_signature_envelope requires the scheme's time
    validate_code_signing_chain(env.cert_chain, at=signing_time)
    sent, signed = parse_payload(payload), env.target_artifact
    present = dict(signed.annotations or {})
    kept = all(present.get(k) == v for k, v in (sent.annotations or {}).items())
    if (signed.media_type, signed.digest, signed.size) != (sent.media_type, sent.digest, sent.size) or not kept:
        raise SigningKeyError(
            f"{where}: the plugin changed the signed artifact from {sent.to_dict()} to {signed.to_dict()}"
        )
    document = cast(dict[str, object], json_loads(env.payload_raw))
    artifact = cast(dict[str, object], document.get("targetArtifact", {}))
    unknown = sorted(set(document) - {"targetArtifact"}) + sorted(set(artifact) - _DESCRIPTOR_FIELDS)
    if unknown:
        raise SigningKeyError(f"{where}: the plugin added unknown payload fields {', '.join(unknown)}")
    return SignedEnvelope(raw, signing_time, list(env.cert_chain), env.payload_raw, media_type, annotations)


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
    """Sign ``target`` in ``fmt``; a plugin with the envelope contract makes the envelope itself."""
    generator = key.envelope_generator()
    if generator is not None:
        return sign_with_envelope_plugin(
            fmt,
            target,
            generator,
            clock=clock,
            expiry=expiry,
            user_metadata=user_metadata,
            timestamper=timestamper,
        )
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
