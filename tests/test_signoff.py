"""Sign-off bundle and its offline re-verification on the real demo estate (issue #8, must show 1-3)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from dct2notation.cli import main
from dct2notation.cli.migrate import make_plan, sign_plan
from dct2notation.config import DEFAULT_LIMITS, FixedClock, parse_rfc3339
from dct2notation.dct.inventory import build_inventory
from dct2notation.dct.source import ArchiveSource
from dct2notation.errors import GateFailed, InputError
from dct2notation.migrate.plan import Plan
from dct2notation.migrate.signoff import MANIFEST, BundleIntegrityError, verify_bundle, write_manifest
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.options import RegistryOptions
from tests.support.demo_registry import push_demo_images
from tests.support.servers import Registry

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"
EXPECTED = json.loads((DEMO / "expected.json").read_text())
BASE = "registry.demo.local/platform/base"


@dataclass
class Estate:
    work: Path
    plan: Path
    policy: Path

    def signoff_args(self, output: Path) -> list[str]:
        w = self.work
        return [
            "signoff",
            "--archive", str(w / "archive"),
            "--inventory", str(w / "inventory.json"),
            "--plan", str(self.plan),
            "--journal", str(w / "journal.db"),
            "--policy-dir", str(self.policy),
            "--oci-layout", str(w / "layout"),
            "--check-json", str(w / "check.json"),
            "-o", str(output),
        ]  # fmt: skip


def migrate_demo(work: Path, *, leave_unsigned: str | None = None) -> Estate:
    """archive -> inventory -> test key -> plan -> sign (OCI layout copy) -> trust policy, as the demo does."""
    at, guns = EXPECTED["evaluate_at"], EXPECTED["guns"]
    shutil.copytree(DEMO / "oci-layout", work / "layout")
    assert main(["archive", *guns, "--trust-dir", str(DEMO / "trust"), "--at", at, "-o", str(work / "archive")]) == 0
    inventory = build_inventory(guns, ArchiveSource(work / "archive"), FixedClock(parse_rfc3339(at)), DEFAULT_LIMITS)
    (work / "inventory.json").write_text(json.dumps(inventory.to_dict()))
    config = work / "notation"
    assert (
        main(["cert", "generate-test", "demo", "--key-type", "ec-p256", "--days", "30", "--config-dir", str(config)])
        == 0
    )
    plan = make_plan(work / "inventory.json", lambda gun, role: "demo", oci_layout=work / "layout")
    repositories = sorted({job.repository for job in plan.jobs})
    plan.save(work / "plan.json")
    if leave_unsigned is not None:
        # The signed plan omits one digest; the plan put in the bundle still lists it.
        signed = work / "plan-signed.json"
        doc = json.loads((work / "plan.json").read_text())
        doc["jobs"] = [job for job in doc["jobs"] if job["digest"] != leave_unsigned]
        signed.write_text(json.dumps(doc))
    else:
        signed = work / "plan.json"
    assert (
        sign_plan(
            plan=signed,
            inventory=work / "inventory.json",
            config_dir=config,
            oci_layout=work / "layout",
            journal=work / "journal.db",
            progress=False,
        )
        == 0
    )
    policy = work / "policy"
    policy.mkdir()
    statement = {
        "name": "demo",
        "registryScopes": repositories,
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:demo"],
        "trustedIdentities": ["*"],
    }
    (policy / "trustpolicy.json").write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
    shutil.copytree(config / "truststore", policy / "truststore")
    # The final coexistence run, by the real `check` (exit 1 when a tag misses the gate: that is evidence too).
    check = subprocess.run(
        [sys.executable, "-m", "dct2notation", "check", "--inventory", str(work / "inventory.json"),
         "--policy", str(policy / "trustpolicy.json"), "--truststore", str(policy / "truststore"),
         "--oci-layout", str(work / "layout"), "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert check.returncode == (0 if leave_unsigned is None else 1), check.stderr
    (work / "check.json").write_text(check.stdout)
    return Estate(work, work / "plan.json", policy)


@pytest.fixture(scope="module")
def ready_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    estate = migrate_demo(tmp_path_factory.mktemp("ready"))
    bundle = estate.work / "bundle"
    assert main(estate.signoff_args(bundle)) == 0
    return bundle


def bundle_copy(bundle: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    return copy


def all_trusted_digests() -> set[str]:
    return {digest for tags in EXPECTED["tags"].values() for digest in tags.values()}


def test_ready_bundle_holds_the_evidence_and_verifies(ready_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = json.loads((ready_bundle / "SIGNOFF.json").read_text())
    assert record["verdict"] == "ready"
    assert record["reasons"] == []
    assert record["dct_evaluated_at"] == EXPECTED["evaluate_at"]
    assert record["repositories"] == {
        "registry.demo.local/shop/frontend": {"digests": 2, "tags": 3, "covered": 2, "uncovered": 0},
        "registry.demo.local/shop/backend": {"digests": 2, "tags": 2, "covered": 2, "uncovered": 0},
        BASE: {"digests": 2, "tags": 2, "covered": 2, "uncovered": 0},
    }
    shared = next(c for c in record["coverage"] if c["tags"] == ["latest", "v1.1"])
    assert shared["digest"] == EXPECTED["tags"]["registry.demo.local/shop/frontend"]["latest"]
    # One signature per trusted digest (two tags on one digest share one), each with its manifest.
    envelopes = sorted((ready_bundle / "signatures").glob("*/*.cose"))
    assert {"sha256:" + p.parent.name for p in envelopes} == all_trusted_digests()
    assert len(envelopes) == 6
    assert all(p.with_suffix(".json").is_file() for p in envelopes)
    manifest = json.loads((ready_bundle / MANIFEST).read_text())
    listed = {f["path"] for f in manifest["files"]}
    on_disk = {p.relative_to(ready_bundle).as_posix() for p in ready_bundle.rglob("*") if p.is_file()} - {MANIFEST}
    assert listed == on_disk
    for required in (
        "inventory.json",
        "plan.json",
        "journal-summary.json",
        "policy/trustpolicy.json",
        "policy/truststore/x509/ca/demo/demo.crt",
        "archive/ARCHIVE.json",
        "REPORT.md",
        "REPORT.html",
    ):
        assert required in listed  # fmt: skip
    check = json.loads((ready_bundle / "check.json").read_text())
    assert check["summary"]["counts"]["ok"] == 7 and check["summary"]["unmet"] == 0  # qualified ref.names resolved
    journal = json.loads((ready_bundle / "journal-summary.json").read_text())
    assert journal["counts"] == {"signed": 6, "failed": 0, "pending": 0, "pushing": 0, "reused": 0}
    assert "**Verdict: ready**" in (ready_bundle / "REPORT.md").read_text()
    assert "<strong>Verdict: ready</strong>" in (ready_bundle / "REPORT.html").read_text()
    checked = verify_bundle(ready_bundle)
    assert checked.files == len(listed) and checked.verdict.ready
    capsys.readouterr()
    assert main(["signoff", "verify", str(ready_bundle)]) == 0
    out, err = capsys.readouterr()
    assert out == "ready\n"
    digest = hashlib.sha256((ready_bundle / MANIFEST).read_bytes()).hexdigest()
    assert err == f"{ready_bundle}: {len(listed)} file(s) intact; digest sha256:{digest}\n"


def test_editing_any_file_fails_verify_naming_it(ready_bundle: Path, tmp_path: Path) -> None:
    files = sorted(p.relative_to(ready_bundle).as_posix() for p in ready_bundle.rglob("*") if p.is_file())
    assert len(files) > 30
    for rel in files:
        copy = tmp_path / rel.replace("/", "_")
        shutil.copytree(ready_bundle, copy)
        with (copy / rel).open("ab") as fh:
            fh.write(b" ")
        with pytest.raises(BundleIntegrityError) as err:
            verify_bundle(copy)
        assert str(err.value).endswith(f"bundle changed since sign-off: edited {rel}"), rel


def test_deleted_envelope_and_added_file_are_named(
    ready_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = bundle_copy(ready_bundle, tmp_path)
    envelope = sorted((copy / "signatures").glob("*/*.cose"))[0]
    envelope.unlink()
    (copy / "notes.txt").write_text("added later")
    assert main(["signoff", "verify", str(copy)]) == 1
    err = capsys.readouterr().err
    rel = envelope.relative_to(copy).as_posix()
    assert err == f"dct2notation: error: {copy}: bundle changed since sign-off: missing {rel}, added notes.txt\n"


def test_resealed_tampering_is_caught_by_reverification(ready_bundle: Path, tmp_path: Path) -> None:
    """Someone who also rewrites MANIFEST.json still cannot pass: the evidence itself is re-verified."""
    copy = bundle_copy(ready_bundle, tmp_path)
    first, second = sorted((copy / "signatures").glob("*/*.cose"))[:2]
    shutil.copyfile(second, first)  # an envelope over another digest
    write_manifest(copy)
    with pytest.raises(GateFailed) as err:
        verify_bundle(copy)
    assert str(err.value) == f"{copy / 'SIGNOFF.json'}: records 'ready' but re-verification says 'not ready'"


def test_broken_dct_archive_in_bundle_is_not_ready(ready_bundle: Path, tmp_path: Path) -> None:
    copy = bundle_copy(ready_bundle, tmp_path)
    targets = copy / "archive" / BASE / "targets.json"
    doc = json.loads(targets.read_bytes())
    doc["signed"]["version"] += 1
    targets.write_bytes(json.dumps(doc).encode())
    record = json.loads((copy / "SIGNOFF.json").read_text())
    record["verdict"] = "not ready"  # a forger making the record match still gets a failing verify
    (copy / "SIGNOFF.json").write_text(json.dumps(record))
    write_manifest(copy)
    checked = verify_bundle(copy)
    assert not checked.verdict.ready
    assert list(checked.verdict.dct_failures) == [BASE]
    assert main(["signoff", "verify", str(copy)]) == 1


def test_uncovered_digest_is_not_ready_and_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = EXPECTED["tags"][BASE]["3.19"]
    estate = migrate_demo(tmp_path, leave_unsigned=missing)
    bundle = tmp_path / "bundle"
    capsys.readouterr()
    assert main(estate.signoff_args(bundle)) == 1
    out = capsys.readouterr().out
    reason = f"{BASE}@{missing} ({BASE}: 3.19) is not covered: no Notation signature in the bundle"
    gate = f"final coexistence run: 1 tag(s) do not meet --require both: {BASE}:3.19 (notation-missing)"
    assert out == f"not ready: {reason}; {gate}\n"
    record = json.loads((bundle / "SIGNOFF.json").read_text())
    assert record["verdict"] == "not ready" and record["reasons"] == [reason, gate]
    assert record["repositories"][BASE] == {"digests": 2, "tags": 2, "covered": 1, "uncovered": 1}
    assert "## Why not ready" in (bundle / "REPORT.md").read_text()
    assert missing in (bundle / "REPORT.html").read_text()
    assert main(["signoff", "verify", str(bundle)]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == f"dct2notation: error: {bundle}: not ready: {reason}; {gate}"


def test_signoff_input_errors(ready_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = ready_bundle.parent
    estate = Estate(work, work / "plan.json", work / "policy")

    def fails(args: list[str], message: str, code: int = 2) -> None:
        assert main(args) == code
        assert capsys.readouterr().err == f"dct2notation: error: {message}\n"

    fails(["signoff", "-o", str(tmp_path / "b")], "signoff: missing --archive, --inventory, --plan, --policy-dir")
    fails(estate.signoff_args(ready_bundle), f"-o {ready_bundle}: already exists; sign-off never overwrites evidence")
    args = estate.signoff_args(tmp_path / "b")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    fails(_swap(args, "--inventory", bad), f"{bad}: field 'evaluated_at' is missing")
    fails(_swap(args, "--plan", bad), f"{bad}: field 'jobs' must be a list")
    bad.write_text("{")
    fails(
        _swap(args, "--plan", bad),
        f"{bad}: the plan is not valid JSON"
        " (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
    )
    fails(
        _swap(args, "--archive", tmp_path),
        f"--archive {tmp_path}: no ARCHIVE.json (not an archive, or an incomplete one)",
    )
    fails(_swap(args, "--archive", bad), f"--archive {bad}: not a directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    fails(_swap(args, "--policy-dir", empty), f"--policy-dir {empty}: no trustpolicy.json or trustpolicy.oci.json")
    fails(_swap(args, "--journal", tmp_path / "nope.db"), f"--journal {tmp_path / 'nope.db'}: no such file")
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.partial").exists()
    fails(["signoff", "verify", str(bad)], f"{bad}: not a directory")
    fails(
        ["signoff", "verify", str(empty)],
        f"{empty / MANIFEST}: cannot read the bundle manifest (No such file or directory)",
        1,
    )
    (empty / MANIFEST).write_text(json.dumps({"format": "other/1", "files": []}, indent=2) + "\n")
    fails(
        ["signoff", "verify", str(empty)],
        f"{empty / MANIFEST}: format is 'other/1', expected 'dct2notation-signoff/1'",
        1,
    )


def _swap(args: list[str], flag: str, value: Path) -> list[str]:
    out = list(args)
    out[out.index(flag) + 1] = str(value)
    return out


def test_input_error_type_for_bad_record(ready_bundle: Path, tmp_path: Path) -> None:
    copy = bundle_copy(ready_bundle, tmp_path)
    (copy / "SIGNOFF.json").write_text("{}")
    write_manifest(copy)
    with pytest.raises(InputError) as err:
        verify_bundle(copy)
    assert str(err.value) == f"{copy / 'SIGNOFF.json'}: field 'dct_evaluated_at' is missing"


def test_unmet_final_check_alone_makes_not_ready(ready_bundle: Path, tmp_path: Path) -> None:
    copy = bundle_copy(ready_bundle, tmp_path)
    check = json.loads((copy / "check.json").read_text())
    row = check["tags"][0]
    row["requirement_met"], row["status"] = False, "drift"
    (copy / "check.json").write_text(json.dumps(check))
    record = json.loads((copy / "SIGNOFF.json").read_text())
    record["verdict"] = "not ready"
    (copy / "SIGNOFF.json").write_text(json.dumps(record))
    write_manifest(copy)
    verdict = verify_bundle(copy).verdict
    assert verdict.reasons == [
        f"final coexistence run: 1 tag(s) do not meet --require both: {row['repository']}:{row['tag']} (drift)"
    ]
    assert all(c.covered for c in verdict.coverage)


def registry_estate(registry: Registry, tmp_path: Path) -> tuple[list[str], Plan]:
    """The demo images in docker-registry (tag-schema referrers), signed by a plan: signoff args and the plan."""
    unique = uuid.uuid4().hex[:8]
    options = RegistryOptions(insecure_registries=frozenset({registry.host}))
    push_demo_images(registry.host, unique)
    estate = migrate_demo(tmp_path)  # the layout run gives archive, inventory, key and policy scopes to re-use
    mapping = [f"registry.demo.local={registry.host}/{unique}"]
    plan = make_plan(
        tmp_path / "inventory.json", lambda gun, role: "demo", registry_map=mapping, registry_options=options
    )
    plan.save(tmp_path / "plan-registry.json")
    assert sign_plan(
        plan=tmp_path / "plan-registry.json", inventory=tmp_path / "inventory.json",
        config_dir=tmp_path / "notation", registry_options=options,
        journal=tmp_path / "journal-registry.db", progress=False,
    ) == 0  # fmt: skip
    policy = json.loads((estate.policy / "trustpolicy.json").read_text())
    policy["trustPolicies"][0]["registryScopes"] = sorted({job.repository for job in plan.jobs})
    (estate.policy / "trustpolicy.json").write_text(json.dumps(policy))
    args = _swap(_swap(estate.signoff_args(tmp_path / "bundle"), "--plan", tmp_path / "plan-registry.json"),
                 "--journal", tmp_path / "journal-registry.db")  # fmt: skip
    layout_at = args.index("--oci-layout")
    check_at = args.index("--check-json")
    args = args[:layout_at] + args[layout_at + 2 : check_at] + args[check_at + 2 :]
    return [*args, "--insecure-registry", registry.host], plan


def test_signoff_reads_signatures_from_a_real_registry(registry: Registry, tmp_path: Path) -> None:
    """The registry path: subjects and signatures in docker-registry (tag-schema referrers), bundle verified offline."""
    args, plan = registry_estate(registry, tmp_path)
    assert main(args) == 0
    checked = verify_bundle(tmp_path / "bundle")
    assert checked.verdict.ready
    unique = plan.jobs[0].repository.split("/")[1]
    assert {c.repository for c in checked.verdict.coverage} == {
        f"{registry.host}/{unique}/shop/frontend", f"{registry.host}/{unique}/shop/backend",
        f"{registry.host}/{unique}/platform/base",
    }  # fmt: skip
    assert len(list((tmp_path / "bundle" / "signatures").glob("*/*.cose"))) == 6


def test_attack_dangling_referrer_blinds_signoff(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A signature manifest deleted behind its index entry: that digest is not covered, the sign-off still runs."""
    from tests.test_coexist_scenario import sign
    from tests.test_dangling_referrer import delete_signature

    args, plan = registry_estate(registry, tmp_path)
    options = RegistryOptions(insecure_registries=frozenset({registry.host}))
    only, twice = plan.jobs[0], plan.jobs[1]
    host, _, only_repo = only.repository.partition("/")
    twice_repo = twice.repository.partition("/")[2]
    sign(host, twice_repo, twice.digest, tmp_path / "notation", "demo")  # a second signature, then the first goes
    with RegistryClient(host, options) as client:
        gone = delete_signature(client, only_repo, only.digest, 0)
        delete_signature(client, twice_repo, twice.digest, 0)
    capsys.readouterr()
    assert main(args) == 1
    bundle = tmp_path / "bundle"
    record = json.loads((bundle / "SIGNOFF.json").read_text())
    uncovered = [c for c in record["coverage"] if not c["covered"]]
    assert [c["digest"] for c in uncovered] == [only.digest]
    reason = uncovered[0]["reason"]
    assert reason.startswith(f"no readable Notation signature in the bundle: signature {gone} unreadable at sign-off: ")
    assert "not found (404)" in reason
    assert len(record["reasons"]) == 1 and record["reasons"][0].endswith(f"is not covered: {reason}")
    assert capsys.readouterr().out == "not ready: " + record["reasons"][0] + "\n"
    assert (bundle / "signatures" / only.digest.removeprefix("sha256:") / "unreadable.jsonl").is_file()
    assert not verify_bundle(bundle).verdict.ready  # the recorded verdict re-verifies offline


def test_malformed_bundle_parts_are_named(ready_bundle: Path, tmp_path: Path) -> None:
    copy = bundle_copy(ready_bundle, tmp_path)
    (copy / MANIFEST).write_text("{")
    with pytest.raises(BundleIntegrityError) as err:
        verify_bundle(copy)
    assert str(err.value).startswith(f"{copy / MANIFEST}: not a sign-off bundle manifest (")

    copy = bundle_copy(ready_bundle, tmp_path / "guns")
    (copy / "archive" / "ARCHIVE.json").write_text(json.dumps({"guns": "all"}))
    write_manifest(copy)
    with pytest.raises(InputError) as err:
        verify_bundle(copy)
    assert str(err.value) == f"{copy / 'archive' / 'ARCHIVE.json'}: field 'guns' must be a list of GUNs"

    copy = bundle_copy(ready_bundle, tmp_path / "check")
    (copy / "check.json").write_text(json.dumps({"require": "both"}))
    record = json.loads((copy / "SIGNOFF.json").read_text())
    record["verdict"] = "not ready"
    (copy / "SIGNOFF.json").write_text(json.dumps(record))
    write_manifest(copy)
    assert verify_bundle(copy).verdict.reasons == ["the final coexistence run (check.json) has no 'tags' list"]


@pytest.mark.parametrize(
    ("verification", "gap"),
    [
        ({"level": "audit"}, "(level audit) does not enforce integrity and authenticity (authenticity is only logged)"),
        (
            {"level": "permissive", "override": {"authenticity": "log"}},
            "(level permissive) does not enforce integrity and authenticity (authenticity is only logged)",
        ),
    ],
)
def test_attack_signoff_under_audit_policy_with_no_trusted_signer(
    ready_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], verification: dict[str, object], gap: str
) -> None:
    """Every digest is signed, but by a key the trust store does not hold: only an audit policy lets it pass."""
    from dct2notation.keys.testcert import generate_test_key

    work = ready_bundle.parent
    stranger = tmp_path / "stranger"
    generate_test_key("demo", stranger, key_type="ec-p256")  # same store name "ca:demo", another certificate
    policy = tmp_path / "policy"
    policy.mkdir()
    doc = json.loads((work / "policy" / "trustpolicy.json").read_text())
    doc["trustPolicies"][0]["signatureVerification"] = verification
    (policy / "trustpolicy.json").write_text(json.dumps(doc))
    shutil.copytree(stranger / "truststore", policy / "truststore")
    bundle = tmp_path / "bundle"
    capsys.readouterr()
    assert main(Estate(work, work / "plan.json", policy).signoff_args(bundle)) == 1
    assert capsys.readouterr().out.startswith("not ready: ")
    record = json.loads((bundle / "SIGNOFF.json").read_text())
    assert record["verdict"] == "not ready"
    assert len(record["coverage"]) == 6 and not any(c["covered"] for c in record["coverage"])
    for item in record["coverage"]:
        assert item["reason"].startswith(f'trust policy statement "demo" {gap}, so a signature passing under it is ')
        assert "; its signer is not trusted (signature is not produced by a trusted signer" in item["reason"]
    assert len(record["reasons"]) == 6
    assert main(["signoff", "verify", str(bundle)]) == 1


def test_attack_signoff_plan_job_for_untrusted_digest(
    ready_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The attacker adds a job to the plan AND a trusted tag to the inventory (so `sign` accepted it), re-binding the
    plan to the forged inventory: only the archived DCT metadata can tell, and the sign-off names the job."""
    work = ready_bundle.parent
    evil = "sha256:" + "e" * 64
    inventory = json.loads((work / "inventory.json").read_text())
    base = next(r for r in inventory["repositories"] if r["gun"] == BASE)
    base["trusted_tags"].append({"tag": "evil", "digest": evil, "size": 10, "role": "targets/releases"})
    forged = tmp_path / "inventory.json"
    forged.write_text(json.dumps(inventory))
    plan = json.loads((work / "plan.json").read_text())
    job = json.loads(json.dumps(next(j for j in plan["jobs"] if j["repository"] == BASE)))
    job.update(digest=evil, size=10, tags=["evil"])
    job.pop("mediaType", None)
    plan["jobs"].append(job)
    plan["inventory"]["digest"] = "sha256:" + hashlib.sha256(forged.read_bytes()).hexdigest()
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    args = _swap(_swap(Estate(work, tmp_path / "plan.json", work / "policy").signoff_args(tmp_path / "bundle"),
                       "--inventory", forged), "--plan", tmp_path / "plan.json")  # fmt: skip
    capsys.readouterr()
    assert main(args) == 1
    reason = (
        f"plan.json jobs[{len(plan['jobs']) - 1}] {BASE}@{evil} [demo]: not a digest DCT trusted for GUN {BASE!r} in "
        "the archived DCT metadata"
    )
    record = json.loads((tmp_path / "bundle" / "SIGNOFF.json").read_text())
    assert record["reasons"] == [reason]
    assert capsys.readouterr().out == f"not ready: {reason}\n"
    assert all(c["covered"] for c in record["coverage"])  # every trusted digest is covered: the job alone blocks
    assert main(["signoff", "verify", str(tmp_path / "bundle")]) == 1


def test_bundle_whose_inventory_is_not_the_plans_is_not_ready(ready_bundle: Path, tmp_path: Path) -> None:
    """`signoff` refuses such inputs at once; a bundle re-sealed with another inventory.json fails re-verification."""
    copy = bundle_copy(ready_bundle, tmp_path)
    bound = json.loads((copy / "plan.json").read_text())["inventory"]["digest"]
    (copy / "inventory.json").write_text((copy / "inventory.json").read_text() + "\n")  # same content, other bytes
    write_manifest(copy)
    digest = "sha256:" + hashlib.sha256((copy / "inventory.json").read_bytes()).hexdigest()
    with pytest.raises(GateFailed):
        verify_bundle(copy)
    record = json.loads((copy / "SIGNOFF.json").read_text())
    record["verdict"] = "not ready"
    (copy / "SIGNOFF.json").write_text(json.dumps(record))
    write_manifest(copy)
    assert verify_bundle(copy).verdict.reasons == [
        f"plan.json was made from inventory {bound}, not the bundled inventory.json ({digest})"
    ]
