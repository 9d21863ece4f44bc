"""``verify REF``: find the signatures through the store and hand them to the Notation verifier."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Clock, SystemClock
from ..errors import NotationVerificationError
from ..notation.policy import TrustPolicyDocument
from ..notation.truststore import TrustStore
from ..notation.verify import verify_envelope
from ..oci import Descriptor
from .store import UnreadableSignature, fetch_signatures
from .target import Target


@dataclass
class VerifyReport:
    reference: str
    subject: Descriptor
    ok: bool
    signature_digest: str | None
    failed_check: str | None
    reason: str
    signatures: list[dict[str, Any]] = field(default_factory=list)
    # The user metadata of the signature that passed (what `notation verify` lists after its success line).
    user_metadata: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "subject": self.subject.to_dict(),
            "verified": self.ok,
            "signature": self.signature_digest,
            "failedCheck": self.failed_check,
            "reason": self.reason,
            "signatures": self.signatures,
        }

    def raise_failure(self) -> None:
        raise NotationVerificationError(self.failed_check or "verification", f"{self.reference}: {self.reason}")


def verify_target(
    target: Target,
    *,
    policy: Path,
    truststore: Path,
    user_metadata: dict[str, str] | None = None,
    clock: Clock | None = None,
    scope: str | None = None,
) -> VerifyReport:
    """Verify every signature until one passes (Notation's rule), reporting the check that failed otherwise.

    ``scope`` (``verify --scope``) is the repository the trust policy's registry scopes are matched against, as
    Notation's ``--scope`` for an OCI layout; the target's own repository otherwise."""
    document = TrustPolicyDocument.load(policy)
    store = TrustStore(truststore)
    subject = target.store.resolve(target.reference)
    reference = str(target.reference.with_digest(subject.digest))
    # A dangling index entry (its manifest deleted) is one invalid signature, not an error hiding the others.
    unreadable: list[UnreadableSignature] = []
    stored = fetch_signatures(target.store, target.repo, subject.digest, unreadable)
    if not stored and not unreadable:
        return VerifyReport(
            reference, subject, False, None, "signature", "no signature is associated with the artifact"
        )
    results: list[dict[str, Any]] = [
        {
            "digest": bad.digest,
            "verified": False,
            "failedCheck": "integrity",
            "reason": f"signature {bad.digest} is unreadable: {bad.reason}",
        }
        for bad in unreadable
    ]
    passed: str | None = None
    metadata: dict[str, str] = {}
    first_failure: tuple[str | None, str] | None = ("integrity", results[0]["reason"]) if results else None
    for sig in stored:
        result = verify_envelope(
            sig.envelope,
            subject=subject,
            reference=f"{scope}@{subject.digest}" if scope else reference,
            policy=document,
            truststore=store,
            clock=clock or SystemClock(),
            user_metadata=user_metadata or None,
            limits=target.store.limits,
            media_type=sig.manifest.envelope.media_type,
        )
        results.append(
            {
                "digest": sig.manifest.digest,
                "verified": bool(result.ok),
                "failedCheck": result.failed_check,
                "reason": result.reason,
            }
        )
        if result.ok:
            passed = sig.manifest.digest
            metadata = dict(result.user_metadata)
            break
        if first_failure is None:
            first_failure = (result.failed_check, result.reason)
    if passed is not None:
        return VerifyReport(reference, subject, True, passed, None, "verified", results, metadata)
    check, reason = first_failure or (None, "no signature passed")
    return VerifyReport(reference, subject, False, None, check, reason, results)
