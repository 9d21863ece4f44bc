"""Sign one artifact by digest and store the signature (the ``sign REF@sha256:…`` command's logic)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import Clock
from ..keys.base import SigningKey
from ..notation.envelope import Timestamper
from ..notation.formats import SignatureFormat, sign_in_format
from ..notation.manifest import ManifestForm, format_created, thumbprints
from ..oci import Descriptor
from .reference import require_digest
from .target import Target


@dataclass(frozen=True)
class SignResult:
    reference: str
    subject: Descriptor
    signature: Descriptor
    form: ManifestForm
    store: str
    signing_time: dt.datetime
    thumbprints: list[str]
    envelope_media_type: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "subject": self.subject.to_dict(),
            "signature": {
                "digest": self.signature.digest,
                "mediaType": self.signature.media_type,
                "artifactType": self.signature.artifact_type,
                "size": self.signature.size,
                "form": self.form,
                "envelopeMediaType": self.envelope_media_type,
            },
            "signingTime": format_created(self.signing_time),
            "thumbprints": self.thumbprints,
            "store": self.store,
        }


def sign_artifact(
    target: Target,
    key: SigningKey,
    *,
    clock: Clock,
    form: ManifestForm = "legacy",
    user_metadata: Mapping[str, str] | None = None,
    expiry: dt.timedelta | None = None,
    timestamper: Timestamper | None = None,
    signature_format: SignatureFormat = "cose",
) -> SignResult:
    """Resolve the digest (its media type and size go into the payload), sign, push. Tags are refused."""
    ref = require_digest(target.reference, command="sign")
    subject = target.store.resolve(ref)
    now = clock.now()
    signed = sign_in_format(
        signature_format,
        subject,
        key,
        clock=clock,
        expiry=None if expiry is None else now + expiry,
        user_metadata=dict(user_metadata or {}),
        timestamper=timestamper,
    )
    desc = target.store.push_signature(target.repo, subject, signed, form)
    return SignResult(
        reference=str(ref),
        subject=subject,
        signature=desc,
        form=form,
        store=target.kind,
        signing_time=signed.signing_time,
        thumbprints=thumbprints(signed.cert_chain),
        envelope_media_type=signed.media_type,
    )
