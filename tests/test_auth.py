"""docker config.json credential lookup and challenge parsing (dct2notation.auth)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from dct2notation.auth import (
    ChallengeAuth,
    Credentials,
    docker_credentials,
    parse_challenge,
    registry_auth,
    resolve_credentials,
)
from dct2notation.errors import AuthError, InputError


def write_config(directory: Path, config: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_repr_hides_password_and_identity_token() -> None:
    creds = Credentials("bob", "hunter2", "refresh-me")
    assert "hunter2" not in repr(creds) and "refresh-me" not in repr(creds)
    assert repr(creds) == "Credentials(username='bob', password='***')"
    assert "hunter2" not in repr(ChallengeAuth(creds))


def test_auths_base64_by_url_or_host(tmp_path: Path) -> None:
    encoded = base64.b64encode(b"u:p:with:colons").decode()
    config = write_config(tmp_path, {"auths": {"https://reg.example:5000/v1/": {"auth": encoded}}})
    assert docker_credentials("reg.example:5000", config) == Credentials("u", "p:with:colons")
    assert docker_credentials("other.example", config) == Credentials()


def test_auths_username_password_and_identity_token(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        {"auths": {"a.example": {"username": "x", "password": "y"}, "b.example": {"identitytoken": "tok"}}},
    )
    assert docker_credentials("a.example", config) == Credentials("x", "y")
    assert docker_credentials("b.example", config) == Credentials(identity_token="tok")


def test_missing_config_is_anonymous(tmp_path: Path) -> None:
    assert docker_credentials("a.example", tmp_path / "nowhere").empty


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{not json", "not valid JSON"),
        ([], "expected a JSON object"),
        ({"auths": []}, "auths: expected an object"),
        ({"auths": {"a.example": {"auth": "!!"}}}, "auths['a.example'].auth: not base64 of user:password"),
        ({"auths": {"a.example": {"auth": base64.b64encode(b"nocolon").decode()}}}, "has no ':'"),
        ({"auths": {"a.example": {"username": 5}}}, "auths['a.example'].username: expected a string"),
        ({"credHelpers": {"a.example": 3}}, "credHelpers['a.example']: expected a helper name"),
    ],
)
def test_malformed_config_names_the_field(tmp_path: Path, config: object, message: str) -> None:
    tmp_path.mkdir(exist_ok=True)
    text = config if isinstance(config, str) else json.dumps(config)
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(InputError) as info:
        docker_credentials("a.example", tmp_path)
    assert str(info.value).startswith(str(tmp_path / "config.json"))
    assert message in str(info.value)


def test_cred_helper_wins_over_auths_and_token_username(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper(tmp_path, monkeypatch, "tok", 'read s; printf \'{"Username":"<token>","Secret":"idtok-%s"}\' "$s"\n')
    config = write_config(
        tmp_path / "cfg", {"credHelpers": {"a.example": "tok"}, "auths": {"a.example": {"username": "x"}}}
    )
    assert docker_credentials("a.example", config) == Credentials(identity_token="idtok-a.example")


def test_helper_without_the_server_means_anonymous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper(tmp_path, monkeypatch, "none", "echo 'credentials not found in native keychain'; exit 1\n")
    config = write_config(tmp_path / "cfg", {"credsStore": "none"})
    assert docker_credentials("a.example", config).empty


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("echo boom >&2; exit 3\n", "credential helper docker-credential-bad failed for a.example: boom"),
        ("echo '{oops'\n", "credential helper docker-credential-bad returned malformed JSON for a.example"),
    ],
)
def test_failing_helper_is_auth_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, message: str
) -> None:
    helper(tmp_path, monkeypatch, "bad", script)
    config = write_config(tmp_path / "cfg", {"credsStore": "bad"})
    with pytest.raises(AuthError) as info:
        docker_credentials("a.example", config)
    assert str(info.value) == message


def test_missing_helper_binary(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"credsStore": "does-not-exist-dct2n"})
    with pytest.raises(AuthError) as info:
        docker_credentials("a.example", config)
    assert "docker-credential-does-not-exist-dct2n not found on PATH" in str(info.value)


def test_explicit_credentials_override_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"auths": {"a.example": {"username": "x", "password": "y"}}})
    assert resolve_credentials("a.example", username="me", password="pw", config_dir=config) == Credentials("me", "pw")
    with pytest.raises(AuthError):
        resolve_credentials("a.example", username=None, password="pw", config_dir=config)


def test_parse_challenge() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example/token",service="notary",scope="repository:a/b:pull,push"'
    )
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "notary", "scope": "repository:a/b:pull,push"}
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})


def test_registry_auth_asks_push_scope_for_writes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    import httpx

    auth = registry_auth("reg.example", username=None, password=None)
    assert isinstance(auth, ChallengeAuth)
    assert auth.scope_override is not None
    put = httpx.Request("PUT", "http://reg.example/v2/a/b/manifests/x")
    get = httpx.Request("GET", "http://reg.example/v2/a/b/manifests/x")
    assert auth.scope_override(put, "repository:a/b:push") == "repository:a/b:pull,push"
    assert auth.scope_override(get, "repository:a/b:pull") == "repository:a/b:pull"
