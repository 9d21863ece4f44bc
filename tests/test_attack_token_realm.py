"""Credentials go only where they belong: a Bearer challenge cannot send them to a plain-HTTP token realm.

The hostile server is a real HTTPS server on loopback (a throwaway CA the tool is told to trust) that answers every
request with a Bearer challenge naming ``http://127.0.0.1:<trap>/token``. The trap is a plain-HTTP server that
records what reaches it: before the fix it received the user's Basic credentials in clear.
"""

from __future__ import annotations

import base64
import http.server
import io
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dct2notation.cli import main
from tests.support.loopback import QuietHTTPServer
from tests.support.servers import TLSFiles, make_tls

USER, PASSWORD = "alice", "s3cret-pw"
DIGEST = "sha256:" + "ab" * 32


class _Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        return

    def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Trap:
    """A plain-HTTP token service recording every request's path and Authorization header."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        trap = self

        class Handler(_Quiet):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                trap.seen.append((self.path.split("?")[0], self.headers.get("Authorization")))
                self.reply(200, json.dumps({"token": "stolen"}).encode(), {"Content-Type": "application/json"})

            do_POST = do_GET  # noqa: N815 - the identity-token exchange is a POST

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.netloc = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class HostileTLS:
    """HTTPS on loopback: every request is challenged for a token from the trap's plain-HTTP realm."""

    def __init__(self, tls: TLSFiles, realm: str) -> None:
        class Handler(_Quiet):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                challenge = f'Bearer realm="{realm}",service="evil",scope="repository:app:pull"'
                self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": challenge})

            do_HEAD = do_GET  # noqa: N815

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert, tls.key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.netloc = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HostileTLS, Trap, Path]]:
    tls = make_tls(tmp_path_factory.mktemp("tls"))
    trap = Trap()
    hostile = HostileTLS(tls, f"http://{trap.netloc}/token")
    yield hostile, trap, tls.ca_cert
    for server in (hostile.server, trap.server):
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def empty_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "docker").mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_attack_https_registry_names_plain_http_token_realm(
    servers: tuple[HostileTLS, Trap, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile, trap, ca = servers
    trap.seen.clear()
    ref = f"{hostile.netloc}/app@{DIGEST}"
    code, err = run(monkeypatch, capsys, "ls", ref, "--ca-file", str(ca), "--username", USER, "--password-stdin")
    assert code == 2
    assert err == (
        f"dct2notation: error: {hostile.netloc}: token service http://{trap.netloc}/token is plain HTTP: refusing to "
        "send credentials or ask for a token in clear (plain HTTP only to a host named as such: "
        "--insecure-registry HOST[:PORT], or an http:// --server URL)\n"
    )
    assert trap.seen == []


def test_plain_http_token_realm_named_with_insecure_registry_is_used(
    servers: tuple[HostileTLS, Trap, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The user's explicit opt-in for that host: the token service is asked (with the credentials), as docker does.
    hostile, trap, ca = servers
    trap.seen.clear()
    ref = f"{hostile.netloc}/app@{DIGEST}"
    argv = ["ls", ref, "--ca-file", str(ca), "--username", USER, "--password-stdin", "--insecure-registry", trap.netloc]
    code, err = run(monkeypatch, capsys, *argv)
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert trap.seen == [("/token", basic)]
    assert code == 2
    assert err == f"dct2notation: error: {hostile.netloc}: credentials refused (401 after authenticating)\n"


@pytest.mark.parametrize("with_credentials", [True, False], ids=["credentials", "anonymous"])
def test_attack_https_notary_server_names_plain_http_token_realm(
    servers: tuple[HostileTLS, Trap, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    with_credentials: bool,
) -> None:
    hostile, trap, ca = servers
    trap.seen.clear()
    url = f"https://{hostile.netloc}"
    login = ["--username", USER, "--password-stdin"] if with_credentials else []
    code, err = run(monkeypatch, capsys, "inventory", "example.com/app", "--server", url, "--ca", str(ca), *login)
    assert code == 2
    assert err == (
        f"dct2notation: error: {url}: token service http://{trap.netloc}/token is plain HTTP: refusing to send "
        "credentials or ask for a token in clear (plain HTTP only to a host named as such: "
        "--insecure-registry HOST[:PORT], or an http:// --server URL)\n"
    )
    assert trap.seen == []
