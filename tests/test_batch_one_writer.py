"""One journal, one writer: real `sign` processes against the real docker-registry 2.8."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from dct2notation.errors import InputError
from dct2notation.migrate.journal import Journal, JournalBusyError
from tests.support.journals import journal_counts
from tests.support.plans import save_bound
from tests.support.servers import Registry
from tests.test_batch import leaf_thumbprint, make_plan, push_images, signatures_by_subject, unique_repo
from tests.test_batch_crash import ROOT, sign_command


@pytest.fixture(scope="module")
def notation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dct2notation.keys.testcert import generate_test_key

    config = tmp_path_factory.mktemp("notation-writer")
    generate_test_key("alpha", config, key_type="ec-p256", make_default=True)
    return config


def spawn(argv: list[str], out: Path, err: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "dumb"}
    with out.open("wb") as sink, err.open("wb") as errors:
        return subprocess.Popen(argv, stdout=sink, stderr=errors, cwd=ROOT, env=env)


def started_jobs(journal: Path) -> int:
    """Jobs past ``pending`` (a job is journaled done only after the batch's reconciliation, so count intents too)."""
    counts = journal_counts(journal)
    return sum(counts.values()) - counts.get("pending", 0)


def test_attack_two_sign_processes_on_one_journal(registry: Registry, notation_dir: Path, tmp_path: Path) -> None:
    repo = unique_repo("writer")
    images = push_images(registry.host, repo, 24)
    save_bound(make_plan(registry.host, repo, images, ["alpha"], "m-writer"), tmp_path / "plan.json")
    journal = tmp_path / "journal.sqlite"
    # A rate limit keeps the first run busy for seconds, so the second surely starts while it holds the journal.
    argv = sign_command(tmp_path / "plan.json", notation_dir, registry.host, journal, "--rate-limit", "25")
    first = spawn(argv, tmp_path / "first.json", tmp_path / "first.err")
    try:
        deadline = time.monotonic() + 60
        while started_jobs(journal) == 0:
            assert first.poll() is None, (tmp_path / "first.err").read_text()
            assert time.monotonic() < deadline, "the first run started no job in 60 s"
            time.sleep(0.05)
        # Stopped (SIGSTOP), the first run holds the journal for as long as the second takes to start and be
        # refused, however loaded the machine: the rate limit alone left it a few seconds to finish first.
        os.kill(first.pid, signal.SIGSTOP)
        try:
            second = spawn(argv, tmp_path / "second.json", tmp_path / "second.err")
            assert second.wait(timeout=60) == 2
            assert first.poll() is None, "the first run ended before the second was refused: the test proves nothing"
        finally:
            os.kill(first.pid, signal.SIGCONT)
        lines = (tmp_path / "second.err").read_text().strip().splitlines()
        assert lines == [
            f"dct2notation: error: {journal}: journal is in use by another sign process (pid {first.pid} on host "
            f"{socket.gethostname()!r}); one journal has one writer: wait for it to end, or give this run its own "
            "--journal (each --shard gets its own)"
        ]
        assert (tmp_path / "second.json").read_text() == ""
        assert first.wait(timeout=120) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    summary = json.loads((tmp_path / "first.json").read_text())
    assert summary["counts"] == {"signed": 24}
    alpha = leaf_thumbprint(notation_dir, "alpha")
    listed = signatures_by_subject(registry.host, repo, [d for _, _, d in images])
    assert listed == {d: [alpha] for _, _, d in images}  # 0 duplicates

    # The holder is gone: the same journal is usable again, and a rerun signs nothing twice.
    rerun = spawn(argv, tmp_path / "rerun.json", tmp_path / "rerun.err")
    assert rerun.wait(timeout=60) == 0
    assert json.loads((tmp_path / "rerun.json").read_text())["counts"] == {"signed": 24}
    assert signatures_by_subject(registry.host, repo, [d for _, _, d in images]) == {d: [alpha] for _, _, d in images}


def test_journal_claim_is_exclusive_and_released_on_close(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    holder = Journal(path)
    holder.claim()
    other = Journal(path)
    try:
        with pytest.raises(JournalBusyError, match=rf"pid {os.getpid()} on host "):
            other.claim()
    finally:
        holder.close()
    other.claim()  # the flock went with the holder's close
    other.close()


@pytest.mark.parametrize("record", [b"", b"[" * 4000, b'{"pid": "1", "host": 2}', b"\xff\xfe"])
def test_journal_lock_record_of_any_shape_still_refuses_with_one_line(tmp_path: Path, record: bytes) -> None:
    path = tmp_path / "j.sqlite"
    holder = Journal(path)
    holder.claim()
    (tmp_path / "j.sqlite.lock").write_bytes(record)  # a holder that has not written its record yet, or garbage
    other = Journal(path)
    try:
        with pytest.raises(JournalBusyError, match=r"\(holder not recorded yet\)"):
            other.claim()
    finally:
        holder.close()
        other.close()


def test_journal_lock_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    (tmp_path / "j.sqlite.lock").mkdir()
    book = Journal(path)
    try:
        with pytest.raises(InputError, match=r"j\.sqlite\.lock: cannot open the journal lock \(Is a directory\)"):
            book.claim()
    finally:
        book.close()
