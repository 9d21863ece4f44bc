"""How notary walks delegations and how docker resolves a tag, on repositories built with the real notary client.

* A delegation whose key was replaced while its metadata was not re-signed (an inactive signer: the client that
  rotated the key does not hold the new private key) is under-signed. notary warns and walks on without it
  (client/tufclient.go downloadTargets); the GUN must stay usable, with that role's tags not counted.
* A tag in a nested ``targets/releases/<x>`` role: docker's ``GetTargetByName(tag, targets/releases, targets)``
  answers with the first role holding it in the releases subtree, and docker drops an answer whose role is not
  exactly ``targets/releases`` or ``targets`` — with no fall back to ``targets``' digest.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dct2notation.cli import main
from tests.support.notary_builders import key_id, parse_notary_list, sha256_hex, write_key_and_cert
from tests.support.servers import NotaryClient, NotaryServer

ROTATED = "example.com/walk/rotated"
NESTED = "example.com/walk/nested"


def inventory(capsys: pytest.CaptureFixture[str], server: NotaryServer, gun: str) -> tuple[int, dict[str, Any], str]:
    code = main(["inventory", gun, "--server", server.url, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out)["repositories"][0] if out else {}, err


def _canonical_key_id(cert: Path) -> str:
    """The ID ``notary delegation list`` shows and ``remove`` takes: of the bare public key, not the certificate."""
    public = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key_id("ecdsa", base64.b64encode(spki).decode())


@pytest.fixture(scope="module")
def rotated(notary_server: NotaryServer, tmp_path_factory: pytest.TempPathFactory) -> NotaryClient:
    work = tmp_path_factory.mktemp("rotated")
    keys = work / "keys"
    client = notary_server.client(work / "trust")
    client.init(ROTATED)
    write_key_and_cert(keys, "alice")
    client.run("delegation", "add", ROTATED, "targets/alice", str(keys / "alice.crt"), "--all-paths")
    client.run("key", "import", str(keys / "alice.key"), "--role", "targets/alice", "--gun", ROTATED)
    client.addhash(ROTATED, "v1", 10, sha256_hex("v1"))
    client.addhash(ROTATED, "v1", 10, sha256_hex("v1"), "targets/alice")
    client.addhash(ROTATED, "only-alice", 11, sha256_hex("only-alice"), "targets/alice")
    client.publish(ROTATED)
    # The admin replaces alice's key; alice's own metadata stays signed by the key no longer listed.
    write_key_and_cert(keys, "alice2", cn="alice")
    client.run("delegation", "add", ROTATED, "targets/alice", str(keys / "alice2.crt"))
    client.run("delegation", "remove", ROTATED, "targets/alice", _canonical_key_id(keys / "alice.crt"), input="y\n")
    client.publish(ROTATED)
    return client


def test_under_signed_delegation_is_skipped_as_notary_skips_it(
    capsys: pytest.CaptureFixture[str], notary_server: NotaryServer, rotated: NotaryClient
) -> None:
    listed = rotated.run("list", ROTATED, "-r", "targets/alice", "-r", "targets")
    # notary itself lists the GUN, without alice's targets, and says why on stderr.
    assert [(row["tag"], row["role"]) for row in parse_notary_list(listed.stdout)] == [("v1", "targets")]
    assert "Error getting targets/alice: valid signatures did not meet threshold" in listed.stderr
    code, repo, err = inventory(capsys, notary_server, ROTATED)
    assert code == 0, err
    reason = "threshold not met: 0 valid of threshold 1"
    assert err == (
        f"dct2notation: warning: {ROTATED}: targets/alice: {reason}; skipped as notary does, its tags are not counted\n"
    )
    assert repo["skipped_roles"] == [{"role": "targets/alice", "reason": reason}]
    assert list(repo["role_targets"]) == ["targets"]
    assert repo["signed_tags"] == [{"tag": "v1", "digest": "sha256:" + sha256_hex("v1"), "signers": ["Repo Admin"]}]


@pytest.fixture(scope="module")
def nested(notary_server: NotaryServer, tmp_path_factory: pytest.TempPathFactory) -> NotaryClient:
    work = tmp_path_factory.mktemp("nested")
    keys = work / "keys"
    client = notary_server.client(work / "trust")
    client.init(NESTED)
    for name in ("releases", "team"):
        write_key_and_cert(keys, name)
    client.run("delegation", "add", NESTED, "targets/releases", str(keys / "releases.crt"), "--all-paths")
    client.run("key", "import", str(keys / "releases.key"), "--role", "targets/releases", "--gun", NESTED)
    client.publish(NESTED)
    client.run("delegation", "add", NESTED, "targets/releases/team", str(keys / "team.crt"), "--all-paths")
    client.run("key", "import", str(keys / "team.key"), "--role", "targets/releases/team", "--gun", NESTED)
    client.publish(NESTED)
    plan = [
        ("v1", "v1-targets", ()),
        ("v1", "v1-team", ("targets/releases/team",)),  # first found in the nested role: not trusted
        ("v2", "v2-releases", ("targets/releases",)),  # releases answers before its child
        ("v2", "v2-team", ("targets/releases/team",)),
        ("v3", "v3-targets", ()),  # in no releases role: targets answers
        ("v4", "v4-team", ("targets/releases/team",)),  # only nested: not trusted
    ]
    for tag, content, roles in plan:
        client.addhash(NESTED, tag, len(content), sha256_hex(content), *roles)
    client.publish(NESTED)
    return client


def test_nested_releases_role_resolves_as_docker_get_target_by_name(
    capsys: pytest.CaptureFixture[str], notary_server: NotaryServer, nested: NotaryClient
) -> None:
    # notary's ListTargets(targets/releases, targets) names the role that answers for each tag; docker keeps only
    # the answers from targets/releases and targets.
    listed = parse_notary_list(nested.list(NESTED, "targets/releases", "targets"))
    assert {row["tag"]: row["role"] for row in listed} == {
        "v1": "targets/releases/team",
        "v2": "targets/releases",
        "v3": "targets",
        "v4": "targets/releases/team",
    }
    code, repo, err = inventory(capsys, notary_server, NESTED)
    assert code == 0, err
    assert repo["trusted_tags"] == [row for row in listed if row["role"] in ("targets/releases", "targets")]
    assert repo["trusted_tags"] == [
        {"tag": "v2", "digest": "sha256:" + sha256_hex("v2-releases"), "size": 11, "role": "targets/releases"},
        {"tag": "v3", "digest": "sha256:" + sha256_hex("v3-targets"), "size": 10, "role": "targets"},
    ]
