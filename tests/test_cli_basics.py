from __future__ import annotations

import pytest

from dct2notation import __version__
from dct2notation.cli import main
from dct2notation.config import parse_rfc3339
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


def test_rfc3339_without_zone_is_refused() -> None:
    with pytest.raises(UsageError, match="needs a zone"):
        parse_rfc3339("2026-01-01T00:00:00")
