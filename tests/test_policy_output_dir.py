"""`policy -o DIR` over an existing folder (#15): replaced cleanly, never over what we did not write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dct2notation.cli import main
from dct2notation.keys.testcert import generate_test_key
from dct2notation.migrate.owned_output import MANIFEST
from tests.test_signoff import Estate, migrate_demo


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Estate:
    work = tmp_path_factory.mktemp("policy-out")
    estate = migrate_demo(work)
    for name in ("shop-key", "platform-key"):
        generate_test_key(name, work / "keys", key_type="ec-p256")
    return estate


def signers(estate: Estate, path: Path, *, platform: bool = True) -> Path:
    keys = estate.work / "keys" / "localkeys"
    text = '[[signer]]\ngun = "registry.demo.local/shop/*"\nrole = "*"\nkey = "shop-key"\n'
    text += f'cert_file = "{keys}/shop-key.crt"\n'
    if platform:
        text += (f'[[signer]]\ngun = "registry.demo.local/platform/*"\nrole = "*"\nkey = "platform-key"\n'
                 f'cert_file = "{keys}/platform-key.crt"\n')  # fmt: skip
    else:
        text += '[[signer]]\ngun = "registry.demo.local/platform/*"\nrole = "*"\nkey = "shop-key"\n'
        text += f'cert_file = "{keys}/shop-key.crt"\n'
    path.write_text(text)
    return path


def policy(estate: Estate, toml: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["policy", str(estate.work / "inventory.json"), "--signers", str(toml), "-o", str(out)])
    return code, capsys.readouterr().err


def stores(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "truststore" / "x509" / "ca").iterdir())


def test_a_rerun_replaces_its_own_files_and_drops_a_removed_identity(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The removed identity's trust store stayed behind, so Notation kept trusting it."""
    out = tmp_path / "policy"
    assert policy(estate, signers(estate, tmp_path / "two.toml"), out, capsys)[0] == 0
    before = stores(out)
    assert len(before) == 2
    manifest = json.loads((out / MANIFEST).read_text())
    assert "trustpolicy.json" in manifest["files"]
    code, err = policy(estate, signers(estate, tmp_path / "one.toml", platform=False), out, capsys)
    assert code == 0, err
    after = stores(out)
    assert len(after) == 1 and after[0] in before
    listed = set(json.loads((out / MANIFEST).read_text())["files"])
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {MANIFEST}
    assert listed == on_disk
    assert main(["policy", "--check", str(out)]) == 0


def test_a_folder_with_files_we_did_not_write_is_refused_untouched(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "policy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, err = policy(estate, signers(estate, tmp_path / "s.toml"), out, capsys)
    assert code == 2
    assert err == (f"dct2notation: error: -o {out}: exists and was not written by `policy` (no {MANIFEST}); "
                   "choose a new directory\n")  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    # Our own output with a foreign file added beside it: refused too, both left as they are.
    out2 = tmp_path / "policy2"
    assert policy(estate, signers(estate, tmp_path / "s.toml"), out2, capsys)[0] == 0
    (out2 / "truststore" / "extra.pem").write_text("someone else's")
    snapshot = {p: p.read_bytes() for p in out2.rglob("*") if p.is_file()}
    code, err = policy(estate, signers(estate, tmp_path / "one.toml", platform=False), out2, capsys)
    assert code == 2
    assert err.startswith(f"dct2notation: error: -o {out2}: holds truststore/extra.pem, not written by `policy`")
    assert {p: p.read_bytes() for p in out2.rglob("*") if p.is_file()} == snapshot


def test_attack_policy_output_manifest_path_traversal(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A planted manifest naming ../victim must not make a rerun delete a file outside the output folder."""
    out = tmp_path / "policy"
    assert policy(estate, signers(estate, tmp_path / "s.toml"), out, capsys)[0] == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    doc = json.loads((out / MANIFEST).read_text())
    doc["files"].append("../victim.txt")
    (out / MANIFEST).write_text(json.dumps(doc))
    code, err = policy(estate, signers(estate, tmp_path / "s.toml"), out, capsys)
    assert code == 2
    assert "'../victim.txt' is not a plain relative path" in err
    assert victim.read_text() == "keep me"
