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

# Legacy `rego` field, Rego v0 syntax: Gatekeeper parses a source not marked `version: v1` as v0 (a `code` entry
# with `source.version: v1` exists only in recent releases), so the template loads on old and new Gatekeepers alike.
# Fail closed: an image of a migrated repository is admitted only on an explicit success verdict from Ratify; an error,
# a provider failure, a missing verdict or a verdict without the success field each deny it.
_REGO = """package ratifyverification

# The pod spec of the reviewed object: a Pod, a workload's pod template, or a CronJob's job template.
pod_spec[spec] {
  input.review.object.kind == "Pod"
  spec := input.review.object.spec
}

pod_spec[spec] {
  spec := input.review.object.spec.template.spec
}

pod_spec[spec] {
  spec := input.review.object.spec.jobTemplate.spec.template.spec
}

pod_image[img] { img := pod_spec[_].containers[_].image }
pod_image[img] { img := pod_spec[_].initContainers[_].image }
pod_image[img] { img := pod_spec[_].ephemeralContainers[_].image }

# The repository path of an image reference as written: without its tag and digest.
written_path(img) = path {
  parts := split(split(img, "@")[0], "/")
  last := parts[count(parts) - 1]
  path := concat("/", array.concat(array.slice(parts, 0, count(parts) - 1), [split(last, ":")[0]]))
}

# The first component names a registry (as the container runtime reads it) when it has a dot, a port or capitals,
# or is localhost; any other name is a Docker Hub repository.
registry_host(first) { contains(first, ".") }
registry_host(first) { contains(first, ":") }
registry_host(first) { first == "localhost" }
registry_host(first) { lower(first) != first }

# registry-1.docker.io is the same registry by its API host name: asked about under its docker.io name.
docker_hub := {"docker.io", "index.docker.io", "registry-1.docker.io"}

hub_repository(path) = repo {
  not contains(path, "/")
  repo := concat("/", ["docker.io/library", path])
}

hub_repository(path) = repo {
  contains(path, "/")
  repo := concat("/", ["docker.io", path])
}

# The fully qualified repository the runtime pulls from: `alpine` is docker.io/library/alpine, so a short name or an
# index.docker.io name cannot slip past a migrated Docker Hub repository.
# Host names are compared in lower case: REG.EXAMPLE reaches the same registry as reg.example.
repository(path) = repo {
  parts := split(path, "/")
  count(parts) > 1
  registry_host(parts[0])
  not docker_hub[lower(parts[0])]
  repo := concat("/", array.concat([lower(parts[0])], array.slice(parts, 1, count(parts))))
}

repository(path) = repo {
  parts := split(path, "/")
  count(parts) > 1
  docker_hub[lower(parts[0])]
  repo := hub_repository(concat("/", array.slice(parts, 1, count(parts))))
}

repository(path) = repo {
  parts := split(path, "/")
  not registry_host(parts[0])
  repo := hub_repository(path)
}

repository(path) = repo {
  not contains(path, "/")
  registry_host(path)
  repo := hub_repository(path)
}

# The reference Ratify is asked about: the qualified repository with the image's tag and/or digest, `:latest` when it
# has neither (what the runtime pulls).
reference(img) = ref {
  path := written_path(img)
  rest := substring(img, count(path), -1)
  rest != ""
  ref := concat("", [repository(path), rest])
}

reference(img) = ref {
  path := written_path(img)
  img == path
  ref := concat("", [repository(path), ":latest"])
}

checked[ref] {
  img := pod_image[_]
  path := written_path(img)
  repository(path) == input.parameters.repositories[_]
  ref := reference(img)
}

ratify := external_data({"provider": "@PROVIDER@", "keys": sort(checked)})

provider_failed { ratify.system_error != "" }

verified[ref] {
  result := ratify.responses[_]
  result[1].@FIELD@ == true
  ref := result[0]
}

refused[ref] {
  result := ratify.responses[_]
  not result[1].@FIELD@ == true
  ref := result[0]
}

unverifiable[ref] { ref := ratify.errors[_][0] }

violation[{"msg": msg}] {
  count(checked) > 0
  provider_failed
  msg := sprintf("Ratify external data provider failed: %s", [ratify.system_error])
}

violation[{"msg": msg}] {
  checked[ref]
  failure := ratify.errors[_]
  failure[0] == ref
  msg := sprintf("Ratify could not verify image %s: %v", [ref, failure[1]])
}

violation[{"msg": msg}] {
  checked[ref]
  refused[ref]
  msg := sprintf("image %s has no Notation signature that verifies under the migrated trust policy", [ref])
}

violation[{"msg": msg}] {
  checked[ref]
  not provider_failed
  not verified[ref]
  not refused[ref]
  not unverifiable[ref]
  msg := sprintf("Ratify returned no verdict for image %s", [ref])
}
"""


# Pods, and the workloads whose pod templates the Rego reads, so `kubectl apply` of a Deployment is refused at once
# rather than its ReplicaSet failing to create pods later.
MATCH_KINDS = (
    {"apiGroups": [""], "kinds": ["Pod", "ReplicationController"]},
    {"apiGroups": ["apps"], "kinds": ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"]},
    {"apiGroups": ["batch"], "kinds": ["Job", "CronJob"]},
)

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
    match: dict[str, Any] = {"kinds": [{key: list(values) for key, values in kinds.items()} for kinds in MATCH_KINDS]}
    if inp.namespaces:
        match["namespaces"] = list(inp.namespaces)
    constraint: Document = {
        "apiVersion": CONSTRAINT_API,
        "kind": KIND,
        "metadata": {"name": CONSTRAINT_NAME},
        "spec": {
            "enforcementAction": ACTIONS[inp.level],
            "match": match,
            "parameters": {"repositories": inp.canonical_repositories()},
        },
    }
    return [template, constraint]
