"""Bench: ``dct2notation inventory --json`` vs ``notary list`` as whole processes on a 10,000-tag GUN.

The GUN is built with the real notary client against a real notary-server on loopback: tags spread over
``targets``, ``targets/releases`` and two more delegations, staged with ``notary addhash`` and published once.

    python bench/inventory.py [--tags 10000] [--runs 5] [--tls]

``--tls`` serves HTTPS with a throwaway CA that both tools are given (``--ca`` / ``--tlscacert``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.notary_builders import write_key_and_cert  # noqa: E402
from tests.support.servers import PASSPHRASES, NotaryServer  # noqa: E402

GUN = "bench.example.com/team/big"
# Share of tags per role; releases and targets overlap on purpose so both lookups do real work.
SPLIT = (("targets/releases", 0.4), ("targets", 0.3), ("targets/alice", 0.15), ("targets/bob", 0.15))


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def build(server: NotaryServer, work: Path, tags: int) -> Path:
    trust = work / "trust"
    client = server.client(trust)
    client.init(GUN)
    keys = work / "keys"
    for name in ("releases", "alice", "bob"):
        write_key_and_cert(keys, name)
        client.run("delegation", "add", GUN, f"targets/{name}", str(keys / f"{name}.crt"), "--all-paths")
        client.run("key", "import", str(keys / f"{name}.key"), "--role", f"targets/{name}", "--gun", GUN)
    jobs = []
    index = 0
    for role, share in SPLIT:
        for _ in range(int(tags * share)):
            digest = hashlib.sha256(f"tag-{index}".encode()).hexdigest()
            jobs.append(["addhash", GUN, f"tag-{index}", str(1000 + index), "--sha256", digest, "--roles", role])
            index += 1
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda args: client.run(*args), jobs))
    client.publish(GUN)
    return trust


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tls", action="store_true", help="HTTPS notary-server (a throwaway CA given to both tools)")
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dct2n-bench-"))
    server = NotaryServer(work / "server", tls=opts.tls).start()
    try:
        started = time.perf_counter()
        trust = build(server, work, opts.tags)
        print(f"built {opts.tags} tags in {time.perf_counter() - started:.1f}s")
        env = {**os.environ, **PASSPHRASES}
        ca = [str(server.tls_files.ca_cert)] if server.tls_files else []
        ours = [sys.executable, "-m", "dct2notation", "inventory", GUN, "--server", server.url, "--json"]
        ours += ["--ca", *ca] if ca else []
        notary_tls = ["--tlscacert", *ca] if ca else []
        notary_warm = [
            "notary",
            *notary_tls,
            "-s",
            server.url,
            "-d",
            str(trust),
            "list",
            GUN,
            "-r",
            "targets/releases",
            "-r",
            "targets",
        ]
        cold_dir = work / "cold"

        def notary_cold() -> float:
            # An empty trust dir: notary downloads and verifies everything, as dct2notation does each run.
            shutil.rmtree(cold_dir, ignore_errors=True)
            return timed(
                [
                    "notary",
                    *notary_tls,
                    "-s",
                    server.url,
                    "-d",
                    str(cold_dir),
                    "list",
                    GUN,
                    "-r",
                    "targets/releases",
                    "-r",
                    "targets",
                ],
                env,
            )

        timed(ours, env), timed(notary_warm, env), notary_cold()  # warm the page cache and the server
        # Interpreter start plus every import an inventory run needs (the typer-free CLI path, http.client,
        # cryptography, securesystemslib): what is left of the run is fetching, verification and output.
        startup = [
            sys.executable,
            "-c",
            "import dct2notation.cli, dct2notation.cli.dct_commands, dct2notation.dct.source,"
            " dct2notation.dct.inventory",
        ]
        names = ("dct2notation", "notary cold", "notary warm", "start+imports")
        results: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(opts.runs):
            results["dct2notation"].append(timed(ours, env))
            results["notary cold"].append(notary_cold())
            results["notary warm"].append(timed(notary_warm, env))
            results["start+imports"].append(timed(startup, env))
        medians = {name: statistics.median(values) for name, values in results.items()}
        for name, value in medians.items():
            print(f"{name:14s} median {value * 1000:8.1f} ms over {opts.runs} runs")
        work_ms = (medians["dct2notation"] - medians["start+imports"]) * 1000
        print(f"dct2notation minus start-up and imports: {work_ms:.1f} ms")
        for peer in ("notary cold", "notary warm"):
            print(f"ratio dct2notation / {peer}: {medians['dct2notation'] / medians[peer]:.2f}x")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
