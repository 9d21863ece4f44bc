"""A gate that can go green (#15): reviewed waivers honoured and reported by check and signoff, and a remediation
plan from a check result for what signing can fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dct2notation.cli import main
from tests.test_signoff import Estate, migrate_demo


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Estate:
    work = tmp_path_factory.mktemp("waivers")
    inventory_probe = migrate_demo(work / "probe")  # to learn one trusted digest of the demo estate
    doc = json.loads((inventory_probe.work / "inventory.json").read_text())
    repo = next(r for r in doc["repositories"] if r["gun"] == "registry.demo.local/shop/backend")
    digest = next(t["digest"] for t in repo["trusted_tags"] if t["tag"] == "v2.1")
    (work / "digest").write_text(digest)
    return migrate_demo(work / "estate", leave_unsigned=digest)


def digest_of(estate: Estate) -> str:
    return (estate.work.parent / "digest").read_text()


def check(estate: Estate, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, object], str]:
    w = estate.work
    code = main(["check", "--inventory", str(w / "inventory.json"), "--policy", str(estate.policy / "trustpolicy.json"),
                 "--truststore", str(estate.policy / "truststore"), "--oci-layout", str(w / "layout"), "--json",
                 "--no-table", *extra])  # fmt: skip
    out, err = capsys.readouterr()
    doc: dict[str, object] = json.loads(out) if out else {}
    return code, doc, err


def waivers(path: Path, digest: str, until: str = "2099-01-01T00:00:00Z", **extra: str) -> Path:
    lines = ['[[waiver]]', 'gun = "registry.demo.local/shop/backend"', f'digest = "{digest}"',
             'reason = "rebuilt as v2.2; v2.1 is retired"', 'by = "alice@example.com"',
             f'until = "{until}"']  # fmt: skip
    lines += [f'{k} = "{v}"' for k, v in extra.items()]
    lines += ['', '[[waiver]]', 'gun = "registry.demo.local/shop/backend"', 'tag = "no-such-tag"', 'reason = "stale"',
              'by = "bob@example.com"', 'until = "2099-01-01T00:00:00Z"']  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def test_check_honours_an_active_waiver_and_reports_it(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc, _ = check(estate, capsys)
    assert code == 1  # v2.1's digest has no Notation signature
    code, doc, err = check(estate, capsys, "--waivers", str(waivers(tmp_path / "w.toml", digest_of(estate))))
    assert code == 0, err
    summary = doc["summary"]
    assert isinstance(summary, dict)
    assert (summary["unmet"], summary["waived"]) == (0, 1)
    assert summary["unused_waivers"] == ["waiver[1] registry.demo.local/shop/backend:no-such-tag"]
    rows = [t for t in doc["tags"] if "waiver" in t]  # type: ignore[union-attr]
    assert [(r["tag"], r["status"], r["requirement_met"], r["waiver"]["by"]) for r in rows] == [
        ("v2.1", "notation-missing", True, "alice@example.com")
    ]


def test_an_expired_waiver_is_reported_and_not_honoured(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = waivers(tmp_path / "w.toml", digest_of(estate), until="2020-01-01T00:00:00Z")
    code, doc, err = check(estate, capsys, "--waivers", str(path))
    assert code == 1
    assert ("dct2notation: check: waiver[0] registry.demo.local/shop/backend@" + digest_of(estate)
            + " expired 2020-01-01T00:00:00Z: not honoured") in err  # fmt: skip
    assert doc["summary"]["expired_waivers"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("drop", "message"),
    [("by", "waiver[0]: by: required (what is accepted, who accepted it, until when)"),
     ("until", "waiver[0]: until: required")],
)
def test_a_waiver_without_who_or_until_is_refused(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str], drop: str, message: str
) -> None:
    path = waivers(tmp_path / "w.toml", digest_of(estate))
    path.write_text("\n".join(line for line in path.read_text().splitlines() if not line.startswith(drop + " ")))
    code, _, err = check(estate, capsys, "--waivers", str(path))
    assert code == 2
    assert message in err and err.count("\n") == 1


def signoff(estate: Estate, out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main([*estate.signoff_args(out), *extra])
    return code, capsys.readouterr().out


def test_signoff_honours_the_waiver_and_the_bundle_keeps_it(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = waivers(tmp_path / "w.toml", digest_of(estate))
    # The final check of the bundle is the waived one (the unwaived check.json is what the estate ran).
    code, doc, _ = check(estate, capsys, "--waivers", str(path))
    (tmp_path / "check.json").write_text(json.dumps(doc))
    args = estate.signoff_args(tmp_path / "bundle")
    args[args.index("--check-json") + 1] = str(tmp_path / "check.json")
    assert main([*args, "--waivers", str(path)]) == 0
    assert capsys.readouterr().out == "ready\n"
    record = json.loads((tmp_path / "bundle" / "SIGNOFF.json").read_text())
    assert record["waived"] == [f"registry.demo.local/shop/backend@{digest_of(estate)}: rebuilt as v2.2; v2.1 is "
                                "retired (alice@example.com, until 2099-01-01T00:00:00Z)"]  # fmt: skip
    assert (tmp_path / "bundle" / "waivers.toml").read_bytes() == path.read_bytes()
    assert "## Waived" in (tmp_path / "bundle" / "REPORT.md").read_text()
    assert main(["signoff", "verify", str(tmp_path / "bundle")]) == 0
    # Without the waiver the same inputs are not ready.
    args[args.index("-o") + 1] = str(tmp_path / "bundle2")
    assert main(args) == 1


def test_a_remediation_plan_signs_what_the_check_found_missing(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = estate.work
    code, doc, _ = check(estate, capsys)
    assert code == 1
    (tmp_path / "check.json").write_text(json.dumps(doc))
    toml = tmp_path / "signers.toml"
    toml.write_text('[[signer]]\ngun = "registry.demo.local/*"\nrole = "*"\nkey = "demo"\n')
    plan = tmp_path / "remediate.json"
    assert main(["plan", str(w / "inventory.json"), "--signers", str(toml), "--from-check",
                 str(tmp_path / "check.json"), "--oci-layout", str(w / "layout"), "-o", str(plan)]) == 0  # fmt: skip
    jobs = json.loads(plan.read_text())["jobs"]
    assert [j["digest"] for j in jobs] == [digest_of(estate)]
    # Same migration as the full plan: the journal of runbook 03 takes it.
    assert json.loads(plan.read_text())["migration_id"] == json.loads(estate.plan.read_text())["migration_id"]
    capsys.readouterr()
    assert main(["sign", str(plan), "--inventory", str(w / "inventory.json"), "--oci-layout", str(w / "layout"),
                 "--journal", str(w / "journal.db"), "--config-dir", str(w / "notation")]) == 0  # fmt: skip
    capsys.readouterr()
    code, doc, err = check(estate, capsys)
    assert code == 0, err
