"""A GUN's files read at once (#19: root, timestamp, snapshot and targets in one round trip) and a publish racing them.

Reading snapshot and targets before the timestamp that names them is only safe because nothing is trusted before
it is checked against its parent exactly as before. When what was served by name is not what the parent records,
a publish may have raced the reads: the file of that hash is read under notary's consistent name
(``<role>.<sha256 hex>``, what the notary client always asks for) and must match as well; when there is none, the
mismatch is refused as it always was.

The GUN is published twice with the real notary client and both publishes are archived; a hostile notary server of
the test's own (tests/support/hostile_notary.py) then serves mixes of the two, as a server does whose publish lands
between two reads, or as an attacker does who serves a validly signed older file in place of the recorded one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dct2notation.cli import main
from tests.support.hostile_notary import HostileNotary
from tests.support.notary_builders import sha256_hex
from tests.support.servers import NotaryServer

pytestmark = pytest.mark.servers

GUN = "example.com/raced/app"


@dataclass(frozen=True)
class Publishes:
    first: dict[str, bytes]  # v1 only
    second: dict[str, bytes]  # v1 and v2


def _files(archive: Path) -> dict[str, bytes]:
    base = archive / GUN
    return {p.relative_to(base).as_posix().removesuffix(".json"): p.read_bytes() for p in base.rglob("*.json")}


@pytest.fixture(scope="module")
def publishes(notary_server: NotaryServer, tmp_path_factory: pytest.TempPathFactory) -> Publishes:
    work = tmp_path_factory.mktemp("raced")
    client = notary_server.client(work / "trust")
    client.init(GUN)
    client.addhash(GUN, "v1", 10, sha256_hex("v1"))
    client.publish(GUN)
    assert main(["archive", GUN, "--server", notary_server.url, "-o", str(work / "first")]) == 0
    client.addhash(GUN, "v2", 20, sha256_hex("v2"))
    client.publish(GUN)
    assert main(["archive", GUN, "--server", notary_server.url, "-o", str(work / "second")]) == 0
    return Publishes(_files(work / "first"), _files(work / "second"))


def recorded_hex(parent: bytes, role: str) -> str:
    """The sha256 (hex) ``parent`` (a timestamp or snapshot) records for ``role``: its consistent name's suffix."""
    return base64.b64decode(json.loads(parent)["signed"]["meta"][role]["hashes"]["sha256"]).hex()


@pytest.fixture
def serve() -> Iterator[list[HostileNotary]]:
    servers: list[HostileNotary] = []
    yield servers
    for server in servers:
        server.close()


def inventory(
    capsys: pytest.CaptureFixture[str], serve: list[HostileNotary], files: dict[str, bytes]
) -> tuple[int, str, str, HostileNotary]:
    hostile = HostileNotary(GUN, files)
    serve.append(hostile)
    code = main(["inventory", GUN, "--server", hostile.url, "--json"])
    out, err = capsys.readouterr()
    return code, out, err, hostile


def tags(out: str) -> list[tuple[str, str]]:
    return [(t["tag"], t["digest"]) for t in json.loads(out)["repositories"][0]["trusted_tags"]]


V1 = ("v1", "sha256:" + sha256_hex("v1"))
V2 = ("v2", "sha256:" + sha256_hex("v2"))


def raced(timestamped: dict[str, bytes], by_name: dict[str, bytes]) -> dict[str, bytes]:
    """A publish raced the read: root and timestamp are ``timestamped``'s, snapshot and targets by name still
    ``by_name``'s; the consistent names (``<role>.<sha256 hex>``) answer what ``timestamped`` records."""
    snap_hex = recorded_hex(timestamped["timestamp"], "snapshot")
    targets_hex = recorded_hex(timestamped["snapshot"], "targets")
    return {
        "root": timestamped["root"],
        "timestamp": timestamped["timestamp"],
        "snapshot": by_name["snapshot"],
        "targets": by_name["targets"],
        f"snapshot.{snap_hex}": timestamped["snapshot"],
        f"targets.{targets_hex}": timestamped["targets"],
    }


def test_a_publish_between_the_timestamp_and_the_snapshot_read_reads_the_new_publish_by_hash(
    capsys: pytest.CaptureFixture[str], serve: list[HostileNotary], publishes: Publishes
) -> None:
    """The timestamp is the second publish's, snapshot and targets by name still the first's (read a moment
    earlier): the files the timestamp and its snapshot record are read by hash, and the second publish is listed."""
    second = publishes.second
    files = raced(second, publishes.first)
    code, out, err, hostile = inventory(capsys, serve, files)
    assert code == 0, err
    assert tags(out) == [V1, V2]
    assert json.loads(out)["repositories"][0]["role_targets"]["targets"][1]["tag"] == "v2"
    assert sorted(hostile.requested) == sorted([*files])


def test_a_publish_after_the_timestamp_read_reads_the_timestamps_own_snapshot_by_hash(
    capsys: pytest.CaptureFixture[str], serve: list[HostileNotary], publishes: Publishes
) -> None:
    """The other order: the timestamp is the first publish's, snapshot and targets by name already the second's.
    The timestamp's own snapshot (and that snapshot's targets) are read by hash: the first publish, consistent."""
    files = raced(publishes.first, publishes.second)
    code, out, err, _ = inventory(capsys, serve, files)
    assert code == 0, err
    assert tags(out) == [V1]


def test_an_archive_of_a_raced_read_holds_the_files_under_their_role_names(
    serve: list[HostileNotary], publishes: Publishes, tmp_path: Path
) -> None:
    second = publishes.second
    files = raced(second, publishes.first)
    hostile = HostileNotary(GUN, files)
    serve.append(hostile)
    assert main(["archive", GUN, "--server", hostile.url, "-o", str(tmp_path / "archive")]) == 0
    assert _files(tmp_path / "archive") == {name: second[name] for name in ("root", "timestamp", "snapshot", "targets")}


def _mismatch(served: bytes, recorded_by: bytes, role: str, parent: str) -> str:
    """The refusal the verifier has always worded for ``served`` in place of what ``recorded_by`` records."""
    meta = json.loads(recorded_by)["signed"]["meta"][role]
    if meta["length"] != len(served):
        return f"dct2notation: error: {GUN}: {role}: length {len(served)} does not match {parent}'s {meta['length']}\n"
    assert base64.b64encode(hashlib.sha256(served).digest()).decode() != meta["hashes"]["sha256"]
    return f"dct2notation: error: {GUN}: {role}: sha256 hash does not match {parent}\n"


@pytest.mark.parametrize("by_hash", ["absent", "the same wrong file"])
def test_attack_snapshot_not_the_one_the_timestamp_records(
    capsys: pytest.CaptureFixture[str], serve: list[HostileNotary], publishes: Publishes, by_hash: str
) -> None:
    """An older snapshot, validly signed by the snapshot key, in place of the one the timestamp records (a freeze
    of the tags at an old publish): refused, whether the consistent name is missing or answers the same file."""
    first, second = publishes.first, publishes.second
    snap_hex = recorded_hex(second["timestamp"], "snapshot")
    files = {name: second[name] for name in ("root", "timestamp", "targets")}
    files["snapshot"] = first["snapshot"]
    if by_hash != "absent":
        files[f"snapshot.{snap_hex}"] = first["snapshot"]
    code, out, err, hostile = inventory(capsys, serve, files)
    assert (code, out) == (1, "")
    assert err == _mismatch(first["snapshot"], second["timestamp"], "snapshot", "timestamp")
    assert f"snapshot.{snap_hex}" in hostile.requested


@pytest.mark.parametrize("by_hash", ["absent", "the same wrong file"])
def test_attack_targets_not_the_one_the_snapshot_records(
    capsys: pytest.CaptureFixture[str], serve: list[HostileNotary], publishes: Publishes, by_hash: str
) -> None:
    """The first publish's targets (v2 missing) under the second publish's snapshot: refused as before."""
    first, second = publishes.first, publishes.second
    targets_hex = recorded_hex(second["snapshot"], "targets")
    files = {name: second[name] for name in ("root", "timestamp", "snapshot")}
    files["targets"] = first["targets"]
    if by_hash != "absent":
        files[f"targets.{targets_hex}"] = first["targets"]
    code, out, err, hostile = inventory(capsys, serve, files)
    assert (code, out) == (1, "")
    assert err == _mismatch(first["targets"], second["snapshot"], "targets", "snapshot")
    assert f"targets.{targets_hex}" in hostile.requested
