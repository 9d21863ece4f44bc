"""Ratify and Kyverno admission resources built from the same statements as ``trustpolicy.json``.

Built as data and dumped with PyYAML so PEM blocks, scopes and names are always quoted correctly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from .policy import Emission

RATIFY_API = "config.ratify.deislabs.io/v1beta1"
KYVERNO_API = "kyverno.io/v1"
NOTATION_ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"


def _kmp_name(store: str) -> str:
    return f"dct2notation-{store}"


def ratify_documents(emission: Emission) -> list[tuple[str, list[dict[str, Any]]]]:
    """One inline ``KeyManagementProvider`` per trust store and one notation ``Verifier`` carrying the policy."""
    from .policy import pem

    providers = [
        {
            "apiVersion": RATIFY_API,
            "kind": "KeyManagementProvider",
            "metadata": {"name": _kmp_name(store)},
            "spec": {"type": "inline", "parameters": {"contentType": "certificate", "value": pem(root).decode()}},
        }
        for store, root in sorted(emission.roots.items())
    ]
    verifier = {
        "apiVersion": RATIFY_API,
        "kind": "Verifier",
        "metadata": {"name": "verifier-notation-dct2notation"},
        "spec": {
            "name": "notation",
            "artifactTypes": NOTATION_ARTIFACT_TYPE,
            "parameters": {
                # Ratify maps each Notation trust store to the KMP resources holding its certificates.
                "verificationCertStores": {"ca": {store: [_kmp_name(store)] for store in sorted(emission.roots)}},
                "trustPolicyDoc": emission.trust_policy(),
            },
        },
    }
    return [("keymanagementproviders.yaml", providers), ("verifier.yaml", [verifier])]


def kyverno_documents(emission: Emission) -> list[tuple[str, list[dict[str, Any]]]]:
    """One ``ClusterPolicy``; one rule per statement, its repositories as exact image references."""
    from .policy import pem

    action = "Enforce" if emission.level == "strict" else "Audit"
    rules = []
    for statement in emission.statements:
        references = [f"{repo}{suffix}" for repo in statement.repositories for suffix in (":*", "@*")]
        certs = "".join(pem(emission.roots[store]).decode() for store in statement.stores)
        rules.append(
            {
                "name": statement.name,
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [
                    {
                        "type": "Notary",
                        "imageReferences": references,
                        "attestors": [{"count": 1, "entries": [{"certificates": {"cert": certs}}]}],
                    }
                ],
            }
        )
    policy = {
        "apiVersion": KYVERNO_API,
        "kind": "ClusterPolicy",
        "metadata": {"name": "dct2notation-verify-images"},
        "spec": {"validationFailureAction": action, "webhookTimeoutSeconds": 30, "rules": rules},
    }
    return [("clusterpolicy.yaml", [policy])]


def yaml_bytes(documents: list[dict[str, Any]]) -> bytes:
    text = yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False, explicit_start=True)
    return text.encode()
