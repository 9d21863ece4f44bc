"""``check`` refusals (exit 2), remote failure (exit 3), expired DCT data, the inventory source, and the pure table."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from dct2notation.cli import main
from dct2notation.migrate.coexist import NOT_CHECKED, NotationResult, decide
from tests.support.fault_proxy import FaultProxy
from tests.support.servers import Registry
from tests.test_coexist_scenario import Scenario, notation_dir, scenario  # noqa: F401 - pytest fixtures

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
VALID = NotationResult("valid", None, "verified", "sha256:" + "c" * 64)


@pytest.mark.parametrize(
    ("dct", "dct_digest", "registry_digest", "notation", "expected"),
    [
        ("invalid", None, A, VALID, "dct-invalid"),
        ("invalid", None, None, NOT_CHECKED, "dct-invalid"),
        ("valid", A, None, NOT_CHECKED, "manifest-missing"),
        ("missing", None, A, VALID, "dct-missing"),
        ("valid", A, B, VALID, "drift"),
        ("valid", A, A, NotationResult("missing"), "notation-missing"),
        ("valid", A, A, NotationResult("invalid", "expiry", "expired"), "notation-invalid"),
        ("valid", A, A, VALID, "ok"),
    ],
)
def test_decision_table(
    dct: str, dct_digest: str | None, registry_digest: str | None, notation: NotationResult, expected: str
) -> None:
    status, _ = decide(
        dct=dct,  # type: ignore[arg-type]
        dct_digest=dct_digest,
        registry_digest=registry_digest,
        notation=notation,
        dct_reason="targets: bad signature",
    )
    assert status == expected


def test_notation_invalid_reason_names_the_failed_check() -> None:
    status, reason = decide(
        dct="valid", dct_digest=A, registry_digest=A, notation=NotationResult("invalid", "expiry", "expired at X")
    )
    assert (status, reason) == ("notation-invalid", "expiry: expired at X")


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, never a traceback
    return err[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--require", "all"], "--require 'all': expected one of both, notation, either"),
        (["--watch", "5"], "--watch INTERVAL needs --max-runs N"),
        (["--concurrency", "0"], "--concurrency 0: expected at least 1"),
        (["--at", "yesterday"], "--at: not an RFC 3339 time: 'yesterday'"),
    ],
)
def test_bad_options_exit_2(
    scenario: Scenario,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    assert main(scenario.args(*extra)) == 2
    assert message in error_line(capsys)


def test_source_and_policy_are_required(
    scenario: Scenario,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert main(["check", "g", "--policy", str(scenario.policy), "--truststore", str(scenario.truststore)]) == 2
    assert "give exactly one of" in error_line(capsys)
    # Without --policy, check reads Notation's config dir as notation verify does; here it holds no policy.
    monkeypatch.setenv("NOTATION_CONFIG", str(tmp_path / "notation"))
    assert main(["check", "g", "--archive", str(scenario.archive)]) == 2
    missing = f"{tmp_path / 'notation'}: no trustpolicy.oci.json or trustpolicy.json (or give --policy FILE)"
    assert missing in error_line(capsys)
    args = ["check", "--archive", str(scenario.archive), "--policy", str(scenario.policy)]
    assert main([*args, "--truststore", str(tmp_path / "none")]) == 2
    assert f"--truststore {tmp_path / 'none'}: not a directory" in error_line(capsys)
    assert main([*args, "--truststore", str(scenario.truststore)]) == 2
    assert "--archive needs at least one GUN" in error_line(capsys)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other"}', "format: expected 'dct2notation-check/1'"),
        ('{"format": "dct2notation-check/1", "tags": [1]}', "tags: expected a list of objects"),
    ],
)
def test_bad_since_file_exit_2(
    scenario: Scenario,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    content: str,
    message: str,
) -> None:
    previous = tmp_path / "previous.json"
    previous.write_text(content)
    assert main(scenario.args("--since", str(previous))) == 2
    line = error_line(capsys)
    assert str(previous) in line and message in line
    assert main(scenario.args("--since", str(tmp_path / "absent.json"))) == 2
    assert "cannot read previous check" in error_line(capsys)


def test_inventory_source_gives_the_same_rows(
    scenario: Scenario,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    main_gun = scenario.guns[0]
    assert main(["inventory", main_gun, "--archive", str(scenario.archive), "--json"]) == 0
    inventory = tmp_path / "inventory.json"
    inventory.write_text(capsys.readouterr().out)
    assert main(scenario.args("--json", guns=[main_gun])) == 1
    from_archive = json.loads(capsys.readouterr().out)["tags"]
    args = scenario.args("--json", guns=[main_gun])
    at = args.index("--archive")
    args[at : at + 2] = ["--inventory", str(inventory)]
    args.remove(main_gun)
    assert main(args) == 1
    assert json.loads(capsys.readouterr().out)["tags"] == from_archive
    assert main([*args, main_gun]) == 2
    assert "--inventory already names its GUNs" in error_line(capsys)


def test_expired_dct_metadata_is_dct_invalid(
    scenario: Scenario,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    # notary signs timestamp metadata for 14 days; 30 days on, the GUN's DCT data has expired.
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert main(scenario.args("--json", "--at", at, guns=[scenario.guns[0]])) == 1
    rows = json.loads(capsys.readouterr().out)["tags"]
    assert {r["status"] for r in rows} == {"dct-invalid"}
    assert {r["reason"].split(": ")[2] for r in rows} == {"timestamp"}
    assert all("expired" in r["reason"] for r in rows)


def test_registry_failing_after_retries_exits_3(
    scenario: Scenario,  # noqa: F811
    registry: Registry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy = FaultProxy(registry.url, every=1, kinds=("503",), retry_after=0).start()
    try:
        args = scenario.args(guns=[scenario.guns[0]])
        mapped = f"dct.example/co{scenario.n}={proxy.host}/co{scenario.n}"
        args[args.index("--registry-map") + 1] = mapped
        args[args.index("--insecure-registry") + 1] = proxy.host
        assert main(args) == 3
        assert proxy.host in error_line(capsys)
    finally:
        proxy.stop()


def test_damaged_archive_is_bad_input(
    scenario: Scenario,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    archive = tmp_path / "archive"
    shutil.copytree(scenario.archive, archive)
    root = archive / scenario.guns[0] / "root.json"
    root.write_bytes(root.read_bytes() + b" ")
    args = scenario.args()
    args[args.index("--archive") + 1] = str(archive)
    assert main(args) == 2
    assert error_line(capsys).endswith(f"{root}: does not match the length/sha256 in ARCHIVE.json")


@pytest.mark.parametrize("option", ["--junit", "--markdown"])
def test_unwritable_report_file_exit_2(
    scenario: Scenario,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    option: str,
) -> None:
    target = tmp_path / "missing-dir" / "out"
    assert main(scenario.args(option, str(target))) == 2
    assert error_line(capsys) == f"dct2notation: error: {option} {target}: cannot write (No such file or directory)"


def test_check_reads_notation_config_by_default(
    scenario: Scenario,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`check` without --policy/--truststore reads $NOTATION_CONFIG's as notation verify does (issue #16): the same
    document as with the options. Before: "--policy FILE and --truststore DIR are required"."""
    explicit = scenario.args("--json")
    assert main(explicit) == 1
    expected = json.loads(capsys.readouterr().out)
    config = tmp_path / "notation"
    config.mkdir()
    shutil.copyfile(scenario.policy, config / "trustpolicy.json")
    shutil.copytree(scenario.truststore, config / "truststore")
    monkeypatch.setenv("NOTATION_CONFIG", str(config))
    at = explicit.index("--policy")
    assert main(explicit[:at] + explicit[at + 4 :]) == 1
    got = json.loads(capsys.readouterr().out)
    assert got["tags"] == expected["tags"] and len(got["tags"]) > 1
