"""Kyverno ``kyverno.io/v1`` ``ClusterPolicy`` for clusters older than Kyverno 1.17 (``--kyverno clusterpolicy``).

Uses the non-deprecated fields (``verifyImages[].failureAction``, ``spec.webhookConfiguration``); a rule that only
audits sets ``mutateDigest: false``, which Kyverno's admission requires. Its Notary rule takes no TSA roots.
"""

from __future__ import annotations

from typing import Any

from ..gaps import Gap
from .base import PREFIX, WEBHOOK_TIMEOUT_SECONDS, AdmissionInput, Document, Rendered, any_identity_gaps, enforcing
from .image_names import clusterpolicy_globs as globs

API = "kyverno.io/v1"
NAME = f"{PREFIX}-verify-images"


def _rule(inp: AdmissionInput, statement: dict[str, Any]) -> dict[str, Any]:
    blocking = enforcing(inp.level)
    resources: dict[str, Any] = {"kinds": ["Pod"]}
    if inp.namespaces:
        resources["namespaces"] = list(inp.namespaces)
    verify: dict[str, Any] = {
        "type": "Notary",
        "failureAction": "Enforce" if blocking else "Audit",
        "imageReferences": [g for scope in statement["registryScopes"] for g in globs(str(scope))],
        "mutateDigest": blocking,
        "verifyDigest": blocking,
        "required": True,
        "attestors": [{"count": 1, "entries": [{"certificates": {"cert": inp.pem_bundle(statement, "ca")}}]}],
    }
    if inp.pull_secret:
        verify["imageRegistryCredentials"] = {"secrets": [inp.pull_secret]}
    return {"name": statement["name"], "match": {"any": [{"resources": resources}]}, "verifyImages": [verify]}


def render(inp: AdmissionInput) -> Rendered:
    spec: dict[str, Any] = {
        "background": False,  # image verification is an admission-time check
        "emitWarning": inp.level == "permissive",
        "webhookConfiguration": {"failurePolicy": "Fail", "timeoutSeconds": WEBHOOK_TIMEOUT_SECONDS},
        "rules": [_rule(inp, statement) for statement in inp.statements()],
    }
    policy: Document = {"apiVersion": API, "kind": "ClusterPolicy", "metadata": {"name": NAME}, "spec": spec}
    gaps = any_identity_gaps(inp)
    gaps += [
        Gap("kyverno-clusterpolicy-no-tsa", st["name"], tuple(st["registryScopes"]))
        for st in inp.statements()
        if inp.store_names(st, "tsa")
    ]
    return Rendered(files=[("kyverno/clusterpolicy.yaml", [policy])], gaps=gaps)
