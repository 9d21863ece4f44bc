"""JWS envelopes (``application/jose+json``) as Notation writes and reads them (signature-envelope-jws.md).

Notation's default envelope is a JWS JSON serialization (flattened): ``{"payload","protected","header","signature"}``
with the Notary claims in the protected header (``crit`` listing the ones a verifier must understand) and the
certificate chain (``x5c``), signing agent and RFC 3161 countersignature in the unprotected ``header``. The
signature check is joserfc's (``deserialize_json`` with the leaf key and only the key's algorithm allowed), which
also applies RFC 7515's header rules (``crit`` names it knows, ``crit`` protected). Parsing decodes as strictly as
Notation's Go decoder (unpadded base64url, standard base64 for ``x5c``) and checks the Notary rules (which claims,
which must be critical, times, scheme) — the same ones ``envelope.py`` applies to COSE.

Signing assembles the JSON itself because the key may be a KMS plugin that only returns raw signature bytes; the
bytes are laid out as notation-core-go lays them out (sorted protected header and payload keys, Go's escaping), so
our JWS and Notation's differ only in the signature value.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc import jws as joserfc_jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import ECKey, RSAKey
from joserfc.registry import HeaderParameter

from ..config import DEFAULT_LIMITS, Clock, Limits, format_rfc3339
from ..jsontext import loads as json_loads
from ..jsontext import loads_capped
from ..keys.base import ALGORITHMS, Algorithm, SigningKey
from ..oci import JWS_MEDIA_TYPE, NOTATION_PAYLOAD, Descriptor, go_json
from .envelope import (
    AUTHENTIC_SIGNING_TIME,
    EXPIRY,
    SCHEME_SIGNING_AUTHORITY,
    SCHEME_X509,
    SIGNING_AGENT,
    SIGNING_SCHEME,
    SIGNING_TIME,
    TIMESTAMP_SIGNATURE,
    Envelope,
    EnvelopeError,
    SignedEnvelope,
    Timestamper,
    build_payload,
    check_critical,
    header_certificate,
    notary_envelope,
    prepare_signing,
    read_times,
)

X5C = "x5c"
ALGORITHMS_BY_JWS_NAME: dict[str, Algorithm] = {a.name: a for a in ALGORITHMS.values()}

# The Notary claims joserfc must know: a name in ``crit`` that the registry lacks is refused (RFC 7515 4.1.11),
# which is how an unknown critical claim fails closed, as in notation-core-go.
_NOTARY_HEADERS = {
    SIGNING_SCHEME: HeaderParameter("Notary signing scheme", "str", True),
    SIGNING_TIME: HeaderParameter("Notary signing time", "str"),
    AUTHENTIC_SIGNING_TIME: HeaderParameter("Notary authentic signing time", "str"),
    EXPIRY: HeaderParameter("Notary signature expiry", "str"),
    SIGNING_AGENT: HeaderParameter("Notary signing agent", "str"),
    TIMESTAMP_SIGNATURE: HeaderParameter("RFC 3161 countersignature", "str"),
}


def _registry(algorithm: str | None, limits: Limits) -> joserfc_jws.JWSRegistry:
    # Extended (non-critical) claims are allowed in the protected header, as Notation allows them.
    registry = joserfc_jws.JWSRegistry(
        header_registry=_NOTARY_HEADERS,
        algorithms=[algorithm] if algorithm else [a.name for a in ALGORITHMS.values()],
        strict_check_header=False,
    )
    registry.max_header_length = limits.envelope_bytes
    registry.max_payload_length = limits.envelope_bytes
    return registry


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sorted(obj: Any) -> Any:
    # Go marshals a map[string]interface{} with sorted keys: notation-core-go round-trips the payload through one.
    if isinstance(obj, dict):
        return {k: _sorted(obj[k]) for k in sorted(obj)}
    return obj


def sign_jws_envelope(
    target: Descriptor,
    key: SigningKey,
    *,
    clock: Clock,
    expiry: dt.datetime | None = None,
    user_metadata: Mapping[str, str] | None = None,
    timestamper: Timestamper | None = None,
    signing_agent: str | None = None,
) -> SignedEnvelope:
    """Sign ``target`` as a JWS envelope; the same checks as ``sign_envelope`` (chain, key spec, expiry)."""
    prepared = prepare_signing(target, key, clock=clock, expiry=expiry, signing_agent=signing_agent)
    payload = go_json(_sorted(json_loads(build_payload(target, user_metadata))))
    crit = [SIGNING_SCHEME] + ([EXPIRY] if expiry is not None else [])
    header: dict[str, Any] = {
        "alg": prepared.algorithm.name,
        "crit": crit,
        "cty": NOTATION_PAYLOAD,
        SIGNING_SCHEME: SCHEME_X509,
        SIGNING_TIME: format_rfc3339(prepared.signing_time),
    }
    if expiry is not None:
        header[EXPIRY] = format_rfc3339(expiry)
    protected = _b64url(go_json(_sorted(header)))
    encoded_payload = _b64url(payload)
    signature = key.sign(f"{protected}.{encoded_payload}".encode())
    unprotected: dict[str, Any] = {}
    if timestamper is not None:
        token = timestamper.timestamp(
            signature, hash_algorithm=prepared.algorithm.hash_name, signing_chain=list(prepared.chain)
        )
        unprotected[TIMESTAMP_SIGNATURE] = base64.b64encode(token).decode()
    unprotected[X5C] = [base64.b64encode(der).decode() for der in prepared.chain_der]
    unprotected[SIGNING_AGENT] = prepared.agent
    raw = go_json(
        {"payload": encoded_payload, "protected": protected, "header": unprotected, "signature": _b64url(signature)}
    )
    return SignedEnvelope(
        raw=raw,
        signing_time=prepared.signing_time,
        cert_chain=list(prepared.chain),
        payload=payload,
        media_type=JWS_MEDIA_TYPE,
    )


# --- parsing --------------------------------------------------------------------------------------------------------


def _time(protected: Mapping[str, Any], label: str) -> dt.datetime | None:
    if label not in protected:
        return None
    value = protected[label]
    if not isinstance(value, str):
        raise EnvelopeError(f"protected header {label}: must be an RFC 3339 time string")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise EnvelopeError(f"protected header {label}: {value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None or "T" not in text.upper():
        raise EnvelopeError(f"protected header {label}: {value!r} is not an RFC 3339 time (date, time and offset)")
    return parsed.astimezone(dt.UTC)


def _std_b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise EnvelopeError(f"{what}: must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError(f"{what}: not base64 ({exc})") from exc


def _public_jwk(cert: x509.Certificate) -> ECKey | RSAKey:
    public = cert.public_key()
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return ECKey.import_key(pem) if isinstance(public, ec.EllipticCurvePublicKey) else RSAKey.import_key(pem)


def _b64url_decode(value: str, what: str) -> bytes:
    # Go's base64.RawURLEncoding, which Notation decodes with: URL alphabet, no padding.
    if not value or not all(c.isascii() and (c.isalnum() or c in "-_") for c in value):
        raise EnvelopeError(f"{what}: not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError(f"{what}: not base64url ({exc})") from exc


def jws_signature_valid(env: Envelope, limits: Limits = DEFAULT_LIMITS) -> bool:
    """joserfc's verification of the JWS under the leaf key, allowing only the alg that key dictates.

    joserfc also applies RFC 7515's header rules here: every ``crit`` name must be one it was told about (the
    Notary claims), so an unknown critical claim fails closed; ``crit`` in the unprotected header is refused."""
    try:
        joserfc_jws.deserialize_json(
            json_loads(env.raw), _public_jwk(env.cert_chain[0]), registry=_registry(env.algorithm.name, limits)
        )
    except BadSignatureError:
        return False
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise EnvelopeError(f"JWS envelope: {exc}") from exc
    return True


def parse_jws_envelope(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> Envelope:
    """Decode and structurally validate a JWS envelope (the signature is checked by ``Envelope.signature_valid``)."""
    obj = loads_capped(raw, where="JWS envelope", max_bytes=limits.envelope_bytes, error=EnvelopeError)
    if not isinstance(obj, dict):
        raise EnvelopeError("JWS envelope: must be a JSON object")
    for name in ("payload", "protected", "signature"):
        if not isinstance(obj.get(name), str) or not obj[name]:
            raise EnvelopeError(f"JWS envelope: {name} must be a non-empty string")
    if "signatures" in obj:
        raise EnvelopeError("JWS envelope: general serialization (signatures) is not a Notation envelope")
    unprotected = obj.get("header")
    if not isinstance(unprotected, dict):
        raise EnvelopeError("JWS envelope: header (the unprotected header) must be an object")
    try:
        protected = json_loads(_b64url_decode(obj["protected"], "JWS envelope protected"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"protected header: not JSON ({exc})") from exc
    if not isinstance(protected, dict):
        raise EnvelopeError("protected header: must be a JSON object")
    overlap = sorted(set(protected) & set(unprotected))
    if overlap:
        raise EnvelopeError(f"JWS envelope: {', '.join(overlap)} in both the protected and unprotected header")
    if "b64" in protected:
        raise EnvelopeError("protected header b64: unencoded payloads (RFC 7797) are not Notation envelopes")

    alg = protected.get("alg")
    algorithm = ALGORITHMS_BY_JWS_NAME.get(alg) if isinstance(alg, str) else None
    if algorithm is None:
        raise EnvelopeError(f"protected header alg: {alg!r} is not one of PS256/384/512, ES256/384/512")
    if protected.get("cty") != NOTATION_PAYLOAD:
        raise EnvelopeError(f"protected header cty: must be {NOTATION_PAYLOAD!r}")
    scheme = protected.get(SIGNING_SCHEME)
    if scheme not in (SCHEME_X509, SCHEME_SIGNING_AUTHORITY):
        raise EnvelopeError(f"protected header {SIGNING_SCHEME}: unsupported value {scheme!r}")
    crit = protected.get("crit")
    if not isinstance(crit, list) or not crit or not all(isinstance(c, str) for c in crit):
        raise EnvelopeError("protected header crit: must be a non-empty array of names")
    check_critical(protected, crit, scheme)
    # notation-core-go validateProtectedHeaders: each scheme has exactly its own time claim.
    if scheme == SCHEME_X509 and AUTHENTIC_SIGNING_TIME in protected:
        raise EnvelopeError(f"protected header {AUTHENTIC_SIGNING_TIME}: must not be present for {SCHEME_X509}")
    if scheme == SCHEME_SIGNING_AUTHORITY and SIGNING_TIME in protected:
        raise EnvelopeError(f"protected header {SIGNING_TIME}: must not be present for {SCHEME_SIGNING_AUTHORITY}")

    times = read_times(scheme, lambda label: _time(protected, label))

    items = unprotected.get(X5C)
    if not isinstance(items, list) or not items:
        raise EnvelopeError("unprotected header x5c: certificate chain is not present (must be an array)")
    chain = [
        header_certificate(_std_b64(item, f"unprotected header x5c[{index}]"), f"unprotected header x5c[{index}]")
        for index, item in enumerate(items)
    ]
    token = None
    if TIMESTAMP_SIGNATURE in unprotected:
        token = _std_b64(unprotected[TIMESTAMP_SIGNATURE], f"unprotected header {TIMESTAMP_SIGNATURE}")
    return notary_envelope(
        raw,
        protected_raw=obj["protected"].encode(),
        protected=protected,
        unprotected=unprotected,
        payload=_b64url_decode(obj["payload"], "JWS envelope payload"),
        signature=_b64url_decode(obj["signature"], "JWS envelope signature"),
        algorithm=algorithm,
        scheme=scheme,
        times=times,
        chain=chain,
        token=token,
        format_labels=("alg", "crit", "cty"),
        media_type=JWS_MEDIA_TYPE,
        signing_input=f"{obj['protected']}.{obj['payload']}".encode(),
    )


def is_jws(raw: bytes) -> bool:
    """A JWS JSON envelope starts with ``{``; a COSE_Sign1_Tagged one with the tag byte 0xd2."""
    return raw.lstrip()[:1] == b"{"


__all__ = [
    "is_jws",
    "jws_signature_valid",
    "parse_jws_envelope",
    "sign_jws_envelope",
]
