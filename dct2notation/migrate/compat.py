"""Version traps: what this tool writes correctly but an older Notation still in use would not accept or not find.

Reported when the choice is made (``sign``, ``plan``), not discovered later at admission. Each warning names the
Notation versions affected and what to do.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography import x509

from ..errors import ConfigError
from .policy import mapped_chain
from .signers import MappedKey

LAYOUT_ARTIFACT_FORM = (
    "warning: Notation 1.x does not find artifact-form signatures in an OCI layout (notation-go <= 1.3 looks for "
    "config.mediaType application/vnd.cncf.notary.signature there): `notation verify --oci-layout` 1.x will report "
    "no signature; use --signature-manifest legacy unless every verifier runs Notation 2"
)


def layout_form_warning(form: str, kind: str) -> str | None:
    """The warning for an artifact-form signature written into an OCI layout, else None."""
    return LAYOUT_ARTIFACT_FORM if form == "artifact" and kind == "oci-layout" else None


def leaf_warnings(chain: list[x509.Certificate], label: str) -> list[str]:
    """Certificate profile points that Notation before 1.1.1 refuses although the current Notation accepts them."""
    if not chain:
        return []
    try:
        usage = chain[0].extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return []
    if usage.content_commitment:
        return [
            f"warning: {label}: the signing certificate has keyUsage nonRepudiation (contentCommitment), which "
            "Notation before 1.1.1 refuses at verification: verifiers on Notation < 1.1.1 must upgrade, or "
            "issue the leaf with keyUsage digitalSignature only"
        ]
    return []


def plan_warnings(keys: Iterable[MappedKey]) -> list[str]:
    """Warnings for the keys a plan signs with (a key whose certificate cannot be read here is left to ``sign``)."""
    out: list[str] = []
    seen: set[str] = set()
    for key in keys:
        if key.spec in seen:
            continue
        seen.add(key.spec)
        try:
            chain = mapped_chain(key)
        except ConfigError:
            continue
        out.extend(leaf_warnings(chain, key.label))
    return out
