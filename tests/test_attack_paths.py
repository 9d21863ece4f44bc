"""Issue #13 item 1: whatever a notary server or an archive names, no file is written or read outside its root.

The GUN is built with the real notary client; its metadata is re-signed with the keys the test holds
(``Resigner``), so a hostile delegation is *validly signed* by the targets key — what an attacker who controls the
server and one key can serve. The server is a plain loopback HTTP server handing out those bytes.
"""

from __future__ import annotations

import base64
import copy
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dct2notation.cli import main
from dct2notation.files import UnsafePathError, inside
from tests.support.loopback import QuietHTTPServer
from tests.support.notary_builders import Resigner, RichGun, build_rich_gun, canonical, sign_raw
from tests.support.servers import NotaryServer

GUN = "example.com/paths/app"


@pytest.fixture(scope="module")
def built(notary_server: NotaryServer, tmp_path_factory: pytest.TempPathFactory) -> RichGun:
    work = tmp_path_factory.mktemp("paths")
    rich = build_rich_gun(notary_server.client(work / "trust"), GUN, work / "keys")
    rich.client.list(GUN)
    return rich


@pytest.fixture
def resigner(built: RichGun) -> Resigner:
    metadata = built.client.trust_dir / "tuf" / GUN / "metadata"
    return Resigner(metadata, built.client.trust_dir, built.keys_dir)


class HostileNotary:
    """Serves ``/v2/<gun>/_trust/tuf/<name>.json`` from a dict, taking the request path literally."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requested: list[str] = []
        prefix = f"/v2/{GUN}/_trust/tuf/"
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
                return

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                owner.requested.append(self.path)
                name = self.path[len(prefix) : -len(".json")] if self.path.startswith(prefix) else ""
                body = owner.files.get(name)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile() -> Iterator[HostileNotary]:
    server = HostileNotary({})
    yield server
    server.close()


def add_delegation(signer: Resigner, name: str, parent: str = "targets") -> None:
    """Delegate ``name`` from ``parent`` to alice's key and publish it, signed as an attacker holding both keys."""
    alice = signer.docs["targets/alice"]
    roles = signer.docs["targets"]["signed"]["delegations"]["roles"]
    alice_ids = next(r["keyids"] for r in roles if r["name"] == "targets/alice")
    block = signer.docs[parent]["signed"]["delegations"]
    block["keys"].update({kid: signer.docs["targets"]["signed"]["delegations"]["keys"][kid] for kid in alice_ids})
    block["roles"].append({"name": name, "keyids": alice_ids, "threshold": 1, "paths": [""]})
    signer.resign(parent)
    doc = copy.deepcopy(alice)
    payload = canonical(doc["signed"])
    method, raw = sign_raw(signer.signing_keys("targets/alice")[0], payload)
    doc["signatures"] = [{"keyid": alice_ids[0], "method": method, "sig": base64.b64encode(raw).decode()}]
    signer.docs[name] = doc
    signer.raw[name] = signer.encode(name)
    signer.docs["snapshot"]["signed"]["meta"][name] = {}
    signer.rechain()


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("dct2notation: error: "), err
    return err.removeprefix("dct2notation: error: ").rstrip("\n")


def escaping_names(tmp_path: Path) -> list[str]:
    # From <output>/<gun>/: up through targets/, the GUN's three segments and the output itself.
    relative = "targets/" + "../" * 5 + "victim/config"
    absolute = "targets/" + "../" * 40 + (tmp_path / "victim" / "config").as_posix().lstrip("/")
    return [relative, absolute]


@pytest.mark.parametrize("kind", [0, 1], ids=["dotdot", "dotdot-absolute"])
def test_attack_delegation_name_path_traversal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner, hostile: HostileNotary, kind: int
) -> None:
    name = escaping_names(tmp_path)[kind]
    add_delegation(resigner, name)
    hostile.files = resigner.raw
    out = tmp_path / "out"
    code = main(["archive", GUN, "--server", hostile.url, "-o", str(out)])
    assert code == 1
    shown = name if len(name) <= 80 else name[:77] + "..."
    assert one_error(capsys) == (
        f"{GUN}: targets: delegation {shown!r} is not a valid notary role name (characters outside [-a-z0-9_/])"
    )
    assert not (tmp_path / "victim").exists()
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no staging left behind either
    # Refused before the hostile file was even asked for.
    assert not any(".." in path for path in hostile.requested)


@pytest.mark.parametrize(
    ("name", "parent", "reason"),
    [
        ("targets/Releases", "targets", "characters outside [-a-z0-9_/]"),
        ("targets/re.leases", "targets", "characters outside [-a-z0-9_/]"),
        ("targets//releases", "targets", "not a clean path (empty segment or trailing '/')"),
        ("targets/releases/", "targets", "not a clean path (empty segment or trailing '/')"),
        ("targets/x/grandchild", "targets", "not a direct child of targets"),
        ("targets/" + "a/" * 124 + "a", "targets", "longer than 255 characters"),
    ],
)
def test_attack_delegation_name_breaks_notary_rule(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    resigner: Resigner,
    hostile: HostileNotary,
    name: str,
    parent: str,
    reason: str,
) -> None:
    add_delegation(resigner, name, parent)
    hostile.files = resigner.raw
    code = main(["archive", GUN, "--server", hostile.url, "-o", str(tmp_path / "out")])
    assert code == 1
    assert not (tmp_path / "out").exists()
    shown = name if len(name) <= 80 else name[:77] + "..."
    assert one_error(capsys) == f"{GUN}: {parent}: delegation {shown!r} is not a valid notary role name ({reason})"


def test_delegation_name_at_notarys_limit_is_accepted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner
) -> None:
    # Lower case, digits, '-' and '_' and exactly 255 characters: notary accepts it, so must we.
    name = "targets/" + "x" * (255 - len("targets/") - 4) + "-0_9"
    assert len(name) == 255
    add_delegation(resigner, name)
    archive = resigner.write_archive(tmp_path / "archive", GUN)
    assert main(["inventory", GUN, "--archive", str(archive), "--json"]) == 0, capsys.readouterr().err
    doc = json.loads(capsys.readouterr().out)
    assert name in [d["role"] for d in doc["repositories"][0]["delegations"]]


def test_attack_archive_gun_path_traversal_reads_nothing_outside(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner
) -> None:
    # A valid GUN's metadata outside the archive, and an archive (a bundle's, say) that names it by '../'.
    resigner.write_archive(tmp_path / "elsewhere", GUN)
    archive = tmp_path / "archive"
    archive.mkdir()
    hostile_gun = "../elsewhere/" + GUN
    (archive / "ARCHIVE.json").write_text(
        json.dumps({"format": "dct2notation-archive/1", "guns": [hostile_gun], "files": []})
    )
    code = main(["inventory", hostile_gun, "--archive", str(archive), "--json"])
    assert code == 2
    assert one_error(capsys) == (
        f"{archive}: {hostile_gun}: root: {hostile_gun + '/root.json'!r} is not a plain relative path "
        "(empty, '.', '..' or '/' part)"
    )


def test_attack_trust_dir_symlink_out_of_the_trust_dir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner
) -> None:
    # A planted trust dir whose delegation folder is a symlink to files elsewhere: not followed.
    elsewhere = resigner.write_archive(tmp_path / "elsewhere", GUN) / GUN
    metadata = tmp_path / "trust" / "tuf" / GUN / "metadata"
    metadata.mkdir(parents=True)
    for name in ("root", "timestamp", "snapshot", "targets"):
        (metadata / f"{name}.json").write_bytes((elsewhere / f"{name}.json").read_bytes())
    (metadata / "targets").symlink_to(elsewhere / "targets")
    code = main(["inventory", GUN, "--trust-dir", str(tmp_path / "trust"), "--json"])
    assert code == 2
    assert one_error(capsys) == (
        f"{metadata / 'targets'}: is a symbolic link; refused (only plain files and directories are read)"
    )


def test_containment_refuses_what_leaves_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "out").symlink_to(tmp_path)
    assert inside(root, "sub/a.json") == root / "sub" / "a.json"
    for bad in ("../a", "/etc/passwd", "sub//a", "sub/./a", "", "a\x00b"):
        with pytest.raises(UnsafePathError, match="is not a plain relative path"):
            inside(root, bad)
    with pytest.raises(UnsafePathError, match=f"resolves outside {root}"):
        inside(root, "out/a.json")
