"""What ``check`` asks a real docker-registry 2.8 (no Referrers API) per tag, counted on the wire, and how many
connections it opens: the figures bench/estate.py's 20,000-tag check stands on (bench/RESULTS.md).

Per tag one manifest HEAD (the distribution API has no bulk tag -> digest call); per distinct signed digest the
``sha256-<hex>`` tag index, the signature manifest and the envelope; nothing more for an unsigned digest (the tag
listing shows it has no index) or for a digest already verified under another tag; one tag listing per repository
and one referrers probe per registry client. At ``--concurrency N`` the run opens N connections, not one set per
phase.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dct2notation.cli import main
from dct2notation.config import SystemClock
from dct2notation.keys.resolve import load_signing_key
from dct2notation.keys.testcert import generate_test_key
from dct2notation.oci import EMPTY_JSON, OCI_INDEX, OCI_MANIFEST, sha256_digest
from dct2notation.registry.options import RegistryOptions
from dct2notation.registry.signing import sign_artifact
from dct2notation.registry.store import RegistryStore
from dct2notation.registry.target import open_target
from tests.support.delay_proxy import delayed
from tests.support.fault_proxy import FaultProxy
from tests.support.servers import Registry
from tests.test_batch import image_manifest
from tests.test_coexist_scenario import write_policy

pytestmark = pytest.mark.servers

MAIN = "checkreq/main"  # a1, a2, a3 signed (distinct images); b unsigned; c the same image as a1
OTHERS = [f"checkreq/other{n}" for n in range(3)]  # v1 signed, each


@dataclass
class Signed:
    digest: str
    signature: str  # the signature manifest's digest
    envelope: str  # the envelope blob's digest


@dataclass
class Estate:
    registry: Registry
    policy: Path
    truststore: Path
    tags: dict[str, dict[str, tuple[str, int]]]  # repo -> tag -> (digest, size)
    signed: dict[str, Signed]  # "repo:tag" -> its signature, for the signed tags

    def inventory(self, path: Path, host: str, repos: list[str]) -> Path:
        repositories = [
            {"gun": f"{host}/{repo}", "trusted_tags": [{"tag": tag, "digest": d, "size": size, "role": "targets"}
                                                      for tag, (d, size) in sorted(self.tags[repo].items())]}
            for repo in repos
        ]  # fmt: skip
        doc = {"format": "dct2notation-inventory/1", "evaluated_at": "2026-01-01T00:00:00Z",
               "repositories": repositories}  # fmt: skip
        path.write_text(json.dumps(doc))
        return path

    def check(self, inventory: Path, host: str, concurrency: int) -> tuple[int, dict[str, Any]]:
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["check", "--inventory", str(inventory), "--policy", str(self.policy), "--truststore",
                         str(self.truststore), "--insecure-registry", host, "--json", "--no-table",
                         "--concurrency", str(concurrency), "--require", "notation"])  # fmt: skip
        return code, json.loads(out.getvalue())


@pytest.fixture(scope="module")
def estate(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    work = tmp_path_factory.mktemp("check-requests")
    config = work / "notation"
    generate_test_key("trusted", config, key_type="ec-p256", make_default=True)
    policy, truststore = write_policy(work, config, "trusted")
    key = load_signing_key("trusted", config)
    options = RegistryOptions(insecure_registries=frozenset({registry.host}))
    pusher = RegistryStore(registry.host, options)
    plan = {MAIN: {"a1": "one", "a2": "two", "a3": "three", "b": "unsigned", "c": "one"}}
    plan.update({repo: {"v1": repo} for repo in OTHERS})
    tags: dict[str, dict[str, tuple[str, int]]] = {}
    signed: dict[str, Signed] = {}
    try:
        for repo, images in plan.items():
            pusher.client.push_blob(repo, EMPTY_JSON)
            tags[repo] = {}
            for tag, label in images.items():
                raw = image_manifest(f"{repo} {label}")
                pusher.client.put_manifest(repo, tag, raw, OCI_MANIFEST)
                tags[repo][tag] = (sha256_digest(raw), len(raw))
                if label == "unsigned" or tag == "c":
                    continue
                target = open_target(f"{registry.host}/{repo}@{sha256_digest(raw)}", options=options)
                try:
                    sign_artifact(target, key, clock=SystemClock())
                finally:
                    target.close()
        for repo, tagged in tags.items():
            for tag, (digest, _) in tagged.items():
                if tag in ("b", "c"):
                    continue
                base = f"http://{registry.host}/v2/{repo}"
                index = httpx.get(f"{base}/manifests/sha256-{digest[7:]}", headers={"Accept": OCI_INDEX}).json()
                signature = index["manifests"][0]["digest"]
                manifest = httpx.get(f"{base}/manifests/{signature}", headers={"Accept": OCI_MANIFEST}).json()
                signed[f"{repo}:{tag}"] = Signed(digest, signature, manifest["layers"][0]["digest"])
    finally:
        pusher.close()
    yield Estate(registry, policy, truststore, tags, signed)


def test_check_requests_per_tag_on_the_wire(estate: Estate, tmp_path: Path) -> None:
    """At --concurrency 1, in order: the listing, then per tag its HEAD and, for a new signed digest, the three
    signature reads (the first one after the probe that finds no Referrers API). 16 requests for 5 tags."""
    proxy = FaultProxy(estate.registry.url, every=0).start()
    try:
        inventory = estate.inventory(tmp_path / "inventory.json", proxy.host, [MAIN])
        code, doc = estate.check(inventory, proxy.host, concurrency=1)
        requests = [line.split("?")[0] for line in proxy.requests]
    finally:
        proxy.stop()
    assert code == 1  # b is unsigned
    assert {row["tag"]: row["status"] for row in doc["tags"]} == {
        "a1": "ok", "a2": "ok", "a3": "ok", "b": "notation-missing", "c": "ok"
    }  # fmt: skip
    base = f"/v2/{MAIN}"

    def reads(tag: str) -> list[str]:
        s = estate.signed[f"{MAIN}:{tag}"]
        return [f"GET {base}/manifests/sha256-{s.digest[7:]}", f"GET {base}/manifests/{s.signature}",
                f"GET {base}/blobs/{s.envelope}"]  # fmt: skip

    first = estate.signed[f"{MAIN}:a1"].digest
    assert requests == [
        f"GET {base}/tags/list",
        f"HEAD {base}/manifests/a1", f"GET {base}/referrers/{first}", *reads("a1"),
        f"HEAD {base}/manifests/a2", *reads("a2"),
        f"HEAD {base}/manifests/a3", *reads("a3"),
        f"HEAD {base}/manifests/b",  # unsigned: no sha256-<hex> tag in the listing, so no read
        f"HEAD {base}/manifests/c",  # a1's image, verified once
    ]  # fmt: skip


def test_check_opens_concurrency_connections_not_one_set_per_phase(estate: Estate, tmp_path: Path) -> None:
    """4 repositories at --concurrency 3: the tag listings' 3 workers and the resolving workers after them share
    3 connections (before: 3 + 3, and at --concurrency 64 over 200 GUNs, 128 connections and 128 probes)."""
    with delayed("127.0.0.1", estate.registry.port, 0.01) as proxy:
        inventory = estate.inventory(tmp_path / "inventory.json", proxy.host, [MAIN, *OTHERS])
        code, doc = estate.check(inventory, proxy.host, concurrency=3)
        connections, peak = proxy.connections, proxy.peak
    assert code == 1
    assert doc["summary"]["counts"]["ok"] == 7
    assert (connections, peak) == (3, 3)
