"""Real subprocesses: SIGKILL at random points then rerun (no duplicate, none missing), and four shards at once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dct2notation.migrate.journal import Journal
from dct2notation.migrate.plan import shard_of
from tests.support.journals import journal_counts
from tests.support.plans import save_bound
from tests.support.servers import Registry
from tests.test_batch import (
    leaf_thumbprint,
    make_plan,
    push_images,
    repo_over_shards,
    signatures_by_subject,
    unique_repo,
)

ROOT = Path(__file__).resolve().parents[1]


def sign_command(plan: Path, config: Path, host: str, journal: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dct2notation",
        "sign",
        str(plan),
        "--inventory",
        str(plan.with_name("inventory.json")),
        "--config-dir",
        str(config),
        "--insecure-registry",
        host,
        "--journal",
        str(journal),
        *extra,
    ]


def spawn(argv: list[str], out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "dumb"}
    with out.open("wb") as sink:
        return subprocess.Popen(argv, stdout=sink, stderr=subprocess.DEVNULL, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def notation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dct2notation.keys.testcert import generate_test_key

    config = tmp_path_factory.mktemp("notation-crash")
    generate_test_key("alpha", config, key_type="ec-p256", make_default=True)
    generate_test_key("beta", config, key_type="ec-p256")
    return config


def test_sigkill_at_random_points_then_rerun_signs_all_500_once(
    registry: Registry, notation_dir: Path, tmp_path: Path
) -> None:
    repo = unique_repo("crash")
    images = push_images(registry.host, repo, 500)
    save_bound(make_plan(registry.host, repo, images, ["alpha"], "m-crash"), tmp_path / "plan.json")
    journal_path = tmp_path / "journal.sqlite"
    argv = sign_command(tmp_path / "plan.json", notation_dir, registry.host, journal_path, "--concurrency", "16")
    seed = int(os.environ.get("DCT2NOTATION_CRASH_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    kills = 0
    progress: list[int] = []
    for attempt in range(4):
        proc = spawn(argv, tmp_path / f"out{attempt}.json")
        time.sleep(rng.uniform(0.8, 2.5))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        if journal_path.exists():
            counts = journal_counts(journal_path)
            progress.append(counts["signed"] + counts["reused"])
    final = spawn(argv, tmp_path / "final.json")
    assert final.wait(timeout=120) == 0, f"seed {seed}"
    summary = json.loads((tmp_path / "final.json").read_text())
    assert kills >= 2, f"seed {seed}: the batch finished before it could be killed; progress {progress}"
    assert summary["failures"] == []
    assert summary["counts"].get("signed", 0) + summary["counts"].get("reused", 0) == 500

    alpha = leaf_thumbprint(notation_dir, "alpha")
    listed = signatures_by_subject(registry.host, repo, [d for _, _, d in images])
    assert {d: len(t) for d, t in listed.items()} == {d: 1 for _, _, d in images}, f"seed {seed}"
    assert all(t == [alpha] for t in listed.values())

    # The journal agrees with the registry: each job's recorded signature is the one listed for its subject.
    from dct2notation.registry.options import RegistryOptions
    from dct2notation.registry.store import RegistryStore

    store = RegistryStore(registry.host, RegistryOptions(insecure_registries=frozenset({registry.host})))
    book = Journal(journal_path)
    try:
        entries = {e.key: e for e in book.entries()}
        assert len(entries) == 500
        assert {e.state for e in entries.values()} <= {"signed", "reused"}
        for _, _, digest in images:
            entry = entries[f"{registry.host}/{repo}@{digest}#alpha"]
            assert [d.digest for d in store.list_signatures(repo, digest)] == [entry.signature]
    finally:
        book.close()
        store.close()


def test_four_shards_at_once_cover_every_job_exactly_once(
    registry: Registry, notation_dir: Path, tmp_path: Path
) -> None:
    repo = repo_over_shards(registry.host, "shards", 60, 4)
    images = push_images(registry.host, repo, 60)
    plan = make_plan(registry.host, repo, images, ["alpha", "beta"], "m-shards")
    save_bound(plan, tmp_path / "plan.json")
    procs = [
        spawn(
            sign_command(
                tmp_path / "plan.json", notation_dir, registry.host, tmp_path / f"j{i}.sqlite", "--shard", f"{i}/4"
            ),
            tmp_path / f"shard{i}.json",
        )
        for i in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    done: list[set[tuple[str, str]]] = []
    for i in range(4):
        summary = json.loads((tmp_path / f"shard{i}.json").read_text())
        assert summary["counts"] == {"signed": len(summary["results"])}
        keys = {(r["digest"], r["identity"]) for r in summary["results"]}
        # Both identities of a subject land in the same shard: the hash is of the subject, never the identity.
        assert {d for d, _ in keys} == {d for _, _, d in images if shard_of(f"{registry.host}/{repo}", d, 4) == i}
        done.append(keys)
    assert sum(len(k) for k in done) == 120
    assert set().union(*done) == {(j.digest, j.identity) for j in plan.jobs}
    want = sorted([leaf_thumbprint(notation_dir, "alpha"), leaf_thumbprint(notation_dir, "beta")])
    listed = signatures_by_subject(registry.host, repo, [d for _, _, d in images])
    assert {d: sorted(t) for d, t in listed.items()} == {d: want for _, _, d in images}
