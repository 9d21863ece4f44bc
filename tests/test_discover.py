"""Discovery (#19.1): every GUN with trust data, from the real notary-server's changefeed or docker-registry 2.8's
catalog probed on the notary server; ``--guns-from`` feeds archive/inventory/plan/check. A hostile feed or catalog
(non-JSON, names that are no GUN, pages that never end, a Link elsewhere) is played by a loopback server of our own.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from dct2notation.cli import main
from dct2notation.config import Limits
from dct2notation.dct.concurrent import SourcePool
from dct2notation.dct.discover import catalog_reader, changefeed_guns, registry_guns
from dct2notation.dct.source import NotaryServerSource
from dct2notation.errors import RemoteError
from tests.support.interop import push_image
from tests.support.loopback import QuietHTTPServer
from tests.support.notary_builders import TokenEndpoint, sha256_hex
from tests.support.servers import NotaryServer, Registry, have

pytestmark = pytest.mark.servers


class Estate:
    def __init__(self, notary: NotaryServer, registry: Registry, guns: list[str], deleted: str) -> None:
        self.notary, self.registry, self.guns, self.deleted = notary, registry, guns, deleted


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    for binary in ("notary-server", "notary", "docker-registry"):
        if not have(binary):
            pytest.skip(f"{binary} is not installed")
    work = tmp_path_factory.mktemp("discover")
    notary = NotaryServer(work / "notary").start()
    registry = Registry(work / "registry").start()
    try:
        client = notary.client(work / "trust")
        guns = [f"{registry.host}/team/app", f"{registry.host}/team/web"]
        deleted = f"{registry.host}/team/gone"
        for gun in [*guns, deleted]:
            client.init(gun)
            client.addhash(gun, "v1", 10, sha256_hex(gun))
            client.publish(gun)
        client.run("delete", deleted, "--remote")
        for repo in ("team/app", "team/web", "team/gone", "team/unsigned"):
            push_image(registry.host, repo, "v1")
        yield Estate(notary, registry, guns, deleted)
    finally:
        notary.stop()
        registry.stop()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_discover_changefeed_of_live_notary_server(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "guns.txt"
    code, _, err = run(capsys, "discover", "--server", estate.notary.url, "-o", str(out))
    assert code == 0, err
    # The deleted GUN's last change is its deletion: not part of the estate.
    assert out.read_text() == "".join(f"{gun}\n" for gun in sorted(estate.guns))
    assert err == f"discovered 2 GUN(s) from {estate.notary.url} changefeed to {out}\n"


def test_discover_changefeed_pages_through_the_real_server(estate: Estate) -> None:
    # One record a page: 4 changes (3 updates, 1 deletion) take 5 requests and give the same answer.
    source = NotaryServerSource(estate.notary.url)
    try:
        assert changefeed_guns(source, Limits(discover_page_records=1)) == sorted(estate.guns)
        with pytest.raises(RemoteError, match=r"changefeed: still paging after 2 pages \(limit\)"):
            changefeed_guns(source, Limits(discover_page_records=1, discover_max_pages=2))
    finally:
        source.close()


def test_discover_registry_catalog_probed_on_notary(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = estate.registry
    code, out, err = run(
        capsys, "discover", "--registry", registry.url, "--server", estate.notary.url, "--concurrency", "3"
    )
    assert code == 0, err
    # team/unsigned has no trust data, team/gone's was deleted: the probe answers 404 for both.
    assert out == "".join(f"{gun}\n" for gun in sorted(estate.guns))
    assert err == f"discovered 2 GUN(s) from {registry.url} catalog, probed on {estate.notary.url}\n"


def test_discover_registry_catalog_follows_real_link_pages(estate: Estate) -> None:
    registry = estate.registry
    pool = SourcePool(lambda: NotaryServerSource(estate.notary.url), NotaryServerSource.close)
    try:
        with catalog_reader(registry.url, None, None, None) as get:
            found = registry_guns(registry.url, registry.host, get, pool, 2, Limits(discover_page_records=1))
    finally:
        pool.close()
    assert found == sorted(estate.guns)


def test_discover_registry_with_a_wrong_gun_prefix_is_an_error(
    estate: Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "discover", "--registry", estate.registry.url, "--server", estate.notary.url,
        "--gun-prefix", "elsewhere.example",
    )  # fmt: skip
    assert (code, out) == (3, "")
    assert err == (
        f"dct2notation: error: {estate.registry.url}: none of the catalog's 4 repositories has trust data on the"
        " notary server as elsewhere.example/…; check --gun-prefix\n"
    )


def test_guns_from_feeds_archive_and_inventory(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    guns = tmp_path / "guns.txt"
    assert run(capsys, "discover", "--server", estate.notary.url, "-o", str(guns))[0] == 0
    archive = tmp_path / "archive"
    code, _, err = run(capsys, "archive", "--guns-from", str(guns), "--server", estate.notary.url, "-o", str(archive))
    assert code == 0, err
    assert json.loads((archive / "ARCHIVE.json").read_text())["guns"] == sorted(estate.guns)
    code, out, err = run(
        capsys, "inventory", "--guns-from", str(guns), "--server", estate.notary.url, "--json", "--concurrency", "2"
    )
    assert code == 0, err
    assert [repo["gun"] for repo in json.loads(out)["repositories"]] == sorted(estate.guns)


def test_guns_from_selects_the_plan_and_refuses_a_gun_the_inventory_lacks(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "inventory", *estate.guns, "--server", estate.notary.url, "--json")
    assert code == 0, err
    inventory = tmp_path / "inventory.json"
    inventory.write_text(out)
    signers = tmp_path / "signers.toml"
    signers.write_text(f'[[signer]]\ngun = "{estate.registry.host}/*"\nrole = "targets"\nkey = "release"\n')
    (tmp_path / "notation").mkdir()
    one = tmp_path / "one.txt"
    one.write_text(estate.guns[1] + "\n")
    plan = tmp_path / "plan.json"
    base = [
        "plan",
        str(inventory),
        "--signers",
        str(signers),
        "--no-preflight",
        "--config-dir",
        str(tmp_path / "notation"),
    ]
    code, _, err = run(capsys, *base, "--guns-from", str(one), "-o", str(plan))
    assert code == 0, err
    made = json.loads(plan.read_text())
    assert [(job["repository"], job["tags"]) for job in made["jobs"]] == [(estate.guns[1], ["v1"])]
    # The selection is still bound to the inventory file it came from.
    assert made["inventory"]["digest"] == "sha256:" + hashlib.sha256(inventory.read_bytes()).hexdigest()
    other = tmp_path / "other.txt"
    other.write_text(f"{estate.guns[0]}\nexample.com/not/inventoried\n")
    code, _, err = run(capsys, *base, "--guns-from", str(other), "-o", str(tmp_path / "plan2.json"))
    assert code == 2
    assert err == (
        f"dct2notation: error: --guns-from {other}: example.com/not/inventoried not in the inventory;"
        " run inventory for them\n"
    )


def test_guns_from_check_line_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    guns = tmp_path / "guns.txt"
    guns.write_text("example.com/ok\nnot a gun\n")
    args = ["check", "--guns-from", str(guns), "--server", "http://127.0.0.1:9", "--policy", str(tmp_path / "p.json")]
    code, out, err = run(capsys, *args, "--truststore", str(tmp_path))
    assert (code, out) == (2, "")
    assert err == (
        f"dct2notation: error: --guns-from {guns}: line 2: 'not a gun' is not a GUN (host[:port]/repository,"
        " lowercase path)\n"
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            "example.com/a\n../../etc/passwd\n",
            "line 2: '../../etc/passwd' is not a GUN (host[:port]/repository, lowercase path)",
        ),
        (
            "example.com/a\nExample.com/UPPER\n",
            "line 2: 'Example.com/UPPER' is not a GUN (host[:port]/repository, lowercase path)",
        ),
        ("example.com/a\n# comment\n\nexample.com/a\n", "line 4: example.com/a is listed twice"),
        ("# nothing\n\n", "names no GUN"),
        ("example.com/a\n\xff\n", None),
    ],
)
def test_guns_from_each_line_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, reason: str | None
) -> None:
    path = tmp_path / "guns.txt"
    path.write_bytes(content.encode("latin-1"))
    code, out, err = run(capsys, "inventory", "--guns-from", str(path), "--server", "http://127.0.0.1:9", "--json")
    expected = reason if reason is not None else "not UTF-8 text (byte 14)"
    assert (code, out, err) == (2, "", f"dct2notation: error: --guns-from {path}: {expected}\n")


def test_guns_from_errors_missing_file_and_both_forms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.txt"
    code, _, err = run(
        capsys, "archive", "--guns-from", str(missing), "--server", "http://x", "-o", str(tmp_path / "a")
    )
    assert code == 2
    assert err == f"dct2notation: error: --guns-from {missing}: cannot read (No such file or directory)\n"
    (tmp_path / "g.txt").write_text("example.com/a\n")
    code, _, err = run(capsys, "inventory", "example.com/b", "--guns-from", str(tmp_path / "g.txt"), "--server", "x")
    assert (code, err) == (2, "dct2notation: error: --guns-from: give GUNs as arguments or in the file, not both\n")
    code, _, err = run(capsys, "inventory", "example.com/b", "--server", "http://x", "--concurrency", "0")
    assert (code, err) == (2, "dct2notation: error: --concurrency: 0 is not between 1 and 256\n")


def test_discover_needs_a_notary_server(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "discover", "--registry", "http://127.0.0.1:9")
    assert code == 2
    assert err.startswith("dct2notation: error: discover: give --server URL")


# --- token auth: the changefeed asks for registry:catalog:* -------------------------------------------------------


@pytest.fixture(scope="module")
def token_notary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NotaryServer, TokenEndpoint]]:
    for binary in ("notary-server", "notary"):
        if not have(binary):
            pytest.skip(f"{binary} is not installed")
    work = tmp_path_factory.mktemp("discover-token")
    endpoint = TokenEndpoint(work / "token", "alice", "pw")
    server = NotaryServer(work / "server", auth=endpoint.auth_config()).start()
    endpoint.allow_anonymous = True
    client = server.client(work / "trust")
    client.run("init", "example.com/token/app", input="\n" * 10)
    client.run("publish", "example.com/token/app", input="\n" * 10)
    endpoint.allow_anonymous = False
    yield server, endpoint
    server.stop()
    endpoint.close()


def test_discover_changefeed_with_token_auth(
    token_notary: tuple[NotaryServer, TokenEndpoint],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, endpoint = token_notary
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    code, out, err = run(capsys, "discover", "--server", server.url, "-u", "alice", "--password-stdin")
    assert (code, out) == (0, "example.com/token/app\n"), err
    assert ("alice", "registry:catalog:*") in endpoint.requests
    # Without credentials: one line, exit 2, not an empty estate.
    code, out, err = run(capsys, "discover", "--server", server.url)
    assert (code, out) == (2, "")
    assert err == f"dct2notation: error: {server.url}: token service {endpoint.realm} refused the credentials (401)\n"


# --- hostile feeds and catalogs ---------------------------------------------------------------------------------

Answer = tuple[int, bytes, dict[str, str]]


@contextlib.contextmanager
def loopback(answer: Callable[[str, dict[str, list[str]]], Answer]) -> Iterator[str]:
    """A loopback HTTP server answering every GET with ``answer(path, query)``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            return None

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            parts = urlsplit(self.path)
            status, body, headers = answer(parts.path, parse_qs(parts.query))
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

    server = QuietHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def feed(records: list[dict[str, Any]]) -> bytes:
    return json.dumps({"count": len(records), "records": records}).encode()


def change(ident: int, gun: str, category: str = "update") -> dict[str, Any]:
    return {
        "ID": str(ident),
        "CreatedAt": "2026-12-01T00:00:00Z",
        "GUN": gun,
        "Version": 1,
        "SHA256": "",
        "Category": category,
    }


def discover_against(capsys: pytest.CaptureFixture[str], answer: Callable[[str, dict[str, list[str]]], Answer]) -> str:
    with loopback(answer) as url:
        code, out, err = run(capsys, "discover", "--server", url)
    assert (code, out) == (3, ""), err
    assert err.count("\n") == 1
    return err.removeprefix(f"dct2notation: error: {url}: ").rstrip("\n")


def test_attack_changefeed_repeating_page_does_not_page_forever(capsys: pytest.CaptureFixture[str]) -> None:
    page = feed([change(n, f"example.com/loop/r{n}") for n in range(1, 1001)])
    # The same full page every time: IDs stop advancing on the second page.
    assert discover_against(capsys, lambda path, q: (200, page, {})) == (
        "changefeed after change 1000: records[0].ID: change 1 does not follow change 1000 (the feed does not advance)"
    )


def test_attack_changefeed_endless_advancing_pages_stop_at_the_limit() -> None:
    def answer(path: str, query: dict[str, list[str]]) -> Answer:
        after = int(query["change_id"][0])
        return 200, feed([change(after + 1, f"example.com/endless/r{after}")]), {}

    with loopback(answer) as url:
        source = NotaryServerSource(url)
        with pytest.raises(RemoteError, match=r"still paging after 50 pages \(limit\)"):
            changefeed_guns(source, Limits(discover_page_records=1, discover_max_pages=50))
        with pytest.raises(RemoteError, match=r"more than 10 GUNs \(limit\)"):
            changefeed_guns(source, Limits(discover_page_records=1, discover_max_guns=10))
        source.close()


def test_attack_changefeed_not_json(capsys: pytest.CaptureFixture[str]) -> None:
    reason = discover_against(capsys, lambda path, q: (200, b"<html>proxy login</html>", {}))
    assert reason.startswith("changefeed after change 0: not JSON (")


def test_attack_changefeed_gun_path_traversal(capsys: pytest.CaptureFixture[str]) -> None:
    page = feed([change(1, "example.com/ok"), change(2, "example.com/../../etc")])
    assert discover_against(capsys, lambda path, q: (200, page, {})) == (
        "changefeed after change 0: records[1].GUN: 'example.com/../../etc' is not a GUN"
        " (host[:port]/repository, lowercase path)"
    )


def test_attack_changefeed_oversized_page(capsys: pytest.CaptureFixture[str]) -> None:
    page = feed([change(1, "example.com/ok")]) + b" " * (16 * 1024 * 1024)
    assert discover_against(capsys, lambda path, q: (200, page, {})) == (
        f"changefeed after change 0: page larger than {16 * 1024 * 1024} bytes"
    )


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        ([], "changefeed has no record: no GUN with trust data (not an empty estate)"),
        (
            [change(1, "example.com/a"), change(2, "example.com/a", "deletion")],
            "changefeed has only deletions: no GUN with trust data (not an empty estate)",
        ),
    ],
)
def test_empty_changefeed_is_an_error(
    capsys: pytest.CaptureFixture[str], records: list[dict[str, Any]], reason: str
) -> None:
    assert discover_against(capsys, lambda path, q: (200, feed(records), {})) == reason


def test_unreadable_changefeed_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert discover_against(capsys, lambda path, q: (409, b"{}", {})) == "changefeed: unexpected status 409"


def test_attack_catalog_link_to_another_host(capsys: pytest.CaptureFixture[str]) -> None:
    def answer(path: str, query: dict[str, list[str]]) -> Answer:
        link = '<http://evil.example/v2/_catalog?last=a&n=1>; rel="next"'
        return 200, json.dumps({"repositories": ["team/a"]}).encode(), {"Link": link}

    with loopback(answer) as url:
        code, out, err = run(capsys, "discover", "--registry", url, "--server", url)
    assert (code, out) == (3, "")
    assert err == (
        f"dct2notation: error: {url}: catalog /v2/_catalog?n=1000: Link: next page"
        " 'http://evil.example/v2/_catalog?last=a&n=1' is not this registry's catalog\n"
    )


def test_attack_catalog_bad_repository_name(capsys: pytest.CaptureFixture[str]) -> None:
    def answer(path: str, query: dict[str, list[str]]) -> Answer:
        return 200, json.dumps({"repositories": ["team/a", "../x"]}).encode(), {}

    with loopback(answer) as url:
        code, _, err = run(capsys, "discover", "--registry", url, "--server", url)
    assert code == 3
    where = f"{url}: catalog /v2/_catalog?n=1000"
    assert err == f"dct2notation: error: {where}: repositories[1]: '../x' is not a repository name\n"


def test_attack_catalog_endless_pages_stop_at_the_limit() -> None:
    def answer(path: str, query: dict[str, list[str]]) -> Answer:
        last = query.get("last", ["r"])[0] + "x"
        link = f'</v2/_catalog?last={last}&n=1>; rel="next"'
        return 200, json.dumps({"repositories": [last]}).encode(), {"Link": link}

    with loopback(answer) as url, catalog_reader(url, None, None, None) as get:
        pool = SourcePool(lambda: NotaryServerSource(url), NotaryServerSource.close)
        with pytest.raises(RemoteError, match=r"catalog: still paging after 20 pages \(limit\)"):
            registry_guns(url, "example.com", get, pool, 1, Limits(discover_page_records=1, discover_max_pages=20))
        pool.close()
