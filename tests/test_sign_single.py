"""`sign REF@sha256:…` (one signature): the default key, and plan-only options refused instead of ignored (#15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dct2notation.cli import main
from dct2notation.keys.testcert import generate_test_key
from dct2notation.oci import EMPTY_JSON, OCI_MANIFEST, sha256_digest
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.options import RegistryOptions
from tests.support.images import image_manifest
from tests.support.servers import Registry

pytestmark = pytest.mark.servers


def push(registry: Registry, repo: str, label: str) -> str:
    with RegistryClient(registry.host, RegistryOptions(insecure_registries=frozenset({registry.host}))) as client:
        client.push_blob(repo, EMPTY_JSON)
        raw = image_manifest(label)
        client.put_manifest(repo, label, raw, OCI_MANIFEST)
    return sha256_digest(raw)


def signatures(registry: Registry, ref: str, capsys: pytest.CaptureFixture[str]) -> list[object]:
    assert main(["ls", ref, "--json", "--insecure-registry", registry.host]) == 0
    listed: list[object] = json.loads(capsys.readouterr().out)["signatures"]
    return listed


def test_sign_uses_the_default_key_of_cert_generate_test(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sign REF@digest` without --key said "--key is required" although `cert generate-test --default` set one."""
    config = tmp_path / "notation"
    generate_test_key("other", config, key_type="ec-p256")
    generate_test_key("the-default", config, key_type="ec-p256", make_default=True)
    ref = f"{registry.host}/single/default@{push(registry, 'single/default', 'default-key')}"
    code = main(["sign", ref, "--config-dir", str(config), "--insecure-registry", registry.host])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["subject"]["digest"] == ref.split("@")[1]
    assert len(signatures(registry, ref, capsys)) == 1


def test_sign_without_key_or_default_names_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "notation"
    generate_test_key("only", config, key_type="ec-p256")
    code = main(["sign", "r.example/a@sha256:" + "0" * 64, "--config-dir", str(config)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "dct2notation: error: signingkeys.json: no key name given and no default key set\n"


@pytest.mark.parametrize(
    "extra",
    [["--dry-run"], ["--journal", "j.db"], ["--shard", "0/2"], ["--concurrency", "4"], ["--rate-limit", "5"]],
)
def test_plan_only_options_are_refused_and_nothing_is_pushed(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    """`sign REF@digest --dry-run` signed and pushed; --journal, --shard, --concurrency were silently ignored."""
    config = tmp_path / "notation"
    generate_test_key("k", config, key_type="ec-p256", make_default=True)
    label = "plan-only-" + extra[0].strip("-")
    ref = f"{registry.host}/single/refused@{push(registry, 'single/refused', label)}"
    code = main(["sign", ref, "--config-dir", str(config), "--insecure-registry", registry.host, *extra])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err == f"dct2notation: error: sign {ref}: {extra[0]} only apply to signing a plan file\n"
    assert signatures(registry, ref, capsys) == []
