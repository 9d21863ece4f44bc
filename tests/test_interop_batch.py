"""The batch (``plan`` → ``sign plan.json``) on both storage paths of real registries, judged by the real Notation:
the Referrers API (olareg) and the sha256-<hex> tag schema (docker-registry 2.8), COSE and JWS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.images import image_manifest
from tests.support.interop import build_estate, ours_ok, push_image
from tests.support.peers import Olareg, notation, oras, peer
from tests.support.servers import NotaryServer, Registry

pytestmark = pytest.mark.servers


@pytest.mark.parametrize("fmt", ["cose", "jws"])
def test_batch_signatures_verify_with_notation_on_both_storage_paths(
    tmp_path_factory: pytest.TempPathFactory,
    notary_server: NotaryServer,
    registry: Registry,
    olareg: Olareg,
    fmt: str,
) -> None:
    peer("notation")
    root = tmp_path_factory.mktemp(f"interop-batch-{fmt}")
    hosts = {"dist": registry.host, "olareg": olareg.host}
    repositories = {name: f"{host}/{root.name}/{name}" for name, host in hosts.items()}
    targets = {}
    for name, host in hosts.items():
        content = f"{root.name}-{name}-v1"
        targets[name] = (push_image(host, f"{root.name}/{name}", "v1", content=content), len(image_manifest(content)))
    estate = build_estate(root, notary_server, repositories, targets=targets)

    plan = root / "plan.json"
    args = ["plan", str(root / "inventory.json"), "--signers", str(root / "signers.toml"), "-o", str(plan)]
    for name, repository in repositories.items():
        args += ["--registry-map", f"{estate.guns[name]}={repository}"]
    for host in hosts.values():
        args += ["--insecure-registry", host]
    ours_ok(*args)
    sign = ["sign", str(plan), "--inventory", str(root / "inventory.json"), "--config-dir", str(estate.keys)]
    sign += ["--signature-format", fmt]
    for host in hosts.values():
        sign += ["--insecure-registry", host]
    summary = json.loads(ours_ok(*sign, "--journal", str(root / "journal.db")))
    assert (summary["jobs"], summary["counts"]) == (2, {"signed": 2}), summary
    # Nothing needed repair: each signature was listed where it was written (the Referrers API on olareg).
    assert summary["reconciliation"]["repaired"] == 0, summary["reconciliation"]
    signature_of = {r["repository"]: r["signature"] for r in summary["results"]}

    for name, repository in repositories.items():
        ref = f"{repository}@{targets[name][0]}"
        done = notation(root / "home").run(
            "verify", "--insecure-registry", ref, env={"NOTATION_CONFIG": str(estate.policy)}
        )
        assert done.returncode == 0, f"{name}: {done.stderr}"
        listed: list[dict[str, Any]] = json.loads(ours_ok("ls", ref, "--json", "--insecure-registry", hosts[name]))[
            "signatures"
        ]
        assert [(s["digest"], s["envelopeMediaType"]) for s in listed] == [
            (signature_of[repository], {"cose": "application/cose", "jws": "application/jose+json"}[fmt])
        ]
        discovered = oras(root / "home").json("discover", "--plain-http", "--format", "json", ref)
        assert [m["digest"] for m in discovered["referrers"]] == [s["digest"] for s in listed]


def test_olareg_empty_referrers_answer_is_the_referrers_api(olareg: Olareg) -> None:
    """olareg answers the Referrers API for a subject without referrers with ``"manifests": null`` (an empty list to
    Go): that is the API, not its absence, so signatures go where Notation looks for them (not the tag schema)."""
    import asyncio

    from dct2notation.registry.options import RegistryOptions
    from dct2notation.registry.store import RegistryStore

    digest = push_image(olareg.host, "empty-referrers/app", "v1", content="empty-referrers")

    async def listed() -> tuple[list[Any], bool]:
        store = RegistryStore(olareg.host, RegistryOptions(insecure_registries=frozenset({olareg.host})))
        try:
            found = await store.alist_signatures("empty-referrers/app", digest)
            return found, store.index_tag_required
        finally:
            await store.aclose()

    assert asyncio.run(listed()) == ([], False)
