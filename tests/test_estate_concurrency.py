"""Concurrent reads (#19.2): archive and inventory read GUNs at once, at most --concurrency connections to the
notary server, keep going past a GUN that fails, and list GUNs in the order given. A delay proxy of the test's own
(tests/support/delay_proxy.py) puts a 40 ms round trip before the real notary-server, so reads overlap for real.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dct2notation.cli import main
from tests.support.delay_proxy import DelayProxy, delayed
from tests.support.notary_builders import published_rich_gun, sha256_hex
from tests.support.servers import NotaryServer, have

pytestmark = pytest.mark.servers

GUNS = [f"example.com/estate/app{n}" for n in range(6)]
RICH = "example.com/estate/rich"
MISSING = "example.com/estate/never-published"


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DelayProxy]:
    for binary in ("notary-server", "notary"):
        if not have(binary):
            pytest.skip(f"{binary} is not installed")
    work = tmp_path_factory.mktemp("estate-concurrency")
    server = NotaryServer(work / "notary").start()
    try:
        client = server.client(work / "trust")
        for gun in GUNS:
            client.init(gun)
            client.addhash(gun, "v1", 10, sha256_hex(gun))
            client.publish(gun)
        with delayed("127.0.0.1", server.port, 0.02) as proxy:
            yield proxy
    finally:
        server.stop()


@pytest.fixture(scope="module")
def rich(notary_server: NotaryServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive of a GUN with root rotated once and targets/releases, alice and bob (the real notary client)."""
    work = tmp_path_factory.mktemp("estate-rich")
    published_rich_gun(notary_server, work, RICH)
    assert main(["archive", RICH, "--server", notary_server.url, "-o", str(work / "archive")]) == 0
    return work / "archive"


def settle(proxy: DelayProxy) -> None:
    """Wait for the previous run's connections to finish closing (each close travels the delay), then count anew."""
    for _ in range(200):
        if proxy.open == 0:
            break
        time.sleep(0.01)
    assert proxy.open == 0
    proxy.peak = 0


@pytest.fixture()
def guns_file(tmp_path: Path) -> Path:
    path = tmp_path / "guns.txt"
    # The missing GUN in the middle: the ones after it are still read, and the order of the file is kept.
    path.write_text("\n".join([*GUNS[:3], MISSING, *GUNS[3:]]) + "\n")
    return path


@pytest.mark.parametrize("concurrency", [1, 3])
def test_inventory_reads_at_most_concurrency_guns_at_once_and_keeps_going(
    proxied: DelayProxy, guns_file: Path, capsys: pytest.CaptureFixture[str], concurrency: int
) -> None:
    settle(proxied)
    url = f"http://{proxied.host}"
    args = ["inventory", "--guns-from", str(guns_file), "--server", url, "--json", "--concurrency", str(concurrency)]
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 1
    doc = json.loads(out)
    assert [repo["gun"] for repo in doc["repositories"]] == GUNS
    assert [f["gun"] for f in doc["failed_guns"]] == [MISSING]
    assert proxied.peak == concurrency
    assert err.splitlines() == [
        f"dct2notation: inventory: {MISSING}: {url}: {MISSING}: root.json not found (404)",
        "dct2notation: error: inventory: 1 of 7 GUN(s) could not be read; the other 6 are listed (failed_guns in"
        " --json)",
    ]


def test_archive_concurrently_writes_the_rest(
    proxied: DelayProxy, guns_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settle(proxied)
    url = f"http://{proxied.host}"
    out = tmp_path / "archive"
    code = main(["archive", "--guns-from", str(guns_file), "--server", url, "-o", str(out), "--concurrency", "4"])
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert err[0] == f"archived 6 GUN(s) to {out}"
    assert err[1] == f"dct2notation: archive: {MISSING}: {url}: {MISSING}: root.json not found (404)"
    manifest = json.loads((out / "ARCHIVE.json").read_text())
    assert manifest["guns"] == GUNS
    assert [f["gun"] for f in manifest["failed_guns"]] == [MISSING]
    assert proxied.peak == 4
    # What was archived concurrently reads back as it was served.
    assert main(["inventory", "--guns-from", str(guns_file), "--archive", str(out), "--json"]) == 1
    assert [r["gun"] for r in json.loads(capsys.readouterr().out)["repositories"]] == GUNS


def _served(archive: Path, gun: str) -> dict[str, bytes]:
    base = archive / gun
    return {p.relative_to(base).as_posix().removesuffix(".json"): p.read_bytes() for p in base.rglob("*.json")}


# Long enough that requests sent at once arrive within it on a loaded machine, short enough for a sequential
# client's test to end soon.
HOLD = 0.3


def test_a_gun_costs_one_round_trip(proxied: DelayProxy, tmp_path: Path) -> None:
    """Root, timestamp, snapshot and targets are asked for at once: one round trip per GUN (there were four, one
    after another, and before that five: 1.root.json was asked for every version-1 root and thrown away)."""
    from tests.support.hostile_notary import HostileNotary

    out = tmp_path / "archive"
    assert main(["archive", GUNS[0], "--server", f"http://{proxied.host}", "-o", str(out)]) == 0
    hostile = HostileNotary(GUNS[0], _served(out, GUNS[0]), hold=HOLD)
    try:
        assert main(["inventory", GUNS[0], "--server", hostile.url, "--json"]) == 0
    finally:
        hostile.close()
    assert hostile.waves == [["root", "snapshot", "targets", "timestamp"]]


def test_delegations_are_read_at_once_level_by_level(rich: Path, tmp_path: Path) -> None:
    """A root rotated once and three delegations of targets: the four files, then the root chain one version at a
    time (each is checked by the one before), then every delegation targets names at once."""
    from tests.support.hostile_notary import HostileNotary

    hostile = HostileNotary(RICH, _served(rich, RICH), hold=HOLD)
    try:
        out = tmp_path / "archive"
        assert main(["archive", RICH, "--server", hostile.url, "-o", str(out)]) == 0
    finally:
        hostile.close()
    assert hostile.waves == [
        ["root", "snapshot", "targets", "timestamp"],
        ["1.root"],
        ["2.root"],
        ["targets/alice", "targets/bob", "targets/releases"],
    ]
    assert _served(out, RICH) == _served(rich, RICH)


def test_progress_bar_over_guns_on_a_terminal(proxied: DelayProxy, guns_file: Path, tmp_path: Path) -> None:
    """On a terminal (a pty here) stderr shows a bar over GUNs, counted n/total; captured stderr (above) has none."""
    import os
    import pty
    import subprocess
    import sys

    primary, secondary = pty.openpty()
    args = [sys.executable, "-m", "dct2notation", "archive", "--guns-from", str(guns_file), "--server",
            f"http://{proxied.host}", "-o", str(tmp_path / "archive"), "--concurrency", "2"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "TERM": "xterm", "COLUMNS": "100"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=secondary, env=env)
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    assert proc.wait(60) == 1
    text = seen.decode("utf-8", "replace")
    assert "reading GUNs" in text
    assert "7/7" in text


def test_archive_discovers_and_inventories_in_one_process(
    proxied: DelayProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``archive --discover --inventory FILE``: the changefeed's GUNs, archived, and the inventory of exactly the
    bytes archived, in one process (each GUN read once); the reads still hold at most --concurrency connections."""
    settle(proxied)
    connections_before = proxied.connections
    url = f"http://{proxied.host}"
    out, inventory = tmp_path / "archive", tmp_path / "inventory.json"
    args = ["archive", "--server", url, "--discover", "-o", str(out), "--inventory", str(inventory)]
    assert main([*args, "--concurrency", "4"]) == 0
    assert capsys.readouterr().err == f"archived {len(GUNS)} GUN(s) to {out}\n"
    assert json.loads((out / "ARCHIVE.json").read_text())["guns"] == GUNS
    # One connection for the changefeed, closed before the reads begin (the proxy may still count it open while
    # its close travels the delay), then four for the reads.
    assert proxied.connections - connections_before == 1 + 4
    written = json.loads(inventory.read_text())
    assert main(["inventory", *GUNS, "--archive", str(out), "--json"]) == 0
    read_back = json.loads(capsys.readouterr().out)
    assert written.pop("evaluated_at") <= read_back.pop("evaluated_at")
    assert written == read_back
    assert [len(repo["trusted_tags"]) for repo in written["repositories"]] == [1] * len(GUNS)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["example.com/estate/app0", "--server", "http://127.0.0.1:9"],
            "archive --discover lists the GUNs itself; give no GUNs and no --guns-from",
        ),
        (
            ["--trust-dir", "."],
            "archive --discover: give --server URL (the notary server whose changefeed lists the GUNs)",
        ),
    ],
)
def test_archive_discover_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code = main(["archive", "--discover", "-o", str(tmp_path / "archive"), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"dct2notation: error: {message}\n"
    assert not (tmp_path / "archive").exists()
