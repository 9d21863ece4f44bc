"""`notation key add/delete` and `notation cert delete`, as Notation 1.3 takes them (docs/CLI.md has the map).

Before this change each of them was "No such command"; every test below would fail on that HEAD.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from dct2notation.cli import main
from dct2notation.keys.testcert import generate_test_key


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$NOTATION_CONFIG with the test key ``tester`` (default) and its trust store ``ca/tester``."""
    directory = tmp_path / "notation"
    generate_test_key("tester", directory, key_type="ec-p256", make_default=True)
    monkeypatch.setenv("NOTATION_CONFIG", str(directory))
    return directory


def _tester(config: Path) -> dict[str, str]:
    local = config / "localkeys"
    return {"name": "tester", "keyPath": str(local / "tester.key"), "certPath": str(local / "tester.crt")}


def test_key_add_local_and_plugin_keys(capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path) -> None:
    keys_file = config / "signingkeys.json"
    other = tmp_path / "other"
    generate_test_key("partner", other, key_type="ec-p256")
    key, cert = other / "localkeys" / "partner.key", other / "localkeys" / "partner.crt"
    code, out, err = run(capsys, "key", "add", "release", "--key-file", str(key), "--cert-file", str(cert),
                         "--default")  # fmt: skip
    assert (code, out, err) == (0, f"added key release to {keys_file} (default)\n", "")
    code, out, err = run(capsys, "key", "add", "--plugin", "com.example.kms", "--id", "arn:key/1",
                         "--plugin-config", "region=eu-west-1", "--plugin-config", "profile=ci", "kms")  # fmt: skip
    assert (code, out, err) == (0, f"added key kms to {keys_file}\n", "")
    expected = {
        "default": "release",
        "keys": [
            _tester(config),
            {"name": "release", "keyPath": str(key), "certPath": str(cert)},
            {
                "name": "kms",
                "id": "arn:key/1",
                "pluginName": "com.example.kms",
                "pluginConfig": {"region": "eu-west-1", "profile": "ci"},
            },
        ],
    }
    assert keys_file.read_text() == json.dumps(expected, indent=4) + "\n"
    assert keys_file.stat().st_mode & 0o777 == 0o600
    code, out, _ = run(capsys, "key", "ls")
    assert out.splitlines()[2] == f"* release\t{key}\t{cert}\t\t"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tester", "--plugin", "p", "--id", "1"], "{keys}: signing key 'tester' already exists"),
        (["x", "--key-file", "{key}", "--cert-file", "{other_cert}"],
         "key 'x': the private key does not match the leaf certificate"),
        (["x", "--key-file", "{key}"], "key add: --key-file and --cert-file go together"),
        (["x", "--key-file", "{key}", "--cert-file", "{cert}", "--plugin", "p", "--id", "1"],
         "key add: give --key-file KEY --cert-file CERT or --plugin NAME --id KEYID"),
        (["x"], "key add: give --key-file KEY --cert-file CERT or --plugin NAME --id KEYID"),
        (["x", "--id", "1"], "key add: --plugin NAME and --id KEYID go together (--plugin-config needs both)"),
        (["x", "--plugin", "p", "--id", "1", "--plugin-config", "novalue"],
         "--plugin-config: 'novalue' is not KEY=VALUE"),
        (["../x", "--plugin", "p", "--id", "1"],
         "key name '../x' is not valid: use letters, digits, '_', '.' and '-' only"),
        (["x", "--key-file", "{missing}", "--cert-file", "{cert}"],
         "{missing}: cannot read key file (No such file or directory)"),
    ],
)  # fmt: skip
def test_key_add_refusals_are_one_line(capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path,
                                       args: list[str], message: str) -> None:  # fmt: skip
    keys_file = config / "signingkeys.json"
    before = keys_file.read_bytes()
    other = tmp_path / "other"
    generate_test_key("partner", other, key_type="ec-p256")
    names = {
        "keys": str(keys_file),
        "key": str(config / "localkeys" / "tester.key"),
        "cert": str(config / "localkeys" / "tester.crt"),
        "other_cert": str(other / "localkeys" / "partner.crt"),
        "missing": str(tmp_path / "missing.key"),
    }
    code, out, err = run(capsys, "key", "add", *(a.format(**names) for a in args))
    assert (code, out, err) == (2, "", f"dct2notation: error: {message.format(**names)}\n")
    assert keys_file.read_bytes() == before


def test_key_delete_keeps_the_key_files(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    keys_file = config / "signingkeys.json"
    for name in ("a", "b"):
        assert run(capsys, "key", "add", name, "--plugin", "p", "--id", name)[0] == 0
    # An unknown name among known ones: one line, exit 2, nothing removed.
    before = keys_file.read_bytes()
    code, out, err = run(capsys, "key", "delete", "a", "nosuch")
    assert (code, out, err) == (2, "", "dct2notation: error: signingkeys.json: no signing key named 'nosuch'\n")
    assert keys_file.read_bytes() == before
    code, out, err = run(capsys, "key", "delete", "tester", "a")
    assert (code, err) == (0, "")
    assert out == (f"removed key tester from {keys_file} (its key files are kept)\n"
                   f"removed key a from {keys_file} (its key files are kept)\n")  # fmt: skip
    # The default was deleted, so there is none; the key and certificate files are still there.
    expected = {"keys": [{"name": "b", "id": "b", "pluginName": "p"}]}
    assert keys_file.read_text() == json.dumps(expected, indent=4) + "\n"
    assert (config / "localkeys" / "tester.key").is_file() and (config / "localkeys" / "tester.crt").is_file()


def test_cert_delete_one_and_all(capsys: pytest.CaptureFixture[str], config: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    store = config / "truststore" / "x509" / "ca" / "tester"
    cert = config / "localkeys" / "tester.crt"
    (store / "second.crt").write_bytes(cert.read_bytes())
    (store / "third.pem").write_bytes(cert.read_bytes())
    code, out, err = run(capsys, "cert", "delete", "--type", "ca", "--store", "tester", "second.crt", "-y")
    assert (code, out, err) == (0, f"deleted {store / 'second.crt'} from trust store ca:tester\n", "")
    assert sorted(p.name for p in store.iterdir()) == ["tester.crt", "third.pem"]
    # Without -y it asks; "n" (or no answer) deletes nothing.
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, out, _ = run(capsys, "cert", "delete", "-t", "ca", "-s", "tester", "--all")
    assert code == 0 and out.endswith("nothing deleted\n")
    assert sorted(p.name for p in store.iterdir()) == ["tester.crt", "third.pem"]
    code, out, err = run(capsys, "cert", "delete", "-t", "ca", "-s", "tester", "--all", "-y")
    assert (code, err) == (0, "")
    assert out == (f"deleted {store / 'tester.crt'} from trust store ca:tester\n"
                   f"deleted {store / 'third.pem'} from trust store ca:tester\n")  # fmt: skip
    assert list(store.iterdir()) == []
    assert cert.is_file()  # the signing certificate in localkeys/ is not the trust store's


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-t", "ca", "-s", "tester", "nosuch.crt", "-y"], "{store}/nosuch.crt: no such trust store entry"),
        (["-t", "ca", "-s", "nostore", "--all", "-y"],
         'the trust store "nostore" of type "ca" does not exist ({root}/x509/ca/nostore)'),
        (["-t", "ca", "-s", "tester", "-y"], "cert delete: give a certificate file name or --all, not both or neither"),
        (["-t", "ca", "-s", "tester", "tester.crt", "--all", "-y"],
         "cert delete: give a certificate file name or --all, not both or neither"),
        (["-s", "tester", "tester.crt", "-y"], "cert delete: --type TYPE and --store NAME are required"),
        (["-t", "x509", "-s", "tester", "tester.crt", "-y"],
         'trust store type "x509" is not one of ca, signingAuthority, tsa'),
    ],
)  # fmt: skip
def test_cert_delete_refusals_are_one_line(capsys: pytest.CaptureFixture[str], config: Path, args: list[str],
                                           message: str) -> None:  # fmt: skip
    root = config / "truststore"
    store = root / "x509" / "ca" / "tester"
    code, out, err = run(capsys, "cert", "delete", *args)
    assert (code, out, err) == (2, "", f"dct2notation: error: {message.format(store=store, root=root)}\n")
    assert [p.name for p in store.iterdir()] == ["tester.crt"]


@pytest.mark.parametrize("name", ["../../../../victim.crt", "../tester/tester.crt", "..", "sub/x.crt"])
def test_attack_cert_delete_path_traversal(capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path,
                                           name: str) -> None:  # fmt: skip
    """A certificate "file name" that climbs out of the store (or into another one) deletes nothing."""
    victim = tmp_path / "victim.crt"
    victim.write_text("not the trust store's")
    code, out, err = run(capsys, "cert", "delete", "-t", "ca", "-s", "tester", name, "-y")
    assert (code, out) == (2, "")
    assert err.startswith("dct2notation: error: ") and err.count("\n") == 1
    assert repr(name) in err and ("not a plain relative path" in err or "is not a file name" in err)
    assert victim.read_text() == "not the trust store's"
    assert (config / "truststore" / "x509" / "ca" / "tester" / "tester.crt").is_file()


def test_attack_cert_delete_through_a_symlink(capsys: pytest.CaptureFixture[str], config: Path,
                                              tmp_path: Path) -> None:  # fmt: skip
    """A symlink in the store (to a file elsewhere), or a store directory that is a symlink: nothing is removed,
    neither the link nor what it points at."""
    victim = tmp_path / "victim.crt"
    victim.write_text("elsewhere")
    store = config / "truststore" / "x509" / "ca" / "tester"
    (store / "link.crt").symlink_to(victim)
    code, _, err = run(capsys, "cert", "delete", "-t", "ca", "-s", "tester", "link.crt", "-y")
    assert (code, err) == (2, f"dct2notation: error: {store / 'link.crt'}: is a symbolic link; refused (only plain "
                              "files and directories are read)\n")  # fmt: skip
    code, _, err = run(capsys, "cert", "delete", "-t", "ca", "-s", "tester", "--all", "-y")
    assert (code, err) == (2, f"dct2notation: error: {store / 'link.crt'}: trust store entries must be regular "
                              "files; nothing deleted\n")  # fmt: skip
    assert sorted(p.name for p in store.iterdir()) == ["link.crt", "tester.crt"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "kept.crt").write_text("kept")
    (config / "truststore" / "x509" / "tsa").mkdir()
    (config / "truststore" / "x509" / "tsa" / "evil").symlink_to(elsewhere, target_is_directory=True)
    evil = config / "truststore" / "x509" / "tsa" / "evil"
    code, _, err = run(capsys, "cert", "delete", "-t", "tsa", "-s", "evil", "kept.crt", "-y")
    assert (code, err) == (2, f"dct2notation: error: {evil}: is a symbolic link; refused (only plain files and "
                              "directories are read)\n")  # fmt: skip
    code, _, err = run(capsys, "cert", "delete", "-t", "tsa", "-s", "evil", "--all", "-y")
    assert (code, err) == (2, f'dct2notation: error: the trust store "evil" of type "tsa" does not exist ({evil})\n')
    assert (elsewhere / "kept.crt").read_text() == "kept" and victim.read_text() == "elsewhere"


@pytest.mark.parametrize("command", ["add", "ls"])
def test_attack_trust_store_name_with_a_trailing_newline(capsys: pytest.CaptureFixture[str], config: Path,
                                                         command: str) -> None:  # fmt: skip
    """``cert add --store $'acme\\n'``: ``$`` matched before the newline and the store folder "acme\\n" was made (and
    ``cert ls`` listed it). The name is matched whole; the refusal shows the newline, nothing is written."""
    args = [str(config / "localkeys" / "tester.crt")] if command == "add" else []
    code, out, err = run(capsys, "cert", command, "--type", "ca", "--store", "acme\n", *args)
    assert (code, out, err) == (
        2, "", 'dct2notation: error: trust store name "acme\\x0a" is not valid ([a-zA-Z0-9_.-]+)\n'
    )  # fmt: skip
    assert sorted(p.name for p in (config / "truststore" / "x509" / "ca").iterdir()) == ["tester"]


@pytest.mark.parametrize(
    "argv",
    [
        ["key", "add", "release\n", "--plugin", "p", "--id", "1"],
        ["cert", "generate-test", "release\n", "--key-type", "ec-p256"],
    ],
)
def test_attack_key_name_with_a_trailing_newline(capsys: pytest.CaptureFixture[str], config: Path,
                                                 argv: list[str]) -> None:  # fmt: skip
    """A key name "release\\n" passed a ``$``-anchored pattern: it became a signingkeys.json name, and for
    generate-test the localkeys/ file names, the trust store folder and the certificate's CN. Refused whole."""
    keys_file = config / "signingkeys.json"
    before = keys_file.read_bytes()
    code, out, err = run(capsys, *argv)
    assert (code, out, err) == (
        2, "", "dct2notation: error: key name 'release\\n' is not valid: use letters, digits, '_', '.' and '-' only\n"
    )  # fmt: skip
    assert keys_file.read_bytes() == before
    assert sorted(p.name for p in (config / "localkeys").iterdir()) == ["tester.crt", "tester.key"]
    assert sorted(p.name for p in (config / "truststore" / "x509" / "ca").iterdir()) == ["tester"]
