"""htpasswd-protected docker-registry: Basic credentials, refusal, and docker credential helpers."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dct2notation.cli import main
from dct2notation.keys.testcert import generate_test_key
from dct2notation.oci import EMPTY_JSON, OCI_MANIFEST, sha256_digest
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.options import Basic, RegistryOptions
from tests.support.images import image_manifest
from tests.support.servers import Registry, have, write_htpasswd

USER, PASSWORD = "alice", "s3cret-pw"

pytestmark = pytest.mark.servers
_auth = pytest.importorskip("dct2notation.auth", reason="the shared auth module (docs/CONTRACTS.md) has not landed")
if not hasattr(_auth, "registry_auth"):
    pytest.skip("dct2notation.auth has no registry_auth entry point yet", allow_module_level=True)


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if not (have("docker-registry") and have("htpasswd")):
        pytest.skip("docker-registry and htpasswd (apache2-utils) are needed")
    work = tmp_path_factory.mktemp("auth-registry")
    server = Registry(work, htpasswd=write_htpasswd(work / "htpasswd", USER, PASSWORD)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def notation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tmp_path_factory.mktemp("notation")
    generate_test_key("tester", config, key_type="ec-p256", make_default=True)
    return config


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty docker config dir, so the developer's own ~/.docker never leaks into a test."""
    config = tmp_path / "docker"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    return config


def push_image(registry: Registry, repo: str) -> str:
    options = RegistryOptions(insecure_registries=frozenset({registry.host}), credentials=Basic(USER, PASSWORD))
    with RegistryClient(registry.host, options) as client:
        client.push_blob(repo, EMPTY_JSON)
        raw = image_manifest()
        client.put_manifest(repo, "v1", raw, OCI_MANIFEST)
    return sha256_digest(raw)


def sign(
    capsys: pytest.CaptureFixture[str], registry: Registry, notation_dir: Path, ref: str, *extra: str
) -> tuple[int, str, str]:
    code = main(
        [
            "sign",
            ref,
            "--key",
            "tester",
            "--config-dir",
            str(notation_dir),
            "--insecure-registry",
            registry.host,
            *extra,
        ]
    )
    out, err = capsys.readouterr()
    return code, out, err


def test_basic_with_password_stdin(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    auth_registry: Registry,
    notation_dir: Path,
    docker_config: Path,
) -> None:
    digest = push_image(auth_registry, "auth/basic")
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    code, out, err = sign(
        capsys, auth_registry, notation_dir, f"{auth_registry.host}/auth/basic@{digest}", "-u", USER, "--password-stdin"
    )
    assert code == 0, err
    assert json.loads(out)["subject"]["digest"] == digest
    assert PASSWORD not in out + err


def test_wrong_password_is_one_clear_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    auth_registry: Registry,
    notation_dir: Path,
    docker_config: Path,
) -> None:
    digest = push_image(auth_registry, "auth/wrong")
    monkeypatch.setattr(sys, "stdin", io.StringIO("not-the-password\n"))
    code, out, err = sign(
        capsys, auth_registry, notation_dir, f"{auth_registry.host}/auth/wrong@{digest}", "-u", USER, "--password-stdin"
    )
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"dct2notation: error: {auth_registry.host}: ")
    assert "401" in err
    assert "not-the-password" not in err


def test_anonymous_is_refused(
    capsys: pytest.CaptureFixture[str], auth_registry: Registry, notation_dir: Path, docker_config: Path
) -> None:
    digest = push_image(auth_registry, "auth/anon")
    code, _, err = sign(capsys, auth_registry, notation_dir, f"{auth_registry.host}/auth/anon@{digest}")
    assert code == 2
    assert "401" in err and err.count("\n") == 1


def test_credential_helper_from_config_json(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    auth_registry: Registry,
    notation_dir: Path,
    docker_config: Path,
    tmp_path: Path,
) -> None:
    digest = push_image(auth_registry, "auth/helper")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "helper-calls.txt"
    helper = bin_dir / "docker-credential-dct2ntest"
    # A docker credential helper: `get` reads the server URL on stdin and answers Username/Secret JSON.
    helper.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = get ] || exit 1\n'
        f"read server\n"
        f'echo "$server" >> {calls}\n'
        f'printf \'{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASSWORD}"}}\' "$server"\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (docker_config / "config.json").write_text(json.dumps({"credHelpers": {auth_registry.host: "dct2ntest"}}))
    code, out, err = sign(capsys, auth_registry, notation_dir, f"{auth_registry.host}/auth/helper@{digest}")
    assert code == 0, err
    assert calls.read_text().split() != []
    assert all(auth_registry.host in line for line in calls.read_text().split())
    code = main(["ls", f"{auth_registry.host}/auth/helper:v1", "--json", "--insecure-registry", auth_registry.host])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert len(json.loads(out)["signatures"]) == 1
