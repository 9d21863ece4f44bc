"""Kyverno ``policies.kyverno.io/v1`` ``ImageValidatingPolicy``: one per trust-policy statement (the default form).

Kyverno's notary attestor checks the certificate chain (``certs``) and timestamps (``tsaCerts``), not the subject:
the statement's trusted identities are not enforced, which ``any_identity_gaps`` reports per statement.
"""

from __future__ import annotations

from typing import Any

from ..gaps import Gap
from .base import PREFIX, WEBHOOK_TIMEOUT_SECONDS, AdmissionInput, Document, Rendered, any_identity_gaps, enforcing
from .image_names import ivp_globs as globs

API = "policies.kyverno.io/v1"
ACTIONS = {"strict": ["Deny"], "permissive": ["Warn", "Audit"], "audit": ["Audit"]}
# Every image of the pod that matchImageReferences selected must carry one signature that verifies.
EXPRESSION = "images.all(kind, images[kind].all(image, verifyImageSignatures(image, [attestors.notary]) > 0))"


def policy_name(statement: dict[str, Any]) -> str:
    return f"{PREFIX}-{statement['name']}"


def namespace_selector(namespaces: tuple[str, ...]) -> dict[str, Any]:
    return {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": list(namespaces)}]}


def _policy(inp: AdmissionInput, statement: dict[str, Any]) -> Document:
    notary: dict[str, Any] = {"certs": {"value": inp.pem_bundle(statement, "ca")}}
    tsa = inp.pem_bundle(statement, "tsa")
    if tsa:
        notary["tsaCerts"] = {"value": tsa}
    constraints: dict[str, Any] = {
        "resourceRules": [
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}
        ]
    }
    if inp.namespaces:
        constraints["namespaceSelector"] = namespace_selector(inp.namespaces)
    blocking = enforcing(inp.level)
    spec: dict[str, Any] = {
        "validationActions": ACTIONS[inp.level],
        "failurePolicy": "Fail",
        "webhookConfiguration": {"timeoutSeconds": WEBHOOK_TIMEOUT_SECONDS},
        "matchConstraints": constraints,
        "matchImageReferences": [{"glob": g} for scope in statement["registryScopes"] for g in globs(str(scope))],
        # Rewriting tags to digests changes workloads; only a policy that blocks may do it (Kyverno refuses
        # mutateDigest with Audit on ClusterPolicy, and a report-only phase must not alter pods).
        "validationConfigurations": {"mutateDigest": blocking, "verifyDigest": blocking, "required": True},
        "attestors": [{"name": "notary", "notary": notary}],
        "validations": [
            {
                "expression": EXPRESSION,
                "message": f"image is not signed by a signer of trust-policy statement {statement['name']}",
            }
        ],
    }
    if inp.pull_secret:
        spec["credentials"] = {"secrets": [inp.pull_secret]}
    return {
        "apiVersion": API,
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": policy_name(statement)},
        "spec": spec,
    }


def render(inp: AdmissionInput) -> Rendered:
    documents = [_policy(inp, statement) for statement in inp.statements()]
    gaps = any_identity_gaps(inp)
    # Kyverno builds its own trust policy around tsaCerts with Notation's default verifyTimestamp (always).
    gaps += [
        Gap("kyverno-timestamp-always", st["name"], tuple(st["registryScopes"]))
        for st in inp.statements()
        if inp.store_names(st, "tsa") and st["signatureVerification"].get("verifyTimestamp", "always") != "always"
    ]
    return Rendered(files=[("kyverno/imagevalidatingpolicies.yaml", documents)], gaps=gaps)
