"""``inventory --baseline-archive``: the archived root is the anchor and every archived role must still be there.

A GUN is built with the real notary client and archived (the baseline). A hostile notary server of the test's own
(tests/support/hostile_notary.py) then serves what an attacker could make: a fresh self-signed root with new keys
and roles at versions above the baseline's, or the genuine roles with ``targets/releases`` dropped from a snapshot
re-signed with only the server-held snapshot and timestamp keys (``Resigner`` holds every key a notary-server or its
attacker would).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dct2notation.cli import main
from tests.support.hostile_notary import HostileNotary
from tests.support.notary_builders import (
    Resigner,
    RichGun,
    canonical,
    key_id,
    published_rich_gun,
    resigner_for,
    sign_raw,
    write_key_and_cert,
)
from tests.support.servers import NotaryServer

GUN = "example.com/baseline/app"


@pytest.fixture(scope="module")
def built(notary_server: NotaryServer, tmp_path_factory: pytest.TempPathFactory) -> RichGun:
    return published_rich_gun(notary_server, tmp_path_factory.mktemp("baseline"), GUN)


@pytest.fixture
def resigner(built: RichGun) -> Resigner:
    return resigner_for(built)


@pytest.fixture
def baseline(resigner: Resigner, tmp_path: Path) -> Path:
    """The genuine GUN as an earlier ``archive`` recorded it."""
    return resigner.write_archive(tmp_path / "baseline", GUN)


@pytest.fixture
def hostile(resigner: Resigner) -> Iterator[HostileNotary]:
    """Serves the resigner's current bytes: whatever the test has mutated by the time it asks."""
    server = HostileNotary(GUN, lambda name: resigner.raw.get(name))
    yield server
    server.close()


def inventory(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["inventory", GUN, "--json", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _ec_key() -> tuple[Any, str, dict[str, Any]]:
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    public = base64.b64encode(spki).decode()
    return key, key_id("ecdsa", public), {"keytype": "ecdsa", "keyval": {"private": None, "public": public}}


def _root_key(directory: Path) -> tuple[Any, str, dict[str, Any]]:
    path = write_key_and_cert(directory, "root", cn=GUN)
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    public = base64.b64encode((directory / "root.crt").read_bytes()).decode()
    return key, key_id("ecdsa-x509", public), {"keytype": "ecdsa-x509", "keyval": {"private": None, "public": public}}


def _take_over(resigner: Resigner, directory: Path, *, root_version: int) -> str:
    """A fresh repository for the same GUN: new root, targets and snapshot keys, no delegations, one evil tag,
    every role one version above what it was. Returns the evil digest."""
    signed = resigner.docs["root"]["signed"]
    for role in ("root", "targets", "snapshot"):
        for old in signed["roles"][role]["keyids"]:
            signed["keys"].pop(old, None)
        key, kid, entry = _root_key(directory) if role == "root" else _ec_key()
        signed["keys"][kid] = entry
        signed["roles"][role]["keyids"] = [kid]
        resigner.by_role[role] = [key]
    signed["version"] = root_version
    resigner.resign("root")
    for name in [n for n in resigner.docs if n.startswith("targets/")]:
        del resigner.docs[name], resigner.raw[name]
        resigner.docs["snapshot"]["signed"]["meta"].pop(name, None)
    targets = resigner.docs["targets"]["signed"]
    evil = "e" * 64
    targets["delegations"] = {"keys": {}, "roles": []}
    targets["targets"] = {"latest": {"length": 1, "hashes": {"sha256": base64.b64encode(bytes.fromhex(evil)).decode()}}}
    for name in ("targets", "snapshot", "timestamp"):
        resigner.docs[name]["signed"]["version"] += 1
    resigner.resign("targets")
    resigner.rechain()
    return "sha256:" + evil


def test_attack_fresh_self_signed_root_above_the_baseline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner, baseline: Path, hostile: HostileNotary
) -> None:
    version = resigner.docs["root"]["signed"]["version"]
    evil = _take_over(resigner, tmp_path / "attacker", root_version=version + 1)
    # Trusted on first use without a baseline: the attacker's repository is all a newcomer can know.
    code, out, err = inventory(capsys, "--server", hostile.url)
    assert code == 0, err
    assert json.loads(out)["repositories"][0]["trusted_tags"] == [
        {"tag": "latest", "digest": evil, "size": 1, "role": "targets"}
    ]
    hostile.requested.clear()
    code, out, err = inventory(capsys, "--server", hostile.url, "--baseline-archive", str(baseline))
    assert (code, out) == (1, ""), err
    assert err == (
        f"dct2notation: error: {GUN}: {version + 1}.root: threshold not met: 0 valid of threshold 1 of the previous "
        "root\n"
    )
    # Anchored on the archived root: no version at or below it is asked for. Timestamp, snapshot and targets were
    # asked for at once with root.json (one round trip) and refused unread with it.
    assert [name for name in hostile.requested if name.endswith("root")] == ["root", f"{version + 1}.root"]
    assert sorted(hostile.requested) == sorted(["root", "timestamp", "snapshot", "targets", f"{version + 1}.root"])


def test_attack_other_root_at_the_baseline_version(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner, baseline: Path, hostile: HostileNotary
) -> None:
    version = resigner.docs["root"]["signed"]["version"]
    _take_over(resigner, tmp_path / "attacker", root_version=version)
    code, out, err = inventory(capsys, "--server", hostile.url, "--baseline-archive", str(baseline))
    assert (code, out) == (1, ""), err
    assert err == (
        f"dct2notation: error: {GUN}: root: version {version} differs from the baseline archive's root of the same "
        "version\n"
    )


def test_root_rotated_after_the_baseline_is_followed_from_the_anchor(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner, baseline: Path, hostile: HostileNotary
) -> None:
    old_keys = resigner.signing_keys("root")
    old_ids = [resigner.key_id_for("root", key) for key in old_keys]
    signed = resigner.docs["root"]["signed"]
    version = signed["version"]
    key, kid, entry = _root_key(tmp_path / "rotated")
    for old in old_ids:
        signed["keys"].pop(old)
    signed["keys"][kid] = entry
    signed["roles"]["root"]["keyids"] = [kid]
    signed["version"] = version + 1
    payload = canonical(signed)
    sigs = []
    for signer, signer_id in [(key, kid), *zip(old_keys, old_ids, strict=True)]:
        method, raw = sign_raw(signer, payload)
        sigs.append({"keyid": signer_id, "method": method, "sig": base64.b64encode(raw).decode()})
    resigner.docs["root"]["signatures"] = sigs
    resigner.raw["root"] = resigner.encode("root")
    resigner.rechain()
    code, out, err = inventory(capsys, "--server", hostile.url, "--baseline-archive", str(baseline))
    assert code == 0, err
    repo = json.loads(out)["repositories"][0]
    assert repo["root_version"] == version + 1
    assert repo["administrative_keys"][0] == {"name": "Root", "keys": [{"id": kid}]}
    assert [name for name in hostile.requested if name.endswith("root")] == ["root", f"{version + 1}.root"]


def test_attack_rollback_by_omission_of_releases(
    capsys: pytest.CaptureFixture[str], resigner: Resigner, baseline: Path, hostile: HostileNotary, built: RichGun
) -> None:
    releases_version = resigner.docs["targets/releases"]["signed"]["version"]
    # Only the snapshot and timestamp keys (held by the notary-server) are needed to drop a role.
    resigner.docs["snapshot"]["signed"]["meta"].pop("targets/releases")
    resigner.docs["snapshot"]["signed"]["version"] += 1
    resigner.docs["timestamp"]["signed"]["version"] += 1
    resigner.rechain()
    # Without a baseline notary skips an unlisted delegation, so v1 falls back to the older targets digest.
    code, out, err = inventory(capsys, "--server", hostile.url)
    assert code == 0, err
    v1 = next(t for t in json.loads(out)["repositories"][0]["trusted_tags"] if t["tag"] == "v1")
    assert v1["digest"] == "sha256:" + built.digests["v1-in-targets"]
    code, out, err = inventory(capsys, "--server", hostile.url, "--baseline-archive", str(baseline))
    assert (code, out) == (1, ""), err
    assert err == (
        f"dct2notation: error: {GUN}: targets/releases: present at version {releases_version} in the baseline "
        "archive and still delegated, but the snapshot no longer lists it (rollback by omission)\n"
    )


def test_delegation_removed_by_its_parent_is_not_an_omission(
    capsys: pytest.CaptureFixture[str], resigner: Resigner, baseline: Path, hostile: HostileNotary
) -> None:
    # targets (signed with its own key) no longer delegates bob: a removal, not something the server hid.
    block = resigner.docs["targets"]["signed"]["delegations"]
    block["roles"] = [r for r in block["roles"] if r["name"] != "targets/bob"]
    resigner.docs["targets"]["signed"]["version"] += 1
    resigner.resign("targets")
    resigner.docs["snapshot"]["signed"]["meta"].pop("targets/bob")
    del resigner.raw["targets/bob"]
    resigner.docs["snapshot"]["signed"]["version"] += 1
    resigner.docs["timestamp"]["signed"]["version"] += 1
    resigner.rechain()
    code, out, err = inventory(capsys, "--server", hostile.url, "--baseline-archive", str(baseline))
    assert code == 0, err
    repo = json.loads(out)["repositories"][0]
    assert "targets/bob" not in repo["role_targets"]
    assert [d["role"] for d in repo["delegations"]] == ["targets/releases", "targets/alice"]
