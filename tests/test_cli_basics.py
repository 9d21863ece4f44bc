from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dct2notation import __version__
from dct2notation.cli import main
from dct2notation.config import format_rfc3339, parse_rfc3339
from dct2notation.errors import UsageError


def test_version_prints_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == __version__


def test_unknown_command_is_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dct2notation: error: ")
    assert "Traceback" not in err


def test_rfc3339_with_nanoseconds_and_offset() -> None:
    got = parse_rfc3339("2116-01-11T16:58:57.119711158-08:00")
    assert got.isoformat() == "2116-01-12T00:58:57.119711+00:00"


def test_format_rfc3339_is_go_rfc3339_in_utc_whole_seconds() -> None:
    # The one layout Notation writes (JWS signing time and expiry, the created annotation) and verify messages quote.
    utc = dt.datetime(2023, 6, 27, 13, 30, 33, tzinfo=dt.UTC)
    assert format_rfc3339(utc) == "2023-06-27T13:30:33Z"
    # Fractional seconds are cut, not rounded, as Go's Truncate(time.Second): .999999 stays in the same second.
    assert format_rfc3339(utc.replace(microsecond=999_999)) == "2023-06-27T13:30:33Z"
    # Another offset is written as the same instant in UTC, across a day boundary.
    plus8 = dt.datetime(2023, 6, 27, 5, 30, 33, 500_000, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert format_rfc3339(plus8) == "2023-06-26T21:30:33Z"
    minus8 = dt.datetime(2023, 6, 27, 20, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-8)))
    assert format_rfc3339(minus8) == "2023-06-28T04:00:00Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_rfc3339(dt.datetime(2023, 6, 27))


def test_format_rfc3339_with_fraction_keeps_microseconds_in_utc() -> None:
    # The evaluation times our own documents record (inventory, check run, sign-off, waivers): isoformat, Z.
    utc = dt.datetime(2023, 6, 27, 13, 30, 33, tzinfo=dt.UTC)
    assert format_rfc3339(utc, fraction=True) == "2023-06-27T13:30:33Z"
    assert format_rfc3339(utc.replace(microsecond=500), fraction=True) == "2023-06-27T13:30:33.000500Z"
    minus8 = dt.datetime(2023, 6, 27, 20, 0, 0, 250_000, tzinfo=dt.timezone(dt.timedelta(hours=-8)))
    assert format_rfc3339(minus8, fraction=True) == "2023-06-28T04:00:00.250000Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_rfc3339(dt.datetime(2023, 6, 27), fraction=True)


def test_rfc3339_without_zone_is_refused() -> None:
    with pytest.raises(UsageError, match="needs a zone"):
        parse_rfc3339("2026-01-01T00:00:00")


DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo"


def run_with_stdout_closed(*argv: str) -> tuple[int, str]:
    """Run the real console entry point with its stdout reader gone, as in ``dct2notation … | head -c0``."""
    child = subprocess.Popen(
        [sys.executable, "-m", "dct2notation", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # long before the interpreter has started and written anything
    err = child.stderr.read().decode()
    return child.wait(timeout=60), err


@pytest.mark.parametrize(
    "tail",
    [[], ["--"]],
    ids=["typer-free-inventory", "typer-parsed-inventory"],
)
def test_closed_stdout_is_exit_141_without_a_traceback(tail: list[str]) -> None:
    expected = json.loads((DEMO / "expected.json").read_text())
    argv = ["inventory", expected["guns"][0], "--trust-dir", str(DEMO / "trust"), "--at", expected["evaluate_at"]]
    assert run_with_stdout_closed(*argv, "--json", *tail) == (141, "")


def test_closed_stdout_in_a_typer_command_is_exit_141() -> None:
    assert run_with_stdout_closed("version") == (141, "")
