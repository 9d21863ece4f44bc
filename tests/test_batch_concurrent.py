"""No lost or duplicate index entries under concurrent writers (issue 14 item 2): real processes against real
distribution 2.8, which has no referrers API, so every signature goes through the read-modify-write of the
subject's ``sha256-<hex>`` index that two writers race on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dct2notation.migrate.journal import Journal
from dct2notation.notation.manifest import referrers_index, referrers_tag
from dct2notation.oci import OCI_INDEX, THUMBPRINT_ANNOTATION
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.options import RegistryOptions
from dct2notation.registry.store import RegistryStore
from tests.support.plans import save_bound
from tests.support.relay import Headers, Relay
from tests.support.servers import Registry
from tests.test_batch import leaf_thumbprint, make_plan, push_images, sign, unique_repo

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def notation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dct2notation.keys.testcert import generate_test_key

    config = tmp_path_factory.mktemp("notation-concurrent")
    generate_test_key("alpha", config, key_type="ec-p256", make_default=True)
    generate_test_key("beta", config, key_type="ec-p256")
    return config


def _options(host: str) -> RegistryOptions:
    return RegistryOptions(insecure_registries=frozenset({host}))


def _listing(host: str, repo: str, digests: list[str]) -> dict[str, list[tuple[str, str]]]:
    """(signature digest, leaf thumbprint) listed per subject, each checked to exist, read apart from any journal."""
    store = RegistryStore(host, _options(host))
    try:
        out: dict[str, list[tuple[str, str]]] = {}
        for digest in digests:
            listed = store.list_signatures(repo, digest)
            for desc in listed:
                assert store.client.head_manifest(repo, desc.digest) is not None, f"{digest}: {desc.digest} dangles"
            out[digest] = [(d.digest, json.loads((d.annotations or {})[THUMBPRINT_ANNOTATION])[0]) for d in listed]
        return out
    finally:
        store.close()


def test_two_batches_over_the_same_200_subjects_at_once_lose_and_duplicate_nothing(
    registry: Registry, notation_dir: Path, tmp_path: Path
) -> None:
    """Two plans over one repository (or a rerun with another journal) started together: both sign, reuse and race
    on the same 200 indexes. Both end; every subject lists exactly one signature per identity and each run's journal
    names signatures that are listed. Old HEAD: entries lost (the re-read cannot see a writer that read before it
    and writes after it) and twins by one certificate listed side by side."""
    repo = unique_repo("concurrent")
    images = push_images(registry.host, repo, 200)
    digests = [d for _, _, d in images]
    save_bound(make_plan(registry.host, repo, images, ["alpha", "beta"], "m-concurrent"), tmp_path / "plan.json")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "dumb"}
    procs = []
    for i in range(2):
        argv = [sys.executable, "-m", "dct2notation", "sign", str(tmp_path / "plan.json"),
                "--inventory", str(tmp_path / "inventory.json"),
                "--config-dir", str(notation_dir), "--insecure-registry", registry.host,
                "--journal", str(tmp_path / f"journal{i}.sqlite"), "--concurrency", "8"]  # fmt: skip
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env))
    try:
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], [err.decode()[-2000:] for _, err in outputs]
    summaries = [json.loads(out) for out, _ in outputs]

    listing = _listing(registry.host, repo, digests)
    want = sorted([leaf_thumbprint(notation_dir, "alpha"), leaf_thumbprint(notation_dir, "beta")])
    lost = [d for d in digests if not set(want) <= {t for _, t in listing[d]}]
    duplicates = [d for d in digests if len(listing[d]) != len({t for _, t in listing[d]})]
    assert (lost, duplicates) == ([], [])
    assert {d: sorted(t for _, t in listing[d]) for d in digests} == {d: want for d in digests}

    for i, summary in enumerate(summaries):
        assert summary["failures"] == []
        counts = summary["counts"]
        assert counts.get("signed", 0) + counts.get("reused", 0) == 400
        report = summary["reconciliation"]
        assert report["checked"] == 400
        assert report["repaired"] == len(report["repairs"]) == sum(report["counts"].values())
        # What it repaired is also said on stderr: one summary line and one line per repair.
        err = outputs[i][1].decode().splitlines()
        (head,) = [line for line in err if line.startswith("reconciliation: ")]
        assert head.startswith("reconciliation: 400 job(s) checked in ")
        assert f"; {report['repaired']} repaired (" in head
        assert sum(1 for line in err if line.startswith("  ") and ": 127.0.0.1" in line) == report["repaired"]
        # The journal agrees with the registry: each job's signature is the one listed for its subject.
        book = Journal(tmp_path / f"journal{i}.sqlite")
        try:
            entries = {e.key: e for e in book.entries()}
        finally:
            book.close()
        for _, _, digest in images:
            for name in ("alpha", "beta"):
                entry = entries[f"{registry.host}/{repo}@{digest}#{name}"]
                assert entry.state in ("signed", "reused")
                assert (entry.signature, leaf_thumbprint(notation_dir, name)) in listing[digest], (i, digest, name)
    total_signed = sum(s["counts"].get("signed", 0) for s in summaries)
    deduplicated = sum(s["reconciliation"]["counts"].get("deduplicated", 0) for s in summaries)
    # Every signature either run made is listed, or its run unlisted it as a twin and adopted the other.
    assert total_signed - deduplicated >= 400


class _Dropper(Relay):
    """Forwards to the registry. The first index write of each subject is undone later, once the batch has moved on
    to another subject (its next index read): a foreign writer that read before our write and wrote after our
    re-read, which no re-read can see."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.written: set[str] = set()
        self.pending: tuple[str, bytes] | None = None
        self.dropped: list[str] = []

    def handle_call(self, method: str, path: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        index = "/manifests/sha256-" in path
        with self.lock:
            if method == "GET" and index and self.pending and self.pending[0] != path:
                dropped, earlier = self.pending
                again = self.upstream.put(dropped, content=earlier, headers={"Content-Type": OCI_INDEX})
                assert again.status_code == 201
                self.dropped.append(dropped)
                self.pending = None
            before = None
            if method == "PUT" and index and path not in self.written:
                got = self.upstream.get(path, headers={"Accept": OCI_INDEX})
                before = got.content if got.status_code == 200 else referrers_index([])
            reply = self.forward(method, path, headers, body)
            if before is not None and reply[0] == 201:
                self.written.add(path)
                self.pending = (path, before)
        return reply


def test_attack_foreign_writer_drops_every_entry_after_the_write_and_the_pass_relists_them(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each subject's index write is undone after the batch has re-read it (the lost update of
    go-containerregistry#2205): old HEAD reported all 6 signed with 5 listed nowhere. The pass, after every job,
    finds each entry missing, lists it again, says so, and only then journals the job done."""
    repo = unique_repo("dropper")
    images = push_images(registry.host, repo, 6)
    server = _Dropper(registry.url).start()
    host = server.host
    try:
        save_bound(make_plan(host, repo, images, ["alpha"], "m-dropper"), tmp_path / "plan.json")
        code = sign(tmp_path, notation_dir, _options(host), concurrency=1)
    finally:
        server.stop()
    out, err = capsys.readouterr()
    assert code == 0
    summary = json.loads(out)
    assert len(server.dropped) == 6
    assert summary["counts"] == {"signed": 6}
    assert summary["reconciliation"]["counts"] == {"relisted": 6}
    listing = _listing(registry.host, repo, [d for _, _, d in images])
    for result in summary["results"]:
        assert [s for s, _ in listing[result["digest"]]] == [result["signature"]]
        assert f"  relisted: {host}/{repo}@{result['digest']} [alpha] {result['signature']}" in err.splitlines()
    assert "reconciliation: 6 job(s) checked in " in err and "; 6 repaired (relisted 6)" in err
    with RegistryClient(registry.host, _options(registry.host)) as client:
        assert client.head_manifest(repo, referrers_tag(images[0][2])) is not None


def test_a_listing_still_changing_after_the_last_round_leaves_the_job_failed_for_a_rerun(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With one round (``Limits.reconcile_rounds``), a repair is never confirmed: the job is failed with the reason,
    exit 1, and a rerun (default rounds) confirms the signature the pass listed again, reusing it."""
    import dataclasses

    from dct2notation.config import DEFAULT_LIMITS

    repo = unique_repo("rounds")
    images = push_images(registry.host, repo, 2)
    server = _Dropper(registry.url).start()
    host = server.host
    one_round = dataclasses.replace(_options(host), limits=dataclasses.replace(DEFAULT_LIMITS, reconcile_rounds=1))
    try:
        save_bound(make_plan(host, repo, images, ["alpha"], "m-rounds"), tmp_path / "plan.json")
        code = sign(tmp_path, notation_dir, one_round, concurrency=1)
        out, err = capsys.readouterr()
        assert code == 1
        first = json.loads(out)
        assert [f["error"] for f in first["failures"]] == [
            "reconciliation: the listing kept changing under concurrent writers (1 rounds)"
        ] * 2
        assert first["reconciliation"]["counts"] == {"relisted": 2}
        assert "2 job(s) failed (rerun to resume):" in err
        code = sign(tmp_path, notation_dir, _options(host), concurrency=1)
        again = json.loads(capsys.readouterr().out)
    finally:
        server.stop()
    assert code == 0
    assert again["counts"] == {"reused": 2}
    relisted = {r["digest"]: r["signature"] for r in first["reconciliation"]["repairs"]}
    assert {r["digest"]: r["signature"] for r in again["results"]} == relisted
    listing = _listing(registry.host, repo, [d for _, _, d in images])
    assert all([s for s, _ in listing[r["digest"]]] == [r["signature"]] for r in again["results"])
