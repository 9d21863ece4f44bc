"""Every refusal of issue #2 "must show 4": exit 1 and one line naming GUN, role and reason.

How the bad inputs are made: a GUN is built with the real notary client (tests/support/notary_builders.py); its
metadata bytes are loaded into a ``Resigner`` that holds notary's own private keys (decrypted from the client's trust
dir with the test passphrases), the delegation keys the test generated, and a timestamp key the test owns (root is
re-signed by notary's root key to name it). Each test mutates one role, re-signs what an attacker with the named
keys could re-sign, rewrites the hash chain where the case needs it, and runs ``inventory --archive``. An
unmutated copy goes through the same path and is accepted, so each refusal is caused by its mutation alone.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from dct2notation.cli import main
from dct2notation.dct.canonical import encode_exact
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

GUN = "example.com/refusals/app"


@pytest.fixture(scope="module")
def built(notary_server: NotaryServer, tmp_path_factory: pytest.TempPathFactory) -> RichGun:
    return published_rich_gun(notary_server, tmp_path_factory.mktemp("refusals"), GUN)


@pytest.fixture
def resigner(built: RichGun) -> Resigner:
    return resigner_for(built)


def inventory(capsys: pytest.CaptureFixture[str], archive: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["inventory", GUN, "--archive", str(archive), "--json", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, signer: Resigner, role: str, reason: str, **kw: Any
) -> str:
    archive = signer.write_archive(tmp_path / "archive", GUN, kw.get("extra"))
    code, out, err = inventory(capsys, archive, *kw.get("args", ()))
    assert code == 1, err
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith(f"dct2notation: error: {GUN}: {role}: "), err
    assert reason in err, err
    return err


def test_unmutated_resigned_copy_is_accepted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner, built: RichGun
) -> None:
    code, out, err = inventory(capsys, resigner.write_archive(tmp_path / "a", GUN))
    assert code == 0, err
    repo = json.loads(out)["repositories"][0]
    assert {t["tag"] for t in repo["trusted_tags"]} == {"latest", "v1", "v2", "v10"}


def test_bad_signature(capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner) -> None:
    targets = resigner.docs["targets"]["signed"]["targets"]
    targets["evil"] = dict(targets["latest"])  # content changed, signature kept
    resigner.raw["targets"] = resigner.encode("targets")
    resigner.rechain()
    assert_refused(capsys, tmp_path, resigner, "targets", "bad signature: 0 valid of threshold 1")


def test_threshold_not_met(capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner) -> None:
    resigner.resign("targets", keys=[])
    resigner.rechain()
    assert_refused(capsys, tmp_path, resigner, "targets", "threshold not met: 0 valid of threshold 1")


def test_signature_by_a_key_the_role_does_not_list(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner
) -> None:
    # In the releases subtree, where a skipped role would change what docker pulls: refused, not skipped.
    resigner.resign("targets/releases", keys=resigner.signing_keys("targets/bob"))
    resigner.rechain()
    assert_refused(capsys, tmp_path, resigner, "targets/releases", "threshold not met")


@pytest.mark.parametrize("role", ["timestamp", "snapshot", "targets", "targets/releases"])
def test_expired_role(capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner, role: str) -> None:
    resigner.docs[role]["signed"]["expires"] = "2020-01-01T00:00:00Z"
    resigner.resign(role)
    resigner.rechain()
    assert_refused(capsys, tmp_path, resigner, role, "expired at 2020-01-01T00:00:00Z")


def test_expiry_uses_the_at_instant(capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner) -> None:
    # Three days from now: inside the timestamp's 14-day life, so only the releases role's expiry decides.
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).replace(microsecond=0)
    stamp = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    resigner.docs["targets/releases"]["signed"]["expires"] = stamp
    resigner.resign("targets/releases")
    resigner.rechain()
    archive = resigner.write_archive(tmp_path / "a", GUN)
    before = (expires - dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    after = (expires + dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert inventory(capsys, archive, "--at", before)[0] == 0
    code, _, err = inventory(capsys, archive, "--at", after)
    assert code == 1
    assert err == f"dct2notation: error: {GUN}: targets/releases: expired at {stamp} (evaluated at {after})\n"


def test_rollback_below_an_earlier_archive(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner
) -> None:
    current = resigner.write_archive(tmp_path / "current", GUN)
    version = resigner.docs["targets"]["signed"]["version"]
    resigner.docs["targets"]["signed"]["version"] = version + 1
    resigner.resign("targets")
    resigner.rechain()
    newer = resigner.write_archive(tmp_path / "newer", GUN)
    code, _, err = inventory(capsys, current, "--baseline-archive", str(newer))
    assert code == 1
    assert err == (
        f"dct2notation: error: {GUN}: targets: version {version} is lower than the trusted version "
        f"{version + 1} (rollback)\n"
    )


def test_snapshot_to_targets_hash_mismatch(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner
) -> None:
    resigner.docs["snapshot"]["signed"]["meta"]["targets"]["hashes"]["sha256"] = base64.b64encode(b"x" * 32).decode()
    resigner.resign("snapshot")
    resigner.docs["timestamp"]["signed"]["meta"]["snapshot"] = resigner.meta(resigner.raw["snapshot"])
    resigner.resign("timestamp")
    assert_refused(capsys, tmp_path, resigner, "targets", "sha256 hash does not match snapshot")


def test_snapshot_to_targets_length_mismatch(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner
) -> None:
    resigner.docs["targets"]["signed"]["targets"]["extra"] = dict(resigner.docs["targets"]["signed"]["targets"]["v1"])
    resigner.resign("targets")  # validly signed, but the snapshot still records the old bytes
    assert_refused(capsys, tmp_path, resigner, "targets", "does not match snapshot's")


def test_timestamp_to_snapshot_mismatch(capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner) -> None:
    resigner.docs["snapshot"]["signed"]["version"] += 1
    resigner.resign("snapshot")  # timestamp not updated
    assert_refused(capsys, tmp_path, resigner, "snapshot", "hash does not match timestamp")


def test_delegation_signs_outside_its_paths(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner
) -> None:
    bob = resigner.docs["targets/bob"]["signed"]["targets"]
    bob["latest"] = dict(bob["v3"])  # bob may only sign names starting with "v"
    resigner.resign("targets/bob")
    resigner.rechain()
    assert_refused(capsys, tmp_path, resigner, "targets/bob", "target 'latest' is outside the delegated paths ['v']")


def _new_root_key(tmp_path: Path, cn: str) -> tuple[Any, str, dict[str, Any]]:
    key_path = write_key_and_cert(tmp_path / "newroot", "root", cn=cn)
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    public = base64.b64encode((tmp_path / "newroot" / "root.crt").read_bytes()).decode()
    return key, key_id("ecdsa-x509", public), {"keytype": "ecdsa-x509", "keyval": {"private": None, "public": public}}


def _root_versions(
    resigner: Resigner, new_key: Any, new_id: str, entry: dict[str, Any], sign_with_old: bool
) -> dict[str, bytes]:
    """1.root and 2.root by the current root key, 3.root rotated to ``new_key``."""
    old_keys = resigner.signing_keys("root")
    current = json.loads(json.dumps(resigner.docs["root"]))
    versions: dict[str, bytes] = {}
    for version in (1, 2):
        resigner.docs["root"] = json.loads(json.dumps(current))
        resigner.docs["root"]["signed"]["version"] = version
        resigner.resign("root", keys=old_keys)
        versions[f"{version}.root"] = resigner.raw["root"]
    resigner.docs["root"] = json.loads(json.dumps(current))
    signed = resigner.docs["root"]["signed"]
    signed["version"] = 3
    for old in signed["roles"]["root"]["keyids"]:
        signed["keys"].pop(old)
    signed["keys"][new_id] = entry
    signed["roles"]["root"]["keyids"] = [new_id]
    sigs = []
    method, raw = sign_raw(new_key, canonical(signed))
    sigs.append({"keyid": new_id, "method": method, "sig": base64.b64encode(raw).decode()})
    if sign_with_old:
        for key in old_keys:
            method, raw = sign_raw(key, canonical(signed))
            sigs.append(
                {"keyid": current_root_id(current, key), "method": method, "sig": base64.b64encode(raw).decode()}
            )
    resigner.docs["root"]["signatures"] = sigs
    resigner.raw["root"] = resigner.encode("root")
    versions["3.root"] = resigner.raw["root"]
    resigner.rechain()
    return versions


def current_root_id(root_doc: dict[str, Any], key: Any) -> str:
    """The root key ID (x509 TUF ID) in ``root_doc`` for a private key."""
    from cryptography import x509

    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for kid in root_doc["signed"]["roles"]["root"]["keyids"]:
        cert = x509.load_pem_x509_certificate(base64.b64decode(root_doc["signed"]["keys"][kid]["keyval"]["public"]))
        pub = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if pub == spki:
            return str(kid)
    raise AssertionError("root key not in root.json")


def test_new_root_not_signed_by_old_root(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner
) -> None:
    key, kid, entry = _new_root_key(tmp_path, GUN)
    versions = _root_versions(resigner, key, kid, entry, sign_with_old=False)
    assert_refused(
        capsys,
        tmp_path,
        resigner,
        "3.root",
        "threshold not met: 0 valid of threshold 1 of the previous root",
        extra=versions,
    )


def test_new_root_signed_by_old_and_new_is_accepted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner
) -> None:
    key, kid, entry = _new_root_key(tmp_path, GUN)
    versions = _root_versions(resigner, key, kid, entry, sign_with_old=True)
    code, out, err = inventory(capsys, resigner.write_archive(tmp_path / "a", GUN, versions))
    assert code == 0, err
    assert json.loads(out)["repositories"][0]["administrative_keys"][0] == {"name": "Root", "keys": [{"id": kid}]}


def test_root_certificate_cn_must_be_the_gun(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner
) -> None:
    key, kid, entry = _new_root_key(tmp_path, "example.com/someone-else")
    signed = resigner.docs["root"]["signed"]
    for old in signed["roles"]["root"]["keyids"]:
        signed["keys"].pop(old)
    signed["keys"][kid] = entry
    signed["roles"]["root"]["keyids"] = [kid]
    resigner.by_role["root"] = [key]
    resigner.resign("root")
    resigner.rechain()
    assert_refused(
        capsys, tmp_path, resigner, "root", f"root certificate CN 'example.com/someone-else' does not match GUN '{GUN}'"
    )


def test_unknown_key_type(capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner) -> None:
    block = resigner.docs["targets"]["signed"]["delegations"]
    alice_id = next(r for r in block["roles"] if r["name"] == "targets/alice")["keyids"][0]
    block["keys"][alice_id]["keytype"] = "dsa"
    resigner.resign("targets")
    resigner.rechain()
    assert_refused(capsys, tmp_path, resigner, "targets/alice", "unknown key type 'dsa'")


def test_malformed_json(capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner) -> None:
    resigner.raw["targets/alice"] = b'{"signed":{"_type":"Targets"'
    resigner.rechain()
    assert_refused(capsys, tmp_path, resigner, "targets/alice", "malformed JSON")


def test_oversized_timestamp(capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner) -> None:
    resigner.raw["timestamp"] = resigner.raw["timestamp"] + b" " * (1024 * 1024)
    assert_refused(capsys, tmp_path, resigner, "timestamp", "file is larger than the 1048576-byte limit")


def test_key_id_must_match_key(capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner) -> None:
    block = resigner.docs["targets"]["signed"]["delegations"]
    bob_id = next(r for r in block["roles"] if r["name"] == "targets/bob")["keyids"][0]
    alice_id = next(r for r in block["roles"] if r["name"] == "targets/alice")["keyids"][0]
    block["keys"][bob_id] = block["keys"][alice_id]  # bob's ID now names alice's key
    resigner.resign("targets")
    resigner.rechain()
    assert_refused(capsys, tmp_path, resigner, "targets/bob", f"key ID {bob_id} does not match its key")


def _sign_go_canonical(resigner: Resigner, name: str) -> None:
    """Sign ``name`` over docker/go canonical bytes (raw control characters), as notary's verifier rebuilds them."""
    doc = resigner.docs[name]
    payload = encode_exact(doc["signed"])
    sigs = []
    for key in resigner.signing_keys(name):
        method, raw = sign_raw(key, payload)
        sigs.append({"keyid": resigner.key_id_for(name, key), "method": method, "sig": base64.b64encode(raw).decode()})
    doc["signatures"] = sigs
    resigner.raw[name] = json.dumps(doc).encode()  # control characters \\u-escaped on the wire, as JSON requires


def test_control_character_tag_signed_over_go_canonical_bytes_is_accepted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner
) -> None:
    targets = resigner.docs["targets/releases"]["signed"]["targets"]
    targets["odd\x01\ttag\\n"] = dict(targets["v1"])
    _sign_go_canonical(resigner, "targets/releases")
    resigner.rechain()
    code, out, err = inventory(capsys, resigner.write_archive(tmp_path / "a", GUN))
    assert code == 0, err
    tags = {t["tag"] for t in json.loads(out)["repositories"][0]["trusted_tags"]}
    assert "odd\x01\ttag\\n" in tags


def test_non_integral_number_in_signed_part(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner
) -> None:
    # notary decodes numbers as float64 and its canonical encoder refuses fractions: nothing can be verified.
    resigner.docs["targets/alice"]["signed"]["custom"] = {"ratio": 0.5}
    resigner.resign("targets/alice")
    resigner.rechain()
    assert_refused(
        capsys, tmp_path, resigner, "targets/alice", "signed part has no canonical JSON form, so no signature can match"
    )


@pytest.mark.parametrize("sha256", ["excess-padding", "é" * 44, 42])
def test_target_hash_must_be_strict_base64(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner, sha256: object
) -> None:
    targets = resigner.docs["targets/alice"]["signed"]["targets"]
    tag = next(iter(targets))
    good = targets[tag]["hashes"]["sha256"]
    # Go's base64.StdEncoding (notary's []byte hashes) refuses a 32-byte digest padded with "==".
    targets[tag]["hashes"]["sha256"] = good + "=" if sha256 == "excess-padding" else sha256
    resigner.resign("targets/alice")
    resigner.rechain()
    assert_refused(capsys, tmp_path, resigner, "targets/alice", f"target {tag!r}: no valid sha256 hash / length")


def test_lone_surrogate_tag_is_shown_as_notary_decodes_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner
) -> None:
    # Go decodes the escaped lone surrogate to U+FFFD, signs over that, and lists the tag that way.
    targets = resigner.docs["targets/releases"]["signed"]["targets"]
    targets["odd\ud800"] = dict(targets["v1"])
    _sign_go_canonical(resigner, "targets/releases")
    resigner.rechain()
    code, out, err = inventory(capsys, resigner.write_archive(tmp_path / "a", GUN))
    assert code == 0, err
    tags = {t["tag"] for t in json.loads(out)["repositories"][0]["trusted_tags"]}
    assert "odd\ufffd" in tags


def test_attack_threshold_by_one_key_signing_twice(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner
) -> None:
    # python-tuf's duplicate-signature attack: the same key's signature, listed twice, counts once.
    resigner.docs["root"]["signed"]["roles"]["targets"]["threshold"] = 2
    resigner.resign("root")
    key = resigner.signing_keys("targets")[0]
    resigner.resign("targets", keys=[key, key])
    resigner.rechain()
    assert_refused(capsys, tmp_path, resigner, "targets", "threshold not met: 1 valid of threshold 2")


def test_attack_wider_delegation(capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner) -> None:
    # bob may delegate only under "v"; a child he names with every path cannot sign "latest" for him.
    bob = resigner.docs["targets/bob"]["signed"]
    parent_entry = next(
        r for r in resigner.docs["targets"]["signed"]["delegations"]["roles"] if r["name"] == "targets/bob"
    )
    bob_key_id = parent_entry["keyids"][0]
    bob_key = resigner.docs["targets"]["signed"]["delegations"]["keys"][bob_key_id]
    bob["delegations"] = {
        "keys": {bob_key_id: bob_key},
        "roles": [{"name": "targets/bob/wide", "keyids": [bob_key_id], "threshold": 1, "paths": [""]}],
    }
    resigner.resign("targets/bob")
    child = json.loads(json.dumps(resigner.docs["targets/bob"]))
    child["signed"]["delegations"] = {"keys": {}, "roles": []}
    child["signed"]["targets"] = {"latest": dict(resigner.docs["targets"]["signed"]["targets"]["latest"])}
    resigner.docs["targets/bob/wide"] = child
    resigner.by_role["targets/bob/wide"] = resigner.signing_keys("targets/bob")
    resigner.resign("targets/bob/wide")
    resigner.docs["snapshot"]["signed"]["meta"]["targets/bob/wide"] = {}
    resigner.rechain()
    assert_refused(capsys, tmp_path, resigner, "targets/bob/wide", "target 'latest' is outside the delegated paths []")


def test_attack_skipped_root_version(capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner) -> None:
    # Version 3 served as 2.root: the chain may not jump a version, even when 3 is signed by the old key too.
    key, kid, entry = _new_root_key(tmp_path, GUN)
    versions = _root_versions(resigner, key, kid, entry, sign_with_old=True)
    versions["2.root"] = versions["3.root"]
    assert_refused(capsys, tmp_path, resigner, "2.root", "has version 3", extra=versions)


def test_attack_missing_root_version(capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner) -> None:
    key, kid, entry = _new_root_key(tmp_path, GUN)
    versions = _root_versions(resigner, key, kid, entry, sign_with_old=True)
    del versions["2.root"]
    resigner.raw.pop("2.root", None)
    archive = resigner.write_archive(tmp_path / "archive", GUN, versions)
    code, out, err = inventory(capsys, archive)
    assert (code, out) == (2, ""), err
    assert err == f"dct2notation: error: {GUN}: 2.root: no {archive / GUN / '2.root.json'}\n"


def test_expired_non_release_delegation_is_a_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner, built: RichGun
) -> None:
    # alice's metadata expires in three days; at four days the timestamp (14 days from the server) is still
    # fresh, so only alice is expired. notary warns and walks on without her; so do we.
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).replace(microsecond=0)
    stamp = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    resigner.docs["targets/alice"]["signed"]["expires"] = stamp
    resigner.resign("targets/alice")
    resigner.rechain()
    archive = resigner.write_archive(tmp_path / "a", GUN)
    at = (expires + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, out, err = inventory(capsys, archive, "--at", at)
    assert code == 0, err
    reason = f"expired at {stamp} (evaluated at {at})"
    assert err == (
        f"dct2notation: warning: {GUN}: targets/alice: {reason}; skipped as notary does, its tags are not counted\n"
    )
    repo = json.loads(out)["repositories"][0]
    assert repo["skipped_roles"] == [{"role": "targets/alice", "reason": reason}]
    assert "targets/alice" not in repo["role_targets"]
    # v2 was co-signed by alice: with her role skipped its row has no signer but the admin.
    v2 = next(row for row in repo["signed_tags"] if row["tag"] == "v2")
    assert v2 == {"tag": "v2", "digest": "sha256:" + built.digests["v2"], "signers": ["Repo Admin"]}
    assert {t["tag"] for t in repo["trusted_tags"]} == {"latest", "v1", "v2", "v10"}
    # Her delegation (keys, paths) is still what targets signed, so she stays a listed signer.
    assert "alice" in {s["name"] for s in repo["signers"]}


def test_archive_keeps_a_skipped_delegation_as_served_and_warns(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resigner: Resigner
) -> None:
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).replace(microsecond=0)
    resigner.docs["targets/alice"]["signed"]["expires"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    resigner.resign("targets/alice")
    resigner.rechain()
    trust = tmp_path / "trust"
    for name, raw in resigner.raw.items():
        path = trust / "tuf" / GUN / "metadata" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    at = (expires + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    output = tmp_path / "out"
    code = main(["archive", GUN, "--trust-dir", str(trust), "-o", str(output), "--at", at])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err.splitlines()[0] == (
        f"dct2notation: warning: {GUN}: targets/alice: expired at {expires:%Y-%m-%dT%H:%M:%SZ} (evaluated at {at}); "
        "skipped as notary does, its tags are not counted"
    )
    assert err.splitlines()[1].startswith("archived 1 GUN(s) to ")
    # Archived as served, so a later inventory of the archive sees (and skips) the same role.
    assert (output / GUN / "targets" / "alice.json").read_bytes() == resigner.raw["targets/alice"]
