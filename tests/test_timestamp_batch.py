"""Batch signing with a TSA: a failing TSA fails the jobs (nothing pushed, resumable); TSA time in the summary."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cbor2
import pytest

from dct2notation.cli.migrate import sign_plan
from dct2notation.config import DEFAULT_LIMITS, FixedClock
from dct2notation.keys.testcert import generate_test_key
from dct2notation.migrate.batch import TimedTimestamper
from dct2notation.notation.envelope import TIMESTAMP_SIGNATURE
from dct2notation.notation.timestamp import HttpTimestamper, verify_timestamp_token
from dct2notation.registry.options import RegistryOptions
from dct2notation.registry.store import RegistryStore, fetch_signatures
from tests.support.plans import save_bound
from tests.support.plugin_pki import make_chain
from tests.support.servers import Registry
from tests.support.tsa import TestTSA
from tests.test_batch import make_plan, push_images, unique_repo

# Quick retries; the default per-read timeout, since no test here hangs the TSA (a 1 s one turned a slow
# `openssl ts -reply` on a loaded machine into a retry and an extra request).
FAST = dataclasses.replace(DEFAULT_LIMITS, retry_attempts=2, retry_max_wait_seconds=0.05)

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
]


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[TestTSA]:
    server = TestTSA(tmp_path / "tsa").start()
    yield server
    server.stop()


def test_failing_tsa_fails_jobs_then_rerun_completes(
    registry: Registry, tsa: TestTSA, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "notation"
    generate_test_key(
        "stamped",
        config,
        key_type="ec-p256",
        make_default=True,
        clock=FixedClock(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)),
    )
    repo = unique_repo("tsa")
    images = push_images(registry.host, repo, 3)
    save_bound(make_plan(registry.host, repo, images, ["stamped"], "m-tsa"), tmp_path / "plan.json")
    options = RegistryOptions(insecure_registries=frozenset({registry.host}))

    def run() -> tuple[int | None, dict[str, object], HttpTimestamper]:
        stamper = HttpTimestamper(tsa.url, tsa.pki.root_pem, limits=FAST)
        code = sign_plan(
            plan=tmp_path / "plan.json",
            inventory=tmp_path / "inventory.json",
            config_dir=config,
            registry_options=options,
            journal=tmp_path / "journal.sqlite",
            timestamper=stamper,
            concurrency=2,
            progress=False,
        )
        stamper.close()
        return code, json.loads(capsys.readouterr().out), stamper

    tsa.mode = "wrong-nonce"
    code, summary, _ = run()
    assert code == 1
    assert summary["counts"] == {"failed": 3}
    errors = [f["error"] for f in summary["failures"]]  # type: ignore[attr-defined]
    assert len(errors) == 3
    assert all(e.startswith(f"TSA {tsa.url}: timestamp token nonce ") for e in errors), errors
    store = RegistryStore(registry.host, options)
    try:
        assert all(store.list_signatures(repo, digest) == [] for _, _, digest in images)
    finally:
        store.close()

    tsa.mode = "ok"
    tsa.requests.clear()
    code, summary, stamper = run()
    assert code == 0, summary["failures"]
    assert summary["counts"] == {"signed": 3}
    assert stamper.calls == 3 == len(tsa.requests)
    assert 0 < summary["timestamp_seconds"] <= summary["elapsed_seconds"]  # type: ignore[operator]
    store = RegistryStore(registry.host, options)
    try:
        for _, _, digest in images:
            (stored,) = fetch_signatures(store, repo, digest)
            _p, unprotected, _payload, signature = cbor2.loads(stored.envelope).value
            verify_timestamp_token(unprotected[TIMESTAMP_SIGNATURE], signature, [tsa.pki.root], "SHA-256")
    finally:
        store.close()


def test_tsa_seconds_are_wall_time_not_a_sum_over_the_threads_waiting(tsa: TestTSA) -> None:
    """Jobs timestamp from worker threads at once. Two requests the TSA holds 0.3 s side by side are 0.3 s of TSA
    time, not 0.6: the summary summed each thread's wait and could report more TSA seconds than elapsed seconds."""
    tsa.delay = 0.3
    chain = make_chain().chain
    timed = TimedTimestamper(HttpTimestamper(tsa.url, tsa.pki.root_pem, limits=FAST))
    together = threading.Barrier(2)
    tokens: list[bytes] = []

    def stamp() -> None:
        together.wait(10)
        tokens.append(timed.timestamp(b"signature", hash_algorithm="SHA-256", signing_chain=chain))

    threads = [threading.Thread(target=stamp) for _ in range(2)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    wall = time.monotonic() - started
    assert (len(tokens), timed.calls, len(tsa.requests)) == (2, 2, 2)
    assert tsa.delay <= timed.seconds <= wall
