"""Never all or nothing (#15): one missing GUN no longer aborts `archive` and `inventory` with nothing written."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from dct2notation.cli import main
from tests.support.notary_builders import sha256_hex
from tests.support.servers import NotaryServer

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def guns(notary_server: NotaryServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    unique = uuid.uuid4().hex[:8]
    good, missing = f"example.com/keep/{unique}/app", f"example.com/keep/{unique}/wbe"
    client = notary_server.client(tmp_path_factory.mktemp("keep-going") / "trust")
    client.init(good)
    client.addhash(good, "v1", 123, sha256_hex("v1"))
    client.publish(good)
    return good, missing


def test_archive_keeps_the_gun_that_verified_and_names_the_one_that_did_not(
    notary_server: NotaryServer, guns: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, missing = guns
    out = tmp_path / "archive"
    code = main(["archive", good, missing, "--server", notary_server.url, "-o", str(out)])
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert err[0] == f"archived 1 GUN(s) to {out}"
    assert err[1].startswith(f"dct2notation: archive: {missing}: ")
    assert err[2] == f"dct2notation: error: archive: 1 of 2 GUN(s) could not be read; {out} holds the other 1"
    manifest = json.loads((out / "ARCHIVE.json").read_text())
    assert manifest["guns"] == [good]
    assert [f["gun"] for f in manifest["failed_guns"]] == [missing]
    # The archive is complete for what it holds: inventory reads it back.
    assert main(["inventory", good, "--archive", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["repositories"][0]["trusted_tags"][0]["tag"] == "v1"


def test_archive_with_no_gun_read_writes_nothing(
    notary_server: NotaryServer, guns: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "archive"
    assert main(["archive", guns[1], guns[1] + "2", "--server", notary_server.url, "-o", str(out)]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "dct2notation: error: archive: 2 of 2 GUN(s) could not be read; nothing written"
    )
    assert not out.exists()
    # One GUN alone keeps its own error and exit code (2: not found).
    assert main(["archive", guns[1], "--server", notary_server.url, "-o", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"dct2notation: error: {notary_server.url}: {guns[1]}: ")


def test_inventory_lists_the_others_and_records_the_failure(
    notary_server: NotaryServer, guns: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, missing = guns
    code = main(["inventory", missing, good, "--server", notary_server.url, "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    doc = json.loads(out)
    assert [r["gun"] for r in doc["repositories"]] == [good]
    assert [f["gun"] for f in doc["failed_guns"]] == [missing]
    assert err.splitlines()[-1] == (
        "dct2notation: error: inventory: 1 of 2 GUN(s) could not be read;"
        " the other 1 are listed (failed_guns in --json)"
    )
    # check --inventory keeps the failed GUN in the gate instead of dropping it.
    inventory = tmp_path / "inventory.json"
    inventory.write_text(out)
    policy = tmp_path / "trustpolicy.json"
    statement = {"name": "all", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
                 "trustStores": ["ca:x"], "trustedIdentities": ["*"]}  # fmt: skip
    policy.write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
    (tmp_path / "truststore" / "x509" / "ca" / "x").mkdir(parents=True)
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    code = main(["check", "--inventory", str(inventory), "--policy", str(policy), "--truststore",
                 str(tmp_path / "truststore"), "--oci-layout", str(layout), "--json", "--no-table"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1
    assert f"dct2notation: check: {missing}: nothing checked: not in --inventory {inventory}: " in err


def test_an_expired_gun_is_reported_like_a_missing_one(
    notary_server: NotaryServer, guns: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Expired metadata (notary-server's timestamp lasts 14 days; evaluated 60 days on) is one GUN's failure too."""
    import datetime as dt

    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    good, missing = guns
    code = main(["inventory", good, missing, "--server", notary_server.url, "--at", later, "--json"])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert lines[0].startswith(f"dct2notation: inventory: {good}: timestamp: expired at ")
    assert lines[1].startswith(f"dct2notation: inventory: {missing}: ")
    assert lines[2] == "dct2notation: error: inventory: 2 of 2 GUN(s) could not be read; nothing printed"
