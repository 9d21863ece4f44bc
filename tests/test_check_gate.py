"""A coexistence gate never goes green by mistake (#15): a GUN that gives no tag fails it, and so does nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dct2notation.config import DEFAULT_LIMITS, SystemClock
from dct2notation.migrate.check_report import render_junit, render_markdown
from dct2notation.migrate.coexist import DctRepository, run_check
from dct2notation.notation.policy import TrustPolicyDocument
from dct2notation.notation.truststore import TrustStore
from tests.test_connection_options import (  # noqa: F401 - pytest fixtures
    GUN,
    PASSWORD,
    Estate,
    creds,
    estate,
    inventory_file,
    isolated,
    policy_dir,
    run,
)

pytestmark = pytest.mark.servers


def check_args(estate: Estate, policy: Path, *guns: str) -> list[str]:  # noqa: F811
    return ["check", *guns, "--server", estate.notary.url, *creds(ca=estate.ca), "--registry-map", estate.mapping,
            "--policy", str(policy / "trustpolicy.json"), "--truststore", str(policy / "truststore"),
            "--require", "either", "--json", "--no-table"]  # fmt: skip


def test_a_gun_that_does_not_exist_fails_the_gate(
    estate: Estate, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """`check acme/wbe` (a typo) checked 0 tags and exited 0, so runbook 06's `jq -e '.summary.unmet == 0'` passed."""
    policy = policy_dir(estate, inventory_file(estate, capsys, monkeypatch), capsys)
    typo = "registry.example/acme/wbe"
    code, out, err = run(capsys, monkeypatch, *check_args(estate, policy, typo), stdin=PASSWORD + "\n")
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dct2notation: check: {typo}: nothing checked: "), err
    doc = json.loads(out)
    assert doc["summary"]["total"] == 0
    assert doc["summary"]["unmet"] == 1
    assert [g["gun"] for g in doc["summary"]["empty_guns"]] == [typo]


def test_a_gun_that_exists_beside_a_typo_still_fails(
    estate: Estate, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    policy = policy_dir(estate, inventory_file(estate, capsys, monkeypatch), capsys)
    code, out, err = run(capsys, monkeypatch, *check_args(estate, policy, GUN, "registry.example/acme/wbe"),
                         stdin=PASSWORD + "\n")  # fmt: skip
    assert code == 1
    doc = json.loads(out)
    assert (doc["summary"]["total"], doc["summary"]["unmet"]) == (1, 1)  # v1 meets `either`; the typo does not


def test_nothing_to_check_fails_and_every_report_says_so(
    estate: Estate, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """The same rule in the library, the JUnit report (no empty green suite) and the Markdown summary."""
    policy = policy_dir(estate, inventory_file(estate, capsys, monkeypatch), capsys)

    class Empty:
        def list_tags(self, repository: str) -> list[str]:
            return []

        def resolve(self, repository: str, tag: str) -> None:
            return None

        def envelopes(self, repository: str, digest: str) -> list[tuple[str, bytes | None, str]]:
            return []

    empty_gun = "example.com/empty: nothing checked: DCT trusts no tag, example.com/empty has none"
    for repos, line in (([], "nothing to check: no GUN and no tag"), ([DctRepository("example.com/empty")], empty_gun)):
        result = run_check(repos, Empty(), policy=TrustPolicyDocument.load(policy / "trustpolicy.json"),
                           truststore=TrustStore(policy / "truststore"), clock=SystemClock(),
                           limits=DEFAULT_LIMITS)  # fmt: skip
        assert result.exit_code == 1
        assert result.failures == [line]
        assert result.to_dict()["summary"]["unmet"] == 1
        junit = render_junit(result).decode()
        assert 'tests="1" failures="1"' in junit and "nothing-checked" in junit
        assert render_markdown(result).startswith("## Coexistence check: FAIL")


def test_signoff_refuses_a_final_check_that_checked_nothing() -> None:
    from dct2notation.migrate.signoff import _check_reasons

    empty = {"require": "both", "summary": {"total": 0, "unmet": 0, "counts": {}}, "tags": []}
    assert _check_reasons(empty) == ["final coexistence run: nothing to check (0 tags)"]
    typo = {"require": "both", "tags": [], "summary": {"failures": ["acme/wbe: nothing checked: not found"]}}
    assert _check_reasons(typo) == ["final coexistence run: acme/wbe: nothing checked: not found"]
