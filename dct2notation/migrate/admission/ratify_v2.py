"""Ratify v2 (``config.ratify.sh/v2alpha1`` ``Executor``, provider ``ratify-gatekeeper-provider``), ``--ratify v2``.

v2.0.0-beta.1's notation verifier takes certificates, not a trust policy: one verifier covers every scope and no
identity is checked, so each statement's own identities and stores are lost (reported per statement). Its
registry-store reads credentials from the Executor itself or Azure workload identity, never from a Kubernetes secret,
so ``--pull-secret`` cannot be wired (reported as a gap).
"""

from __future__ import annotations

from typing import Any

from ..gaps import Gap
from . import gatekeeper
from .base import PREFIX, AdmissionInput, Document, Rendered, pem

API = "config.ratify.sh/v2alpha1"
VERIFIER = f"notation-{PREFIX}"


def render(inp: AdmissionInput) -> Rendered:
    certificates: list[dict[str, Any]] = [
        {"type": kind, "inline": "".join(pem(c) for c in certs)}
        for kind in ("ca", "tsa")
        for _store, certs in inp.all_stores(kind)
    ]
    executor: Document = {
        "apiVersion": API,
        "kind": "Executor",
        "metadata": {"name": PREFIX},
        "spec": {
            # Matched exactly against the reference the template qualified; the scopes as written are kept too.
            "scopes": sorted({*inp.repositories(), *inp.canonical_repositories()}),
            # v2.0.0-beta.1 refuses a registry-store without a credential provider ("credential provider options
            # cannot be nil"); static without a username or password reads anonymously, as the chart's default does.
            "stores": [{"type": "registry-store", "parameters": {"credential": {"provider": "static"}}}],
            "verifiers": [{"name": VERIFIER, "type": "notation", "parameters": {"certificates": certificates}}],
            "policyEnforcer": {
                "type": "threshold-policy",
                "parameters": {"policy": {"rules": [{"verifierName": VERIFIER}]}},
            },
        },
    }
    gaps = [Gap("ratify-v2-one-statement", st["name"], tuple(st["registryScopes"])) for st in inp.statements()]
    if inp.pull_secret:
        gaps.append(Gap("ratify-v2-no-pull-secret", inp.pull_secret, tuple(inp.repositories())))
    constraints = gatekeeper.files(inp, provider="ratify-gatekeeper-provider", success_field="succeeded")
    return Rendered(files=[("ratify/executor.yaml", [executor]), *constraints], gaps=gaps)
