"""Every human table at COLUMNS=80 (a CI log): each row names its full repository and tag, never cut with "…";
reasons are short codes with a legend; digests shortened (full in --json); tags in natural order (issue #16).

Before: `check` printed rich tables whose Reason column wrapped each row to ~6 lines and cut every repository to
"127.0.0.1:…"; the plan review cut repository, digest, role and key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from dct2notation.migrate.check_report import LEGEND, render_table
from dct2notation.migrate.coexist import CheckResult, NotationResult, TagStatus
from dct2notation.report import natural_key
from tests.test_coexist_scenario import Scenario, notation_dir, scenario  # noqa: F401 - pytest fixtures

REPO = Path(__file__).resolve().parents[1]


def cli80(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80", "TERM": "dumb"}
    return subprocess.run([sys.executable, "-m", "dct2notation", *argv], capture_output=True, text=True, env=env,
                          timeout=300, check=False)  # fmt: skip


def test_natural_key_orders_numbers_by_value() -> None:
    tags = ["1.0.10", "v10", "1.0.2", "latest", "v9", "1.0.2-rc1", "1.10.0", "1.9.1"]
    assert sorted(tags, key=natural_key) == ["1.0.2", "1.0.2-rc1", "1.0.10", "1.9.1", "1.10.0", "latest", "v9", "v10"]


def _row(repository: str, tag: str, status: str, digest: str) -> TagStatus:
    verdict = NotationResult("valid") if status == "ok" else NotationResult("missing")
    reason = "a long free-text reason that used to wrap every row of the table to six lines at 80 columns"
    gun = f"dct.example/{repository}"
    return TagStatus(gun, repository, tag, status, "valid", digest, digest, verdict, reason)  # type: ignore[arg-type]


def test_check_table_natural_order_failing_first_and_only_unmet() -> None:
    rows = [_row("127.0.0.1:45123/team/app", t, "ok", "sha256:" + "a" * 64) for t in ("1.0.10", "1.0.2", "1.0.9")]
    rows.append(_row("127.0.0.1:45123/team/app", "2.0.0", "notation-missing", "sha256:" + "b" * 64))
    result = CheckResult(rows, "both", "2026-12-01T00:00:00Z")
    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115 - closed with the console
    render_table(result, console)
    lines = console.export_text().splitlines()
    assert lines[0] == "Coexistence (require both): 4 tags, failing first"
    assert lines[1].split() == ["GATE", "STATUS", "CHECK", "DIGEST", "REPOSITORY:TAG"]
    assert [line.split()[-1] for line in lines[2:6]] == [
        "127.0.0.1:45123/team/app:2.0.0", "127.0.0.1:45123/team/app:1.0.2", "127.0.0.1:45123/team/app:1.0.9",
        "127.0.0.1:45123/team/app:1.0.10",
    ]  # fmt: skip
    assert lines[2].split()[:4] == ["FAIL", "notation-missing", "-", "b" * 12]
    assert lines[6:] == [
        "Legend (full reasons in --json and --markdown):",
        f"  ok: {LEGEND['ok']}",
        f"  notation-missing: {LEGEND['notation-missing']}",
        "4 tags: ok 3, notation-missing 1; 1 not meeting --require",
    ]
    assert all(len(line) <= 80 for line in lines)
    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    render_table(result, console, only_unmet=True)
    lines = console.export_text().splitlines()
    assert lines[0] == "Coexistence (require both): 1 not meeting --require, failing first"
    assert [line.split()[-1] for line in lines[2:3]] == ["127.0.0.1:45123/team/app:2.0.0"]
    assert lines[3] == "Legend (full reasons in --json and --markdown):"


@pytest.mark.servers
def test_check_table_at_80_columns_names_every_repository_and_tag(scenario: Scenario) -> None:  # noqa: F811
    args = [a for a in scenario.args() if a != "--no-table"]
    done = cli80(*args, "--json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    lines = done.stderr.splitlines()
    assert "…" not in done.stderr
    tagged = [line for line in lines if line.startswith(("FAIL ", "ok ", "waived "))]
    assert len(tagged) == len(doc["tags"]) > 5
    for row, line in zip(sorted(doc["tags"], key=lambda t: (t["requirement_met"], t["repository"],
                                                          natural_key(t["tag"]))), tagged, strict=True):  # fmt: skip
        assert line.endswith(f" {row['repository']}:{row['tag']}"), line
        digest = (row["registry_digest"] or row["dct_digest"] or "-").removeprefix("sha256:")[:12]
        assert line.split()[:2] == ["ok" if row["requirement_met"] else "FAIL", row["status"]]
        assert line.split()[3] == digest
    for status in {row["status"] for row in doc["tags"]}:
        assert f"  {status}: {LEGEND[status]}" in lines
    unmet = cli80(*args, "--only-unmet")
    assert unmet.returncode == 1
    rows = [line for line in unmet.stderr.splitlines() if line.startswith(("FAIL ", "ok "))]
    assert len(rows) == sum(not t["requirement_met"] for t in doc["tags"]) and all(r.startswith("FAIL ") for r in rows)


def _recorded(width: int = 80) -> Console:
    return Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115 - closed with the console


def test_plan_review_at_80_columns_keeps_repository_digest_role_and_key() -> None:
    from dct2notation.cli.migrate import render_plan_table
    from dct2notation.migrate.plan import Job, Plan

    repository = "127.0.0.1:45123/platform/base-images/debian"
    jobs = [
        Job(repository, "sha256:" + c * 64, 10, "release-signer-2026", "dct.example/platform/base", role, tags, "m1")
        for c, role, tags in (("b", "targets/releases", ("1.0.10", "latest")), ("a", "targets/ci-bot", ("1.0.2",)))
    ]
    findings = [{"repository": repository, "digest": "sha256:" + "c" * 64, "kind": "size-mismatch",
                 "detail": "the registry serves 11 bytes where DCT trusts 10 (TUF length)"}]  # fmt: skip
    console = _recorded()
    render_plan_table(Plan("m1", jobs, findings=findings), console)
    lines = console.export_text().splitlines()
    assert lines == [
        "migration m1: 2 signature(s)",
        "DIGEST        DCT ROLE          NOTATION KEY         REPOSITORY:TAGS",
        f"aaaaaaaaaaaa  targets/ci-bot    release-signer-2026  {repository}:1.0.2",
        f"bbbbbbbbbbbb  targets/releases  release-signer-2026  {repository}:1.0.10,latest",
        "pre-flight findings: 1",
        f"size-mismatch  cccccccccccc  {repository}",
        "    the registry serves 11 bytes where DCT trusts 10 (TUF length)",
    ]
    assert "…" not in console.export_text()


def test_inventory_tables_at_80_columns_cut_nothing(
    capsys: pytest.CaptureFixture[str], shared_fixtures: Path, tmp_path: Path
) -> None:
    from dct2notation.cli import main
    from dct2notation.dct.inventory import load_inventory
    from dct2notation.dct.render import print_inventory
    from tests.test_dct_fixtures import trust_dir_for

    gun = "docker.io/phbelitz/alice-image"
    base = shared_fixtures / "dct" / "connaisseur-alice-image" / "metadata-compact"
    trust = trust_dir_for(tmp_path, base, gun)
    assert main(["inventory", gun, "--trust-dir", str(trust), "--json", "--at", "2019-10-20T00:00:00Z"]) == 0
    (tmp_path / "inventory.json").write_text(capsys.readouterr().out)
    inventory = load_inventory(tmp_path / "inventory.json")
    console = _recorded()
    print_inventory(inventory, console)
    text = console.export_text()
    assert "…" not in text
    lines = text.splitlines()
    # The DIGEST column of the signatures table, its folded pieces joined in order.
    digests = "".join(cells[2].strip() for cells in (line.split("│") for line in lines) if len(cells) == 6)
    for row in inventory.repositories[0]["signed_tags"]:
        # The tag whole in its cell; the 64-hex digest folds onto following lines, all of it kept.
        assert any(line.startswith(f"│ {row['tag']} ") for line in lines), row["tag"]
        assert row["digest"].removeprefix("sha256:") in digests
    assert all(len(line) <= 80 for line in lines)
    # As docker trust inspect --pretty: the Repository Key, then the Root Key.
    roles = [line.split("│")[1].strip() for line in lines if "Key " in line and line.startswith("│")]
    assert [r for r in roles if r in ("Repository Key", "Root Key")] == ["Repository Key", "Root Key"]
