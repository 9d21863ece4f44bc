"""The reason a command gives is the real one (#15): each wrong or missing reason of the issue, on real inputs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from dct2notation.cli import main
from tests.support.servers import NotaryServer
from tests.test_signoff import Estate, migrate_demo

FRONTEND = "registry.demo.local/shop/frontend"


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Estate:
    return migrate_demo(tmp_path_factory.mktemp("reasons"))


def signers(path: Path, key: str, cert: bool = False) -> Path:
    line = f'cert_file = "{path.parent / "notation" / "localkeys" / (key + ".crt")}"\n' if cert else ""
    path.write_text(f'[[signer]]\ngun = "registry.demo.local/*"\nrole = "*"\nkey = "{key}"\n{line}')
    return path


def test_a_tag_signed_only_in_a_delegation_names_it(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`canary`, signed only in targets/alice (not trusted by docker pull), was reported "DCT does not sign it"."""
    doc = json.loads((estate.work / "inventory.json").read_text())
    repo = next(r for r in doc["repositories"] if r["gun"] == FRONTEND)
    canary = next(t for t in repo["trusted_tags"] if t["tag"] == "v1.0")
    repo["trusted_tags"].remove(canary)  # as when only targets/alice signed it
    for role in ("targets", "targets/releases"):
        repo["role_targets"][role] = [t for t in repo["role_targets"].get(role, []) if t["tag"] != "v1.0"]
    repo["role_targets"]["targets/alice"] = [{"tag": "v1.0", "digest": canary["digest"], "size": canary["size"]}]
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(doc))
    code = main(["check", "--inventory", str(inventory), "--oci-layout", str(estate.work / "layout"), "--policy",
                 str(estate.policy / "trustpolicy.json"), "--truststore", str(estate.policy / "truststore"),
                 "--json", "--no-table"])  # fmt: skip
    rows = {(t["repository"], t["tag"]): t for t in json.loads(capsys.readouterr().out)["tags"]}
    assert code == 1
    row = rows[(FRONTEND, "v1.0")]
    assert row["status"] == "dct-missing"
    assert row["reason"] == ("the registry has the tag but DCT signs it only in targets/alice, which docker pull does "
                             "not trust (only targets/releases, then targets)")  # fmt: skip


def test_a_registry_map_prefix_that_matches_nothing_is_refused(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo'd prefix silently sent the whole run to each GUN's own host (docker.io for Docker Hub GUNs)."""
    inventory = str(estate.work / "inventory.json")
    code = main(["plan", inventory, "--signers", str(signers(tmp_path / "s.toml", "demo")), "--registry-map",
                 "registry.demo.lcoal=127.0.0.1:5000", "--no-preflight", "-o", str(tmp_path / "p.json")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("dct2notation: error: --registry-map registry.demo.lcoal=127.0.0.1:5000: matches no GUN (")
    code = main(["check", "--inventory", inventory, "--registry-map", "registry.demo.lcoal=127.0.0.1:5000",
                 "--policy", str(estate.policy / "trustpolicy.json"), "--truststore",
                 str(estate.policy / "truststore")])  # fmt: skip
    assert code == 2
    assert "matches no GUN" in capsys.readouterr().err


def test_a_misspelt_key_in_signers_toml_fails_plan(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It passed `plan` and failed only at `sign`."""
    config = estate.work / "notation"
    toml = signers(tmp_path / "signers.toml", "demo-signr")
    code = main(["plan", str(estate.work / "inventory.json"), "--signers", str(toml), "--config-dir", str(config),
                 "--no-preflight", "-o", str(tmp_path / "p.json")])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err == (
        f"dct2notation: error: --signers {toml}: key(s) 'demo-signr' not found ({config / 'signingkeys.json'} / key "
        "files); fix signers.toml or add the key\n"
    )
    assert not (tmp_path / "p.json").exists()


def test_an_empty_policy_lists_its_gaps(estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """"see the gaps listed" listed none: the command stopped before printing them."""
    code = main(["policy", str(estate.work / "inventory.json"), "--signers", str(signers(tmp_path / "s.toml", "demo")),
                 "-o", str(tmp_path / "policy")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("dct2notation: error: policy: no repository has a mapped signer with a usable certificate: "
                          "mapped key for ")  # fmt: skip
    assert "set cert_file (and ca_file) on its signers.toml entry and rerun" in err
    assert err.count("\n") == 1


@pytest.mark.servers
def test_a_trust_dir_without_tags_warns(
    notary_server: NotaryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stale docker trust cache (here: the GUN as it was before any tag was signed) gave 0 tags, exit 0, silently."""
    gun = f"example.com/stale/{uuid.uuid4().hex[:8]}"
    client = notary_server.client(tmp_path / "trust")
    client.init(gun)
    client.publish(gun)
    client.list(gun)  # caches timestamp.json, as a pull does
    code = main(["inventory", gun, "--trust-dir", str(tmp_path / "trust"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["repositories"][0]["trusted_tags"] == []
    assert err == (f"dct2notation: warning: {gun}: no trusted tag in --trust-dir {tmp_path / 'trust'}; docker's trust "
                   "cache is only as fresh as this machine's last pull or sign: read the notary server with "
                   "--server URL\n")  # fmt: skip
