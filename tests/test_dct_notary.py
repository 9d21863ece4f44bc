"""Inventory of a GUN built with the real notary client on a real HTTPS notary-server (issue #2, must show 1–2)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dct2notation.cli import main
from tests.support.notary_builders import RichGun, build_rich_gun, parse_notary_list
from tests.support.servers import NotaryServer, have

GUN = "127.0.0.1/team/app"
DOCKER = "/usr/local/bin/docker"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotaryServer]:
    for binary in ("notary-server", "notary"):
        if not have(binary):
            pytest.skip(f"{binary} is not installed")
    server = NotaryServer(tmp_path_factory.mktemp("notary-tls"), tls=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rich(tls_server: NotaryServer, tmp_path_factory: pytest.TempPathFactory) -> RichGun:
    work = tmp_path_factory.mktemp("rich")
    return build_rich_gun(tls_server.client(work / "trust"), GUN, work / "keys")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def inventory_from(capsys: pytest.CaptureFixture[str], *source: str) -> dict[str, Any]:
    code, out, err = run(capsys, "inventory", GUN, *source, "--json")
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def server_args(server: NotaryServer) -> list[str]:
    assert server.tls_files is not None
    return ["--server", server.url, "--ca", str(server.tls_files.ca_cert)]


def test_trusted_tags_equal_notary_list_released_roles(
    capsys: pytest.CaptureFixture[str], tls_server: NotaryServer, rich: RichGun
) -> None:
    listed = parse_notary_list(rich.client.list(GUN, "targets/releases", "targets"))
    repo = inventory_from(capsys, *server_args(tls_server))["repositories"][0]
    # notary's walk also reports bob's v3 (a descendant of targets); docker drops roles other than these two.
    assert {"tag": "v3", "digest": "sha256:" + rich.digests["v3"], "size": 103, "role": "targets/bob"} in listed
    released = [row for row in listed if row["role"] in ("targets/releases", "targets")]
    assert sorted(repo["trusted_tags"], key=lambda r: r["tag"]) == sorted(released, key=lambda r: r["tag"])
    assert [row["tag"] for row in repo["trusted_tags"]] == ["latest", "v1", "v2", "v10"]  # natural order
    v1 = next(row for row in repo["trusted_tags"] if row["tag"] == "v1")
    assert v1 == {
        "tag": "v1",
        "digest": "sha256:" + rich.digests["v1-in-releases"],
        "size": 101,
        "role": "targets/releases",
    }
    assert repo["conflicts"] == [
        {
            "tag": "v1",
            "digests": {
                "targets": "sha256:" + rich.digests["v1-in-targets"],
                "targets/releases": "sha256:" + rich.digests["v1-in-releases"],
            },
        }
    ]
    assert repo["root_version"] == 2
    by_role = {d["role"]: d for d in repo["delegations"]}
    assert by_role["targets/alice"]["keys"][0]["keytype"] == "ecdsa-x509"
    assert by_role["targets/alice"]["keys"][0]["certificate_pem"] == (rich.keys_dir / "alice.crt").read_text()
    assert by_role["targets/bob"]["keys"][0]["keytype"] == "ecdsa"
    assert by_role["targets/bob"]["paths"] == ["v"]
    assert repo["role_targets"]["targets/bob"] == [{"tag": "v3", "digest": "sha256:" + rich.digests["v3"], "size": 103}]


def _docker_trust_inspect(server: NotaryServer, trust_dir: Path, home: Path) -> list[dict[str, Any]]:
    assert server.tls_files is not None
    config = home / "docker"
    ca_dir = config / "tls" / server.host
    ca_dir.mkdir(parents=True)
    shutil.copy(server.tls_files.ca_cert, ca_dir / "ca.crt")
    shutil.copytree(trust_dir, config / "trust")
    env = {
        **os.environ,
        "DOCKER_CONFIG": str(config),
        "DOCKER_CONTENT_TRUST_SERVER": server.url,
        "HOME": str(home),
    }
    proc = subprocess.run(
        [DOCKER, "trust", "inspect", GUN], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"docker trust inspect failed: {proc.stderr}{proc.stdout}")
    result: list[dict[str, Any]] = json.loads(proc.stdout)
    return result


def test_signed_tags_and_signers_equal_docker_trust_inspect(
    capsys: pytest.CaptureFixture[str], tls_server: NotaryServer, rich: RichGun, tmp_path: Path
) -> None:
    if not Path(DOCKER).exists():
        pytest.skip("docker CLI is not installed at /usr/local/bin/docker")
    inspected = _docker_trust_inspect(tls_server, rich.client.trust_dir, tmp_path)
    repo = inventory_from(capsys, *server_args(tls_server))["repositories"][0]
    ours = {
        "Name": GUN,
        "SignedTags": [
            {"SignedTag": r["tag"], "Digest": r["digest"].removeprefix("sha256:"), "Signers": r["signers"]}
            for r in repo["signed_tags"]
        ],
        "Signers": [{"Name": s["name"], "Keys": [{"ID": k["id"]} for k in s["keys"]]} for s in repo["signers"]],
        "AdministrativeKeys": [
            {"Name": a["name"], "Keys": [{"ID": k["id"]} for k in a["keys"]]} for a in repo["administrative_keys"]
        ],
    }
    theirs = inspected[0]
    # docker's Go sort is not stable for the two v1 rows; compare rows as a multiset, the rest exactly.
    key = lambda row: (row["SignedTag"], row["Digest"])  # noqa: E731
    assert sorted(ours["SignedTags"], key=key) == sorted(theirs["SignedTags"], key=key)
    assert [r["SignedTag"] for r in ours["SignedTags"]] == [r["SignedTag"] for r in theirs["SignedTags"]]
    assert ours["Signers"] == theirs["Signers"]
    assert ours["AdministrativeKeys"] == theirs["AdministrativeKeys"]
    v2 = next(r for r in ours["SignedTags"] if r["SignedTag"] == "v2")
    assert v2["Signers"] == ["alice"]


def test_untrusted_tls_certificate_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tls_server: NotaryServer, rich: RichGun
) -> None:
    code, out, err = run(capsys, "inventory", GUN, "--server", tls_server.url)
    assert (code, out) == (2, "")
    assert err == (
        f"dct2notation: error: {tls_server.url}: TLS certificate not trusted "
        "(unable to get local issuer certificate); pass --ca FILE\n"
    )


def test_same_inventory_from_server_trust_dir_and_archive_with_server_stopped(
    capsys: pytest.CaptureFixture[str], tls_server: NotaryServer, rich: RichGun, tmp_path: Path
) -> None:
    from_server = inventory_from(capsys, *server_args(tls_server))
    archive = tmp_path / "archive"
    code, _, err = run(capsys, "archive", GUN, *server_args(tls_server), "-o", str(archive))
    assert code == 0, err
    manifest = json.loads((archive / "ARCHIVE.json").read_text())
    paths = {f["path"] for f in manifest["files"]}
    assert {f"{GUN}/1.root.json", f"{GUN}/2.root.json", f"{GUN}/targets/bob.json", f"{GUN}/timestamp.json"} <= paths
    # The notary client's cache is refreshed by a list; it is a trust dir like ~/.docker/trust.
    rich.client.list(GUN)
    from_trust_dir = inventory_from(capsys, "--trust-dir", str(rich.client.trust_dir))
    tls_server.stop()
    from_archive = inventory_from(capsys, "--archive", str(archive))
    for doc in (from_trust_dir, from_archive):
        assert doc["repositories"] == from_server["repositories"]
    code, _, err = run(capsys, "inventory", GUN, *server_args(tls_server))
    assert code == 3
    assert err.count("\n") == 1 and "connection failed" in err
