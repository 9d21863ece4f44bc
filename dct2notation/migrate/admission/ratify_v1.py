"""Ratify v1 (``config.ratify.deislabs.io/v1beta1``): KeyManagementProviders, the notation Verifier, Policy, Store.

The Verifier is named ``verifier-notation``, the name the Ratify chart gives its own notation verifier, so applying
it replaces the chart's (which trusts other certificates and would fail every migrated image under the default
``all`` policy). The Policy asks for one passing notation signature per image.
"""

from __future__ import annotations

from typing import Any

from . import gatekeeper
from .base import NOTATION_ARTIFACT_TYPE, PREFIX, AdmissionInput, Document, Rendered, pem

API = "config.ratify.deislabs.io/v1beta1"
VERIFIER_NAME = "verifier-notation"
POLICY_NAME = "ratify-policy"  # the only Policy name Ratify reads
STORE_NAME = "store-oras"  # the chart's store: replaced to carry the pull secret


def kmp_name(kind: str, store: str) -> str:
    return f"{PREFIX}-{kind}-{store}"


def render(inp: AdmissionInput) -> Rendered:
    providers: list[Document] = []
    cert_stores: dict[str, dict[str, list[str]]] = {}
    for kind in ("ca", "tsa"):
        for store, certs in inp.all_stores(kind):
            providers.append(
                {
                    "apiVersion": API,
                    "kind": "KeyManagementProvider",
                    "metadata": {"name": kmp_name(kind, store)},
                    "spec": {
                        "type": "inline",
                        "parameters": {"contentType": "certificate", "value": "".join(pem(c) for c in certs)},
                    },
                }
            )
            # Ratify maps each Notation trust store of the policy to the KMP resources holding its certificates.
            cert_stores.setdefault(kind, {})[store] = [kmp_name(kind, store)]
    verifier: Document = {
        "apiVersion": API,
        "kind": "Verifier",
        "metadata": {"name": VERIFIER_NAME},
        "spec": {
            "name": "notation",
            "type": "notation",
            "artifactTypes": NOTATION_ARTIFACT_TYPE,
            # Ratify is asked about the reference the template qualified (docker.io/library/…, host in lower
            # case) and looks its repository up in the scopes exactly.
            "parameters": {"verificationCertStores": cert_stores, "trustPolicyDoc": inp.canonical_trust_policy()},
        },
    }
    policy: Document = {
        "apiVersion": API,
        "kind": "Policy",
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "type": "config-policy",
            "parameters": {"artifactVerificationPolicies": {NOTATION_ARTIFACT_TYPE: "any"}},
        },
    }
    files: list[tuple[str, list[Document]]] = [
        ("ratify/keymanagementproviders.yaml", providers),
        ("ratify/verifier.yaml", [verifier]),
        ("ratify/policy.yaml", [policy]),
    ]
    if inp.pull_secret:
        parameters: dict[str, Any] = {
            "authProvider": {"name": "k8Secrets", "secrets": [{"secretName": inp.pull_secret}]}
        }
        store_doc: Document = {
            "apiVersion": API,
            "kind": "Store",
            "metadata": {"name": STORE_NAME},
            "spec": {"name": "oras", "parameters": parameters},
        }
        files.append(("ratify/store.yaml", [store_doc]))
    files += gatekeeper.files(inp, provider="ratify-provider", success_field="isSuccess")
    return Rendered(files=files)
