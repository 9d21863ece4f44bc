"""Coexistence check throughput and memory, each run as a real ``dct2notation check`` child process.

1. Registry: ``--tags`` tags (``--tags-per-digest`` per image, every image Notation-signed) in a local docker-registry;
   tags/s and the child's peak RSS, vs the naive peer: one resolve + signature fetch + verification per tag, sequential,
   no digest cache (what a loop over ``notation verify`` per tag does, minus process start-up), on a sample.
2. OCI layout: ``--layout-tags`` tags over an OCI layout, for peak memory.

Usage: python bench/check.py [--tags 10000] [--tags-per-digest 10] [--layout-tags 100000] [--naive-sample 300]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dct2notation.config import DEFAULT_LIMITS, SystemClock  # noqa: E402
from dct2notation.keys.resolve import load_signing_key  # noqa: E402
from dct2notation.keys.testcert import generate_test_key  # noqa: E402
from dct2notation.notation.envelope import sign_envelope  # noqa: E402
from dct2notation.notation.policy import TrustPolicyDocument  # noqa: E402
from dct2notation.notation.truststore import TrustStore  # noqa: E402
from dct2notation.notation.verify import verify_artifact  # noqa: E402
from dct2notation.oci import EMPTY_JSON, OCI_MANIFEST, Descriptor, sha256_digest  # noqa: E402
from dct2notation.registry.layout import REF_NAME, OCILayoutStore  # noqa: E402
from dct2notation.registry.options import RegistryOptions  # noqa: E402
from dct2notation.registry.reference import Reference  # noqa: E402
from dct2notation.registry.store import RegistryStore, fetch_signatures  # noqa: E402
from tests.support.images import image_manifest  # noqa: E402
from tests.support.servers import Registry  # noqa: E402


def write_inventory(path: Path, gun: str, tags: list[tuple[str, str, int]]) -> None:
    trusted = [{"tag": t, "digest": d, "size": s, "role": "targets/releases"} for t, d, s in tags]
    doc = {
        "format": "dct2notation-inventory/1",
        "evaluated_at": "2026-01-01T00:00:00Z",
        "repositories": [{"gun": gun, "trusted_tags": trusted}],
    }
    path.write_text(json.dumps(doc))


def write_policy(work: Path, config: Path) -> tuple[Path, Path]:
    store = work / "truststore"
    (store / "x509" / "ca" / "bench").mkdir(parents=True)
    shutil.copy(config / "localkeys" / "bench.crt", store / "x509" / "ca" / "bench" / "cert.pem")
    statement = {
        "name": "bench",
        "registryScopes": ["*"],
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:bench"],
        "trustedIdentities": ["*"],
    }
    policy = work / "trustpolicy.json"
    policy.write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
    return policy, store


def run_check(args: list[str]) -> tuple[float, float, dict[str, Any]]:
    """(seconds, peak RSS MiB of the child, summary) for one ``dct2notation check`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "dct2notation", "check", *args, "--json", "--no-table"],
        capture_output=True,
        cwd=ROOT,
        check=False,
    )
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode not in (0, 1):
        raise SystemExit(f"check failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    if peak <= before:
        print("note: peak RSS of this child did not exceed an earlier child's; figure is an upper bound")
    summary = json.loads(proc.stdout)["summary"]
    return elapsed, max(peak, before) / 1024, summary


def bench_registry(work: Path, config: Path, tags: int, per_digest: int, naive_sample: int, concurrency: int) -> None:
    registry = Registry(work / "registry").start()
    try:
        host = registry.host
        options = RegistryOptions(insecure_registries=frozenset({host}))
        store = RegistryStore(host, options)
        repo = "bench/app"
        key = load_signing_key("bench", config)
        clock = SystemClock()
        images = [image_manifest(f"bench-{i}") for i in range(tags // per_digest)]
        store.client.push_blob(repo, EMPTY_JSON)
        setup = time.perf_counter()

        def push(i: int) -> list[tuple[str, str, int]]:
            raw = images[i]
            subject = Descriptor(OCI_MANIFEST, sha256_digest(raw), len(raw))
            out = []
            for j in range(per_digest):
                tag = f"t{i}-{j}"
                store.client.put_manifest(repo, tag, raw, OCI_MANIFEST)
                out.append((tag, subject.digest, subject.size))
            signed = sign_envelope(subject, key, clock=clock)
            store.push_signature(repo, subject, signed)
            return out

        with ThreadPoolExecutor(16) as pool:
            pushed = [row for rows in pool.map(push, range(len(images))) for row in rows]
        print(f"setup: {len(pushed)} tags over {len(images)} signed digests in {time.perf_counter() - setup:.1f}s")
        inventory = work / "inventory-registry.json"
        write_inventory(inventory, f"{host}/{repo}", pushed)
        policy, truststore = work / "trustpolicy.json", work / "truststore"
        args = ["--inventory", str(inventory), "--policy", str(policy), "--truststore", str(truststore)]
        args += ["--insecure-registry", host, "--concurrency", str(concurrency)]
        elapsed, peak, summary = run_check(args)
        assert summary["counts"]["ok"] == len(pushed), summary
        rate = len(pushed) / elapsed

        # The naive peer, in-process (no start-up cost counted): per tag, resolve, fetch and verify, no cache.
        document = TrustPolicyDocument.load(policy)
        trust = TrustStore(truststore)
        start = time.perf_counter()
        for tag, _, _ in pushed[:naive_sample]:
            subject = store.resolve(Reference(host, repo, tag))
            envelopes = [s.envelope for s in fetch_signatures(store, repo, subject.digest)]
            reference = f"{host}/{repo}@{subject.digest}"
            outcome = verify_artifact(
                reference, subject, envelopes, policy=document, truststore=trust, clock=clock, limits=DEFAULT_LIMITS
            )
            assert outcome.ok
        naive = naive_sample / (time.perf_counter() - start)
        store.close()
        print(
            f"registry: {len(pushed)} tags in {elapsed:.2f}s = {rate:.0f} tags/s (target >= 500), "
            f"peak RSS {peak:.0f} MiB; naive per-tag peer {naive:.0f} tags/s; ratio {rate / naive:.1f}x"
        )
    finally:
        registry.stop()


def bench_layout(work: Path, config: Path, tags: int, per_digest: int) -> None:
    layout_dir = work / "layout"
    store = OCILayoutStore(layout_dir, create=True)
    key = load_signing_key("bench", config)
    clock = SystemClock()
    count = tags // per_digest
    subjects = []
    for i in range(count):
        raw = image_manifest(f"layout-{i}")
        subjects.append(Descriptor(OCI_MANIFEST, store.layout.put_blob(raw), len(raw)))
    start = time.perf_counter()
    for subject in subjects[: min(count, 500)]:  # signatures on a sample: each write rewrites index.json
        signed = sign_envelope(subject, key, clock=clock)
        store.push_signature("", subject, signed)
    print(f"layout setup: {min(count, 500)} signatures in {time.perf_counter() - start:.1f}s")
    index = json.loads((layout_dir / "index.json").read_bytes())
    rows = []
    for n in range(tags):
        subject = subjects[n % count]
        tag = f"t{n}"
        entry = dict(subject.to_dict(), annotations={REF_NAME: tag})
        index["manifests"].append(entry)
        rows.append((tag, subject.digest, subject.size))
    (layout_dir / "index.json").write_text(json.dumps(index))
    inventory = work / "inventory-layout.json"
    write_inventory(inventory, "dct.example/bench/app", rows)
    policy, truststore = (work / "trustpolicy.json", work / "truststore")
    args = ["--inventory", str(inventory), "--oci-layout", str(layout_dir)]
    elapsed, peak, summary = run_check([*args, "--policy", str(policy), "--truststore", str(truststore)])
    print(
        f"layout: {tags} tags in {elapsed:.2f}s = {tags / elapsed:.0f} tags/s, peak RSS {peak:.0f} MiB "
        f"(target < 300 MiB); counts {summary['counts']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, default=10_000)
    parser.add_argument("--tags-per-digest", type=int, default=10)
    parser.add_argument("--layout-tags", type=int, default=100_000)
    parser.add_argument("--layout-tags-per-digest", type=int, default=50)
    parser.add_argument("--naive-sample", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = work / "notation"
        generate_test_key("bench", config, key_type="ec-p256", make_default=True)
        write_policy(work, config)
        if opts.tags:
            bench_registry(work, config, opts.tags, opts.tags_per_digest, opts.naive_sample, opts.concurrency)
        bench_layout(work, config, opts.layout_tags, opts.layout_tags_per_digest)


if __name__ == "__main__":
    main()
