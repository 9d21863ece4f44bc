"""Sign only what DCT trusted: the plan is bound to its inventory, and every job is checked against it before signing.

The attacker edits the plan file (or the ConfigMap carrying it): adds a job for a digest no DCT role trusted, widens a
job's tags or role, or hands `sign` another inventory. Against the real docker-registry 2.8: nothing gets signed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dct2notation.cli import main
from dct2notation.dct.inventory import load_inventory
from dct2notation.errors import InputError
from dct2notation.migrate.plan import UntrustedJobError, check_against_inventory, load_plan, plan_from_dict
from dct2notation.registry.options import RegistryOptions
from tests.support.plans import save_bound
from tests.support.servers import Registry
from tests.test_batch import make_plan, push_images, signatures_by_subject, unique_repo


@pytest.fixture(scope="module")
def notation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dct2notation.keys.testcert import generate_test_key

    config = tmp_path_factory.mktemp("notation-binding")
    generate_test_key("alpha", config, key_type="ec-p256", make_default=True)
    return config


def sign_argv(plan: Path, inventory: Path, config: Path, host: str) -> list[str]:
    return ["sign", str(plan), "--inventory", str(inventory), "--config-dir", str(config), "--insecure-registry", host]


def edit(plan: Path, change: Any) -> None:
    doc = json.loads(plan.read_text())
    change(doc)
    plan.write_text(json.dumps(doc))


def test_attack_plan_job_for_untrusted_digest(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = unique_repo("bind")
    trusted, untrusted = push_images(registry.host, repo, 2)
    plan_path = tmp_path / "plan.json"
    inventory = save_bound(make_plan(registry.host, repo, [trusted], ["alpha"], "m-bind"), plan_path)

    def add_job(doc: dict[str, Any]) -> None:
        job = json.loads(json.dumps(doc["jobs"][0]))
        job.update(digest=untrusted[2], size=untrusted[1], tags=[untrusted[0]])
        doc["jobs"].append(job)

    edit(plan_path, add_job)
    capsys.readouterr()
    assert main(sign_argv(plan_path, inventory, notation_dir, registry.host)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"dct2notation: error: {plan_path}: 1 job(s) do not match what DCT trusted in {inventory}; nothing signed: "
        f"jobs[1] {registry.host}/{repo}@{untrusted[2]} [alpha]: not a digest DCT trusted for GUN "
        f"'dct.example/{repo}'\n"
    )
    # Refused before any job: not even the trusted digest was signed, and no journal was started.
    assert signatures_by_subject(registry.host, repo, [trusted[2], untrusted[2]]) == {trusted[2]: [], untrusted[2]: []}
    assert not (tmp_path / "plan.json.journal.sqlite").exists()


def test_attack_plan_bound_to_another_inventory(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A forged inventory that trusts the added job is not the one the plan was made from: its digest differs."""
    repo = unique_repo("bind")
    images = push_images(registry.host, repo, 2)
    plan_path = tmp_path / "plan.json"
    real = save_bound(make_plan(registry.host, repo, images[:1], ["alpha"], "m-bind"), plan_path)
    bound = json.loads(plan_path.read_text())["inventory"]["digest"]
    forged = save_bound(make_plan(registry.host, repo, images, ["alpha"], "m-bind"), tmp_path / "forged-plan.json",
                        tmp_path / "forged.json")  # fmt: skip
    capsys.readouterr()
    assert main(sign_argv(plan_path, forged, notation_dir, registry.host)) == 2
    digest = load_inventory(forged).digest
    assert capsys.readouterr().err == (
        f"dct2notation: error: --inventory {forged}: {digest} is not the inventory {plan_path} was made from "
        f"({bound})\n"
    )
    assert real != forged
    assert signatures_by_subject(registry.host, repo, [d for _, _, d in images]) == {d: [] for _, _, d in images}


def test_attack_plan_stripped_of_its_inventory_binding(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = unique_repo("bind")
    images = push_images(registry.host, repo, 1)
    plan_path = tmp_path / "plan.json"
    inventory = save_bound(make_plan(registry.host, repo, images, ["alpha"], "m-bind"), plan_path)
    edit(plan_path, lambda doc: doc.pop("inventory"))
    capsys.readouterr()
    assert main(sign_argv(plan_path, inventory, notation_dir, registry.host)) == 2
    assert capsys.readouterr().err == (
        f"dct2notation: error: {plan_path}: field 'inventory' is missing: the plan is not bound to the inventory it "
        "was made from, so its jobs cannot be checked against what DCT trusted (make it again with `dct2notation "
        "plan`)\n"
    )
    assert signatures_by_subject(registry.host, repo, [images[0][2]]) == {images[0][2]: []}


def test_sign_without_inventory_is_refused(
    notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan_path = tmp_path / "plan.json"
    save_bound(make_plan("r.invalid", "x", [("v1", 1, "sha256:" + "ef" * 32)], ["alpha"], "m"), plan_path)
    assert main(["sign", str(plan_path), "--config-dir", str(notation_dir)]) == 2
    assert capsys.readouterr().err == (
        "dct2notation: error: sign PLAN: give --inventory FILE, the inventory the plan was made from (each job is "
        "checked against it before anything is signed)\n"
    )


D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda job: job.update(size=99), "size 99 is not the trusted TUF length 10"),
        (lambda job: job.update(tags=["v1", "latest"]), "tag(s) latest not trusted at this digest"),
        (
            lambda job: job["annotations"].update({"io.dct2notation.migration.role": "targets/releases,targets/ci"}),
            "role(s) targets/ci did not sign this digest",
        ),
        (
            lambda job: job["annotations"].update({"io.dct2notation.migration.gun": "dct.example/other"}),
            "not a digest DCT trusted for GUN 'dct.example/other'",
        ),
    ],
)
def test_attack_plan_job_widened_beyond_what_dct_trusted(tmp_path: Path, change: Any, reason: str) -> None:
    """The digest is trusted, but the job would sign more than DCT said: another size, tag, role or GUN."""
    plan_path = tmp_path / "plan.json"
    inventory = save_bound(make_plan("r.example", "app", [("v1", 10, D)], ["alpha"], "m"), plan_path)
    edit(plan_path, lambda doc: change(doc["jobs"][0]))
    with pytest.raises(UntrustedJobError) as caught:
        check_against_inventory(
            load_plan(plan_path), load_inventory(inventory), plan_where="plan.json", inventory_where="inv.json"
        )
    assert str(caught.value) == (
        f"plan.json: 1 job(s) do not match what DCT trusted in inv.json; nothing signed: jobs[0] r.example/app@{D} "
        f"[alpha]: {reason}"
    )


def test_many_untrusted_jobs_are_counted_and_the_first_five_named(tmp_path: Path) -> None:
    plan_path = tmp_path / "plan.json"
    digests = ["sha256:" + f"{n:02x}" * 32 for n in range(8)]
    inventory = save_bound(make_plan("r.example", "app", [("v0", 1, digests[0])], ["alpha"], "m"), plan_path)
    plan = make_plan("r.example", "app", [(f"v{n}", 1, d) for n, d in enumerate(digests)], ["alpha"], "m")
    plan.inventory = load_plan(plan_path).inventory
    with pytest.raises(UntrustedJobError) as caught:
        check_against_inventory(plan, load_inventory(inventory), plan_where="p", inventory_where="i")
    message = str(caught.value)
    assert message.startswith("p: 7 job(s) do not match what DCT trusted in i; nothing signed: jobs[1] ")
    assert message.endswith("; and 2 more")
    assert message.count("not a digest DCT trusted") == 5


@pytest.mark.parametrize(
    "binding",
    ["sha256:abc", {"digest": "md5:x", "evaluated_at": "t"}, {"digest": "sha256:" + "0" * 64}, ["x"]],
)
def test_malformed_inventory_binding_is_one_line(binding: Any) -> None:
    doc = {"format": "dct2notation-plan/1", "migration_id": "m", "inventory": binding, "jobs": []}
    with pytest.raises(InputError) as caught:
        plan_from_dict(doc, "plan.json")
    assert str(caught.value) == (
        'plan.json: field \'inventory\' must be {"digest": "sha256:<64 hex>", "evaluated_at": "<RFC 3339>"}'
    )


def test_plan_command_binds_the_plan_to_its_inventory_file(tmp_path: Path) -> None:
    from dct2notation.cli.migrate import make_plan as make_plan_from_file

    source = tmp_path / "plan-src.json"
    inventory = save_bound(make_plan("r.example", "app", [("v1", 10, D)], ["alpha"], "m"), source)
    plan = make_plan_from_file(inventory, lambda gun, role: "alpha", check=False, registry_options=RegistryOptions())
    loaded = load_inventory(inventory)
    assert plan.inventory is not None
    assert (plan.inventory.digest, plan.inventory.evaluated_at) == (loaded.digest, "2026-01-01T00:00:00Z")
    assert plan.to_dict()["inventory"] == {"digest": loaded.digest, "evaluated_at": "2026-01-01T00:00:00Z"}
    assert list(plan.to_dict())[:3] == ["format", "migration_id", "inventory"]
