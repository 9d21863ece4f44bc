"""Nirmata's ``notation.nirmata.io/v1alpha1`` ``TrustPolicy``/``TrustStore`` (kyverno-notation-aws v1.1).

The identity-preserving route for Kyverno: the trust policy is carried as is, trusted identities included. Its
CRDs know no ``tsa`` store type nor ``verifyTimestamp`` (Kubernetes would prune the field), so both are left out
and reported per statement.
"""

from __future__ import annotations

from typing import Any

from ..gaps import Gap
from .base import PREFIX, AdmissionInput, Document, Rendered, pem

API = "notation.nirmata.io/v1alpha1"


def render(inp: AdmissionInput) -> Rendered:
    statements: list[dict[str, Any]] = []
    gaps = []
    # Its verifier qualifies a bare name (docker.io/library/…) and looks the repository up in the scopes exactly:
    # each statement also names its repositories' qualified forms.
    qualified = inp.canonical_trust_policy()["trustPolicies"]
    for statement, carried in zip(inp.statements(), qualified, strict=True):
        carried["trustStores"] = [s for s in statement["trustStores"] if not str(s).startswith("tsa:")]
        carried["signatureVerification"].pop("verifyTimestamp", None)
        if carried["trustStores"] != statement["trustStores"]:
            gaps.append(Gap("nirmata-no-tsa", statement["name"], tuple(statement["registryScopes"])))
        statements.append(carried)
    policy: Document = {
        "apiVersion": API,
        "kind": "TrustPolicy",
        "metadata": {"name": PREFIX},
        "spec": {"version": inp.trust_policy["version"], "trustPolicyName": PREFIX, "trustPolicies": statements},
    }
    stores: list[Document] = [
        {
            "apiVersion": API,
            "kind": "TrustStore",
            "metadata": {"name": store},
            "spec": {"trustStoreName": store, "type": "ca", "caBundle": "".join(pem(c) for c in certs)},
        }
        for store, certs in inp.all_stores("ca")
    ]
    return Rendered(files=[("nirmata/trustpolicy.yaml", [policy]), ("nirmata/truststores.yaml", stores)], gaps=gaps)
