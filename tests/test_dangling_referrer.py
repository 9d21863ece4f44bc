"""One bad referrer does not blind the gate: a signature manifest deleted behind its tag-schema index entry, on the
real docker-registry 2.8 (deletes enabled), is an invalid signature of that digest only."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from dct2notation.cli import main
from dct2notation.keys.testcert import generate_test_key
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.options import RegistryOptions
from tests.support.servers import Registry
from tests.test_coexist_scenario import push, sign, write_policy

_ids = itertools.count()


def delete_signature(client: RegistryClient, repo: str, subject: str, index: int) -> str:
    """DELETE the ``index``-th listed signature manifest of ``subject``; its index entry stays behind, dangling."""
    listed = client.tag_index(repo, subject)
    gone = listed[index].digest
    assert client.delete_manifest(repo, gone)
    assert [d.digest for d in client.tag_index(repo, subject)] == [d.digest for d in listed]  # still listed
    return gone


@dataclass
class Dangling:
    host: str
    repo: str
    digests: dict[str, tuple[int, str]]  # tag -> (size, digest)
    gone_a: str  # "a": signed twice, the first listed signature deleted
    gone_b: str  # "b": its only signature deleted
    policy: Path
    truststore: Path
    inventory: Path


@pytest.fixture(scope="module")
def dangling(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Dangling:
    tmp_path = tmp_path_factory.mktemp("dangling")
    host = registry.host
    repo = f"dangling{next(_ids)}/app"
    config = tmp_path / "notation"
    generate_test_key("trusted", config, key_type="ec-p256", make_default=True)
    options = RegistryOptions(insecure_registries=frozenset({host}))
    with RegistryClient(host, options) as client:
        client.push_blob(repo, b"{}")
        d = {tag: push(client, repo, tag, f"{repo}-{tag}") for tag in ("a", "b", "c")}
        for tag in ("a", "a", "b", "c"):  # "a" gets two signatures
            sign(host, repo, d[tag][1], config, "trusted")
        # "a": the FIRST listed signature is gone (the second must still be read); "b": its only one is gone.
        gone_a = delete_signature(client, repo, d["a"][1], 0)
        gone_b = delete_signature(client, repo, d["b"][1], 0)
    inventory = tmp_path / "inventory.json"
    trusted = [{"tag": t, "digest": dg, "size": size, "role": "targets"} for t, (size, dg) in d.items()]
    repository = {"gun": "dct.example/app", "trusted_tags": trusted}
    doc = {"format": "dct2notation-inventory/1", "evaluated_at": "2026-01-01T00:00:00Z", "repositories": [repository]}
    inventory.write_text(json.dumps(doc))
    policy, truststore = write_policy(tmp_path, config, "trusted")
    return Dangling(host, repo, d, gone_a, gone_b, policy, truststore, inventory)


def test_attack_dangling_referrer_aborts_check(dangling: Dangling, capsys: pytest.CaptureFixture[str]) -> None:
    host, repo = dangling.host, dangling.repo
    args = ["check", "--inventory", str(dangling.inventory), "--policy", str(dangling.policy)]
    args += ["--truststore", str(dangling.truststore), "--registry-map", f"dct.example/app={host}/{repo}"]
    args += ["--insecure-registry", host, "--json", "--no-table"]
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    assert err == ""
    rows = {t["tag"]: t for t in json.loads(out)["tags"]}
    assert {tag: (t["status"], t["requirement_met"]) for tag, t in rows.items()} == {
        "a": ("ok", True),
        "b": ("notation-invalid", False),
        "c": ("ok", True),
    }
    assert rows["a"]["signature"] != dangling.gone_a
    assert rows["b"]["failed_check"] == "integrity"
    assert rows["b"]["reason"].startswith(f"integrity: signature {dangling.gone_b} is unreadable: ")
    assert "not found (404)" in rows["b"]["reason"]
    assert code == 1  # the gate's verdict, not an outage (3) or bad input (2)


def test_attack_dangling_referrer_aborts_verify(dangling: Dangling, capsys: pytest.CaptureFixture[str]) -> None:
    """`verify REF` goes on past the unreadable signature: another one verifies "a"; "b" fails on integrity."""

    def verify(tag: str) -> tuple[int, dict[str, object], str]:
        ref = f"{dangling.host}/{dangling.repo}@{dangling.digests[tag][1]}"
        argv = ["verify", ref, "--policy", str(dangling.policy), "--truststore", str(dangling.truststore)]
        capsys.readouterr()
        code = main([*argv, "--insecure-registry", dangling.host, "--json"])
        out, err = capsys.readouterr()
        return code, json.loads(out), err

    code, doc, _ = verify("a")
    assert (code, doc["verified"]) == (0, True)
    listed = doc["signatures"]
    assert isinstance(listed, list) and listed[0]["digest"] == dangling.gone_a and listed[0]["verified"] is False
    assert listed[1]["verified"] is True
    code, doc, err = verify("b")
    assert (code, doc["verified"], doc["failedCheck"]) == (1, False, "integrity")
    assert str(doc["reason"]).startswith(f"signature {dangling.gone_b} is unreadable: ")
    assert err.count("\n") == 1 and "not found (404)" in err
