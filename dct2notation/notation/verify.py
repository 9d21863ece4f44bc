"""Notation-compatible verification of one envelope, and of an artifact's set of envelopes.

Check order and semantics follow notation-go ``verifier``: integrity → authenticity (trust store + trusted
identities) → authenticTimestamp → expiry → revocation, each with the action its trust-policy level and overrides
give it. An enforced failure stops verification; a logged one is recorded and verification goes on.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from ..config import DEFAULT_LIMITS, Clock, Limits, format_rfc3339
from ..errors import ConfigError, Dct2NotationError, InputError
from ..oci import JWS_MEDIA_TYPE, Descriptor
from .certs import CertificateRequirementError, validate_code_signing_chain
from .envelope import (
    AUTHENTIC_SIGNING_TIME,
    EXPIRY,
    LABEL_CRIT,
    SCHEME_SIGNING_AUTHORITY,
    SCHEME_X509,
    SIGNING_SCHEME,
    Envelope,
)
from .formats import parse_signature_envelope, signature_valid
from .policy import CHECKS, TrustPolicyDocument, TrustPolicyStatement, dn_map, is_subset_dn
from .truststore import TrustStore

# The attributes Go's crypto/x509/pkix parses into named fields, in the order ``Name.ToRDNSequence`` writes them.
# Every other attribute type is rendered as ``OID=#<DER hex>``, which notation-go's DN parser refuses.
_SHORT_NAMES = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.POSTAL_CODE: "POSTALCODE",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
}
# Go keeps one CommonName and one SerialNumber (the last one parsed), and a list of every other named field.
_SINGLE_VALUED = frozenset({NameOID.COMMON_NAME, NameOID.SERIAL_NUMBER})


UNDERSTOOD_CRITICAL = frozenset({SIGNING_SCHEME, AUTHENTIC_SIGNING_TIME, EXPIRY})


@dataclass(frozen=True)
class CheckResult:
    name: str
    action: str  # enforce | log | skip
    ok: bool | None  # None: not evaluated (skipped)
    reason: str = ""


@dataclass(frozen=True)
class VerificationResult:
    ok: bool
    failed_check: str | None
    reason: str
    checks: list[CheckResult] = field(default_factory=list)
    statement: str | None = None
    envelope: Envelope | None = None

    @property
    def user_metadata(self) -> dict[str, str]:
        return self.envelope.user_metadata if self.envelope else {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": self.ok,
            "failedCheck": self.failed_check,
            "reason": self.reason,
            "trustPolicyStatement": self.statement,
            "checks": [{"name": c.name, "action": c.action, "ok": c.ok, "reason": c.reason} for c in self.checks],
        }


@dataclass(frozen=True)
class VerificationOutcome:
    ok: bool
    results: list[VerificationResult]
    passed_index: int | None
    # True when max_signature_attempts stopped the loop: the last result then says so, the first names the failure.
    gave_up: bool = False

    @property
    def failed_check(self) -> str | None:
        return None if self.ok or not self.results else self.results[0].failed_check

    @property
    def reason(self) -> str:
        if self.ok:
            return "verified"
        return self.results[0].reason if self.results else "no signature is associated with the artifact"


class _Failed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def go_subject_string(subject: x509.Name) -> str:
    """``pkix.Name.String()`` of a parsed certificate subject: the text notation-go matches trusted identities on.

    Go does not keep the certificate's RDN structure. It collects named fields (all values of C, ST, L, STREET,
    POSTALCODE, O and OU; only the last CN and SERIALNUMBER) and writes each field's values as one RDN, so two
    ``O`` attributes become the multi-valued RDN ``O=a+O=b``, a multi-valued RDN of distinct named types becomes
    separate RDNs, and any other attribute type becomes ``OID=#hex``.
    """
    fields: dict[x509.ObjectIdentifier, list[str]] = {}
    rdns: list[list[str]] = []
    for attr in subject:
        if attr.oid not in _SHORT_NAMES:
            rdns.append([f"{attr.oid.dotted_string}=#{_go_marshal(attr).hex()}"])
        elif isinstance(attr.value, str):  # Go drops a named field whose value is not a string type
            fields.setdefault(attr.oid, []).append(attr.value)
    for oid, short in _SHORT_NAMES.items():
        values = fields.get(oid, [])
        if oid in _SINGLE_VALUED:
            values = values[-1:]
        if values:
            rdns.append([f"{short}={_go_escape(value)}" for value in values])
    return ",".join("+".join(rdn) for rdn in reversed(rdns))


def _go_escape(value: str) -> str:
    out = []
    for i, ch in enumerate(value):
        escape = ch in ',+"\\<>;' or (ch == " " and i in (0, len(value) - 1)) or (ch == "#" and i == 0)
        out.append("\\" + ch if escape else ch)
    return "".join(out)


def _go_marshal(attr: x509.NameAttribute[str | bytes]) -> bytes:
    """``asn1.Marshal`` of the value Go parsed: a string is re-encoded (PrintableString when its characters allow,
    else UTF8String), whatever string type the certificate used."""
    if isinstance(attr.value, str):
        body = attr.value.encode()
        tag = 0x13 if all(ch in _PRINTABLE for ch in attr.value) else 0x0C
        size = len(body)
        width = (size.bit_length() + 7) // 8
        head = bytes([size]) if size < 0x80 else bytes([0x80 | width]) + size.to_bytes(width, "big")
        return bytes([tag]) + head + body
    # Not a string (a BIT STRING unique identifier): the exact hex is immaterial, any "=#" is refused.
    return bytes(attr.value)


_PRINTABLE = frozenset(string.ascii_letters + string.digits + " '()+,-./:=?")


def _check_integrity(env: Envelope, limits: Limits) -> None:
    # A critical header is one the verifier MUST understand (RFC 9052); extended attributes such as
    # io.cncf.notary.verificationPlugin need a verification plugin, which we do not run, so they fail closed.
    crit = env.protected.get("crit" if env.media_type == JWS_MEDIA_TYPE else LABEL_CRIT, [])
    unknown = [label for label in crit if label not in UNDERSTOOD_CRITICAL]
    if unknown:
        raise _Failed(f"critical protected header(s) {', '.join(map(repr, unknown))} are not supported")
    try:
        valid = signature_valid(env, limits)
    except InputError as exc:
        raise _Failed(f"malformed signature envelope: {exc}") from exc
    if not valid:
        raise _Failed("the signature does not verify with the signing certificate's key (payload or header altered)")
    try:
        validate_code_signing_chain(env.cert_chain)
    except CertificateRequirementError as exc:
        raise _Failed(f"certificate chain is invalid: {exc}") from exc


def _check_authenticity(env: Envelope, statement: TrustPolicyStatement, truststore: TrustStore) -> None:
    store_type = "signingAuthority" if env.signing_scheme == SCHEME_SIGNING_AUTHORITY else "ca"
    names = statement.stores(store_type)
    if not names:
        raise _Failed(f'trust policy statement "{statement.name}" has no "{store_type}" trust store for this scheme')
    trusted: set[bytes] = set()
    for name in names:
        try:
            trusted.update(c.public_bytes(Encoding.DER) for c in truststore.certificates(store_type, name))
        except ConfigError as exc:
            raise _Failed(str(exc)) from exc
    if not any(c.public_bytes(Encoding.DER) in trusted for c in env.cert_chain):
        raise _Failed(
            "signature is not produced by a trusted signer: no certificate of the chain is in trust store(s) "
            + ", ".join(f"{store_type}:{n}" for n in names)
        )
    if statement.trusted_identities == ("*",):
        return
    subject = go_subject_string(env.cert_chain[0].subject)
    try:
        leaf = dn_map(subject)
    except ValueError as exc:
        # notation-go refuses the signature here too (ParseDistinguishedName(leaf.Subject.String())).
        reason = f"it {exc}" if str(exc).startswith(("has ", "is ")) else str(exc)
        message = f'cannot parse the signing certificate subject "{subject}" as notation-go does: {reason}'
        raise _Failed(message) from exc
    if not any(is_subset_dn(dn, leaf) for dn in statement.x509_subjects):
        raise _Failed(
            f'signing certificate subject "{env.cert_chain[0].subject.rfc4514_string()}" does not match the X.509 '
            f'trusted identities of trust policy statement "{statement.name}"'
        )


def _within_validity(chain: list[x509.Certificate], when: dt.datetime, what: str) -> None:
    for cert in chain:
        if when < cert.not_valid_before_utc:
            raise _Failed(
                f'{what} {format_rfc3339(when)} is before certificate "{cert.subject.rfc4514_string()}" becomes valid '
                f"({format_rfc3339(cert.not_valid_before_utc)})"
            )
        if when > cert.not_valid_after_utc:
            raise _Failed(
                f'{what} {format_rfc3339(when)} is after certificate "{cert.subject.rfc4514_string()}" expired '
                f"({format_rfc3339(cert.not_valid_after_utc)})"
            )


def _check_authentic_timestamp(
    env: Envelope, statement: TrustPolicyStatement, truststore: TrustStore, now: dt.datetime
) -> str:
    if env.signing_scheme == SCHEME_SIGNING_AUTHORITY:
        assert env.authentic_signing_time is not None
        _within_validity(env.cert_chain, env.authentic_signing_time, "authentic signing time")
        return "authentic signing time is within the certificate chain's validity"
    tsa_names = statement.stores("tsa")
    use_timestamp = bool(tsa_names)
    if use_timestamp and statement.verify_timestamp == "afterCertExpiry":
        use_timestamp = any(now > c.not_valid_after_utc for c in env.cert_chain)
    if not use_timestamp:
        _within_validity(env.cert_chain, now, "current time")
        return "current time is within the certificate chain's validity"
    if env.timestamp_token is None:
        raise _Failed("a tsa trust store is configured but the signature has no timestamp countersignature")
    roots: list[x509.Certificate] = []
    for name in tsa_names:
        try:
            roots.extend(truststore.certificates("tsa", name))
        except ConfigError as exc:
            raise _Failed(str(exc)) from exc
    from .timestamp import verify_timestamp_token  # imported when used: only a tsa trust store needs it

    try:
        info = verify_timestamp_token(env.timestamp_token, env.signature, roots, env.algorithm.hash_name)
    except Dct2NotationError as exc:
        raise _Failed(f"timestamp countersignature does not verify: {exc}") from exc
    not_before: dt.datetime = info.not_before
    not_after: dt.datetime = info.not_after
    for cert in env.cert_chain:
        if not_before < cert.not_valid_before_utc or not_after > cert.not_valid_after_utc:
            raise _Failed(
                f"timestamp {format_rfc3339(info.gen_time)} "
                f"(accuracy {format_rfc3339(not_before)}..{format_rfc3339(not_after)}) is not within the "
                f'validity of certificate "{cert.subject.rfc4514_string()}" '
                f"({format_rfc3339(cert.not_valid_before_utc)}..{format_rfc3339(cert.not_valid_after_utc)})"
            )
    return f"timestamp {format_rfc3339(info.gen_time)} verified against the tsa trust store"


def _check_expiry(env: Envelope, now: dt.datetime) -> None:
    if env.expiry is not None and now >= env.expiry:
        raise _Failed(f"signature expired at {format_rfc3339(env.expiry)}")


def _check_revocation(env: Envelope) -> str:
    # No OCSP/CRL client yet: a chain that names revocation endpoints cannot be shown unrevoked, so under "enforce"
    # that is a failure rather than a silent pass; chains without endpoints are non-revocable, as in Notation.
    for cert in env.cert_chain:
        endpoints = []
        try:
            cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
            endpoints.append("CRL")
        except x509.ExtensionNotFound:
            pass
        try:
            aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
            if any(d.access_method == AuthorityInformationAccessOID.OCSP for d in aia):
                endpoints.append("OCSP")
        except x509.ExtensionNotFound:
            pass
        if endpoints:
            raise _Failed(
                f'certificate "{cert.subject.rfc4514_string()}" has {"/".join(endpoints)} endpoints but online '
                'revocation checking is not supported; set override "revocation" to "log" or "skip"'
            )
    return "no certificate in the chain has revocation endpoints"


def _select(policy: TrustPolicyDocument | TrustPolicyStatement, reference: str) -> TrustPolicyStatement:
    if isinstance(policy, TrustPolicyStatement):
        return policy
    return policy.statement_for(reference)


def verify_envelope(
    raw: bytes,
    *,
    subject: Descriptor,
    reference: str,
    policy: TrustPolicyDocument | TrustPolicyStatement,
    truststore: TrustStore,
    clock: Clock,
    user_metadata: Mapping[str, str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    media_type: str | None = None,
) -> VerificationResult:
    """Verify one envelope over ``subject`` under the statement that governs ``reference``.

    ``media_type`` is the signature manifest layer's (COSE or JWS); without it the bytes tell the format.
    Configuration errors (no applicable statement) raise; every verification failure is a result naming the check.
    """
    statement = _select(policy, reference)
    if statement.level == "skip":
        return VerificationResult(
            True,
            None,
            f'trust policy statement "{statement.name}" is configured to skip signature verification',
            [CheckResult(c, "skip", None) for c in CHECKS],
            statement.name,
        )
    now = clock.now()
    checks: list[CheckResult] = []

    def fail(check: str, reason: str, env: Envelope | None = None) -> VerificationResult:
        return VerificationResult(False, check, reason, checks, statement.name, env)

    try:
        env = parse_signature_envelope(raw, media_type, limits)
    except InputError as exc:
        checks.append(CheckResult("integrity", "enforce", False, str(exc)))
        return fail("integrity", f"malformed signature envelope: {exc}")

    steps: list[tuple[str, Any]] = [
        ("integrity", lambda: _check_integrity(env, limits)),
        ("authenticity", lambda: _check_authenticity(env, statement, truststore)),
        ("authenticTimestamp", lambda: _check_authentic_timestamp(env, statement, truststore, now)),
        ("expiry", lambda: _check_expiry(env, now)),
        ("revocation", lambda: _check_revocation(env)),
    ]
    for name, run in steps:
        action = statement.action(name)
        if action == "skip":
            checks.append(CheckResult(name, "skip", None))
            continue
        try:
            note = run()
        except _Failed as exc:
            checks.append(CheckResult(name, action, False, exc.reason))
            if action == "enforce":
                return fail(name, exc.reason, env)
            continue
        checks.append(CheckResult(name, action, True, note if isinstance(note, str) else ""))

    target = env.target_artifact
    if (target.digest, target.size, target.media_type) != (subject.digest, subject.size, subject.media_type):
        reason = (
            f"the signature is for {target.media_type} {target.digest} ({target.size} bytes), not for the artifact "
            f"{subject.media_type} {subject.digest} ({subject.size} bytes)"
        )
        checks.append(CheckResult("targetArtifact", "enforce", False, reason))
        return fail("targetArtifact", reason, env)
    checks.append(CheckResult("targetArtifact", "enforce", True))

    if user_metadata:
        present = env.user_metadata
        missing = [f"{k}={v}" for k, v in user_metadata.items() if present.get(k) != v]
        if missing:
            reason = f"the signature's user metadata does not contain {', '.join(missing)}"
            checks.append(CheckResult("userMetadata", "enforce", False, reason))
            return fail("userMetadata", reason, env)
        checks.append(CheckResult("userMetadata", "enforce", True))
    return VerificationResult(True, None, "verified", checks, statement.name, env)


def not_counted(statement: TrustPolicyStatement, passed: VerificationResult) -> str | None:
    """Why a signature that passed under ``statement`` must not count for a gate or a sign-off, or None.

    Only a statement enforcing integrity and authenticity (strict, permissive) makes a pass mean "a trusted signer
    signed this"; the reason adds what the logged authenticity check found, so an operator sees what enforcing would do.
    """
    gap = statement.unenforced()
    if gap is None:
        return None
    for check in passed.checks:
        if check.name == "authenticity" and check.ok is False:
            return f"{gap}; its signer is not trusted ({check.reason})"
        if check.name == "authenticity" and check.ok:
            return f"{gap}; its signer is trusted, but the statement would pass an untrusted one as well"
    return gap


def verify_artifact(
    reference: str,
    subject: Descriptor,
    envelopes: Iterable[bytes | VerificationResult],
    *,
    policy: TrustPolicyDocument | TrustPolicyStatement,
    truststore: TrustStore,
    clock: Clock,
    user_metadata: Mapping[str, str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> VerificationOutcome:
    """Try envelopes in order until one passes, at most ``limits.max_signature_attempts`` of them.

    An entry may be the failed result of a signature that could not be read: it counts as an attempt that failed.
    """
    results: list[VerificationResult] = []
    for index, raw in enumerate(envelopes):
        if index >= limits.max_signature_attempts:
            results.append(
                VerificationResult(
                    False,
                    "signature",
                    f"gave up after {limits.max_signature_attempts} signatures (max_signature_attempts)",
                )
            )
            return VerificationOutcome(False, results, None, gave_up=True)
        if isinstance(raw, VerificationResult):
            results.append(raw)
            continue
        result = verify_envelope(
            raw,
            subject=subject,
            reference=reference,
            policy=policy,
            truststore=truststore,
            clock=clock,
            user_metadata=user_metadata,
            limits=limits,
        )
        results.append(result)
        if result.ok:
            return VerificationOutcome(True, results, index)
    return VerificationOutcome(False, results, None)


__all__ = [
    "CheckResult",
    "SCHEME_X509",
    "VerificationOutcome",
    "VerificationResult",
    "go_subject_string",
    "not_counted",
    "verify_artifact",
    "verify_envelope",
]
