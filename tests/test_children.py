"""Multi-arch (#19.3): `plan --children` signs each platform manifest a trusted index lists, after checking it is in
the registry with the listed size; the child jobs name their parent index (digest, tags, platform) in the plan and
in the signed annotations, and `sign` refuses a child job its parent index does not list. On docker-registry 2.8,
with an OCI index and a Docker manifest list.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dct2notation.cli import main
from dct2notation.oci import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    EMPTY_JSON,
    OCI_INDEX,
    OCI_MANIFEST,
    go_json,
    sha256_digest,
)
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.options import RegistryOptions
from tests.support.servers import Registry
from tests.test_batch import image_manifest, signatures_by_subject, unique_repo

pytestmark = pytest.mark.servers

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"


@pytest.fixture(scope="module")
def notation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dct2notation.keys.testcert import generate_test_key

    config = tmp_path_factory.mktemp("notation-children")
    generate_test_key("alpha", config, key_type="ec-p256", make_default=True)
    return config


def docker_manifest(label: str) -> bytes:
    return go_json(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": sha256_digest(EMPTY_JSON), "size": 2},
            "layers": [],
            "annotations": {"label": label},
        }
    )


class MultiArch:
    def __init__(self, repo: str, index: bytes, index_type: str, children: list[tuple[bytes, str, str]]) -> None:
        self.repo, self.index, self.index_type, self.children = repo, index, index_type, children

    @property
    def digest(self) -> str:
        return sha256_digest(self.index)


def push_multiarch(host: str, kind: str, *, wrong_size: bool = False, deleted_child: bool = False) -> MultiArch:
    """An index (OCI or Docker list) over amd64 and arm64/v8 manifests, tagged v1; optionally a third child listed
    with a size the registry does not have, or a child deleted after the index was pushed."""
    repo = unique_repo(f"children-{kind}")
    child_type, index_type = (OCI_MANIFEST, OCI_INDEX) if kind == "oci" else (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
    make = image_manifest if kind == "oci" else docker_manifest
    platforms = [("amd64", ""), ("arm64", "v8"), ("s390x", ""), ("ppc64le", "")]
    count = 2 + int(wrong_size) + int(deleted_child)
    children = [(make(f"{repo}-{arch}"), arch, variant) for arch, variant in platforms[:count]]
    entries: list[dict[str, Any]] = []
    for n, (raw, arch, variant) in enumerate(children):
        platform = {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}
        size = len(raw) + (1 if wrong_size and n == 2 else 0)
        entries.append({"mediaType": child_type, "digest": sha256_digest(raw), "size": size, "platform": platform})
    index = go_json({"schemaVersion": 2, "mediaType": index_type, "manifests": entries})
    with RegistryClient(host, RegistryOptions(insecure_registries=frozenset({host}))) as client:
        client.push_blob(repo, EMPTY_JSON)
        for raw, _, _ in children:
            client.put_manifest(repo, sha256_digest(raw), raw, child_type)
        client.put_manifest(repo, "v1", index, index_type)
        if deleted_child:
            client.delete_manifest(repo, sha256_digest(children[-1][0]))
    return MultiArch(repo, index, index_type, [(raw, arch, variant) for raw, arch, variant in children])


def write_inputs(tmp_path: Path, host: str, image: MultiArch) -> tuple[Path, Path]:
    gun = f"{host}/{image.repo}"
    doc = {
        "format": "dct2notation-inventory/1",
        "evaluated_at": "2026-01-01T00:00:00Z",
        "repositories": [
            {
                "gun": gun,
                "trusted_tags": [
                    {"tag": "v1", "digest": image.digest, "size": len(image.index), "role": "targets/releases"}
                ],
            }
        ],
    }
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(doc))
    signers = tmp_path / "signers.toml"
    signers.write_text(f'[[signer]]\ngun = "{gun}"\nrole = "targets/releases"\nkey = "alpha"\n')
    return inventory, signers


def plan_argv(inventory: Path, signers: Path, host: str, config: Path, out: Path) -> list[str]:
    return ["plan", str(inventory), "--signers", str(signers), "--children", "--insecure-registry", host,
            "--config-dir", str(config), "-o", str(out)]  # fmt: skip


@pytest.mark.parametrize("kind", ["oci", "docker"])
def test_children_of_an_index_are_planned_and_signed(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    image = push_multiarch(registry.host, kind)
    inventory, signers = write_inputs(tmp_path, registry.host, image)
    plan = tmp_path / "plan.json"
    assert main(plan_argv(inventory, signers, registry.host, notation_dir, plan)) == 0, capsys.readouterr().err
    doc = json.loads(plan.read_text())
    repository = f"{registry.host}/{image.repo}"
    jobs = doc["jobs"]
    assert [(j["digest"], j["size"], j["tags"], j.get("mediaType")) for j in jobs] == [
        (image.digest, len(image.index), ["v1"], image.index_type),
        *[(sha256_digest(raw), len(raw), [], OCI_MANIFEST if kind == "oci" else DOCKER_MANIFEST)
          for raw, _, _ in image.children],
    ]  # fmt: skip
    assert [j.get("parent") for j in jobs[1:]] == [
        {"digest": image.digest, "tags": ["v1"], "platform": "linux/amd64"},
        {"digest": image.digest, "tags": ["v1"], "platform": "linux/arm64/v8"},
    ]
    annotations = jobs[2]["annotations"]
    assert annotations["io.dct2notation.migration.index-digest"] == image.digest
    assert annotations["io.dct2notation.migration.index-tags"] == "v1"
    assert annotations["io.dct2notation.migration.platform"] == "linux/arm64/v8"
    assert doc["preflight"]["children"] == 2 and doc["preflight"]["jobs"] == 3
    assert all(j["repository"] == repository for j in jobs)
    capsys.readouterr()
    sign = ["sign", str(plan), "--inventory", str(inventory), "--config-dir", str(notation_dir),
            "--insecure-registry", registry.host]  # fmt: skip
    assert main(sign) == 0, capsys.readouterr().err
    digests = [image.digest, *(sha256_digest(raw) for raw, _, _ in image.children)]
    signed = signatures_by_subject(registry.host, image.repo, digests)
    assert [len(signed[d]) for d in digests] == [1, 1, 1]
    # check --children records each platform manifest with its own verdict.
    row = check_children(notation_dir, tmp_path, inventory, registry.host, repository)
    assert row["notation"] == "valid"
    assert [(c["digest"], c["platform"], c["notation"]) for c in row["children"]] == [
        (digests[1], "linux/amd64", "valid"),
        (digests[2], "linux/arm64/v8", "valid"),
    ]


def check_children(config: Path, tmp_path: Path, inventory: Path, host: str, repository: str) -> dict[str, Any]:
    policy = tmp_path / "trustpolicy.json"
    statement = {"name": "children", "registryScopes": [repository], "signatureVerification": {"level": "strict"},
                 "trustStores": ["ca:alpha"], "trustedIdentities": ["*"]}  # fmt: skip
    policy.write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
    args = ["check", "--inventory", str(inventory), "--policy", str(policy), "--truststore", str(config / "truststore"),
            "--insecure-registry", host, "--require", "notation", "--children", "--json", "--no-table"]  # fmt: skip
    from contextlib import redirect_stdout
    from io import StringIO

    out = StringIO()
    with redirect_stdout(out):
        code = main(args)
    assert code == 0, out.getvalue()
    rows = [r for r in json.loads(out.getvalue())["tags"] if r["tag"] == "v1"]
    assert len(rows) == 1
    return dict(rows[0])


def test_check_children_names_an_unsigned_platform_manifest(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --children only the index is signed: check --children shows both children missing."""
    image = push_multiarch(registry.host, "oci")
    inventory, signers = write_inputs(tmp_path, registry.host, image)
    plan = tmp_path / "plan.json"
    argv = plan_argv(inventory, signers, registry.host, notation_dir, plan)
    argv.remove("--children")
    assert main(argv) == 0, capsys.readouterr().err
    sign = ["sign", str(plan), "--inventory", str(inventory), "--config-dir", str(notation_dir),
            "--insecure-registry", registry.host]  # fmt: skip
    assert main(sign) == 0, capsys.readouterr().err
    capsys.readouterr()
    row = check_children(notation_dir, tmp_path, inventory, registry.host, f"{registry.host}/{image.repo}")
    assert row["notation"] == "valid"
    assert [(c["platform"], c["notation"], c["reason"]) for c in row["children"]] == [
        ("linux/amd64", "missing", "no signature is associated with the artifact"),
        ("linux/arm64/v8", "missing", "no signature is associated with the artifact"),
    ]


def test_children_missing_or_of_another_size_are_findings_not_jobs(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = push_multiarch(registry.host, "oci", wrong_size=True, deleted_child=True)
    inventory, signers = write_inputs(tmp_path, registry.host, image)
    plan = tmp_path / "plan.json"
    assert main(plan_argv(inventory, signers, registry.host, notation_dir, plan)) == 0, capsys.readouterr().err
    doc = json.loads(plan.read_text())
    assert [j["digest"] for j in doc["jobs"]] == [image.digest, *(sha256_digest(r) for r, _, _ in image.children[:2])]
    wrong, gone = (sha256_digest(raw) for raw, _, _ in image.children[2:])
    kinds = [(f["kind"], f["child"]) for f in doc["findings"]]
    assert kinds == [("child-size-mismatch", wrong), ("child-missing", gone)]
    assert doc["preflight"]["findings"] == {"child-size-mismatch": 1, "child-missing": 1}


def test_attack_child_job_not_listed_by_its_parent_index(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = push_multiarch(registry.host, "oci")
    inventory, signers = write_inputs(tmp_path, registry.host, image)
    plan = tmp_path / "plan.json"
    assert main(plan_argv(inventory, signers, registry.host, notation_dir, plan)) == 0, capsys.readouterr().err
    # Another manifest in the same repository, passed off as a child of the trusted index.
    intruder = image_manifest(f"{image.repo}-intruder")
    with RegistryClient(registry.host, RegistryOptions(insecure_registries=frozenset({registry.host}))) as client:
        client.put_manifest(image.repo, sha256_digest(intruder), intruder, OCI_MANIFEST)
    doc = json.loads(plan.read_text())
    added = json.loads(json.dumps(doc["jobs"][1]))
    added.update(digest=sha256_digest(intruder), size=len(intruder))
    doc["jobs"].append(added)
    plan.write_text(json.dumps(doc))
    capsys.readouterr()
    sign = ["sign", str(plan), "--inventory", str(inventory), "--config-dir", str(notation_dir),
            "--insecure-registry", registry.host]  # fmt: skip
    assert main(sign) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"dct2notation: error: {plan}: 1 platform manifest job(s) not vouched for; nothing signed: jobs[3]"
        f" {registry.host}/{image.repo}@{sha256_digest(intruder)}: not listed with size {len(intruder)} by index"
        f" {image.digest}\n"
    )
    assert signatures_by_subject(registry.host, image.repo, [image.digest]) == {image.digest: []}


def test_children_needs_the_preflight(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"format": "dct2notation-inventory/1", "evaluated_at": "2026-01-01T00:00:00Z",
                                     "repositories": []}))  # fmt: skip
    signers = tmp_path / "signers.toml"
    signers.write_text('[[signer]]\ngun = "example.com/*"\nrole = "targets/releases"\nkey = "alpha"\n')
    code = main(["plan", str(inventory), "--signers", str(signers), "--children", "--no-preflight", "-o", "x"])
    assert code == 2
    assert capsys.readouterr().err == (
        "dct2notation: error: plan --children: needs the registry pre-flight (not --no-preflight, not --oci-layout)\n"
    )


def test_signoff_records_a_child_and_holds_it_to_coverage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A child job in the plan (under a DCT-trusted index digest of the demo estate) with no signature in the bundle:
    the sign-off lists it in its coverage with its parent and is not ready because of it alone."""
    from tests.test_signoff import BASE, Estate, migrate_demo

    estate = migrate_demo(tmp_path / "demo")
    plan = json.loads(estate.plan.read_text())
    parent = next(j for j in plan["jobs"] if j["repository"] == BASE)
    child = json.loads(json.dumps(parent))
    child_digest = "sha256:" + "c" * 64
    child.update(digest=child_digest, size=10, tags=[], parent={"digest": parent["digest"], "tags": parent["tags"],
                                                                "platform": "linux/arm64"})  # fmt: skip
    child.pop("mediaType", None)
    plan["jobs"].append(child)
    edited = tmp_path / "plan-children.json"
    edited.write_text(json.dumps(plan))
    args = Estate(estate.work, edited, estate.policy).signoff_args(tmp_path / "bundle")
    capsys.readouterr()
    assert main(args) == 1
    record = json.loads((tmp_path / "bundle" / "SIGNOFF.json").read_text())
    reason = (
        f"{BASE}@{child_digest} ({BASE}: platform manifest of {parent['digest']}) is not covered: no Notation"
        " signature in the bundle"
    )
    assert record["reasons"] == [reason]
    rows = [c for c in record["coverage"] if c.get("parent")]
    assert [(c["digest"], c["parent"], c["tags"], c["covered"]) for c in rows] == [
        (child_digest, parent["digest"], [], False)
    ]
