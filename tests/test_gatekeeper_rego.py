"""The Gatekeeper ConstraintTemplate `policy` emits, evaluated by the real OPA as Gatekeeper evaluates it.

The template's Rego is taken from the emitted YAML exactly as Gatekeeper takes it (``spec.targets[0].rego``; no libs)
and run by the pinned ``opa`` (scripts/peers.txt) the way Gatekeeper's Rego driver runs it (open-policy-agent/
frameworks ``constraint/pkg/client/drivers/rego``): parsed as Rego v0 (the legacy ``rego`` field carries no
``source.version``), OPA's own capabilities plus Gatekeeper's ``external_data`` builtin (one argument of any type, any
result), and ``input`` = ``{"review": …, "parameters": <the Constraint's spec.parameters>}``.

``external_data`` is replaced (``with external_data as …``) by a Rego function that answers what Gatekeeper returns
to a template: the provider's items split by ``NewRegoResponse`` into ``responses`` (``[key, value]``) and ``errors``
(``[key, error]``) with ``status_code`` and ``system_error``, or ``HandleError``'s shape (``responses``/``errors``
null) when the call itself failed or the provider name is unknown. The values are what Ratify's providers put there:
v1.4's ``VerificationResponse`` (``isSuccess``, ``verifierReports`` …) and v2's rendered ``ValidationResult``
(``succeeded``, ``artifactReports``). What OPA alone cannot run is Gatekeeper's Go side: the Constraint's ``match``
(kinds, namespaces) and what ``enforcementAction`` does with a violation; those are asserted on the emitted
Constraint, and every kind it matches is fed to the Rego.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dct2notation.cli import main
from dct2notation.keys.testcert import generate_test_key
from tests.support.admission_estate import LEVELS
from tests.support.peers import peer

HUB = "docker.io/library/alpine"
PRIVATE = "reg.example:5000/team/app"
DIGEST = "sha256:" + "ab" * 32
PROVIDERS = {"v1": "ratify-provider", "v2": "ratify-gatekeeper-provider"}
NO_SIGNATURE = "image {} has no Notation signature that verifies under the migrated trust policy"

# Gatekeeper's external_data as the template sees it (frameworks externaldata.NewRegoResponse / HandleError).
MOCK = """package mock

import rego.v1

external_data(request) := answer if {
  request.provider != data.provider.name
  answer := {"responses": null, "errors": null, "status_code": 400,
             "system_error": "key is not found in provider cache"}
}

external_data(request) := answer if {
  request.provider == data.provider.name
  data.provider.system_error != ""
  answer := {"responses": null, "errors": null, "status_code": 500, "system_error": data.provider.system_error}
}

external_data(request) := answer if {
  request.provider == data.provider.name
  data.provider.system_error == ""
  asked := [object.union({"key": key}, data.provider.items[key]) | some key in request.keys; data.provider.items[key]]
  items := array.concat(asked, data.provider.extra)
  answer := {
    "responses": [[item.key, item.value] | some item in items; object.get(item, "error", "") == ""],
    "errors": [[item.key, item.error] | some item in items; object.get(item, "error", "") != ""],
    "status_code": 200,
    "system_error": "",
  }
}
"""


def verdict(version: str, ref: str, ok: bool) -> dict[str, Any]:
    """The item value Ratify's provider returns for ``ref``: v1.4 httpserver VerificationResponse (config policy,
    result version 0.2.0) or v2's rendered ValidationResult."""
    if version == "v1":
        report: dict[str, Any] = {
            "subject": ref, "isSuccess": ok, "name": "verifier-notation", "verifierName": "verifier-notation",
            "type": "notation", "verifierType": "notation", "referenceDigest": "sha256:" + "cd" * 32,
            "artifactType": "application/vnd.cncf.notary.signature",
        }  # fmt: skip
        if ok:
            report["message"] = "Notation signature verification success"
            report["extensions"] = {"Issuer": "CN=rel", "SN": "CN=rel"}
        else:
            report["message"] = "Original Error: (signature is not produced by a trusted signer)"
            report["errorReason"] = "the signature's certificate chain does not contain any trusted certificate"
        return {"version": "0.2.0", "isSuccess": ok, "traceID": "9f2c", "timestamp": "2026-12-01T12:00:00.1Z",
                "verifierReports": [report]}  # fmt: skip
    result: dict[str, Any] = {"verifierName": "notation-dct2notation"}
    if ok:
        result["description"] = "Notation signature verification succeeded"
    else:
        result["errorReason"] = "the signature's certificate chain does not contain any trusted certificate"
    return {"succeeded": ok, "artifactReports": [{"subject": ref, "artifact": "sha256:" + "cd" * 32,
                                                   "results": [result]}]}  # fmt: skip


@pytest.fixture(scope="module")
def opa() -> Path:
    return peer("opa")


@pytest.fixture(scope="module")
def capabilities(opa: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    done = subprocess.run([str(opa), "capabilities", "--current"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    caps = json.loads(done.stdout)
    # frameworks drivers/rego/args.go: opatypes.NewFunction(opatypes.Args(opatypes.A), opatypes.A)
    caps["builtins"].append(
        {"name": "external_data", "decl": {"type": "function", "args": [{"type": "any"}], "result": {"type": "any"}}}
    )
    path = tmp_path_factory.mktemp("opa") / "capabilities.json"
    path.write_text(json.dumps(caps))
    return path


def emit(
    out: Path, *, ratify: str, level: str, guns: tuple[str, ...] = (HUB, PRIVATE)
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ConstraintTemplate and Constraint our CLI writes for ``guns`` (a Docker Hub and a private repository)."""
    config = out / "notation"
    generate_test_key("signer", config, key_type="ec-p256", days=2)
    repositories = []
    for gun in guns:
        tag = {"tag": "v1", "digest": DIGEST, "size": 1, "role": "targets"}
        repositories.append({"gun": gun, "trusted_tags": [tag], "signed_tags": [], "signers": [],
                             "administrative_keys": [], "conflicts": [], "delegations": [], "role_targets": {},
                             "root_version": 1})  # fmt: skip
    inventory = out / "inventory.json"
    inventory.write_text(json.dumps({"format": "dct2notation-inventory/1", "evaluated_at": "2026-01-01T00:00:00Z",
                                     "repositories": repositories}))  # fmt: skip
    signers = out / "signers.toml"
    signers.write_text("".join(f'[[signer]]\ngun = "{gun}"\nkey = "signer"\n\n' for gun in guns))
    args = ["policy", str(inventory), "--signers", str(signers), "--config-dir", str(config), "-o", str(out / "out"),
            "--ratify", ratify, "--level", level, "--namespace", "apps", "--namespace", "web"]  # fmt: skip
    assert main(args) == 0
    (template,) = yaml.safe_load_all((out / "out" / "ratify" / "constrainttemplate.yaml").read_text())
    (constraint,) = yaml.safe_load_all((out / "out" / "ratify" / "constraint" / "ratifyverification.yaml").read_text())
    return template, constraint


@pytest.fixture(scope="module", params=["v1", "v2"])
def emitted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    version = str(request.param)
    template, constraint = emit(tmp_path_factory.mktemp(f"gatekeeper-{version}"), ratify=version, level="strict")
    return {"version": version, "template": template, "constraint": constraint}


def pod(containers: list[str], init: list[str] | None = None, ephemeral: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": img} for i, img in enumerate(containers)]}
    if init:
        spec["initContainers"] = [{"name": f"i{i}", "image": img} for i, img in enumerate(init)]
    if ephemeral:
        spec["ephemeralContainers"] = [{"name": f"e{i}", "image": img} for i, img in enumerate(ephemeral)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": "apps"}, "spec": spec}


def review(obj: dict[str, Any]) -> dict[str, Any]:
    """Gatekeeper's admission review of ``obj`` (gkReview: the AdmissionRequest fields the template can read)."""
    group, _, version = obj["apiVersion"].rpartition("/")
    return {
        "kind": {"group": group, "version": version, "kind": obj["kind"]},
        "name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"], "operation": "CREATE",
        "object": obj,
    }  # fmt: skip


def evaluate(
    opa: Path,
    capabilities: Path,
    emitted: dict[str, Any],
    obj: dict[str, Any],
    items: dict[str, dict[str, Any]],
    tmp_path: Path,
    *,
    system_error: str = "",
    extra: tuple[dict[str, Any], ...] = (),
) -> list[str]:
    """The sorted violation messages of the emitted template for ``obj``, the provider answering ``items``."""
    (target,) = emitted["template"]["spec"]["targets"]
    (tmp_path / "template.rego").write_text(target["rego"])
    (tmp_path / "mock.rego").write_text(MOCK)
    provider = {
        "name": PROVIDERS[emitted["version"]],
        "system_error": system_error,
        "items": items,
        "extra": list(extra),
    }
    (tmp_path / "data.json").write_text(json.dumps({"provider": provider}))
    parameters = emitted["constraint"]["spec"]["parameters"]
    (tmp_path / "input.json").write_text(json.dumps({"review": review(obj), "parameters": parameters}))
    query = "data.ratifyverification.violation with external_data as data.mock.external_data"
    done = subprocess.run(
        [str(opa), "eval", "--v0-compatible", "--capabilities", str(capabilities), "--format", "json",
         "-d", str(tmp_path / "template.rego"), "-d", str(tmp_path / "mock.rego"), "-d", str(tmp_path / "data.json"),
         "-i", str(tmp_path / "input.json"), query],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    (result,) = json.loads(done.stdout)["result"]
    (expression,) = result["expressions"]
    assert all(set(v) == {"msg"} for v in expression["value"])
    return sorted(v["msg"] for v in expression["value"])


def answers(version: str, **refs: bool) -> dict[str, dict[str, Any]]:
    return {ref: {"value": verdict(version, ref, ok)} for ref, ok in refs.items()}


def test_template_compiles_as_gatekeeper_parses_it(opa: Path, capabilities: Path, emitted: dict[str, Any],
                                                   tmp_path: Path) -> None:  # fmt: skip
    (target,) = emitted["template"]["spec"]["targets"]
    assert set(target) == {"target", "rego"} and target["target"] == "admission.k8s.gatekeeper.sh"  # v0, no libs
    rego = tmp_path / "template.rego"
    rego.write_text(target["rego"])
    check = [str(opa), "check", "--v0-compatible", "--strict", str(rego)]
    done = subprocess.run([*check, "--capabilities", str(capabilities)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr + done.stdout
    # Without Gatekeeper's builtin declared, OPA refuses it: the capabilities file is what the check rests on.
    bare = subprocess.run(check, capture_output=True, text=True, timeout=60)
    assert bare.returncode != 0 and "undefined function external_data" in bare.stderr + bare.stdout
    assert f'"provider": "{PROVIDERS[emitted["version"]]}"' in target["rego"]


def test_every_image_verified_is_admitted_and_only_migrated_images_are_asked(
    opa: Path, capabilities: Path, emitted: dict[str, Any], tmp_path: Path
) -> None:
    v = emitted["version"]
    obj = pod([f"{PRIVATE}:v1", "other.example/tool:1", f"{PRIVATE}ication:v1"], init=[f"{HUB}:3.20"],
              ephemeral=[f"{PRIVATE}@{DIGEST}"])  # fmt: skip
    ok = answers(v, **{f"{PRIVATE}:v1": True, f"{HUB}:3.20": True, f"{PRIVATE}@{DIGEST}": True})
    assert evaluate(opa, capabilities, emitted, obj, ok, tmp_path) == []
    # Any key outside those three (other.example, the longer repository name) would get no verdict and be denied.
    assert evaluate(opa, capabilities, emitted, pod(["other.example/tool:1"]), {}, tmp_path) == []


def test_one_failed_image_is_named_alone(
    opa: Path, capabilities: Path, emitted: dict[str, Any], tmp_path: Path
) -> None:
    v = emitted["version"]
    obj = pod([f"{PRIVATE}:v1", f"{PRIVATE}:v2"], init=[f"{HUB}:3.20"])
    items = answers(v, **{f"{PRIVATE}:v1": True, f"{PRIVATE}:v2": False, f"{HUB}:3.20": True})
    assert evaluate(opa, capabilities, emitted, obj, items, tmp_path) == [NO_SIGNATURE.format(f"{PRIVATE}:v2")]


@pytest.mark.parametrize("where", ["initContainers", "ephemeralContainers"])
def test_init_and_ephemeral_containers_are_checked(
    opa: Path, capabilities: Path, emitted: dict[str, Any], tmp_path: Path, where: str
) -> None:
    v = emitted["version"]
    bad = f"{PRIVATE}:debug"
    obj = pod([f"{PRIVATE}:v1"], init=[bad] if where == "initContainers" else None,
              ephemeral=[bad] if where == "ephemeralContainers" else None)  # fmt: skip
    items = answers(v, **{f"{PRIVATE}:v1": True, bad: False})
    assert evaluate(opa, capabilities, emitted, obj, items, tmp_path) == [NO_SIGNATURE.format(bad)]


def test_provider_system_error_denies(opa: Path, capabilities: Path, emitted: dict[str, Any], tmp_path: Path) -> None:
    failure = 'failed to send external data request: Post "https://ratify.gatekeeper-system:6001/ratify/gatekeeper/v1/verify": context deadline exceeded'  # noqa: E501
    obj = pod([f"{PRIVATE}:v1"])
    got = evaluate(opa, capabilities, emitted, obj, {}, tmp_path, system_error=failure)
    assert got == [f"Ratify external data provider failed: {failure}"]
    # No migrated image: the provider is not asked, so its failure admits an unrelated pod.
    assert evaluate(opa, capabilities, emitted, pod(["other.example/tool:1"]), {}, tmp_path, system_error=failure) == []


def test_provider_item_errors_deny_that_image(
    opa: Path, capabilities: Path, emitted: dict[str, Any], tmp_path: Path
) -> None:
    v = emitted["version"]
    error = "EXECUTOR_FAILURE: failed to resolve the subject descriptor"
    items = {**answers(v, **{f"{PRIVATE}:v1": True}), f"{HUB}:3.20": {"error": error}}
    obj = pod([f"{PRIVATE}:v1", f"{HUB}:3.20"])
    assert evaluate(opa, capabilities, emitted, obj, items, tmp_path) == [
        f"Ratify could not verify image {HUB}:3.20: {error}"
    ]


def test_attack_short_image_name_slips_past_a_migrated_docker_hub_repository(
    opa: Path, capabilities: Path, emitted: dict[str, Any], tmp_path: Path
) -> None:
    """`alpine:3.20`, `library/alpine`, `index.docker.io/...`, `DOCKER.IO/...` all pull docker.io/library/alpine, and
    REG.EXAMPLE:5000 is reg.example:5000: each is asked about by its qualified reference (a tag-less one as :latest).
    The template at HEAD~ asked about none of them."""
    v = emitted["version"]
    written = {"alpine:3.20": f"{HUB}:3.20", "library/alpine": f"{HUB}:latest",
               f"index.docker.io/library/alpine@{DIGEST}": f"{HUB}@{DIGEST}", "docker.io/alpine:edge": f"{HUB}:edge",
               "registry-1.docker.io/library/alpine:3": f"{HUB}:3",
               "DOCKER.IO/library/alpine:4": f"{HUB}:4", "REG.EXAMPLE:5000/team/app:v2": f"{PRIVATE}:v2",
               PRIVATE: f"{PRIVATE}:latest"}  # fmt: skip
    for image, ref in written.items():
        assert evaluate(opa, capabilities, emitted, pod([image]), answers(v, **{ref: False}), tmp_path) == [
            NO_SIGNATURE.format(ref)
        ], image
        assert evaluate(opa, capabilities, emitted, pod([image]), answers(v, **{ref: True}), tmp_path) == [], image
    # Another Docker Hub repository (docker.io/library/alpinex, docker.io/acme/alpine) is not migrated: not asked.
    assert evaluate(opa, capabilities, emitted, pod(["alpinex:1", "acme/alpine:1"]), {}, tmp_path) == []


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_attack_repository_spelled_otherwise_in_the_inventory_is_never_asked(
    opa: Path, capabilities: Path, tmp_path: Path, version: str
) -> None:
    """A GUN written `REG.EXAMPLE:5000/team/app`, `index.docker.io/library/busybox` or `docker.io/nginx` went into
    ``parameters.repositories`` as written, while the template compares qualified references (lower-case host,
    docker.io/library/…): no image of those repositories was ever asked about, so unsigned ones were admitted."""
    guns = ("REG.EXAMPLE:5000/team/app", "index.docker.io/library/busybox", "docker.io/nginx")
    template, constraint = emit(tmp_path / "emit", ratify=version, level="strict", guns=guns)
    assert constraint["spec"]["parameters"]["repositories"] == [
        "docker.io/library/busybox", "docker.io/library/nginx", "reg.example:5000/team/app",
    ]  # fmt: skip
    emitted = {"version": version, "template": template, "constraint": constraint}
    written = {"reg.example:5000/team/app:v1": f"{PRIVATE}:v1", "REG.EXAMPLE:5000/team/app:v1": f"{PRIVATE}:v1",
               "busybox:1": "docker.io/library/busybox:1", "index.docker.io/library/busybox:1":
               "docker.io/library/busybox:1", "nginx": "docker.io/library/nginx:latest"}  # fmt: skip
    for image, ref in written.items():
        got = evaluate(opa, capabilities, emitted, pod([image]), answers(version, **{ref: False}), tmp_path)
        assert got == [NO_SIGNATURE.format(ref)], image


def test_attack_provider_answer_missing_or_malformed_verdict_admits(
    opa: Path, capabilities: Path, emitted: dict[str, Any], tmp_path: Path
) -> None:
    """Fail closed: only an explicit success admits (the template at HEAD~ admitted all three)."""
    v = emitted["version"]
    field = "isSuccess" if v == "v1" else "succeeded"
    obj = pod([f"{PRIVATE}:v1", f"{PRIVATE}:v2", f"{PRIVATE}:v3"])
    without_field = {k: val for k, val in verdict(v, f"{PRIVATE}:v2", False).items() if k != field}
    as_string = {**verdict(v, f"{PRIVATE}:v3", True), field: "true"}
    items = {f"{PRIVATE}:v2": {"value": without_field}, f"{PRIVATE}:v3": {"value": as_string}}
    assert evaluate(opa, capabilities, emitted, obj, items, tmp_path) == [
        f"Ratify returned no verdict for image {PRIVATE}:v1",
        NO_SIGNATURE.format(f"{PRIVATE}:v2"),
        NO_SIGNATURE.format(f"{PRIVATE}:v3"),
    ]
    # An item twice, success and failure, is taken at its failure; an item about a key not asked changes nothing.
    ok = answers(v, **{f"{PRIVATE}:v1": True})
    extra = ({"key": f"{PRIVATE}:v1", "value": verdict(v, f"{PRIVATE}:v1", False)},
             {"key": "other.example/tool:1", "value": verdict(v, "other.example/tool:1", False)})  # fmt: skip
    got = evaluate(opa, capabilities, emitted, pod([f"{PRIVATE}:v1"]), ok, tmp_path, extra=extra)
    assert got == [NO_SIGNATURE.format(f"{PRIVATE}:v1")]
    assert evaluate(opa, capabilities, emitted, pod([f"{PRIVATE}:v1"]), ok, tmp_path, extra=extra[1:]) == []


def test_odd_image_strings_never_break_the_evaluation(
    opa: Path, capabilities: Path, emitted: dict[str, Any], tmp_path: Path
) -> None:
    """Gatekeeper turns an evaluation error (e.g. a function with two outputs, eval_conflict_error) into one violation
    per constraint carrying the error text (frameworks drivers/rego Driver.Query): the pod would get an opaque verdict
    instead of its own. Whatever an image string holds, the template evaluates and names the unsigned image beside
    it; malformed references of a migrated repository are denied."""
    v = emitted["version"]
    odd = ["", "/", "//", ":", "@", "a/", "/a", "localhost", "localhost/alpine", "Docker.io/alpine", "docker.io",
           "docker.io/", "index.docker.io", "alpine:3:4", "alpine@sha256:x@y", "a:b/c", "ünï/cödé:1", "x" * 5000,
           f"{PRIVATE}/", f"{PRIVATE}:", f"{PRIVATE}@", f"{HUB}:"]  # fmt: skip
    bad = f"{PRIVATE}:v1"
    items = answers(v, **{bad: False})
    got = evaluate(opa, capabilities, emitted, pod([bad, *odd]), items, tmp_path)
    # Malformed references of a migrated repository are asked about as written and, with no verdict, denied.
    assert got == [
        f"Ratify returned no verdict for image {HUB}:",
        f"Ratify returned no verdict for image {HUB}:3:4",
        f"Ratify returned no verdict for image {HUB}:latest",  # Docker.io/alpine
        f"Ratify returned no verdict for image {HUB}@sha256:x@y",
        f"Ratify returned no verdict for image {PRIVATE}:",
        f"Ratify returned no verdict for image {PRIVATE}@",
        NO_SIGNATURE.format(bad),
    ]


def workload(kind: str, image: str) -> dict[str, Any]:
    """``kind`` as the API server hands it to Gatekeeper: its pod spec where that kind keeps it."""
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image}]}}
    meta = {"name": "web", "namespace": "apps"}
    api = {"Pod": "v1", "ReplicationController": "v1", "Job": "batch/v1", "CronJob": "batch/v1"}.get(kind, "apps/v1")
    if kind == "Pod":
        return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": template["spec"]}
    if kind == "CronJob":
        spec: dict[str, Any] = {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}}
        return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": {"replicas": 1, "template": template}}


def test_every_kind_the_constraint_matches_is_checked(
    opa: Path, capabilities: Path, emitted: dict[str, Any], tmp_path: Path
) -> None:
    v = emitted["version"]
    match = emitted["constraint"]["spec"]["match"]
    assert match["namespaces"] == ["apps", "web"]
    kinds = [(group, kind) for entry in match["kinds"] for group in entry["apiGroups"] for kind in entry["kinds"]]
    assert kinds == [("", "Pod"), ("", "ReplicationController"), ("apps", "Deployment"), ("apps", "ReplicaSet"),
                     ("apps", "StatefulSet"), ("apps", "DaemonSet"), ("batch", "Job"),
                     ("batch", "CronJob")]  # fmt: skip
    bad = f"{PRIVATE}:v9"
    for group, kind in kinds:
        obj = workload(kind, bad)
        assert obj["apiVersion"].rpartition("/")[0] == group
        got = evaluate(opa, capabilities, emitted, obj, answers(v, **{bad: False}), tmp_path)
        assert got == [NO_SIGNATURE.format(bad)], kind
        assert evaluate(opa, capabilities, emitted, obj, answers(v, **{bad: True}), tmp_path) == [], kind
    # A kind without a pod spec where the template looks (a Service's spec) asks nothing and raises nothing.
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "apps"},
               "spec": {"containers": [{"image": bad}]}}  # fmt: skip
    assert evaluate(opa, capabilities, emitted, service, {}, tmp_path) == []


@pytest.mark.parametrize("level", LEVELS)
def test_level_sets_the_enforcement_action_not_the_verdicts(
    opa: Path, capabilities: Path, tmp_path: Path, level: str
) -> None:
    template, constraint = emit(tmp_path / "emit", ratify="v1", level=level)
    assert constraint["spec"]["enforcementAction"] == {"strict": "deny", "permissive": "warn", "audit": "dryrun"}[level]
    emitted = {"version": "v1", "template": template, "constraint": constraint}
    items = answers("v1", **{f"{PRIVATE}:v1": False})
    got = evaluate(opa, capabilities, emitted, pod([f"{PRIVATE}:v1"]), items, tmp_path)
    assert got == [NO_SIGNATURE.format(f"{PRIVATE}:v1")]
