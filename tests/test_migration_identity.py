"""One migration, one id: `plan` is deterministic, and `signoff` refuses files of another migration or inventory (#15).

Runbook 03.2 reran `plan … --emit-k8s-job`, which wrote a new random migration id into plan.json; the next `sign`
then failed ("journal belongs to migration …"), and `signoff --plan plan.json --journal journal.db` bundled the
other migration's journal without a word.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dct2notation.cli import main
from dct2notation.migrate.journal import Journal
from tests.test_signoff import Estate, migrate_demo


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Estate:
    return migrate_demo(tmp_path_factory.mktemp("identity"))


def signers(work: Path) -> Path:
    path = work / "signers.toml"
    path.write_text('[[signer]]\ngun = "registry.demo.local/*"\nrole = "*"\nkey = "demo"\n')
    return path


def plan(work: Path, out: Path, *extra: str) -> dict[str, object]:
    argv = ["plan", str(work / "inventory.json"), "--signers", str(signers(work)), "--no-preflight", "-o", str(out)]
    assert main([*argv, *extra]) == 0
    doc: dict[str, object] = json.loads(out.read_text())
    return doc


def test_plan_is_deterministic_and_emitting_the_job_does_not_change_it(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = plan(estate.work, tmp_path / "a.json")
    again = plan(estate.work, tmp_path / "b.json", "--emit-k8s-job", str(tmp_path / "job.yaml"))
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert first["migration_id"] == again["migration_id"]
    assert (tmp_path / "job.yaml").is_file()
    # An explicit --migration-id still wins.
    assert plan(estate.work, tmp_path / "c.json", "--migration-id", "m-1")["migration_id"] == "m-1"


def test_a_rerun_plan_keeps_its_journal(estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The journal bound by the first `sign` accepts the plan written again by a second `plan` run."""
    doc = plan(estate.work, tmp_path / "p.json")
    journal = Journal(tmp_path / "j.db")
    try:
        journal.bind_plan(str(doc["migration_id"]))
    finally:
        journal.close()
    rerun = plan(estate.work, tmp_path / "p.json", "--emit-k8s-job", str(tmp_path / "job.yaml"))
    journal = Journal(tmp_path / "j.db")
    try:
        journal.bind_plan(str(rerun["migration_id"]))  # raised "journal belongs to migration …" before
    finally:
        journal.close()


def signoff(estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str], **swap: Path) -> tuple[int, str]:
    args = estate.signoff_args(tmp_path / "bundle")
    for flag, path in swap.items():
        args[args.index("--" + flag.replace("_", "-")) + 1] = str(path)
    code = main(args)
    err = capsys.readouterr().err
    assert not (tmp_path / "bundle").exists() or code == 0
    return code, err


def test_signoff_refuses_a_journal_of_another_migration(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.db"
    journal = Journal(other)
    try:
        journal.bind_plan("another-migration")
    finally:
        journal.close()
    code, err = signoff(estate, tmp_path, capsys, journal=other)
    migration = json.loads(estate.plan.read_text())["migration_id"]
    assert code == 2
    assert err == (f"dct2notation: error: --journal {other}: belongs to migration 'another-migration', "
                   f"--plan {estate.plan} is {migration!r}\n")  # fmt: skip


def test_signoff_refuses_a_plan_made_from_another_inventory(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plan of another inventory made its digests 'no Notation signature' in the bundle, without a word."""
    doc = json.loads(estate.plan.read_text())
    dropped = doc["jobs"][0]
    doc["jobs"] = doc["jobs"][1:]
    other = tmp_path / "other-plan.json"
    other.write_text(json.dumps(doc))
    code, err = signoff(estate, tmp_path, capsys, plan=other)
    assert code == 2
    assert err.startswith(f"dct2notation: error: --plan {other} was not made from --inventory ")
    assert "1 trusted digest(s) of the inventory are not in the plan" in err and dropped["digest"] in err
    assert err.endswith("; re-run plan from it\n")


def test_signoff_refuses_a_check_of_other_dct_data(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check = json.loads((estate.work / "check.json").read_text())
    row = next(t for t in check["tags"] if t["dct"] == "valid")
    row["dct_digest"] = "sha256:" + "e" * 64
    other = tmp_path / "check.json"
    other.write_text(json.dumps(check))
    code, err = signoff(estate, tmp_path, capsys, check_json=other)
    assert code == 2
    assert f"--check-json {other}: {row['gun']}:{row['tag']} DCT digest sha256:{'e' * 64} is not" in err
    check["tags"] = [t for t in check["tags"] if t["gun"] != row["gun"]]
    other.write_text(json.dumps(check))
    code, err = signoff(estate, tmp_path, capsys, check_json=other)
    assert code == 2
    assert f"--check-json {other}: does not cover GUN {row['gun']} of --inventory" in err


def test_the_matching_files_still_make_a_ready_bundle(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = signoff(estate, tmp_path, capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "bundle" / "journal-summary.json").read_text())
    assert summary["migration_id"] == json.loads(estate.plan.read_text())["migration_id"]
    shutil.rmtree(tmp_path / "bundle")


def test_the_bundle_carries_the_policy_gaps(estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """GAPS.md / gaps.json were left out of the bundle: the auditor never saw what Notation does not enforce."""
    cert = estate.work / "notation" / "localkeys" / "demo.crt"
    toml = tmp_path / "signers.toml"
    toml.write_text(f'[[signer]]\ngun = "registry.demo.local/*"\nrole = "*"\nkey = "demo"\ncert_file = "{cert}"\n')
    policy = tmp_path / "policy"
    argv = ["policy", str(estate.work / "inventory.json"), "--signers", str(toml), "--ratify", "v2"]
    assert main([*argv, "-o", str(policy)]) == 0
    gaps = json.loads((policy / "gaps.json").read_text())["gaps"]
    assert gaps, "Ratify v2 runs one verifier for every scope: a gap to report"
    capsys.readouterr()
    code, err = signoff(estate, tmp_path, capsys, policy_dir=policy)
    assert code == 0, err
    bundle = tmp_path / "bundle"
    assert (bundle / "policy" / "GAPS.md").read_bytes() == (policy / "GAPS.md").read_bytes()
    assert (bundle / "policy" / "gaps.json").read_bytes() == (policy / "gaps.json").read_bytes()
    record = json.loads((bundle / "SIGNOFF.json").read_text())
    assert [g["what"] for g in record["gaps"]] == [g["what"] for g in gaps]
    report = (bundle / "REPORT.md").read_text()
    assert "## What the Notation policy does not enforce (policy/GAPS.md)" in report
    assert gaps[0]["what"] in report
    assert main(["signoff", "verify", str(bundle)]) == 0  # the gap files are inside the integrity manifest
