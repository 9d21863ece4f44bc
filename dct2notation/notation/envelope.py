"""COSE_Sign1_Tagged envelopes exactly as Notation writes and reads them (signature-envelope-cose.md).

The protected header is encoded with cbor2's canonical (core deterministic) mode, which is what go-cose does, so our
bytes match Notation's. Parsing is strict where Notation is strict: tag 18, ``crit`` checked in both directions,
CBOR tag 1 times, an x5chain array in the unprotected header, and the size caps in ``config.Limits``.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ..config import DEFAULT_LIMITS, Clock, Limits
from ..errors import InputError, SigningKeyError
from ..jsontext import loads as json_loads
from ..keys.base import ALGORITHMS_BY_COSE_ID, Algorithm, SigningKey, algorithm_for, key_spec_of, verify_raw
from ..oci import COSE_MEDIA_TYPE, NOTATION_PAYLOAD, Descriptor, go_json
from .certs import validate_code_signing_chain

LABEL_ALG = 1
LABEL_CRIT = 2
LABEL_CONTENT_TYPE = 3
LABEL_X5CHAIN = 33
SIGNING_SCHEME = "io.cncf.notary.signingScheme"
SIGNING_TIME = "io.cncf.notary.signingTime"
AUTHENTIC_SIGNING_TIME = "io.cncf.notary.authenticSigningTime"
EXPIRY = "io.cncf.notary.expiry"
SIGNING_AGENT = "io.cncf.notary.signingAgent"
TIMESTAMP_SIGNATURE = "io.cncf.notary.timestampSignature"
SCHEME_X509 = "notary.x509"
SCHEME_SIGNING_AUTHORITY = "notary.x509.signingAuthority"
RESERVED_PREFIX = "io.cncf.notary"
COSE_SIGN1_TAG = 18
EPOCH_TAG = 1

DEFAULT_SIGNING_AGENT = "dct2notation/0.1.0"


class EnvelopeError(InputError):
    """The bytes are not a well-formed Notation COSE envelope; the message names the field and the reason."""


class Timestamper(Protocol):
    """A timestamping authority as signing needs it (``notation.timestamp.HttpTimestamper`` asks one over HTTP)."""

    def timestamp(self, signature: bytes, *, hash_algorithm: str, signing_chain: list[x509.Certificate]) -> bytes:
        """DER RFC 3161 TimeStampToken over the raw ``signature`` bytes (a COSE or JWS signature value)."""
        ...


@dataclass(frozen=True)
class SignedEnvelope:
    raw: bytes
    signing_time: dt.datetime
    cert_chain: list[x509.Certificate]
    payload: bytes
    media_type: str = COSE_MEDIA_TYPE
    # Signature-manifest annotations an envelope plugin asked for (generate-envelope); none otherwise.
    manifest_annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope. ``protected_raw`` and ``payload_raw`` are the signed bytes exactly as received."""

    raw: bytes
    protected_raw: bytes
    protected: dict[Any, Any]
    unprotected: dict[Any, Any]
    payload_raw: bytes
    signature: bytes
    algorithm: Algorithm
    signing_scheme: str
    signing_time: dt.datetime | None
    authentic_signing_time: dt.datetime | None
    expiry: dt.datetime | None
    cert_chain: list[x509.Certificate]
    signing_agent: str | None
    timestamp_token: bytes | None
    target_artifact: Descriptor
    extended_attributes: dict[Any, Any] = field(default_factory=dict)
    media_type: str = COSE_MEDIA_TYPE
    # JWS: the signing input exactly as received (base64url protected "." base64url payload).
    signing_input: bytes | None = None

    def to_be_signed(self) -> bytes:
        if self.signing_input is not None:
            return self.signing_input
        return sig_structure(self.protected_raw, self.payload_raw)

    def signature_valid(self) -> bool:
        """The COSE signature verifies under the leaf key, with the alg that key dictates."""
        leaf_spec = key_spec_of(self.cert_chain[0].public_key(), where="signing certificate")
        if algorithm_for(leaf_spec) != self.algorithm:
            return False
        return verify_raw(self.cert_chain[0].public_key(), self.signature, self.to_be_signed(), self.algorithm)

    @property
    def user_metadata(self) -> dict[str, str]:
        return dict(self.target_artifact.annotations or {})


def epoch(value: dt.datetime) -> cbor2.CBORTag:
    # Notation truncates to whole seconds; tag 1 + integer is what its parser demands.
    return cbor2.CBORTag(EPOCH_TAG, int(value.timestamp()))


def encode_protected(
    algorithm: Algorithm,
    *,
    signing_time: dt.datetime,
    expiry: dt.datetime | None = None,
    extended_attributes: Mapping[str, Any] | None = None,
    critical_extended: tuple[str, ...] = (),
) -> bytes:
    """Protected header bytes; crit order as notation-core-go ``generateProtectedHeaders``."""
    crit: list[Any] = [SIGNING_SCHEME]
    if expiry is not None:
        crit.append(EXPIRY)
    crit.extend(critical_extended)
    header: dict[Any, Any] = {
        LABEL_ALG: algorithm.cose_id,
        LABEL_CRIT: crit,
        LABEL_CONTENT_TYPE: NOTATION_PAYLOAD,
        SIGNING_SCHEME: SCHEME_X509,
        SIGNING_TIME: epoch(signing_time),
    }
    if expiry is not None:
        header[EXPIRY] = epoch(expiry)
    for key, value in (extended_attributes or {}).items():
        if key in header:
            raise SigningKeyError(f"extended attribute {key!r} collides with a Notation header")
        header[key] = value
    return bytes(cbor2.dumps(header, canonical=True))


def _bstr(data: bytes) -> bytes:
    """CBOR byte string (major type 2) with its shortest-form length, as any deterministic encoder writes it."""
    n = len(data)
    if n < 24:
        head = bytes([0x40 | n])
    elif n < 0x100:
        head = bytes([0x58, n])
    elif n < 0x10000:
        head = b"\x59" + n.to_bytes(2, "big")
    elif n < 0x100000000:
        head = b"\x5a" + n.to_bytes(4, "big")
    else:
        head = b"\x5b" + n.to_bytes(8, "big")
    return head + data


# Sig_structure = ["Signature1", protected, external_aad = h'', payload]: array(4), the context string, ...
_SIG1_PREFIX = b"\x84" + bytes(cbor2.dumps("Signature1"))


def sig_structure(protected_raw: bytes, payload: bytes) -> bytes:
    """RFC 9052 Sig_structure for COSE_Sign1 with empty external AAD (the ToBeSigned bytes).

    Assembled by hand because it is on the hot path of batch signing; tests compare it with cbor2's encoding."""
    return _SIG1_PREFIX + _bstr(protected_raw) + b"\x40" + _bstr(payload)


def encode_envelope(protected_raw: bytes, unprotected: Mapping[Any, Any], payload: bytes, signature: bytes) -> bytes:
    """COSE_Sign1_Tagged in deterministic encoding (tag 18 = 0xd2, array of 4 = 0x84)."""
    return _assemble(protected_raw, bytes(cbor2.dumps(dict(unprotected), canonical=True)), payload, signature)


def _assemble(protected_raw: bytes, unprotected_raw: bytes, payload: bytes, signature: bytes) -> bytes:
    return b"\xd2\x84" + _bstr(protected_raw) + unprotected_raw + _bstr(payload) + _bstr(signature)


@functools.lru_cache(maxsize=256)
def _protected_cached(cose_id: int, signing_time: int, expiry: int | None) -> bytes:
    return encode_protected(
        ALGORITHMS_BY_COSE_ID[cose_id],
        signing_time=dt.datetime.fromtimestamp(signing_time, dt.UTC),
        expiry=None if expiry is None else dt.datetime.fromtimestamp(expiry, dt.UTC),
    )


@functools.lru_cache(maxsize=64)
def _unprotected_cached(chain_der: tuple[bytes, ...], agent: str) -> bytes:
    return bytes(cbor2.dumps({LABEL_X5CHAIN: list(chain_der), SIGNING_AGENT: agent}, canonical=True))


def build_payload(target: Descriptor, user_metadata: Mapping[str, str] | None = None) -> bytes:
    """``{"targetArtifact": …}`` with only the fields Notation keeps, user metadata merged into annotations."""
    annotations = dict(target.annotations or {})
    for key, value in (user_metadata or {}).items():
        if key.startswith(RESERVED_PREFIX):
            raise InputError(f"user metadata key {key!r} uses the reserved prefix {RESERVED_PREFIX!r}")
        if key in annotations:
            raise InputError(f"user metadata key {key!r} is already an annotation of the target artifact")
        annotations[key] = value
    descriptor: dict[str, Any] = {"mediaType": target.media_type, "digest": target.digest, "size": target.size}
    if annotations:
        # Go's encoding/json writes map keys sorted.
        descriptor["annotations"] = dict(sorted(annotations.items()))
    return go_json({"targetArtifact": descriptor})


# Keyed by object identity like the chain-structure cache in certs.py; the value pins the certificates.
_CHAIN_FACTS: dict[tuple[int, ...], tuple[str, tuple[bytes, ...], tuple[x509.Certificate, ...]]] = {}


def _chain_facts(chain: list[x509.Certificate]) -> tuple[str, tuple[bytes, ...]]:
    """Leaf key spec and DER encodings, memoised per chain: a batch signs thousands of envelopes with one chain."""
    key = tuple(map(id, chain))
    facts = _CHAIN_FACTS.get(key)
    if facts is None:
        spec = key_spec_of(chain[0].public_key(), where="signing certificate")
        facts = (spec, tuple(c.public_bytes(Encoding.DER) for c in chain), tuple(chain))
        if len(_CHAIN_FACTS) >= 1024:
            _CHAIN_FACTS.clear()
        _CHAIN_FACTS[key] = facts
    return facts[0], facts[1]


@dataclass(frozen=True)
class PreparedSigning:
    """What every envelope format needs before it signs: checked chain, its DER, the algorithm, the agent."""

    signing_time: dt.datetime
    chain: tuple[x509.Certificate, ...]
    chain_der: tuple[bytes, ...]
    algorithm: Algorithm
    agent: str


def prepare_signing(
    target: Descriptor,
    key: SigningKey,
    *,
    clock: Clock,
    expiry: dt.datetime | None = None,
    signing_agent: str | None = None,
) -> PreparedSigning:
    """The checks before signing in any format: the chain meets the certificate requirements at the signing
    time, the key spec matches the leaf, the expiry is after the signing time."""
    signing_time = clock.now().replace(microsecond=0)
    chain = key.certificate_chain()
    if not chain:
        raise SigningKeyError(f"key {key.name!r}: no certificate chain")
    validate_code_signing_chain(chain, at=signing_time)
    leaf_spec, chain_der = _chain_facts(chain)
    if leaf_spec != key.key_spec():
        raise SigningKeyError(
            f"key {key.name!r}: key spec {key.key_spec()} does not match its certificate ({leaf_spec})"
        )
    if expiry is not None and expiry.replace(microsecond=0) <= signing_time:
        raise InputError("expiry must be after the signing time")
    # Notation names the plugin after the agent ("<agent> <plugin>/<version>", notation-go signer/plugin.go).
    base_agent = signing_agent or DEFAULT_SIGNING_AGENT
    suffix = key.signing_agent_suffix
    agent = f"{base_agent} {suffix}" if suffix else base_agent
    return PreparedSigning(signing_time, tuple(chain), chain_der, algorithm_for(leaf_spec), agent)


def sign_envelope(
    target: Descriptor,
    key: SigningKey,
    *,
    clock: Clock,
    expiry: dt.datetime | None = None,
    user_metadata: Mapping[str, str] | None = None,
    timestamper: Timestamper | None = None,
    signing_agent: str = DEFAULT_SIGNING_AGENT,
) -> SignedEnvelope:
    """Sign ``target`` with ``key``. The chain is checked against the certificate requirements first."""
    prepared = prepare_signing(target, key, clock=clock, expiry=expiry, signing_agent=signing_agent)
    signing_time, chain, chain_der, algorithm, agent = (
        prepared.signing_time,
        prepared.chain,
        prepared.chain_der,
        prepared.algorithm,
        prepared.agent,
    )
    payload = build_payload(target, user_metadata)
    protected_raw = _protected_cached(
        algorithm.cose_id, int(signing_time.timestamp()), None if expiry is None else int(expiry.timestamp())
    )
    signature = key.sign(sig_structure(protected_raw, payload))
    if timestamper is None:
        unprotected_raw = _unprotected_cached(chain_der, agent)
    else:
        token = timestamper.timestamp(signature, hash_algorithm=algorithm.hash_name, signing_chain=list(chain))
        unprotected_raw = bytes(
            cbor2.dumps(
                {LABEL_X5CHAIN: list(chain_der), SIGNING_AGENT: agent, TIMESTAMP_SIGNATURE: token}, canonical=True
            )
        )
    raw = _assemble(protected_raw, unprotected_raw, payload, signature)
    return SignedEnvelope(raw=raw, signing_time=signing_time, cert_chain=list(chain), payload=payload)


# --- parsing --------------------------------------------------------------------------------------------------------


def _time(header: Mapping[Any, Any], protected_raw: bytes, label: str) -> dt.datetime | None:
    if label not in header:
        return None
    value = header[label]
    # cbor2 turns tag 0 (text) and tag 1 (epoch) alike into datetime; only tag 1 is allowed, so look at the bytes:
    # in a map the value follows its key, and tag 1 is the single byte 0xc1.
    if not isinstance(value, dt.datetime) or bytes(cbor2.dumps(label)) + b"\xc1" not in protected_raw:
        raise EnvelopeError(f"protected header {label}: must be a CBOR tag 1 epoch time")
    return value.astimezone(dt.UTC)


def _decode(data: bytes, what: str) -> Any:
    try:
        return cbor2.loads(data)
    except Exception as exc:  # cbor2 raises several unrelated types for malformed input
        raise EnvelopeError(f"{what}: malformed CBOR ({exc})") from exc


def parse_payload(payload: bytes) -> Descriptor:
    """The signed payload's ``targetArtifact`` (the same JSON in every envelope format)."""
    try:
        obj = json_loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"payload: not JSON ({exc})") from exc
    if not isinstance(obj, dict) or "targetArtifact" not in obj:
        raise EnvelopeError("payload: missing targetArtifact")
    try:
        return Descriptor.from_dict(obj["targetArtifact"], where="payload targetArtifact")
    except InputError as exc:
        raise EnvelopeError(str(exc)) from exc


def check_critical(protected: Mapping[Any, Any], crit: list[Any], scheme: str) -> None:
    """Notation's ``crit`` rules, the same in both envelope formats: every listed label is present, and the signing
    scheme (with the authentic signing time for signingAuthority, and the expiry when there is one) is listed."""
    for label in crit:
        if label not in protected:
            raise EnvelopeError(f"protected header crit: critical label {label!r} is not present")
    required = [SIGNING_SCHEME]
    if scheme == SCHEME_SIGNING_AUTHORITY:
        required.append(AUTHENTIC_SIGNING_TIME)
    if EXPIRY in protected:
        required.append(EXPIRY)
    for label in required:
        if label not in crit:
            raise EnvelopeError(f"protected header crit: {label!r} must be marked critical")


SigningTimes = tuple[dt.datetime | None, dt.datetime | None, dt.datetime | None]


def read_times(scheme: str, claim: Callable[[str], dt.datetime | None]) -> SigningTimes:
    """The signing time, authentic signing time and expiry through the format's ``claim`` reader; the scheme's own
    time claim is present and the expiry, if any, is after it (both envelope formats)."""
    signing_time, authentic_time, expiry = claim(SIGNING_TIME), claim(AUTHENTIC_SIGNING_TIME), claim(EXPIRY)
    if scheme == SCHEME_X509 and signing_time is None:
        raise EnvelopeError(f"protected header {SIGNING_TIME}: required for {SCHEME_X509}")
    if scheme == SCHEME_SIGNING_AUTHORITY and authentic_time is None:
        raise EnvelopeError(f"protected header {AUTHENTIC_SIGNING_TIME}: required for {SCHEME_SIGNING_AUTHORITY}")
    effective_time = signing_time or authentic_time
    if expiry is not None and effective_time is not None and expiry <= effective_time:
        raise EnvelopeError(f"protected header {EXPIRY}: must be after the signing time")
    return signing_time, authentic_time, expiry


def header_certificate(der: bytes, where: str) -> x509.Certificate:
    """One certificate of the envelope's chain (COSE x5chain, JWS x5c): DER in both formats."""
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise EnvelopeError(f"{where}: not a DER certificate ({exc})") from exc


def notary_envelope(
    raw: bytes,
    *,
    protected_raw: bytes,
    protected: Mapping[Any, Any],
    unprotected: Mapping[Any, Any],
    payload: bytes,
    signature: bytes,
    algorithm: Algorithm,
    scheme: str,
    times: SigningTimes,
    chain: list[x509.Certificate],
    token: bytes | None,
    format_labels: Iterable[Any],
    media_type: str = COSE_MEDIA_TYPE,
    signing_input: bytes | None = None,
) -> Envelope:
    """The ``Envelope`` of either format once the format's own decoding passed: the checks the two share (the
    signing agent is text, a timestamp goes only with notary.x509) and the fields derived alike (the payload's
    target artifact; the extended attributes, the protected claims neither the format nor Notary defines).
    ``format_labels`` are the format's alg/crit/content-type labels."""
    agent = unprotected.get(SIGNING_AGENT)
    if agent is not None and not isinstance(agent, str):
        raise EnvelopeError(f"unprotected header {SIGNING_AGENT}: must be text")
    if token is not None and scheme != SCHEME_X509:
        raise EnvelopeError(f"unprotected header {TIMESTAMP_SIGNATURE}: only allowed with {SCHEME_X509}")
    known = {*format_labels, SIGNING_SCHEME, SIGNING_TIME, AUTHENTIC_SIGNING_TIME, EXPIRY}
    signing_time, authentic_time, expiry = times
    return Envelope(
        raw=raw,
        protected_raw=protected_raw,
        protected=dict(protected),
        unprotected=dict(unprotected),
        payload_raw=payload,
        signature=signature,
        algorithm=algorithm,
        signing_scheme=scheme,
        signing_time=signing_time,
        authentic_signing_time=authentic_time,
        expiry=expiry,
        cert_chain=chain,
        signing_agent=agent,
        timestamp_token=token,
        target_artifact=parse_payload(payload),
        extended_attributes={k: v for k, v in protected.items() if k not in known},
        media_type=media_type,
        signing_input=signing_input,
    )


def parse_envelope(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> Envelope:
    """Decode and structurally validate an envelope (the signature itself is checked by ``signature_valid``)."""
    if len(raw) > limits.envelope_bytes:
        raise EnvelopeError(f"envelope: {len(raw)} bytes exceeds the {limits.envelope_bytes}-byte limit")
    outer = _decode(raw, "envelope")
    if not isinstance(outer, cbor2.CBORTag) or outer.tag != COSE_SIGN1_TAG:
        raise EnvelopeError("envelope: not a COSE_Sign1_Tagged message (CBOR tag 18)")
    msg = outer.value
    if not isinstance(msg, list) or len(msg) != 4:
        raise EnvelopeError("envelope: COSE_Sign1 must be an array of 4 items")
    protected_raw, unprotected, payload, signature = msg
    if not isinstance(protected_raw, bytes) or not protected_raw:
        raise EnvelopeError("protected header: must be a non-empty byte string")
    if not isinstance(unprotected, dict):
        raise EnvelopeError("unprotected header: must be a map")
    if not isinstance(payload, bytes):
        raise EnvelopeError("payload: must be embedded (a byte string), detached payloads are not supported")
    if not isinstance(signature, bytes) or not signature:
        raise EnvelopeError("signature: must be a non-empty byte string")
    protected = _decode(protected_raw, "protected header")
    if not isinstance(protected, dict):
        raise EnvelopeError("protected header: must be a map")

    alg_id = protected.get(LABEL_ALG)
    algorithm = ALGORITHMS_BY_COSE_ID.get(alg_id) if isinstance(alg_id, int) else None
    if algorithm is None:
        raise EnvelopeError(f"protected header alg: {alg_id!r} is not one of PS256/384/512, ES256/384/512")
    if protected.get(LABEL_CONTENT_TYPE) != NOTATION_PAYLOAD:
        raise EnvelopeError(f"protected header content type: must be {NOTATION_PAYLOAD!r}")
    scheme = protected.get(SIGNING_SCHEME)
    if scheme not in (SCHEME_X509, SCHEME_SIGNING_AUTHORITY):
        raise EnvelopeError(f"protected header {SIGNING_SCHEME}: unsupported value {scheme!r}")

    crit = protected.get(LABEL_CRIT)
    if not isinstance(crit, list) or not crit or not all(isinstance(c, str | int) for c in crit):
        raise EnvelopeError("protected header crit: must be a non-empty array of labels")
    for label in crit:
        if isinstance(label, int) and 0 <= label <= 8:
            raise EnvelopeError(f"protected header crit: label {label} must not be listed")
    check_critical(protected, crit, scheme)

    times = read_times(scheme, lambda label: _time(protected, protected_raw, label))

    chain_items = unprotected.get(LABEL_X5CHAIN)
    if not isinstance(chain_items, list) or not chain_items:
        raise EnvelopeError("unprotected header x5chain: certificate chain is not present (must be an array)")
    chain: list[x509.Certificate] = []
    for index, der in enumerate(chain_items):
        if not isinstance(der, bytes):
            raise EnvelopeError(f"unprotected header x5chain[{index}]: must be a byte string")
        chain.append(header_certificate(der, f"unprotected header x5chain[{index}]"))
    token = unprotected.get(TIMESTAMP_SIGNATURE)
    if token is not None and not isinstance(token, bytes):
        raise EnvelopeError(f"unprotected header {TIMESTAMP_SIGNATURE}: must be a byte string")
    return notary_envelope(
        raw,
        protected_raw=protected_raw,
        protected=protected,
        unprotected=unprotected,
        payload=payload,
        signature=signature,
        algorithm=algorithm,
        scheme=scheme,
        times=times,
        chain=chain,
        token=token,
        format_labels=(LABEL_ALG, LABEL_CRIT, LABEL_CONTENT_TYPE),
    )


def certificate_requirements(envelope: Envelope) -> None:
    """Run the signing-chain profile on an envelope's chain (no time check: that is a separate verification step)."""
    validate_code_signing_chain(envelope.cert_chain)
