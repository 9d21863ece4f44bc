"""Round trips of the batch on the critical path (issue 19: a registry 10-50 ms away): the requests of a job and of
the reconciliation pass that do not depend on each other are in flight together, against real distribution 2.8,
and a run killed between its index writes and its pass resumes without a duplicate (issue 14 items 2 and 3)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from dct2notation.migrate.journal import Journal
from dct2notation.oci import OCI_MANIFEST
from dct2notation.registry.options import RegistryOptions
from tests.support.plans import save_bound
from tests.support.relay import Headers, Relay
from tests.support.servers import Registry
from tests.test_batch import make_plan, push_images, sign, signatures_by_subject, unique_repo

ROOT = Path(__file__).resolve().parents[1]
HOLD_SECONDS = 3.0  # how long a held request waits for its partner before it is answered anyway
_TAG_GET = re.compile(r"^/v2/.+/manifests/sha256-[0-9a-f]{64}$")
_BY_DIGEST = re.compile(r"^/v2/.+/manifests/sha256:[0-9a-f]{64}$")


def _kind(method: str, path: str) -> str:
    path = path.partition("?")[0]
    if "/blobs/uploads/" in path:
        return f"{method} upload"
    if "/blobs/" in path:
        return f"{method} blob"
    if _TAG_GET.match(path):
        return f"{method} tag index"
    if _BY_DIGEST.match(path):
        return f"{method} manifest by digest"
    return f"{method} {path}"


class _Together(Relay):
    """Forwards to the registry, pairing requests that need not wait for each other: each listing read (a
    ``sha256-<hex>`` tag GET, the referrers probe) with an upload POST while no tag is written yet for it (the
    batch), and with a HEAD of a manifest by digest once it is (the pass). Whichever of a pair arrives first is held
    until the other arrives, so the pair is seen only when the client sent both before either was answered; one
    held ``HOLD_SECONDS`` in vain is answered anyway, and a listing read without its pair is counted as alone. With
    ``kill_at_pass`` the first pass listing is never answered: it sets ``at_pass`` and waits for the kill."""

    def __init__(self, upstream: str, *, kill_at_pass: bool = False) -> None:
        super().__init__(upstream)
        self.hold = True
        self.kinds: Counter[str] = Counter()
        self.together: Counter[str] = Counter()
        self.alone: Counter[str] = Counter()
        self.written: set[str] = set()
        self.signatures: list[str] = []
        self.kill_at_pass = kill_at_pass
        self.at_pass = threading.Event()
        self._arrived = threading.Condition(self.lock)
        self._waiting: Counter[str] = Counter()
        self._matched: Counter[str] = Counter()

    def _pair(self, mine: str, other: str) -> bool:
        """Under the lock: True once a request of kind ``other`` is (or comes) unanswered beside this one."""
        if self._waiting[other] > 0:
            self._waiting[other] -= 1
            self._matched[other] += 1
            self._arrived.notify_all()
            return True
        self._waiting[mine] += 1
        if self._arrived.wait_for(lambda: self._matched[mine] > 0, HOLD_SECONDS):
            self._matched[mine] -= 1
            return True
        self._waiting[mine] -= 1
        return False

    def handle_call(self, method: str, path: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        kind = _kind(method, path)
        with self._arrived:
            self.kinds[kind] += 1
            listing = kind == "GET tag index" or "/referrers/" in path
            if self.hold and listing:
                phase = "pass" if path in self.written else "batch"
                if phase == "pass" and self.kill_at_pass:
                    self.kill_at_pass = False
                    self.at_pass.set()
                    self._arrived.wait(60)  # the client is killed meanwhile; nobody reads this answer
                    return 503, [], b""
                if self._pair(f"{phase} listing", f"{phase} partner"):
                    self.together[phase] += 1
                else:
                    self.alone[phase] += 1
            elif self.hold and kind == "POST upload":
                self._pair("batch partner", "batch listing")
            elif self.hold and kind == "HEAD manifest by digest" and self.written:
                self._pair("pass partner", "pass listing")
        reply = self.forward(method, path, headers, body)
        with self.lock:
            if kind == "PUT tag index" and reply[0] == 201:
                self.written.add(path)
            if kind == "PUT manifest by digest" and reply[0] == 201:
                self.signatures.append(path.rpartition("/")[2])
        return reply


@pytest.fixture(scope="module")
def notation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dct2notation.keys.testcert import generate_test_key

    config = tmp_path_factory.mktemp("notation-round-trips")
    generate_test_key("alpha", config, key_type="ec-p256", make_default=True)
    return config


def _plan(host: str, repo: str, registry: Registry, count: int, path: Path) -> list[str]:
    images = push_images(registry.host, repo, count)
    plan = make_plan(host, repo, images, ["alpha"], f"m-{repo.replace('/', '-')}")
    # As `dct2notation plan` leaves it: the pre-flight recorded each subject's media type (no HEAD per job).
    plan = dataclasses.replace(plan, jobs=[dataclasses.replace(j, media_type=OCI_MANIFEST) for j in plan.jobs])
    save_bound(plan, path)
    return [digest for _, _, digest in images]


def test_each_job_opens_its_upload_while_reading_the_listing_and_the_pass_heads_while_listing(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One worker, three subjects: each job's upload POST is sent while its listing GET is unanswered, and each
    subject's signature-manifest HEAD while the pass's listing GET is. Old HEAD sent each after the other (7
    sequential round trips per signature; now 5), with the same requests."""
    repo = unique_repo("together")
    relay = _Together(registry.url).start()
    try:
        digests = _plan(relay.host, repo, registry, 3, tmp_path / "plan.json")
        code = sign(tmp_path, notation_dir, RegistryOptions(insecure_registries=frozenset({relay.host})), concurrency=1)
    finally:
        relay.stop()
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["counts"] == {"signed": 3}
    # The first job's upload goes out beside the referrers probe (404: distribution has no referrers API), so its
    # tag GET that follows has none beside it; the other two jobs' tag GETs each have theirs.
    assert (relay.together, relay.alone) == (Counter(batch=3, **{"pass": 3}), Counter(batch=1))
    # The same requests as before: pre-flight HEAD subject + HEAD empty config; the referrers probe once; per job
    # GET tag index, POST + PUT envelope, PUT signature manifest, PUT tag index; per job in the pass GET tag index
    # and HEAD signature manifest.
    assert relay.kinds == Counter(
        {
            "HEAD manifest by digest": 1 + 3,
            "HEAD blob": 1,
            f"GET /v2/{repo}/referrers/{digests[0]}": 1,
            "GET tag index": 3 + 3,
            "POST upload": 3,
            "PUT upload": 3,
            "PUT manifest by digest": 3,
            "PUT tag index": 3,
        }
    )
    assert {d: len(s) for d, s in signatures_by_subject(registry.host, repo, digests).items()} == dict.fromkeys(
        digests, 1
    )


def test_a_rerun_that_reuses_every_signature_writes_no_signature_and_cancels_the_kept_upload(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rerun with a fresh journal over signed subjects reuses all three. Its first job, never tried in this
    journal, signs and uploads its envelope while it reads the listing (eager: a reuse is not expected) and opens
    a session for the next job; the listing shows the signature, which is reused: that envelope is never listed or
    referenced, and no job after a reuse is eager. The next two take the kept session in turn without using it;
    it is cancelled (DELETE of that upload) when the batch ends. No signature manifest or index is written."""
    repo = unique_repo("keep-upload")
    relay = _Together(registry.url).start()
    relay.hold = False  # counting only
    try:
        options = RegistryOptions(insecure_registries=frozenset({relay.host}))
        digests = _plan(relay.host, repo, registry, 3, tmp_path / "plan.json")
        assert sign(tmp_path, notation_dir, options, concurrency=1) == 0
        first = {r["digest"]: r["signature"] for r in json.loads(capsys.readouterr().out)["results"]}
        relay.kinds.clear()
        code = sign(tmp_path, notation_dir, options, concurrency=1, journal=tmp_path / "fresh.sqlite")
    finally:
        relay.stop()
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["counts"] == {"reused": 3}
    assert {r["digest"]: r["signature"] for r in summary["results"]} == first
    assert (relay.kinds["POST upload"], relay.kinds["PUT upload"], relay.kinds["DELETE upload"]) == (2, 1, 1)
    assert relay.kinds["PUT manifest by digest"] == relay.kinds["PUT tag index"] == 0
    assert {d: len(s) for d, s in signatures_by_subject(registry.host, repo, digests).items()} == dict.fromkeys(
        digests, 1
    )


def test_sigkill_between_the_index_writes_and_the_pass_leaves_jobs_pushing_and_the_rerun_reuses_them(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every signature is written and listed, then the process dies at the pass's first request: no job was
    journaled done (a job is done only once the pass has seen it listed), each is left ``pushing``. The rerun on
    the same journal finds each signature listed and real, and reuses it: 0 signed again, 0 duplicates."""
    repo = unique_repo("kill-at-pass")
    relay = _Together(registry.url, kill_at_pass=True).start()
    journal = tmp_path / "journal.sqlite"
    try:
        digests = _plan(relay.host, repo, registry, 3, tmp_path / "plan.json")
        argv = [sys.executable, "-m", "dct2notation", "sign", str(tmp_path / "plan.json"),
                "--inventory", str(tmp_path / "inventory.json"), "--config-dir", str(notation_dir),
                "--insecure-registry", relay.host, "--journal", str(journal), "--concurrency", "1"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "dumb"}
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
        try:
            assert relay.at_pass.wait(120), proc.communicate(timeout=5)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        written = list(relay.signatures)
        with relay.lock:
            relay._arrived.notify_all()  # the held GET ends (its client is gone)
        assert len(written) == 3
        book = Journal(journal)
        try:
            assert [(e.state, e.signature, e.attempts) for e in book.entries()] == [("pushing", None, 1)] * 3
        finally:
            book.close()
        # The rerun on the same journal (and host: the journal's keys name it).
        relay.hold = False
        options = RegistryOptions(insecure_registries=frozenset({relay.host}))
        code = sign(tmp_path, notation_dir, options, concurrency=1, journal=journal)
    finally:
        relay.stop()
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["counts"] == {"reused": 3}
    assert summary["reconciliation"]["repaired"] == 0
    assert sorted(r["signature"] for r in summary["results"]) == sorted(written)
    listed = signatures_by_subject(registry.host, repo, digests)
    assert {d: len(s) for d, s in listed.items()} == dict.fromkeys(digests, 1)


class _Envelopes(Relay):
    """Forwards to the registry, answering each first read of a ``sha256-<hex>`` tag (a job's listing) only once an
    envelope PUT (upload) has arrived since the previous such answer, or after ``HOLD_SECONDS`` in vain, and noting
    for each how many uploads had arrived by then. (A fixed 0.3 s hold missed an upload that a loaded machine sent
    later than that.)"""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.uploads = 0
        self.at_answer: list[int] = []
        self._listed: set[str] = set()
        self._uploaded = threading.Condition(self.lock)

    def handle_call(self, method: str, path: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        kind = _kind(method, path)
        with self._uploaded:
            if kind == "PUT upload":
                self.uploads += 1
                self._uploaded.notify_all()
            if kind == "GET tag index" and path not in self._listed:
                self._listed.add(path)
                answered = self.at_answer[-1] if self.at_answer else 0
                self._uploaded.wait_for(lambda: self.uploads > answered, HOLD_SECONDS)
                self.at_answer.append(self.uploads)
        return self.forward(method, path, headers, body)


def test_a_fresh_job_uploads_its_envelope_while_its_listing_is_read_but_not_the_last_of_a_repository(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One worker, three subjects never tried: the first two jobs sign and upload their envelope before their
    listing read is answered (each into a session the job before opened: 3 sequential round trips in the batch, 4
    with the pass, as a raw pusher's); the third, the repository's last queued job, waits for its listing (nothing
    left to open a session for). Old HEAD uploaded every envelope after the listing."""
    repo = unique_repo("eager")
    relay = _Envelopes(registry.url).start()
    try:
        _plan(relay.host, repo, registry, 3, tmp_path / "plan.json")
        code = sign(tmp_path, notation_dir, RegistryOptions(insecure_registries=frozenset({relay.host})), concurrency=1)
    finally:
        relay.stop()
    assert code == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"signed": 3}
    # Envelope uploads already in when each job's listing was answered: job 1's, job 2's, and still 2 for job 3.
    assert relay.at_answer == [1, 2, 2]
    assert relay.uploads == 3
