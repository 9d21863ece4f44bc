"""Inventory = Docker: for every GUN of the runbook estate (fixtures/generate_demo.py, published with the real notary
client on an HTTPS notary-server), ``inventory`` gives exactly what ``docker trust inspect`` gives: signed tags,
digests, signers and administrative keys.

The Docker CLI needs no daemon for ``trust inspect``: it talks to the notary server itself
(``DOCKER_CONTENT_TRUST_SERVER``, CA at ``$DOCKER_CONFIG/tls/HOST:PORT/ca.crt``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.generate_demo import prefixed, publish_estate
from tests.support.interop import ours_ok
from tests.support.servers import NotaryServer, have

DOCKER = Path("/usr/local/bin/docker")
SHORT_NAMED = {"docker.io/library/alpine": ("3.18", "latest", "3.9"), "docker.io/acme/web": ("v1", "v2")}

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    for binary in ("notary-server", "notary"):
        if not have(binary):
            pytest.skip(f"{binary} is not installed")
    if not DOCKER.exists():
        pytest.skip(f"the docker CLI is not installed at {DOCKER}")
    server = NotaryServer(tmp_path_factory.mktemp("notary-docker"), tls=True).start()
    try:
        work = tmp_path_factory.mktemp("docker-estate")
        images = prefixed(f"runbook.example/{uuid.uuid4().hex[:8]}")
        client = server.client(work / "trust")
        publish_estate(client, work / "keys", images)
        # Docker Hub names, for docker's short forms (`alpine`, `acme/web`): signed by the repository key.
        for gun, tags in SHORT_NAMED.items():
            client.init(gun)
            for i, tag in enumerate(tags):
                client.addhash(gun, tag, 100 + i, f"{i + 1:064x}")
            client.publish(gun)
            client.list(gun)
        yield {"server": server, "guns": sorted({image.gun for image in images}), "trust": client.trust_dir}
    finally:
        server.stop()


def docker_trust_inspect(server: NotaryServer, trust_dir: Path, home: Path, guns: list[str]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = json.loads(docker_trust_inspect_stdout(server, trust_dir, home, guns))
    return result


def docker_trust_inspect_stdout(server: NotaryServer, trust_dir: Path, home: Path, names: list[str]) -> str:
    assert server.tls_files is not None
    config = home / "docker"
    (config / "tls" / server.host).mkdir(parents=True)
    shutil.copy(server.tls_files.ca_cert, config / "tls" / server.host / "ca.crt")
    shutil.copytree(trust_dir, config / "trust")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "DOCKER_CONFIG": str(config)}
    env["DOCKER_CONTENT_TRUST_SERVER"] = server.url
    done = subprocess.run(
        [str(DOCKER), "trust", "inspect", *names], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, f"docker trust inspect: {done.stderr}{done.stdout}"
    return done.stdout


def as_docker(repo: dict[str, Any]) -> dict[str, Any]:
    """Our inventory entry in ``docker trust inspect``'s shape (bare hex digests, its field names)."""
    return {
        "Name": repo["gun"],
        "SignedTags": [
            {"SignedTag": r["tag"], "Digest": r["digest"].removeprefix("sha256:"), "Signers": r["signers"]}
            for r in repo["signed_tags"]
        ],
        "Signers": [{"Name": s["name"], "Keys": [{"ID": k["id"]} for k in s["keys"]]} for s in repo["signers"]],
        "AdministrativeKeys": [
            {"Name": a["name"], "Keys": [{"ID": k["id"]} for k in a["keys"]]} for a in repo["administrative_keys"]
        ],
    }


def test_inventory_equals_docker_trust_inspect_for_every_estate_gun(estate: dict[str, Any], tmp_path: Path) -> None:
    server: NotaryServer = estate["server"]
    assert server.tls_files is not None
    theirs = docker_trust_inspect(server, estate["trust"], tmp_path, estate["guns"])
    inventory = json.loads(
        ours_ok("inventory", *estate["guns"], "--server", server.url, "--ca", str(server.tls_files.ca_cert), "--json")
    )
    ours = [as_docker(repo) for repo in inventory["repositories"]]
    assert [r["Name"] for r in ours] == [r["Name"] for r in theirs] == estate["guns"]
    for mine, docker in zip(ours, theirs, strict=True):
        # Several tags on one digest: docker's sort of equal-digest rows is not stable, so rows compare as a
        # multiset and the tag order exactly.
        row = lambda r: (r["SignedTag"], r["Digest"], tuple(r["Signers"]))  # noqa: E731
        assert sorted(map(row, mine["SignedTags"])) == sorted(map(row, docker["SignedTags"])), mine["Name"]
        assert [r["SignedTag"] for r in mine["SignedTags"]] == [r["SignedTag"] for r in docker["SignedTags"]]
        assert mine["Signers"] == docker["Signers"], mine["Name"]
        assert mine["AdministrativeKeys"] == docker["AdministrativeKeys"], mine["Name"]
    # The estate's shape, so the comparison cannot pass on empty documents.
    assert [len(r["SignedTags"]) for r in ours] == [2, 2, 3]  # platform/base, shop/backend, shop/frontend
    assert {s["Name"] for r in ours for s in r["Signers"]} == {"alice", "bob"}


def test_inventory_format_docker_prints_what_docker_trust_inspect_prints(
    estate: dict[str, Any], tmp_path: Path
) -> None:
    """`inventory --format docker NAME…` is byte for byte `docker trust inspect NAME…`, docker's short names
    (`alpine`, `acme/web`, `IMAGE:TAG`) included (issue #16). Before: no --format; `alpine` was GUN "alpine"."""
    server: NotaryServer = estate["server"]
    assert server.tls_files is not None
    names = ["alpine", "acme/web:v2", "docker.io/library/alpine:3.9", estate["guns"][0]]
    theirs = docker_trust_inspect_stdout(server, estate["trust"], tmp_path, names)
    ours = ours_ok("inventory", *names, "--format", "docker", "--server", server.url,
                   "--ca", str(server.tls_files.ca_cert))  # fmt: skip
    assert ours == theirs
    document = json.loads(ours)
    assert [d["Name"] for d in document] == names
    assert [r["SignedTag"] for r in document[0]["SignedTags"]] == ["3.9", "3.18", "latest"]  # docker: natural order
    assert document[1]["SignedTags"] == [{"SignedTag": "v2", "Digest": f"{2:064x}", "Signers": ["Repo Admin"]}]
