"""Batch re-sign throughput against a local docker-registry, in one run, vs (a) raw httpx pushes of pre-made signature
artifacts, (b) the same pushes with the ``oras`` Python package, (c) one ``dct2notation sign`` process per digest.

Usage: python bench/batch_sign.py [--digests 2000] [--concurrency 16] [--oras-sample 500] [--process-sample 30]
                                  [--baseline CHECKOUT [--rounds 3]]

``--baseline`` also times a batch with another checkout's code (an older commit's tree), alternating it with this
tree's code round by round on fresh subjects of the same registry, both as ``sign PLAN`` processes, each timed by its
own summary's ``elapsed_seconds``: a before/after of one change under the same load, in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dct2notation.cli.migrate import sign_plan  # noqa: E402
from dct2notation.config import DEFAULT_LIMITS, SystemClock  # noqa: E402
from dct2notation.keys.resolve import load_signing_key  # noqa: E402
from dct2notation.keys.testcert import generate_test_key  # noqa: E402
from dct2notation.migrate.plan import Job, Plan, preflight  # noqa: E402
from dct2notation.notation.envelope import sign_envelope  # noqa: E402
from dct2notation.notation.manifest import (  # noqa: E402
    parse_signature_manifest,
    referrers_index,
    referrers_tag,
    signature_manifest,
)
from dct2notation.oci import COSE_MEDIA_TYPE, EMPTY_JSON, OCI_MANIFEST, Descriptor, sha256_digest  # noqa: E402
from dct2notation.registry.options import RegistryOptions  # noqa: E402
from dct2notation.registry.store import RegistryStore  # noqa: E402
from tests.support.images import image_manifest  # noqa: E402
from tests.support.plans import save_bound  # noqa: E402
from tests.support.servers import Registry  # noqa: E402


async def push_blob(client: httpx.AsyncClient, repo: str, data: bytes) -> str:
    digest = sha256_digest(data)
    started = await client.post(f"/v2/{repo}/blobs/uploads/")
    started.raise_for_status()
    location = started.headers["location"]
    # The upload URL carries its own query (_state); params= would replace it.
    done = await client.put(f"{location}{'&' if '?' in location else '?'}digest={digest}", content=data)
    done.raise_for_status()
    return digest


async def push_subjects(base: str, repo: str, count: int) -> list[Descriptor]:
    async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=32)) as client:
        await push_blob(client, repo, EMPTY_JSON)
        gate = asyncio.Semaphore(32)

        async def one(n: int) -> Descriptor:
            raw = image_manifest(f"bench-{n}")
            async with gate:
                # Tagged b<n>, as the DCT tags a plan carries (the plan pre-flight HEADs them).
                r = await client.put(f"/v2/{repo}/manifests/b{n}", content=raw, headers={"Content-Type": OCI_MANIFEST})
                r.raise_for_status()
            return Descriptor(OCI_MANIFEST, sha256_digest(raw), len(raw))

        return list(await asyncio.gather(*(one(n) for n in range(count))))


def plan_with_preflight(plan: Plan, host: str) -> None:
    """What ``dct2notation plan`` does before anyone runs ``sign``: HEAD every subject (untimed: a separate step)."""
    store = RegistryStore(host, RegistryOptions(insecure_registries=frozenset({host})))

    async def run() -> None:
        try:
            await preflight(plan, lambda _: store)
        finally:
            await store.aclose()

    try:
        asyncio.run(run())
    finally:
        store.close()
    assert plan.preflight == {"subjects": len(plan.jobs), "jobs": len(plan.jobs), "findings": {}}, plan.preflight


def premade(subjects: list[Descriptor], key_spec: str, config: Path) -> list[tuple[Descriptor, bytes, bytes, bytes]]:
    """(subject, envelope, signature manifest, referrers index): what a raw pusher gets for free."""
    key = load_signing_key(key_spec, config, DEFAULT_LIMITS)
    out = []
    for subject in subjects:
        signed = sign_envelope(subject, key, clock=SystemClock())
        env_desc = Descriptor(COSE_MEDIA_TYPE, sha256_digest(signed.raw), len(signed.raw))
        manifest = signature_manifest(env_desc, subject, signed.cert_chain, signed.signing_time, "legacy")
        # Listed as Notation lists it (artifactType, annotations), so a verifier finds it as a signature.
        entry = parse_signature_manifest(manifest).descriptor()
        out.append((subject, signed.raw, manifest, referrers_index([entry])))
    return out


async def raw_push(
    base: str, repo: str, items: list[tuple[Descriptor, bytes, bytes, bytes]], concurrency: int
) -> float:
    async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=concurrency)) as client:
        await push_blob(client, repo, EMPTY_JSON)
        gate = asyncio.Semaphore(concurrency)

        async def one(item: tuple[Descriptor, bytes, bytes, bytes]) -> None:
            subject, envelope, manifest, index = item
            async with gate:
                await push_blob(client, repo, envelope)
                r = await client.put(
                    f"/v2/{repo}/manifests/{sha256_digest(manifest)}",
                    content=manifest,
                    headers={"Content-Type": OCI_MANIFEST},
                )
                r.raise_for_status()
                r = await client.put(
                    f"/v2/{repo}/manifests/{referrers_tag(subject.digest)}",
                    content=index,
                    headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
                )
                r.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in items))
        return time.perf_counter() - start


def oras_push(host: str, repo: str, items: list[tuple[Descriptor, bytes, bytes, bytes]], work: Path) -> float:
    import oras.container
    import oras.provider

    client = oras.provider.Registry(hostname=host, insecure=True)
    empty = work / "empty.json"
    empty.write_bytes(EMPTY_JSON)
    start = time.perf_counter()
    for n, (subject, envelope, manifest, index) in enumerate(items):
        env_path = work / f"env{n}.sig"
        env_path.write_bytes(envelope)
        container = oras.container.Container(f"{host}/{repo}:{referrers_tag(subject.digest)}")
        client.upload_blob(str(env_path), container, {"digest": sha256_digest(envelope), "size": len(envelope)})
        client.upload_blob(str(empty), container, {"digest": sha256_digest(EMPTY_JSON), "size": 2})
        signed = oras.container.Container(f"{host}/{repo}@{sha256_digest(manifest)}")
        client.upload_manifest(json.loads(manifest), signed)
        # oras-py validates every manifest against the image-manifest schema, so the index goes through its own
        # request helper (same session, same auth), exactly as upload_manifest sends a manifest.
        client.do_request(
            f"{client.prefix}://{container.manifest_url()}",
            "PUT",
            headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
            data=index,
        )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--digests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--oras-sample", type=int, default=500)
    parser.add_argument("--process-sample", type=int, default=30)
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout to compare, round by round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.digests
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        registry = Registry(work / "registry").start()
        try:
            config = work / "notation"
            generate_test_key("bench", config, key_type="ec-p256", make_default=True)
            base = registry.url
            ours_subjects = asyncio.run(push_subjects(base, "bench/ours", n))
            raw_subjects = asyncio.run(push_subjects(base, "bench/raw", n))
            oras_subjects = asyncio.run(push_subjects(base, "bench/oras", args.oras_sample))
            proc_subjects = asyncio.run(push_subjects(base, "bench/proc", args.process_sample))

            jobs = [
                Job(f"{registry.host}/bench/ours", s.digest, s.size, "bench", "g", "targets", (f"b{n}",), "bench")
                for n, s in enumerate(ours_subjects)
            ]
            plan = Plan("bench", jobs)
            plan_with_preflight(plan, registry.host)
            inventory = save_bound(plan, work / "plan.json")
            options = RegistryOptions(insecure_registries=frozenset({registry.host}))
            sink = io.StringIO()
            start = time.perf_counter()
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(io.StringIO()):
                code = sign_plan(
                    plan=work / "plan.json",
                    inventory=inventory,
                    config_dir=config,
                    registry_options=options,
                    concurrency=args.concurrency,
                    progress=False,
                )
            ours = time.perf_counter() - start
            summary = json.loads(sink.getvalue())
            assert code == 0 and summary["counts"] == {"signed": n}, summary["counts"]
            reconciled = summary["reconciliation"]["seconds"] if "reconciliation" in summary else None
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

            raw_items = premade(raw_subjects, "bench", config)
            raw = asyncio.run(raw_push(base, "bench/raw", raw_items, args.concurrency))
            oras_items = premade(oras_subjects, "bench", config)
            oras_t = oras_push(registry.host, "bench/oras", oras_items, work)

            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            start = time.perf_counter()
            for s in proc_subjects:
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "dct2notation",
                        "sign",
                        f"{registry.host}/bench/proc@{s.digest}",
                        "--key",
                        "bench",
                        "--config-dir",
                        str(config),
                        "--insecure-registry",
                        registry.host,
                    ],
                    check=True,
                    capture_output=True,
                    env=env,
                )
            per_process = (time.perf_counter() - start) / len(proc_subjects)
            compared = (
                compare_rounds(registry, config, args.baseline, n, args.concurrency, args.rounds, work)
                if args.baseline is not None
                else None
            )
        finally:
            registry.stop()

    ours_rate = n / ours
    raw_rate = n / raw
    oras_rate = args.oras_sample / oras_t
    proc_rate = 1 / per_process
    print(f"digests {n}, concurrency {args.concurrency}")
    print(f"dct2notation sign PLAN (sign + list + push + index): {ours_rate:8.1f} signatures/s ({ours:.2f} s)")
    if reconciled is not None:
        # The pass runs inside the batch: its share of the batch's time is what it costs the batch's signatures/s.
        print(
            f"  of which the reconciliation pass: {reconciled:.2f} s ({100 * reconciled / ours:.1f}% of the batch; "
            f"{summary['reconciliation']['checked']} checked, {summary['reconciliation']['repaired']} repaired)"
        )
    print(f"(a) raw httpx push of pre-made artifacts: {raw_rate:8.1f} pushes/s -> ratio {ours_rate / raw_rate:.2f}x")
    print(
        f"(b) oras-py push of pre-made artifacts (sequential, sample {args.oras_sample}): "
        f"{oras_rate:8.1f} pushes/s -> ratio {ours_rate / oras_rate:.2f}x"
    )
    print(
        f"(c) one `dct2notation sign` process per digest (sample {len(proc_subjects)}, extrapolated): "
        f"{proc_rate:8.2f} signatures/s -> ratio {ours_rate / proc_rate:.1f}x"
    )
    print(f"peak RSS of the benchmark process after the batch: {peak_mb:.0f} MiB")
    if compared is not None:
        base_rates, head_rates, cpu = compared
        for i, (b, h) in enumerate(zip(base_rates, head_rates, strict=True)):
            print(
                f"round {i + 1}: baseline {b:8.1f} signatures/s, this tree {h:8.1f} signatures/s ({h / b:.3f}x); "
                f"CPU (sign process + registry) {cpu['base'][i]:.2f} vs {cpu['head'][i]:.2f} ms/signature"
            )
        b_med, h_med = statistics.median(base_rates), statistics.median(head_rates)
        print(f"median: baseline {b_med:.1f}, this tree {h_med:.1f} signatures/s -> {100 * (h_med / b_med - 1):+.1f}%")
        bc, hc = statistics.median(cpu["base"]), statistics.median(cpu["head"])
        # Signatures per CPU-second is what the batch gets on a machine it has to itself.
        print(
            f"median CPU: baseline {bc:.2f}, this tree {hc:.2f} ms/signature -> "
            f"{100 * (bc / hc - 1):+.1f}% signatures/CPU-s"
        )


def process_cpu(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def compare_rounds(
    registry: Registry, config: Path, baseline: Path, n: int, concurrency: int, rounds: int, work: Path
) -> tuple[list[float], list[float], dict[str, list[float]]]:
    """Alternate ``sign PLAN`` processes of the baseline checkout and of this tree on fresh subjects.

    Also the CPU each batch cost (the ``sign`` process plus the registry, in ms per signature): on 2 cores shared
    with other work, wall-clock rates swing by a factor of two between rounds, CPU time far less."""
    rates: dict[str, list[float]] = {"base": [], "head": []}
    cpu: dict[str, list[float]] = {"base": [], "head": []}
    assert registry.proc is not None
    for r in range(rounds):
        order = ("base", "head") if r % 2 == 0 else ("head", "base")
        for who in order:
            repo = f"bench/{who}{r}"
            subjects = asyncio.run(push_subjects(registry.url, repo, n))
            jobs = [
                Job(f"{registry.host}/{repo}", s.digest, s.size, "bench", "g", "targets", (f"b{k}",), f"{who}{r}")
                for k, s in enumerate(subjects)
            ]
            plan = Plan(f"{who}{r}", jobs)
            plan_with_preflight(plan, registry.host)
            path = work / f"plan-{who}{r}.json"
            code_root = baseline if who == "base" else ROOT
            # This tree signs a plan only against the inventory it is bound to (issue #14 item 5); a baseline
            # older than that takes neither the binding nor --inventory.
            bound = ["--inventory", str(save_bound(plan, path, work / f"inventory-{who}{r}.json"))]
            if who == "base" and "--inventory" not in (baseline / "dct2notation/cli/migrate.py").read_text():
                plan.save(path)
                bound = []
            before = children_cpu() + process_cpu(registry.proc.pid)
            done = subprocess.run(
                [sys.executable, "-m", "dct2notation", "sign", str(path), "--config-dir", str(config),
                 "--insecure-registry", registry.host, "--concurrency", str(concurrency), *bound],
                capture_output=True, env={**os.environ, "PYTHONPATH": str(code_root), "TERM": "dumb"},
                cwd=code_root, check=True,
            )  # fmt: skip
            summary = json.loads(done.stdout)
            assert summary["counts"] == {"signed": n}, (who, summary["counts"])
            rates[who].append(n / summary["elapsed_seconds"])
            cpu[who].append(1000 * (children_cpu() + process_cpu(registry.proc.pid) - before) / n)
    return rates["base"], rates["head"], cpu


if __name__ == "__main__":
    main()
