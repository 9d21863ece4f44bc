"""Token auth against a real notary-server configured with ``"auth": {"type": "token"}`` (must show 5).

The token endpoint (tests/support/notary_builders.py ``TokenEndpoint``) is a loopback HTTP server issuing real
ES256 JWTs that notary-server verifies against its ``rootcertbundle``. The GUN is published by the notary client
while the endpoint still grants anonymous requests; the tests then turn anonymous access off.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from dct2notation.cli import main
from tests.support.notary_builders import TokenEndpoint, sha256_hex
from tests.support.servers import NotaryServer, have

GUN = "example.com/token/app"
USER, PASSWORD = "alice", "s3cret-pw"


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NotaryServer, TokenEndpoint]]:
    for binary in ("notary-server", "notary"):
        if not have(binary):
            pytest.skip(f"{binary} is not installed")
    work = tmp_path_factory.mktemp("token-auth")
    endpoint = TokenEndpoint(work / "token", USER, PASSWORD)
    server = NotaryServer(work / "server", auth=endpoint.auth_config()).start()
    endpoint.allow_anonymous = True
    client = server.client(work / "trust")
    # The notary CLI asks for a username; an empty answer makes it fetch tokens anonymously.
    client.run("init", GUN, input="\n" * 10)
    client.addhash(GUN, "v1", 321, sha256_hex("v1"))
    client.run("publish", GUN, input="\n" * 10)
    endpoint.allow_anonymous = False
    yield server, endpoint
    server.stop()
    endpoint.close()


@pytest.fixture(autouse=True)
def empty_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    return config


def inventory(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str, *extra: str, stdin: str = ""
) -> tuple[int, str, str]:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["inventory", GUN, "--server", url, "--json", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def tags(out: str) -> list[tuple[str, str]]:
    return [(t["tag"], t["digest"]) for t in json.loads(out)["repositories"][0]["trusted_tags"]]


def test_without_credentials_is_exit_2_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    token_server: tuple[NotaryServer, TokenEndpoint],
) -> None:
    server, endpoint = token_server
    code, out, err = inventory(capsys, monkeypatch, server.url)
    assert code == 2
    assert out == ""
    assert err == (f"dct2notation: error: {server.url}: token service {endpoint.realm} refused the credentials (401)\n")


def test_username_and_password_stdin_get_a_pull_token(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    token_server: tuple[NotaryServer, TokenEndpoint],
) -> None:
    server, endpoint = token_server
    before = len(endpoint.requests)
    code, out, err = inventory(
        capsys, monkeypatch, server.url, "--username", USER, "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert code == 0, err
    assert tags(out) == [("v1", "sha256:" + sha256_hex("v1"))]
    # One token for the GUN's pull scope, reused for every role fetched.
    assert endpoint.requests[before:] == [(USER, f"repository:{GUN}:pull")]


def test_wrong_password_is_refused(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    token_server: tuple[NotaryServer, TokenEndpoint],
) -> None:
    server, endpoint = token_server
    code, _, err = inventory(capsys, monkeypatch, server.url, "--username", USER, "--password-stdin", stdin="nope\n")
    assert code == 2
    assert err == f"dct2notation: error: {server.url}: token service {endpoint.realm} refused the credentials (401)\n"


def test_token_without_access_is_401_after_auth(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    token_server: tuple[NotaryServer, TokenEndpoint],
) -> None:
    server, endpoint = token_server
    endpoint.grant_nothing = True
    try:
        code, _, err = inventory(
            capsys, monkeypatch, server.url, "--username", USER, "--password-stdin", stdin=PASSWORD + "\n"
        )
    finally:
        endpoint.grant_nothing = False
    assert code == 2
    assert err == f"dct2notation: error: {server.url}: credentials refused (401 after authenticating)\n"


def test_credentials_from_docker_config_auths(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    token_server: tuple[NotaryServer, TokenEndpoint],
    empty_docker_config: Path,
) -> None:
    server, endpoint = token_server
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (empty_docker_config / "config.json").write_text(json.dumps({"auths": {server.url: {"auth": encoded}}}))
    endpoint.token_field = "access_token"  # Azure-style answers work too
    try:
        code, out, err = inventory(capsys, monkeypatch, server.url)
    finally:
        endpoint.token_field = "token"
    assert code == 0, err
    assert tags(out) == [("v1", "sha256:" + sha256_hex("v1"))]


def test_credentials_from_a_credential_helper(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    token_server: tuple[NotaryServer, TokenEndpoint],
    empty_docker_config: Path,
    tmp_path: Path,
) -> None:
    server, _ = token_server
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    asked = tmp_path / "asked.txt"
    helper = bin_dir / "docker-credential-dct2ntest"
    helper.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 1\n'
        "read server\n"
        f'echo "$server" > {asked}\n'
        f'printf \'{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASSWORD}"}}\' "$server"\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (empty_docker_config / "config.json").write_text(json.dumps({"credsStore": "dct2ntest"}))
    code, out, err = inventory(capsys, monkeypatch, server.url)
    assert code == 0, err
    assert asked.read_text().strip() == server.host
    assert tags(out) == [("v1", "sha256:" + sha256_hex("v1"))]


MORE = ["example.com/token/app2", "example.com/token/app3"]


@pytest.fixture(scope="module")
def more_guns(token_server: tuple[NotaryServer, TokenEndpoint], tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    server, endpoint = token_server
    endpoint.allow_anonymous = True
    try:
        client = server.client(tmp_path_factory.mktemp("token-more") / "trust")
        for gun in MORE:
            client.run("init", gun, input="\n" * 10)
            client.addhash(gun, "v1", 321, sha256_hex(gun))
            client.run("publish", gun, input="\n" * 10)
    finally:
        endpoint.allow_anonymous = False
    return [GUN, *MORE]


def test_after_a_401_each_gun_is_read_on_one_connection_with_one_token(
    token_server: tuple[NotaryServer, TokenEndpoint], more_guns: list[str]
) -> None:
    """Anonymous tokens (Docker Hub's notary asks for one on every read): the first GUN's four files, asked for at
    once on several connections, each fetch a token; from then on a GUN's files go on one connection, so each GUN
    costs one token. Spread over connections, each would fetch its own token for every GUN it touches."""
    from dct2notation.config import DEFAULT_LIMITS, SystemClock
    from dct2notation.dct.concurrent import SourcePool, verify_all
    from dct2notation.dct.source import NotaryServerSource

    server, endpoint = token_server
    endpoint.allow_anonymous = True
    pool: SourcePool[NotaryServerSource] = SourcePool(
        lambda: NotaryServerSource(server.url, on_auth=pool.one_by_one), NotaryServerSource.close
    )
    try:
        before = len(endpoint.requests)
        first = verify_all([GUN], pool, SystemClock(), DEFAULT_LIMITS, concurrency=4)
        assert [type(outcome).__name__ for _, outcome in first] == ["VerifiedRepository"]
        # One per connection the burst went out on (four, unless a thread was free again before the last went).
        assert set(endpoint.requests[before:]) == {(None, f"repository:{GUN}:pull")}
        assert not pool.spread
        before = len(endpoint.requests)
        rest = verify_all(more_guns, pool, SystemClock(), DEFAULT_LIMITS, concurrency=4)
        assert [type(outcome).__name__ for _, outcome in rest] == ["VerifiedRepository"] * 3
        assert sorted(endpoint.requests[before:]) == sorted((None, f"repository:{gun}:pull") for gun in more_guns)
    finally:
        endpoint.allow_anonymous = False
        pool.close()
