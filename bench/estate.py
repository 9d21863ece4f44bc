"""A whole estate over a (simulated) real network, in one run (#19.4).

A delay proxy on loopback (tests/support/delay_proxy.py: asyncio TCP, a fixed delay each way) puts ``2 x --delay``
of round trip between the tool and the real notary-server and docker-registry. For each size:

* an estate of GUNS x TAGS made with the real notary client; timed: ``discover`` + ``archive --guns-from``
  (``--concurrency``) + ``inventory --archive`` (what the runbooks run), and the same as one command
  (``archive --server URL --discover --inventory FILE``), each against (a) a shell loop of ``notary list``
  per GUN and (b) a minimal concurrent httpx fetcher of the same metadata files (changefeed page, then root,
  timestamp, snapshot and targets of each GUN, all four at once) at the same concurrency;
* a batch re-sign of DIGESTS subjects (``sign PLAN``), against (a) one process per digest (``notation sign`` when
  scripts/peers.sh built it, else ``dct2notation sign REF``; a sample, extrapolated) and (b) raw httpx pushes of
  pre-made signature artifacts (envelope, signature manifest, referrers tag index) at the same concurrency;
* ``check --inventory`` of those signed tags through the proxy: tags/s;
* ``--check-tags N[,N…]``: ``check`` of N tags alone, ``--check-tags-per-gun`` tags per GUN (200 x 100 for 20,000),
  each tag its own image, each image Notation-signed, written straight into the registry (untimed: what is timed is
  the check through the proxy, at ``--check-concurrency``); with the CPU seconds of the check, the registry and the
  proxy (/proc), and the registry's CPU per request.

Each timed command is its own process; its peak RSS is its own (``os.wait4``). The proxy is its own process too
(``DelayProcess``), so its CPU is neither the benchmark's nor the tool's.

Usage: python bench/estate.py [--guns 50,200] [--tags 20] [--digests 500,2000] [--delay 0.015] [--concurrency 16]
                              [--process-sample 30] [--check-tags 2000,20000 --check-tags-per-gun 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.batch_sign import plan_with_preflight, premade, push_blob, push_subjects, raw_push  # noqa: E402
from dct2notation.keys.testcert import generate_test_key  # noqa: E402
from dct2notation.migrate.plan import Job, Plan  # noqa: E402
from dct2notation.oci import EMPTY_JSON, OCI_INDEX, OCI_MANIFEST, Descriptor, sha256_digest  # noqa: E402
from tests.support.delay_proxy import DelayProcess, process_cpu_seconds  # noqa: E402
from tests.support.images import image_manifest  # noqa: E402
from tests.support.notary_builders import sha256_hex  # noqa: E402
from tests.support.peers import peer_path  # noqa: E402
from tests.support.plans import save_bound  # noqa: E402
from tests.support.servers import NotaryClient, NotaryServer, Registry  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "dumb"}
OURS = [sys.executable, "-m", "dct2notation"]


@dataclass
class Timed:
    seconds: float
    peak_mib: float
    code: int
    stdout: bytes
    cpu_s: float = 0.0  # user + system of this process


def timed(cmd: list[str], *, env: dict[str, str] | None = None, stdout_to: Path | None = None) -> Timed:
    """Wall time and the peak RSS of this one process (not of the benchmark, not of earlier children)."""
    out = stdout_to.open("wb") if stdout_to is not None else subprocess.PIPE
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env or ENV)
    data = proc.stdout.read() if proc.stdout is not None else b""
    err = proc.stderr.read() if proc.stderr is not None else b""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if stdout_to is not None:
        out.close()  # type: ignore[union-attr]
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd[:6])}… exited {proc.returncode}: {err.decode()[-800:]}")
    return Timed(seconds, usage.ru_maxrss / 1024, proc.returncode, data, usage.ru_utime + usage.ru_stime)


def build_estate(server: NotaryServer, work: Path, guns: int, tags: int) -> list[str]:
    """GUNS x TAGS with the real notary client (init, addhash per tag, publish), 4 clients at once."""
    names = [f"bench.example/estate/app{n:04d}" for n in range(guns)]

    def make(chunk: int) -> None:
        client = NotaryClient(server.url, work / f"trust-build-{chunk}")
        for gun in names[chunk::4]:
            client.init(gun)
            for t in range(tags):
                client.addhash(gun, f"v{t}", 1000 + t, sha256_hex(f"{gun}:{t}"))
            client.publish(gun)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(make, range(4)))
    return names


async def ideal_fetch(base: str, guns: list[str], concurrency: int) -> int:
    """The changefeed page and each GUN's four files, no verification, at most ``concurrency`` requests at once."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits) as client:

        async def get(path: str) -> int:
            async with gate:
                r = await client.get(path)
                r.raise_for_status()
                return len(r.content)

        total = await get(f"/v2/_trust/changefeed?change_id=0&records={max(1000, 4 * len(guns))}")
        paths = [
            f"/v2/{gun}/_trust/tuf/{role}.json" for gun in guns for role in ("root", "timestamp", "snapshot", "targets")
        ]
        sizes = await asyncio.gather(*(get(p) for p in paths))
        return total + sum(sizes)


def estate_run(work: Path, guns: int, tags: int, delay: float, concurrency: int) -> dict[str, object]:
    server = NotaryServer(work / "notary").start()
    proxy = DelayProcess("127.0.0.1", server.port, delay)
    try:
        started = time.perf_counter()
        names = build_estate(server, work, guns, tags)
        build_s = time.perf_counter() - started
        url = f"http://{proxy.host}"
        listed = work / "guns.txt"
        discover = timed([*OURS, "discover", "--server", url, "-o", str(listed)])
        assert listed.read_text().split() == names, "discover did not find the estate"
        archive = timed([*OURS, "archive", "--guns-from", str(listed), "--server", url, "-o", str(work / "archive"),
                         "--concurrency", str(concurrency)])  # fmt: skip
        inventory = timed([*OURS, "inventory", "--guns-from", str(listed), "--archive", str(work / "archive"),
                           "--json"], stdout_to=work / "inventory.json")  # fmt: skip
        doc = json.loads((work / "inventory.json").read_text())
        assert sum(len(r["trusted_tags"]) for r in doc["repositories"]) == guns * tags
        ours = discover.seconds + archive.seconds + inventory.seconds
        # The same three steps as one command: each GUN read once, one process start-up.
        one = timed([*OURS, "archive", "--server", url, "--discover", "-o", str(work / "archive-one"),
                     "--inventory", str(work / "inventory-one.json"), "--concurrency", str(concurrency)])  # fmt: skip
        doc_one = json.loads((work / "inventory-one.json").read_text())
        assert [r["gun"] for r in doc_one["repositories"]] == names
        assert sum(len(r["trusted_tags"]) for r in doc_one["repositories"]) == guns * tags

        trust = work / "trust-list"
        script = f'for g in $(cat {listed}); do notary -s {url} -d {trust} list "$g" >/dev/null || exit 2; done'
        loop = timed(["bash", "-c", script])
        start = time.perf_counter()
        asyncio.run(ideal_fetch(url, names, concurrency))
        ideal = time.perf_counter() - start
    finally:
        proxy.close()
        server.stop()
    return {
        "guns": guns, "tags": tags, "build_seconds": round(build_s, 1),
        "discover_s": round(discover.seconds, 2), "archive_s": round(archive.seconds, 2),
        "inventory_s": round(inventory.seconds, 2), "ours_s": round(ours, 2),
        "peak_mib": round(max(discover.peak_mib, archive.peak_mib, inventory.peak_mib), 1),
        "archive_peak_mib": round(archive.peak_mib, 1),
        "notary_list_loop_s": round(loop.seconds, 2), "ideal_httpx_s": round(ideal, 2),
        "vs_loop": round(loop.seconds / ours, 1), "vs_ideal": round(ideal / ours, 2),
        "one_command_s": round(one.seconds, 2), "one_command_peak_mib": round(one.peak_mib, 1),
        "one_vs_loop": round(loop.seconds / one.seconds, 1), "one_vs_ideal": round(ideal / one.seconds, 2),
    }  # fmt: skip


def sign_run(
    work: Path, digests: int, delay: float, concurrency: int, sample: int, check_concurrency: int
) -> dict[str, object]:
    registry = Registry(work / "registry").start()
    proxy = DelayProcess("127.0.0.1", registry.port, delay)
    try:
        host = proxy.host
        xdg = work / "xdg"
        config = xdg / "notation"
        generate_test_key("bench", config, key_type="ec-p256", make_default=True)
        ours_subjects = asyncio.run(push_subjects(registry.url, "bench/ours", digests))
        raw_subjects = asyncio.run(push_subjects(registry.url, "bench/raw", digests))
        proc_subjects = asyncio.run(push_subjects(registry.url, "bench/proc", sample))
        jobs = [
            Job(f"{host}/bench/ours", s.digest, s.size, "bench", f"{host}/bench/ours", "targets", (f"b{n}",), "bench")
            for n, s in enumerate(ours_subjects)
        ]
        plan = Plan("bench", jobs)
        plan_with_preflight(plan, host)  # untimed: `plan` is its own step
        inventory = save_bound(plan, work / "plan.json")
        # CPU per signature of each side (the signer or pusher, the registry, the proxy): on 2 shared cores the
        # batch is CPU-bound as much as latency-bound, and a ratio alone does not say which.
        before = process_cpu_seconds(registry.proc.pid), proxy.cpu_seconds()
        sign = timed([*OURS, "sign", str(work / "plan.json"), "--inventory", str(inventory), "--config-dir",
                      str(config), "--insecure-registry", host, "--concurrency", str(concurrency)])  # fmt: skip
        sign_cpu = (sign.cpu_s, process_cpu_seconds(registry.proc.pid) - before[0], proxy.cpu_seconds() - before[1])
        summary = json.loads(sign.stdout)
        assert summary["counts"] == {"signed": digests}, summary["counts"]

        items = premade(raw_subjects, "bench", config)
        before = process_cpu_seconds(registry.proc.pid), proxy.cpu_seconds(), time.process_time()
        raw = asyncio.run(raw_push(f"http://{host}", "bench/raw", items, concurrency))
        raw_cpu = (time.process_time() - before[2], process_cpu_seconds(registry.proc.pid) - before[0],
                   proxy.cpu_seconds() - before[1])  # fmt: skip

        notation = peer_path("notation")
        per = []
        for s in proc_subjects:
            ref = f"{host}/bench/proc@{s.digest}"
            if notation is not None:
                env = {"PATH": os.environ.get("PATH", ""), "HOME": str(work), "XDG_CONFIG_HOME": str(xdg)}
                cmd = [str(notation), "sign", "--insecure-registry", "--key", "bench", ref]
            else:
                env = ENV
                cmd = [*OURS, "sign", ref, "--key", "bench", "--config-dir", str(config), "--insecure-registry", host]
            one = timed(cmd, env=env)
            assert one.code == 0, cmd
            per.append(one.seconds)
        per_process = sum(per) / len(per)

        policy = work / "policy"
        policy.mkdir()
        statement = {"name": "bench", "registryScopes": [f"{host}/bench/ours"],
                     "signatureVerification": {"level": "strict"}, "trustStores": ["ca:bench"],
                     "trustedIdentities": ["*"]}  # fmt: skip
        (policy / "trustpolicy.json").write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
        check = timed([*OURS, "check", "--inventory", str(inventory), "--policy", str(policy / "trustpolicy.json"),
                       "--truststore", str(config / "truststore"), "--insecure-registry", host, "--json",
                       "--no-table", "--concurrency", str(check_concurrency), "--require", "notation"])  # fmt: skip
        checked = json.loads(check.stdout)
        statuses: dict[str, int] = {}
        for row in checked.get("tags", []):
            statuses[str(row.get("status"))] = statuses.get(str(row.get("status")), 0) + 1
    finally:
        proxy.close()
        registry.stop()
    ours_rate = digests / sign.seconds
    return {
        "digests": digests, "sign_s": round(sign.seconds, 2), "sign_rate": round(ours_rate, 1),
        "sign_peak_mib": round(sign.peak_mib, 1),
        # The batch alone (after start-up and pre-flight) and the reconciliation pass inside it.
        "sign_batch_s": summary["elapsed_seconds"], "sign_pass_s": summary["reconciliation"]["seconds"],
        "sign_cpu_ms": [round(1000 * c / digests, 2) for c in sign_cpu],  # signer, registry, proxy
        "raw_cpu_ms": [round(1000 * c / digests, 2) for c in raw_cpu],  # pusher, registry, proxy
        "raw_push_s": round(raw, 2), "raw_rate": round(digests / raw, 1),
        "vs_raw": round(ours_rate / (digests / raw), 2),
        "per_process_tool": "notation sign" if notation is not None else "dct2notation sign REF",
        "per_process_s": round(per_process, 3), "vs_per_process": round(ours_rate * per_process, 1),
        "check_concurrency": check_concurrency, "check_s": round(check.seconds, 2),
        "check_tags_per_s": round(digests / check.seconds, 1),
        "check_peak_mib": round(check.peak_mib, 1), "check_exit": check.code, "check_statuses": statuses,
    }  # fmt: skip


async def push_tagged(base: str, images: dict[str, dict[str, bytes]]) -> None:
    """Each repository's images under their tags, 32 requests at once, straight to the registry."""
    async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=32)) as client:
        gate = asyncio.Semaphore(32)

        async def one(repo: str, name: str, raw: bytes) -> None:
            async with gate:
                r = await client.put(
                    f"/v2/{repo}/manifests/{name}", content=raw, headers={"Content-Type": OCI_MANIFEST}
                )
                r.raise_for_status()

        for repo in images:
            await push_blob(client, repo, EMPTY_JSON)
        await asyncio.gather(*(one(repo, n, raw) for repo, tagged in images.items() for n, raw in tagged.items()))


def check_estate(base: str, host: str, tags: int, per_gun: int, config: Path) -> list[dict[str, Any]]:
    """``tags`` tags over ``tags / per_gun`` repositories, each tag its own image, each image signed (premade
    envelope, signature manifest and ``sha256-<hex>`` index pushed straight to the registry, as Notation 1.x with the
    tag schema leaves them). Returns the inventory's repositories (GUN ``host/…``: through the proxy)."""
    guns = -(-tags // per_gun)
    images = {
        f"bench/estate/app{g:04d}": {
            f"v{t}": image_manifest(f"app{g:04d}:v{t}") for t in range(min(per_gun, tags - g * per_gun))
        }
        for g in range(guns)
    }
    asyncio.run(push_tagged(base, images))
    repositories = []
    for repo, tagged in images.items():
        subjects = [Descriptor(OCI_MANIFEST, sha256_digest(raw), len(raw)) for raw in tagged.values()]
        asyncio.run(raw_push(base, repo, premade(subjects, "bench", config), 32))
        trusted = [{"tag": name, "digest": d.digest, "size": d.size, "role": "targets/releases"}
                   for name, d in zip(tagged, subjects, strict=True)]  # fmt: skip
        repositories.append({"gun": f"{host}/{repo}", "trusted_tags": trusted})
    return repositories


def registry_floor(
    registry: Registry, repository: dict[str, Any], requests: int, concurrency: int
) -> dict[str, object]:
    """What the registry itself spends on the check's four requests per signed tag: each kind sent ``requests`` times
    by ``ab`` (ApacheBench, C, keep-alive, ``concurrency`` at once; its own CPU is next to nothing) straight to the
    registry, with the registry's CPU from /proc. The sum per tag bounds tags/s on this machine for ANY client."""
    import shutil

    if shutil.which("ab") is None:
        return {"skipped": "ab (apache2-utils) is not installed"}
    assert registry.proc is not None
    repo = str(repository["gun"]).partition("/")[2]
    first = repository["trusted_tags"][0]
    base = f"{registry.url}/v2/{repo}"
    index_tag = f"sha256-{first['digest'].removeprefix('sha256:')}"
    signature = httpx.get(f"{base}/manifests/{index_tag}", headers={"Accept": OCI_INDEX}).json()["manifests"][0]
    manifest = httpx.get(f"{base}/manifests/{signature['digest']}", headers={"Accept": OCI_MANIFEST}).json()
    kinds = {
        "HEAD manifest by tag": ["-i", f"{base}/manifests/{first['tag']}"],
        "GET sha256-<hex> tag index": [f"{base}/manifests/{index_tag}"],
        "GET signature manifest": [f"{base}/manifests/{signature['digest']}"],
        "GET envelope blob": [f"{base}/blobs/{manifest['layers'][0]['digest']}"],
    }
    accept = f"Accept: {OCI_MANIFEST}, {OCI_INDEX}"
    out: dict[str, object] = {}
    per_tag = 0.0
    for kind, args in kinds.items():
        before, start = process_cpu_seconds(registry.proc.pid), time.perf_counter()
        ab = subprocess.run(["ab", "-q", "-k", "-c", str(concurrency), "-n", str(requests), "-H", accept, *args],
                            capture_output=True, text=True, check=True)  # fmt: skip
        seconds = time.perf_counter() - start
        cpu_ms = 1000 * (process_cpu_seconds(registry.proc.pid) - before) / requests
        failed = [line for line in ab.stdout.splitlines() if line.startswith(("Failed requests", "Non-2xx"))]
        assert failed in ([], ["Failed requests:        0"]), failed
        out[kind] = {"requests_per_s": round(requests / seconds), "registry_cpu_ms": round(cpu_ms, 3)}
        per_tag += cpu_ms
    cores = os.cpu_count() or 1
    out["registry_cpu_ms_per_tag"] = round(per_tag, 3)
    out["max_tags_per_s_registry_alone_on_all_cores"] = round(cores * 1000 / per_tag)
    return out


def check_run(work: Path, tags: int, per_gun: int, delay: float, concurrency: int) -> dict[str, object]:
    registry = Registry(work / "registry").start()
    proxy = DelayProcess("127.0.0.1", registry.port, delay)
    try:
        host = proxy.host
        config = work / "xdg" / "notation"
        generate_test_key("bench", config, key_type="ec-p256", make_default=True)
        started = time.perf_counter()
        repositories = check_estate(registry.url, host, tags, per_gun, config)
        build_s = time.perf_counter() - started
        inventory = work / "inventory.json"
        inventory.write_text(json.dumps({"format": "dct2notation-inventory/1", "evaluated_at": "2026-01-01T00:00:00Z",
                                         "repositories": repositories}))  # fmt: skip
        policy = work / "trustpolicy.json"
        statement = {"name": "bench", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
                     "trustStores": ["ca:bench"], "trustedIdentities": ["*"]}  # fmt: skip
        policy.write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
        assert registry.proc is not None
        registry_cpu, proxy_cpu = process_cpu_seconds(registry.proc.pid), proxy.cpu_seconds()
        check = timed([*OURS, "check", "--inventory", str(inventory), "--policy", str(policy), "--truststore",
                       str(config / "truststore"), "--insecure-registry", host, "--json", "--no-table",
                       "--concurrency", str(concurrency), "--require", "notation"],
                      stdout_to=work / "check.json")  # fmt: skip
        registry_cpu = process_cpu_seconds(registry.proc.pid) - registry_cpu
        proxy_cpu = proxy.cpu_seconds() - proxy_cpu
        summary = json.loads((work / "check.json").read_text())["summary"]
        assert summary["counts"]["ok"] == tags and summary["unmet"] == 0, summary
        floor = registry_floor(registry, repositories[0], min(tags, 4000), concurrency)
    finally:
        proxy.close()
        registry.stop()
    # Requests the check makes (the code path; tests/test_check_requests.py counts them on the wire): a HEAD per
    # tag, the tag index, signature manifest and envelope per signed digest, a tag listing per GUN, a referrers
    # probe per client.
    guns = len(repositories)
    requests = tags * 4 + guns
    return {
        "tags": tags, "guns": guns, "build_seconds": round(build_s, 1), "check_concurrency": concurrency,
        "check_s": round(check.seconds, 2), "check_tags_per_s": round(tags / check.seconds, 1),
        "check_peak_mib": round(check.peak_mib, 1), "check_cpu_s": round(check.cpu_s, 2),
        "registry_cpu_s": round(registry_cpu, 2), "proxy_cpu_s": round(proxy_cpu, 2), "requests": requests,
        "registry_cpu_ms_per_request": round(1000 * registry_cpu / requests, 3),
        "check_cpu_ms_per_tag": round(1000 * check.cpu_s / tags, 3),
        "proxy_cpu_ms_per_tag": round(1000 * proxy_cpu / tags, 3),
        # CPU of all three per tag at 500 tags/s, in cores (this machine has os.cpu_count()).
        "cores_needed_at_500_tags_per_s": round((check.cpu_s + registry_cpu + proxy_cpu) / tags * 500, 2),
        "cores": os.cpu_count(), "registry_floor": floor,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--guns", default="50,200")
    parser.add_argument("--tags", type=int, default=20)
    parser.add_argument("--digests", default="500,2000")
    parser.add_argument("--delay", type=float, default=0.015, help="seconds each way (0.015: 30 ms round trip)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--process-sample", type=int, default=30)
    parser.add_argument("--check-concurrency", type=int, default=None, help="default: --concurrency")
    parser.add_argument("--skip-sign", action="store_true")
    parser.add_argument("--check-tags", default="", help="check alone of N tags (comma list), e.g. 2000,20000")
    parser.add_argument("--check-tags-per-gun", type=int, default=100)
    args = parser.parse_args()
    print(f"delay {args.delay * 2000:.0f} ms round trip, concurrency {args.concurrency}", flush=True)
    for guns in [int(x) for x in args.guns.split(",") if x]:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps({"estate": estate_run(Path(tmp), guns, args.tags, args.delay, args.concurrency)}),
                  flush=True)  # fmt: skip
    for digests in [] if args.skip_sign else [int(x) for x in args.digests.split(",") if x]:
        with tempfile.TemporaryDirectory() as tmp:
            check_c = args.check_concurrency or args.concurrency
            row = sign_run(Path(tmp), digests, args.delay, args.concurrency, args.process_sample, check_c)
            print(json.dumps({"sign": row}), flush=True)
    for tags in [int(x) for x in args.check_tags.split(",") if x]:
        with tempfile.TemporaryDirectory() as tmp:
            check_c = args.check_concurrency or args.concurrency
            row = check_run(Path(tmp), tags, args.check_tags_per_gun, args.delay, check_c)
            print(json.dumps({"check": row}), flush=True)


if __name__ == "__main__":
    main()
