"""`policy import FILE [--force]` / `policy show`, as Notation 1.3's, next to the `policy INVENTORY` generator."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dct2notation.cli import main

POLICY = (
    '{"version": "1.0", "trustPolicies": [{"name": "acme", "registryScopes": ["*"],'
    ' "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"], "trustedIdentities": ["*"]}]}\n'
)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cfg = tmp_path / "notation"
    monkeypatch.setenv("NOTATION_CONFIG", str(cfg))
    return cfg


def _file(tmp_path: Path, text: str, name: str = "policy.json") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_policy_import_writes_the_file_unchanged(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "import", str(_file(tmp_path, POLICY))]) == 0
    assert (config / "trustpolicy.json").read_text() == POLICY
    assert capsys.readouterr().out == f"Trust policy configuration imported successfully to {config}/trustpolicy.json\n"


def test_policy_import_refuses_an_existing_policy_without_force(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.mkdir()
    (config / "trustpolicy.json").write_text("old")
    assert main(["policy", "import", str(_file(tmp_path, POLICY))]) == 2
    assert capsys.readouterr().err == (
        f"dct2notation: error: {config}/trustpolicy.json: a trust policy exists already"
        " (give --force to overwrite it)\n"
    )
    assert (config / "trustpolicy.json").read_text() == "old"
    assert main(["policy", "import", "--force", str(_file(tmp_path, POLICY))]) == 0
    assert (config / "trustpolicy.json").read_text() == POLICY


def test_policy_import_force_replaces_the_oci_policy_verify_reads(tmp_path: Path, config: Path) -> None:
    config.mkdir()
    (config / "trustpolicy.oci.json").write_text("old")
    assert main(["policy", "import", "--force", str(_file(tmp_path, POLICY))]) == 0
    assert (config / "trustpolicy.oci.json").read_text() == POLICY
    assert not (config / "trustpolicy.json").exists()


def test_policy_import_invalid_policy_is_one_line_and_writes_nothing(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _file(tmp_path, '{"version": "2.0", "trustPolicies": []}')
    assert main(["policy", "import", str(bad)]) == 2
    assert capsys.readouterr().err == (
        f'dct2notation: error: {bad}: trust policy document uses unsupported version "2.0" (only "1.0")\n'
    )
    assert not config.exists()


def test_policy_import_not_json_and_missing_file(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _file(tmp_path, "{not json")
    assert main(["policy", "import", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dct2notation: error: {bad}: malformed trust policy, not valid JSON (")
    assert err.count("\n") == 1
    assert main(["policy", "import", str(tmp_path / "absent.json")]) == 2
    assert capsys.readouterr().err == (
        f"dct2notation: error: {tmp_path}/absent.json: cannot read trust policy (no such file)\n"
    )
    assert not config.exists()


def test_attack_policy_import_fifo_is_refused_not_waited_on(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert main(["policy", "import", str(fifo)]) == 2
    assert capsys.readouterr().err == f"dct2notation: error: {fifo}: is not a regular file; refused\n"
    assert not config.exists()


def test_policy_show_prints_the_policy_verify_reads(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config.mkdir()
    (config / "trustpolicy.json").write_text('{"other": 1}')
    (config / "trustpolicy.oci.json").write_text(POLICY)  # read first, as verify (Notation 1.2+) does
    assert main(["policy", "show"]) == 0
    assert capsys.readouterr().out == POLICY


def test_policy_show_without_policy_is_one_line(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "show"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"dct2notation: error: {config}: no trustpolicy.oci.json or trustpolicy.json"
        " (`policy import FILE` writes one)\n"
    )


def test_policy_show_refuses_a_policy_that_is_not_utf8(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The one text reader of jsontext (as --guns-from's): the byte that is not UTF-8 is named.
    config.mkdir()
    (config / "trustpolicy.json").write_bytes(b'{"version": "1.0\xff"}')
    assert main(["policy", "show"]) == 2
    assert capsys.readouterr() == (
        "",
        f"dct2notation: error: {config}/trustpolicy.json: trust policy is not UTF-8 text (byte 16)\n",
    )


def test_policy_show_invalid_policy_prints_it_then_the_error(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.mkdir()
    (config / "trustpolicy.json").write_text('{"version": "2.0"}')
    assert main(["policy", "show"]) == 2
    out, err = capsys.readouterr()
    assert out == '{"version": "2.0"}\n'
    assert err == (
        f'dct2notation: error: {config}/trustpolicy.json: trust policy document uses unsupported version "2.0"'
        ' (only "1.0")\n'
    )


def test_policy_inventory_named_import_is_still_the_generator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `./import` reaches the generator (the bare word is Notation's subcommand): it asks for --signers and -o.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "import").write_text("{}")
    assert main(["policy", "./import"]) == 2
    assert capsys.readouterr().err == (
        "dct2notation: error: policy: INVENTORY, --signers FILE and -o OUTDIR are required (or --check OUTDIR)\n"
    )


def _statement_policy(**fields: object) -> str:
    statement = {"name": "acme", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
                 "trustStores": ["ca:acme"], "trustedIdentities": ["*"], **fields}  # fmt: skip
    return json.dumps({"version": "1.0", "trustPolicies": [statement]})


def test_attack_trust_policy_store_name_with_a_trailing_newline(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A policy naming the store "ca:acme\\n": ``$`` matched before the newline, so a store folder "acme\\n" was
    trusted. The name is matched whole and the refusal shows the newline (the error line would make it a space)."""
    bad = _file(tmp_path, _statement_policy(trustStores=["ca:acme\n"]))
    assert main(["policy", "import", str(bad)]) == 2
    assert capsys.readouterr().err == (
        f'dct2notation: error: {bad}: trust policy statement "acme" uses an unsupported trust store name "acme\\x0a" '
        'in trust store value "ca:acme\\x0a". Named store name needs to follow [a-zA-Z0-9_.-]+ format\n'
    )
    assert not config.exists()


@pytest.mark.parametrize("scope", ["registry.example/app\n", "registry.example\n/app"])
def test_attack_trust_policy_registry_scope_with_a_trailing_newline(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str], scope: str
) -> None:
    """A scope whose repository ("app\\n") or host ("registry.example\\n") ends in a newline matched a ``$``-anchored
    pattern; it is refused, the newline shown."""
    bad = _file(tmp_path, _statement_policy(registryScopes=[scope]))
    assert main(["policy", "import", str(bad)]) == 2
    shown = scope.replace("\n", "\\x0a")
    assert capsys.readouterr().err == (
        f'dct2notation: error: {bad}: trust policy statement "acme" registry scope "{shown}" is not valid, make sure '
        "it is a fully qualified repository without the scheme, tag or digest, e.g. example.com/my/repository "
        "(wildcards are only allowed as the sole scope '*')\n"
    )
    assert not config.exists()
