"""Plan building, the plan document, shard selection, pre-flight findings and the Kubernetes Job, each rule by rule."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dct2notation.cli.migrate import store_factory
from dct2notation.dct.inventory import Inventory
from dct2notation.errors import InputError, UsageError
from dct2notation.migrate.k8s import dump_manifests, indexed_job
from dct2notation.migrate.plan import (
    Job,
    Plan,
    UnmappedSignersError,
    build_plan,
    load_plan,
    map_repository,
    parse_registry_map,
    parse_shard,
    plan_from_dict,
    preflight,
    select_shard,
    shard_of,
)
from dct2notation.registry.options import RegistryOptions
from tests.support.servers import Registry
from tests.test_batch import push_images, unique_repo

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def inventory(*repos: dict[str, Any]) -> Inventory:
    return Inventory("2026-01-01T00:00:00Z", list(repos))


def repo(gun: str, *tags: tuple[str, str, int, str]) -> dict[str, Any]:
    return {"gun": gun, "trusted_tags": [{"tag": t, "digest": d, "size": s, "role": r} for t, d, s, r in tags]}


def mapping(table: dict[str, str]) -> Any:
    return lambda gun, role: table.get(role)


def test_one_job_per_subject_and_identity_with_tags_merged() -> None:
    inv = inventory(
        repo(
            "dct.example/app",
            ("v1", D1, 10, "targets/releases"),
            ("latest", D1, 10, "targets/releases"),
            ("v2", D2, 20, "targets"),
        )
    )
    plan = build_plan(
        inv,
        mapping({"targets/releases": "rel", "targets": "admin"}),
        migration_id="m1",
        registry_map=parse_registry_map(["dct.example=reg.local:5000/mirror"]),
    )
    assert [(j.repository, j.digest, j.identity, j.tags, j.role, j.size) for j in plan.jobs] == [
        ("reg.local:5000/mirror/app", D1, "rel", ("latest", "v1"), "targets/releases", 10),
        ("reg.local:5000/mirror/app", D2, "admin", ("v2",), "targets", 20),
    ]


def test_every_unmapped_signer_is_listed_at_once() -> None:
    inv = inventory(
        repo("a/one", ("v1", D1, 1, "targets/releases")),
        repo("a/two", ("v1", D2, 1, "targets"), ("v2", D3, 1, "targets/releases")),
    )
    with pytest.raises(UnmappedSignersError) as caught:
        build_plan(inv, mapping({}), migration_id="m")
    assert caught.value.message == (
        "signers: no Notation key mapped for DCT signer(s): "
        "a/one targets/releases, a/two targets, a/two targets/releases"
    )


def test_registry_map_longest_prefix_and_whole_segments() -> None:
    pairs = parse_registry_map(["dct.example=r/a", "dct.example/team=r/b/"])
    assert map_repository("dct.example/team/app", pairs) == "r/b/app"
    assert map_repository("dct.example/other", pairs) == "r/a/other"
    assert map_repository("dct.example-evil/app", pairs) == "dct.example-evil/app"
    with pytest.raises(UsageError, match="--registry-map 'nope': expected GUN_PREFIX=REGISTRY_PREFIX"):
        parse_registry_map(["nope"])


def test_shard_hash_is_stable_and_ignores_identity() -> None:
    # Pinned values: a process-salted hash() would change these between runs and split one subject's writers.
    assert [shard_of("r/app", d, 4) for d in (D1, D2, D3)] == [
        int.from_bytes(__import__("hashlib").sha256(f"r/app@{d}".encode()).digest()[:8], "big") % 4
        for d in (D1, D2, D3)
    ]
    jobs = [Job("r/app", d, 1, ident, "g", "targets", ("t",), "m") for d in (D1, D2, D3) for ident in ("a", "b")]
    parts = [select_shard(jobs, (i, 3)) for i in range(3)]
    assert sorted(j.key for p in parts for j in p) == sorted(j.key for j in jobs)
    for part in parts:
        subjects = {j.subject_key for j in part}
        assert {j.key for j in part} == {j.key for j in jobs if j.subject_key in subjects}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1", "--shard '1': expected i/N, e.g. 0/4"),
        ("a/4", "--shard 'a/4': expected i/N, e.g. 0/4"),
        ("4/4", "--shard '4/4': index must be in 0..N-1 and N at least 1"),
        ("0/0", "--shard '0/0': index must be in 0..N-1 and N at least 1"),
    ],
)
def test_bad_shard(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_shard(text)
    assert caught.value.message == message


def test_plan_document_round_trips(tmp_path: Path) -> None:
    plan = Plan("m9", [Job("r/app", D1, 5, "rel", "g/app", "targets/releases", ("v1", "v2"), "m9")])
    plan.save(tmp_path / "plan.json")
    doc = json.loads((tmp_path / "plan.json").read_text())
    assert doc["format"] == "dct2notation-plan/1"
    assert doc["jobs"][0]["annotations"]["io.dct2notation.migration.tags"] == "v1,v2"
    assert load_plan(tmp_path / "plan.json").jobs == plan.jobs


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "p: not a plan (expected format 'dct2notation-plan/1')"),
        ({"format": "dct2notation-plan/1", "jobs": []}, "p: field 'migration_id' must be str"),
        ({"format": "dct2notation-plan/1", "migration_id": "m", "jobs": [1]}, "p: jobs[0]: must be an object"),
        (
            {"format": "dct2notation-plan/1", "migration_id": "m", "jobs": [{"digest": "sha256:ab"}]},
            "p: jobs[0]: field 'digest' must be sha256:<64 hex>",
        ),
        (
            {
                "format": "dct2notation-plan/1",
                "migration_id": "m",
                "jobs": [{"repository": "r", "digest": D1, "size": True, "identity": "k", "tags": []}],
            },
            "p: jobs[0]: field 'size' must be int",
        ),
        (
            {
                "format": "dct2notation-plan/1",
                "migration_id": "m",
                "jobs": [{"repository": "r", "digest": D1, "size": 1, "identity": "k", "tags": []}] * 2,
            },
            f"p: jobs[1]: duplicate job r@{D1}#k",
        ),
    ],
)
def test_bad_plan_documents(doc: Any, message: str) -> None:
    with pytest.raises(InputError) as caught:
        plan_from_dict(doc, "p")
    assert caught.value.message == message


def test_unreadable_and_non_json_plans(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"absent.json: cannot read plan \(No such file or directory\)"):
        load_plan(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match=r"bad.json: plan is not valid JSON"):
        load_plan(tmp_path / "bad.json")


def test_preflight_drops_missing_manifests_and_reports_size_and_missing_tags(registry: Registry) -> None:
    name = unique_repo("pre")
    ((tag, size, digest),) = push_images(registry.host, name, 1)
    where = f"{registry.host}/{name}"
    plan = Plan(
        "m",
        [
            Job(where, digest, size + 1, "k", "g", "targets", (tag, "gone-tag"), "m"),
            Job(where, D3, 7, "k", "g", "targets", ("v9",), "m"),
        ],
    )
    stores = store_factory(RegistryOptions(insecure_registries=frozenset({registry.host})), None)
    asyncio.run(preflight(plan, stores))
    assert [j.digest for j in plan.jobs] == [digest]
    assert [(f["digest"], f["kind"]) for f in plan.findings] == [
        (digest, "size-mismatch"),
        (digest, "tag-missing"),
        (D3, "missing-manifest"),
    ]
    assert plan.findings[0]["detail"] == f"registry size {size} differs from TUF length {size + 1}"
    assert plan.preflight == {
        "subjects": 2,
        "jobs": 1,
        "findings": {"size-mismatch": 1, "tag-missing": 1, "missing-manifest": 1},
    }


def test_indexed_job_maps_completion_index_to_shard_and_journal() -> None:
    claim, job = yaml.safe_load_all(
        dump_manifests(indexed_job(name="sign", image="img:1", shards=3, plan_config_map="plan", key="rel"))
    )
    assert claim["kind"] == "PersistentVolumeClaim"
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 3
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [
        "sign",
        "/plan/plan.json",
        "--inventory",
        "/plan/inventory.json",
        "--shard",
        "$(JOB_COMPLETION_INDEX)/3",
        "--journal",
        "/journal/journal.sqlite",
        "--concurrency",
        "16",
        "--key",
        "rel",
    ]
    journal = next(m for m in container["volumeMounts"] if m["mountPath"] == "/journal")
    assert journal["subPathExpr"] == "shard-$(JOB_COMPLETION_INDEX)"
    with pytest.raises(UsageError, match="--k8s-name 'Bad_Name'"):
        indexed_job(name="Bad_Name", image="i", shards=1, plan_config_map="p")
    with pytest.raises(UsageError, match="--shards: must be at least 1"):
        indexed_job(name="ok", image="i", shards=0, plan_config_map="p")
