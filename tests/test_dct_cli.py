"""archive/inventory command behaviour: usage errors, sources, archive integrity, retries and size caps."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dct2notation.cli import main
from dct2notation.dct.source import NotaryServerSource
from tests.support.loopback import QuietHTTPServer
from tests.support.servers import NotaryServer

ALICE = "docker.io/phbelitz/alice-image"
ALICE_AT = "2019-10-20T00:00:00Z"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def alice_trust(shared_fixtures: Path, tmp_path: Path) -> Path:
    link = tmp_path / "trust" / "tuf" / ALICE / "metadata"
    link.parent.mkdir(parents=True)
    link.symlink_to(shared_fixtures / "dct" / "connaisseur-alice-image" / "metadata-compact")
    return tmp_path / "trust"


class FaultyNotary:
    """A loopback stand-in for what no real notary-server does on demand: 503s and endless bodies.

    Serves ``<gun>/_trust/tuf/<name>.json`` from a trust-dir metadata directory after ``fail_first`` 503s.
    """

    def __init__(self, metadata: Path, fail_first: int = 0, endless: str | None = None) -> None:
        self.hits = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

            def do_GET(self) -> None:  # noqa: N802
                owner.hits += 1
                if owner.hits <= fail_first:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                name = self.path.split("/_trust/tuf/", 1)[1].removesuffix(".json")
                if name == endless:
                    self.send_response(200)
                    self.end_headers()
                    chunk = b" " * 65536
                    try:
                        for _ in range(64):  # 4 MiB, far past the 1 MiB timestamp cap
                            self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                path = metadata / f"{name}.json"
                if not path.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def alice_meta(shared_fixtures: Path) -> Path:
    return shared_fixtures / "dct" / "connaisseur-alice-image" / "metadata-compact"


@pytest.fixture
def faulty(request: pytest.FixtureRequest, alice_meta: Path) -> Iterator[FaultyNotary]:
    server = FaultyNotary(alice_meta, **getattr(request, "param", {}))
    yield server
    server.close()


def test_missing_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "inventory", ALICE) == (
        2,
        "",
        "dct2notation: error: no source given: give exactly one of --server URL, --trust-dir DIR, --archive DIR\n",
    )


def test_conflicting_sources(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "inventory", ALICE, "--server", "http://127.0.0.1:9", "--trust-dir", str(tmp_path))
    assert code == 2
    assert err.startswith("dct2notation: error: conflicting sources --server and --trust-dir")


def test_bad_at(capsys: pytest.CaptureFixture[str], alice_trust: Path) -> None:
    code, _, err = run(capsys, "inventory", ALICE, "--trust-dir", str(alice_trust), "--at", "yesterday")
    assert (code, err) == (2, "dct2notation: error: --at: not an RFC 3339 time: 'yesterday'\n")


def test_unknown_gun_on_server_is_404(capsys: pytest.CaptureFixture[str], notary_server: NotaryServer) -> None:
    code, _, err = run(capsys, "inventory", "example.com/nobody/here", "--server", notary_server.url)
    assert code == 2
    assert err == f"dct2notation: error: {notary_server.url}: example.com/nobody/here: root.json not found (404)\n"


def test_unknown_gun_in_trust_dir(capsys: pytest.CaptureFixture[str], alice_trust: Path) -> None:
    code, _, err = run(capsys, "inventory", "docker.io/x/y", "--trust-dir", str(alice_trust), "--at", ALICE_AT)
    assert code == 2
    assert err.startswith("dct2notation: error: docker.io/x/y: not in trust dir")


def test_bad_ca_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a cert")
    code, _, err = run(capsys, "inventory", ALICE, "--server", "https://127.0.0.1:9", "--ca", str(bogus))
    assert code == 2
    assert err.startswith(f"dct2notation: error: --ca {bogus}: cannot load CA certificates")


def test_human_table(capsys: pytest.CaptureFixture[str], alice_trust: Path) -> None:
    code, out, _ = run(capsys, "inventory", ALICE, "--trust-dir", str(alice_trust), "--at", ALICE_AT)
    assert code == 0
    assert "Signatures for docker.io/phbelitz/alice-image" in out
    assert "ac904c9b191d14faf54b7952f2650a4bb21c201bf34131388b851e8ce992a652" in out
    assert "phbelitz, chamsen" in out


def test_archive_round_trip_and_manifest(capsys: pytest.CaptureFixture[str], alice_trust: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "arch"
    code, _, err = run(capsys, "archive", ALICE, "--trust-dir", str(alice_trust), "--at", ALICE_AT, "-o", str(out_dir))
    assert code == 0, err
    manifest = json.loads((out_dir / "ARCHIVE.json").read_text())
    assert manifest["format"] == "dct2notation-archive/1"
    assert manifest["guns"] == [ALICE]
    source = alice_trust / "tuf" / ALICE / "metadata"
    for entry in manifest["files"]:
        name = entry["path"].removeprefix(ALICE + "/")
        assert (out_dir / entry["path"]).read_bytes() == (source / name).read_bytes()
    assert sorted(e["path"] for e in manifest["files"]) == sorted(
        f"{ALICE}/{p.relative_to(source).as_posix()}" for p in source.rglob("*.json")
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".arch")] == []  # no staging left behind


def test_archive_refuses_before_writing(capsys: pytest.CaptureFixture[str], alice_trust: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "arch"
    code, _, err = run(capsys, "archive", ALICE, "--trust-dir", str(alice_trust), "-o", str(out_dir))
    assert code == 1
    assert err.startswith(f"dct2notation: error: {ALICE}: timestamp: expired at")
    assert not out_dir.exists()


def test_archive_into_non_empty_dir(capsys: pytest.CaptureFixture[str], alice_trust: Path, tmp_path: Path) -> None:
    (tmp_path / "arch").mkdir()
    (tmp_path / "arch" / "keep.txt").write_text("x")
    code, _, err = run(capsys, "archive", ALICE, "--trust-dir", str(alice_trust), "-o", str(tmp_path / "arch"))
    assert code == 2
    assert "exists and is not empty" in err


def test_incomplete_or_tampered_archive(capsys: pytest.CaptureFixture[str], alice_trust: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "arch"
    assert run(capsys, "archive", ALICE, "--trust-dir", str(alice_trust), "--at", ALICE_AT, "-o", str(out_dir))[0] == 0
    target = out_dir / ALICE / "targets" / "phbelitz.json"
    target.write_bytes(target.read_bytes() + b" ")
    code, _, err = run(capsys, "inventory", ALICE, "--archive", str(out_dir), "--at", ALICE_AT)
    assert (code, err) == (2, f"dct2notation: error: {target}: does not match the length/sha256 in ARCHIVE.json\n")
    (out_dir / "ARCHIVE.json").unlink()
    code, _, err = run(capsys, "inventory", ALICE, "--archive", str(out_dir), "--at", ALICE_AT)
    assert code == 2
    assert "no ARCHIVE.json (not an archive, or an incomplete one)" in err


@pytest.mark.parametrize("faulty", [{"fail_first": 2}], indirect=True)
def test_server_5xx_is_retried(capsys: pytest.CaptureFixture[str], faulty: FaultyNotary) -> None:
    code, out, err = run(capsys, "inventory", ALICE, "--server", faulty.url, "--at", ALICE_AT, "--json")
    assert code == 0, err
    assert json.loads(out)["repositories"][0]["trusted_tags"][0]["tag"] == "test"


@pytest.mark.parametrize("faulty", [{"fail_first": 1000}], indirect=True)
def test_server_that_keeps_failing_is_exit_3(capsys: pytest.CaptureFixture[str], faulty: FaultyNotary) -> None:
    code, _, err = run(capsys, "inventory", ALICE, "--server", faulty.url, "--at", ALICE_AT)
    assert code == 3
    assert err == (f"dct2notation: error: {faulty.url}: {ALICE}: root: server answered 503 (after 5 attempts)\n")
    # Root, timestamp, snapshot and targets are asked for at once; each is tried 5 times, no more.
    assert faulty.hits == 4 * 5


@pytest.mark.parametrize("faulty", [{"endless": "timestamp"}], indirect=True)
def test_endless_timestamp_is_cut_off(capsys: pytest.CaptureFixture[str], faulty: FaultyNotary) -> None:
    code, _, err = run(capsys, "inventory", ALICE, "--server", faulty.url, "--at", ALICE_AT)
    assert code == 1
    assert err == f"dct2notation: error: {ALICE}: timestamp: file is larger than the 1048576-byte limit\n"


@pytest.mark.parametrize("faulty", [{"endless": "timestamp"}], indirect=True)
def test_connection_after_a_cut_off_body_serves_the_next_read(faulty: FaultyNotary, alice_meta: Path) -> None:
    source = NotaryServerSource(faulty.url)
    try:
        assert len(source.fetch(ALICE, "timestamp", max_bytes=1000)) == 1001
        assert source.fetch(ALICE, "root") == (alice_meta / "root.json").read_bytes()
        assert source.fetch(ALICE, "snapshot") == (alice_meta / "snapshot.json").read_bytes()
    finally:
        source.close()
    assert faulty.hits == 3


def test_proxy_from_the_environment_is_used(
    faulty: FaultyNotary, alice_meta: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As httpx honours HTTP_PROXY, so does every read: nothing listens on the server address, only the proxy."""
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", faulty.url)
    source = NotaryServerSource("http://127.0.0.1:9")
    try:
        assert source.fetch(ALICE, "root") == (alice_meta / "root.json").read_bytes()
    finally:
        source.close()
    assert faulty.hits == 1


def test_whole_process_output_and_exit_codes(capsys: pytest.CaptureFixture[str], alice_trust: Path) -> None:
    """The console path ends without interpreter teardown: its output must still be complete, its codes exact."""
    command = [sys.executable, "-m", "dct2notation", "inventory", ALICE, "--trust-dir", str(alice_trust), "--json"]
    done = subprocess.run([*command, "--at", ALICE_AT], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert run(capsys, *command[3:], "--at", ALICE_AT) == (0, done.stdout, "")  # same text as in-process
    assert json.loads(done.stdout)["repositories"][0]["trusted_tags"][0]["tag"] == "test"
    expired = subprocess.run(command, capture_output=True, text=True, check=False)
    assert expired.returncode == 1
    assert expired.stdout == ""
    assert expired.stderr.startswith(f"dct2notation: error: {ALICE}: ") and expired.stderr.count("\n") == 1
