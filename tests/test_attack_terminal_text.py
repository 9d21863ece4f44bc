"""Secrets and terminals: a password in a URL is refused without being echoed; remote text reaches no terminal raw.

The servers are real: a loopback HTTP server that counts the requests it gets, a hostile registry whose error
bodies carry escape sequences, the real notary client publishing a tag whose name does, and a signature (made
into an OCI layout) whose user metadata does.
"""

from __future__ import annotations

import base64
import http.server
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dct2notation.cli import main
from dct2notation.dct.canonical import encode_exact
from dct2notation.errors import UsageError
from dct2notation.keys.testcert import generate_test_key
from dct2notation.notation.timestamp import HttpTimestamper
from tests.support.images import layout_with_image
from tests.support.loopback import QuietHTTPServer
from tests.support.notary_builders import Resigner, sha256_hex, sign_raw
from tests.support.servers import NotaryServer

DIGEST = "sha256:" + "ab" * 32
# What a hostile server puts in a name or a message: a window title (OSC 0), clear screen, an 8-bit CSI, a
# right-to-left override and a bell.
HOSTILE = "\x1b]0;owned\x07\x1b[2J\x9b31m\u202eevil"
SHOWN = "\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u202eevil"
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # all but the newline


class Hostile:
    """Counts requests; HEAD of a manifest succeeds, every other request is refused with ``HOSTILE`` as the
    registry's error message (and 404 for the notary metadata path)."""

    def __init__(self) -> None:
        self.requests = 0
        hostile = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
                return

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                hostile.requests += 1
                self.send_response(200)
                self.send_header("Docker-Content-Digest", DIGEST)
                self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                self.send_header("Content-Length", "100")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                hostile.requests += 1
                body = json.dumps({"errors": [{"code": "DENIED", "message": HOSTILE}]}).encode()
                self.send_response(404 if "/_trust/" in self.path else 400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def hostile() -> Iterator[Hostile]:
    server = Hostile()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture(autouse=True)
def empty_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "docker").mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- a password in a URL -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["inventory", "archive"])
def test_attack_password_in_notary_server_url(
    capsys: pytest.CaptureFixture[str], hostile: Hostile, tmp_path: Path, command: str
) -> None:
    before = hostile.requests
    extra = ["-o", str(tmp_path / "out")] if command == "archive" else []
    code, out, err = run(capsys, command, "example.com/app", "--server", f"http://alice:hunter2@{hostile.host}", *extra)
    assert (code, out) == (2, "")
    assert err == (
        f"dct2notation: error: --server http://***@{hostile.host}: credentials in the URL are refused (they show in "
        "process lists and shell history); give -u USER --password-stdin\n"
    )
    assert hostile.requests == before  # refused before anything was sent


def test_attack_password_in_timestamp_url() -> None:
    with pytest.raises(UsageError) as caught:
        HttpTimestamper("https://tsa-user:hunter2@tsa.example/tsr", [])
    assert str(caught.value) == (
        "--timestamp-url https://***@tsa.example/tsr: credentials in the URL are refused (they show in process "
        "lists and shell history, and Notation's TSA client sends none)"
    )


# --- remote text on the terminal -----------------------------------------------------------------------------------


def test_attack_escape_sequences_in_registry_error_body(capsys: pytest.CaptureFixture[str], hostile: Hostile) -> None:
    code, out, err = run(capsys, "ls", f"{hostile.host}/app@{DIGEST}", "--insecure-registry", hostile.host)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith(f"dct2notation: error: {hostile.host}: ")
    assert err.endswith(f"refused (400) DENIED {SHOWN}\n")
    assert not CONTROL.search(err)


def test_attack_escape_sequences_in_signature_metadata(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Whoever can push a signature chooses its user metadata; `inspect` prints it. Markup in it stays text.
    layout, digest = layout_with_image(tmp_path / "layout")
    config = tmp_path / "notation"
    generate_test_key("tester", config, key_type="ec-p256", make_default=True)
    link = "[link=https://evil.example]ok[/link]"
    sign = ["sign", f"app@{digest}", "--oci-layout", str(layout), "--key", "tester", "--config-dir", str(config)]
    code, _, err = run(capsys, *sign, "-m", f"note={HOSTILE}", "-m", f"link={link}")
    assert code == 0, err
    code, out, err = run(capsys, "inspect", "v1", "--oci-layout", str(layout))
    assert code == 0, err
    assert f"metadata note: {SHOWN}" in err
    assert f"metadata link: {link}" in err
    assert not CONTROL.search(err)


def test_attack_escape_sequences_in_notary_tag_name(
    capsys: pytest.CaptureFixture[str], notary_server: NotaryServer, tmp_path: Path
) -> None:
    # The real notary client cannot publish such a name; a compromised targets key can sign one (the Resigner holds
    # notary's keys), and `inventory` prints the tag table.
    gun = "example.com/terminal/app"
    client = notary_server.client(tmp_path / "trust")
    client.init(gun)
    client.addhash(gun, "v1", 3, sha256_hex("v1"))
    client.publish(gun)
    client.list(gun)
    signer = Resigner(client.trust_dir / "tuf" / gun / "metadata", client.trust_dir, tmp_path / "no-delegation-keys")
    targets = signer.docs["targets"]["signed"]["targets"]
    targets[f"v2{HOSTILE}"] = targets["v1"]
    # Signed over notary's canonical form, which writes control characters raw (the file itself escapes them).
    payload = encode_exact(signer.docs["targets"]["signed"])
    signatures = []
    for key in signer.signing_keys("targets"):
        method, raw = sign_raw(key, payload)
        keyid = signer.key_id_for("targets", key)
        signatures.append({"keyid": keyid, "method": method, "sig": base64.b64encode(raw).decode()})
    signer.docs["targets"]["signatures"] = signatures
    signer.raw["targets"] = signer.encode("targets")
    signer.rechain()
    archive = signer.write_archive(tmp_path / "archive", gun)
    code, out, err = run(capsys, "inventory", gun, "--archive", str(archive))
    assert code == 0, err
    assert f"v2{SHOWN}" in out
    assert not CONTROL.search(out) and not CONTROL.search(err)
