"""The Gatekeeper ConstraintTemplate and Constraint that send migrated images to Ratify's external data provider.

Shared by Ratify v1 (provider ``ratify-provider``, result field ``isSuccess``) and v2 (``ratify-gatekeeper-provider``,
``succeeded``). The template only asks Ratify about images of the migrated repositories (``parameters.repositories``):
any other image would have no trust-policy statement, fail verification and be denied.
"""

from __future__ import annotations

from typing import Any

from .base import PREFIX, AdmissionInput, Document

TEMPLATE_API = "templates.gatekeeper.sh/v1"
CONSTRAINT_API = "constraints.gatekeeper.sh/v1beta1"
KIND = "RatifyVerification"
CONSTRAINT_NAME = f"{PREFIX}-verify"
ACTIONS = {"strict": "deny", "permissive": "warn", "audit": "dryrun"}

_REGO = """package ratifyverification

pod_image[img] { img := input.review.object.spec.containers[_].image }
pod_image[img] { img := input.review.object.spec.initContainers[_].image }
pod_image[img] { img := input.review.object.spec.ephemeralContainers[_].image }

migrated(img) {
  repo := input.parameters.repositories[_]
  startswith(img, concat("", [repo, ":"]))
}

migrated(img) {
  repo := input.parameters.repositories[_]
  startswith(img, concat("", [repo, "@"]))
}

checked := [img | pod_image[img]; migrated(img)]

ratify := external_data({"provider": "@PROVIDER@", "keys": checked})

violation[{"msg": msg}] {
  count(checked) > 0
  ratify.system_error != ""
  msg := sprintf("Ratify external data provider failed: %s", [ratify.system_error])
}

violation[{"msg": msg}] {
  count(checked) > 0
  count(ratify.errors) > 0
  msg := sprintf("Ratify could not verify: %v", [ratify.errors])
}

violation[{"msg": msg}] {
  count(checked) > 0
  result := ratify.responses[_]
  result[1].@FIELD@ == false
  msg := sprintf("image %s has no Notation signature that verifies under the migrated trust policy", [result[0]])
}
"""


TEMPLATE_FILE = "ratify/constrainttemplate.yaml"
# Its own directory: the constraint's kind exists only once Gatekeeper has turned the template into a CRD, so it is
# applied after the template (runbook 04), never in the same `kubectl apply`.
CONSTRAINT_FILE = "ratify/constraint/ratifyverification.yaml"


def files(inp: AdmissionInput, *, provider: str, success_field: str) -> list[tuple[str, list[Document]]]:
    template, constraint = documents(inp, provider=provider, success_field=success_field)
    return [(TEMPLATE_FILE, [template]), (CONSTRAINT_FILE, [constraint])]


def documents(inp: AdmissionInput, *, provider: str, success_field: str) -> list[Document]:
    rego = _REGO.replace("@PROVIDER@", provider).replace("@FIELD@", success_field)
    template: Document = {
        "apiVersion": TEMPLATE_API,
        "kind": "ConstraintTemplate",
        "metadata": {"name": KIND.lower()},
        "spec": {
            "crd": {
                "spec": {
                    "names": {"kind": KIND},
                    "validation": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"repositories": {"type": "array", "items": {"type": "string"}}},
                        }
                    },
                }
            },
            "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego": rego}],
        },
    }
    match: dict[str, Any] = {"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}]}
    if inp.namespaces:
        match["namespaces"] = list(inp.namespaces)
    constraint: Document = {
        "apiVersion": CONSTRAINT_API,
        "kind": KIND,
        "metadata": {"name": CONSTRAINT_NAME},
        "spec": {
            "enforcementAction": ACTIONS[inp.level],
            "match": match,
            "parameters": {"repositories": inp.repositories()},
        },
    }
    return [template, constraint]
