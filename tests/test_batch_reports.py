"""What `sign plan.json` reports (#15): this run's work, a failed job's attempts, and an interrupted run."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dct2notation.cli import main
from tests.support.journals import journal_counts
from tests.test_signoff import DEMO, Estate, migrate_demo


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Estate:
    return migrate_demo(tmp_path_factory.mktemp("reports"))


def sign(
    estate: Estate, plan: Path, journal: Path, capsys: pytest.CaptureFixture[str], inventory: Path | None = None
) -> tuple[int, dict[str, object]]:
    code = main(["sign", str(plan), "--oci-layout", str(estate.work / "layout"), "--journal", str(journal),
                 "--inventory", str(inventory or estate.work / "inventory.json"),
                 "--config-dir", str(estate.work / "notation")])  # fmt: skip
    out, err = capsys.readouterr()
    assert out, err
    doc: dict[str, object] = json.loads(out)
    return code, doc


def test_a_resumed_run_that_signs_nothing_says_so(estate: Estate, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's journal already holds every job: a rerun reported `signed: 6` at thousands per second."""
    code, doc = sign(estate, estate.plan, estate.work / "journal.db", capsys)
    assert code == 0
    assert doc["this_run"] == {"already-done": 6}
    assert doc["signatures_per_second"] is None
    assert doc["counts"] == {"signed": 6}  # the journal's state, as before


def test_a_job_that_failed_before_signing_counts_its_attempt(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job whose subject cannot be read failed with `attempts: 0`."""
    doc = json.loads(estate.plan.read_text())
    job = dict(doc["jobs"][0])
    job.pop("mediaType", None)  # sign resolves the subject itself
    job["digest"] = "sha256:" + "d" * 64  # a manifest the layout does not hold
    plan = tmp_path / "plan.json"
    doc["jobs"] = [doc["jobs"][0], job]  # the first passes the pre-flight of the repository
    # DCT trusts that digest (sign refuses a job that it does not): an inventory that says so, the plan bound to it.
    inventory = json.loads((estate.work / "inventory.json").read_text())
    gun = job["annotations"]["io.dct2notation.migration.gun"]
    repo = next(r for r in inventory["repositories"] if r["gun"] == gun)
    role = job["annotations"]["io.dct2notation.migration.role"]
    size = job["size"]
    repo["trusted_tags"] += [{"tag": t, "digest": job["digest"], "size": size, "role": role} for t in job["tags"]]
    forged = tmp_path / "inventory.json"
    forged.write_text(json.dumps(inventory))
    doc["inventory"]["digest"] = "sha256:" + hashlib.sha256(forged.read_bytes()).hexdigest()
    plan.write_text(json.dumps(doc))
    code, summary = sign(estate, plan, tmp_path / "j.db", capsys, forged)
    assert code == 1
    failures = summary["failures"]
    assert isinstance(failures, list) and [f["attempts"] for f in failures] == [1]
    code, summary = sign(estate, plan, tmp_path / "j.db", capsys, forged)
    assert [f["attempts"] for f in summary["failures"]] == [2]  # type: ignore[union-attr]
    assert summary["this_run"] == {"already-done": 1, "failed": 1}


def done_jobs(journal: Path) -> int:
    """Jobs the running batch has journaled signed or reused (0 before it has made its journal)."""
    counts = journal_counts(journal)
    return counts.get("signed", 0) + counts.get("reused", 0)


def test_ctrl_c_prints_the_summary_and_how_to_resume(estate: Estate, tmp_path: Path) -> None:
    """Ctrl-C left stdout empty and no "N done, rerun" line. --rate-limit 1 also hung forever before (a signature
    costs 5 tokens, more than the bucket ever held)."""
    layout = tmp_path / "layout"
    shutil.copytree(DEMO / "oci-layout", layout)  # unsigned: every job signs (5 tokens), none is reused
    argv = [sys.executable, "-m", "dct2notation", "sign", str(estate.plan), "--oci-layout", str(layout),
            "--inventory", str(estate.work / "inventory.json"),
            "--journal", str(tmp_path / "j.db"), "--config-dir", str(estate.work / "notation"), "--rate-limit", "1",
            "--concurrency", "1"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    # Interrupt once the first job is journaled done (5 tokens at 1/s after a burst of 1: ~5 s), not after a fixed
    # sleep: a loaded machine took longer than the 9 s that used to be slept, and the run had done 0 of 6.
    deadline = time.monotonic() + 120
    while done_jobs(tmp_path / "j.db") == 0:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no job done in 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    doc = json.loads(out)
    assert doc["interrupted"] is True and doc["jobs"] == 6
    found = re.search(r"^interrupted: (\d) of 6 job\(s\) done; rerun the same command to resume$", err, re.M)
    assert found is not None, err
    assert int(found.group(1)) >= 1
