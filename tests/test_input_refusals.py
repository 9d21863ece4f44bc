"""Every refusal of the #15 inputs is one line naming the file, entry or field (waivers, plan --from-check, output
manifests, TLS trust files, sign-off journals)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dct2notation.errors import Dct2NotationError
from dct2notation.migrate import owned_output
from dct2notation.migrate.plan import remediation_subjects
from dct2notation.migrate.signoff_inputs import require_journal_of_plan
from dct2notation.migrate.waivers import load_waivers
from dct2notation.tlstrust import tls_context

GOOD = {"gun": '"g/a"', "tag": '"v1"', "reason": '"r"', "by": '"me"', "until": '"2099-01-01T00:00:00Z"'}


def waiver_file(tmp_path: Path, **fields: str | None) -> Path:
    entry = {**GOOD, **fields}
    path = tmp_path / "waivers.toml"
    path.write_text("[[waiver]]\n" + "".join(f"{k} = {v}\n" for k, v in entry.items() if v is not None))
    return path


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"repository": '"r/a"'}, "waiver[0]: give exactly one of gun or repository"),
        ({"gun": None}, "waiver[0]: give exactly one of gun or repository"),
        ({"digest": '"sha256:' + "a" * 64 + '"'}, "waiver[0]: give exactly one of tag or digest"),
        ({"tag": None, "digest": '"sha256:abc"'}, "waiver[0]: digest: expected sha256:<64 hex>"),
        ({"until": '"next week"'}, "waiver[0]: until: not an RFC 3339 time: 'next week'"),
        ({"until": "2099-01-01T00:00:00"}, "waiver[0]: until: give a time zone (e.g. 2026-12-31T00:00:00Z)"),
        ({"reason": '"  "'}, "waiver[0]: reason: required"),
        ({"owner": '"x"'}, "waiver[0]: owner: unknown field"),
        ({"tag": "3"}, "waiver[0]: tag: expected a string"),
    ],
)
def test_waiver_file_refusals(tmp_path: Path, fields: dict[str, str | None], message: str) -> None:
    with pytest.raises(Dct2NotationError) as caught:
        load_waivers(waiver_file(tmp_path, **fields))
    assert message in str(caught.value)
    assert caught.value.exit_code == 2


def test_waiver_file_not_toml_or_absent(tmp_path: Path) -> None:
    (tmp_path / "w.toml").write_text("[[waiver]\n")
    with pytest.raises(Dct2NotationError, match="not valid TOML"):
        load_waivers(tmp_path / "w.toml")
    with pytest.raises(Dct2NotationError, match="no such file"):
        load_waivers(tmp_path / "absent.toml")
    (tmp_path / "w.toml").write_text('[other]\nx = 1\n')
    with pytest.raises(Dct2NotationError, match=r"other: unknown field \(entries are \[\[waiver\]\] tables\)"):
        load_waivers(tmp_path / "w.toml")


@pytest.mark.parametrize(
    ("content", "message"),
    [("nope", "`check --json` output is not valid JSON"), ('{"format": "x"}', "not a `check --json` document")],
)
def test_from_check_refusals(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "c.json").write_text(content)
    with pytest.raises(Dct2NotationError, match=message):
        remediation_subjects(tmp_path / "c.json")
    with pytest.raises(Dct2NotationError, match="cannot read"):
        remediation_subjects(tmp_path / "absent.json")


def test_output_folder_refusals(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(Dct2NotationError, match="exists and is not a directory"):
        owned_output.claim(tmp_path / "file", "policy")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(tmp_path / "file", out / "link")
    with pytest.raises(Dct2NotationError, match="not written"):
        owned_output.claim(out, "policy")
    (out / "link").unlink()
    (out / owned_output.MANIFEST).write_text(json.dumps({"format": owned_output.FORMAT, "command": "other",
                                                         "files": []}))  # fmt: skip
    with pytest.raises(Dct2NotationError, match="not a `policy` output manifest"):
        owned_output.claim(out, "policy")
    (out / owned_output.MANIFEST).write_text("{")
    with pytest.raises(Dct2NotationError, match="unreadable"):
        owned_output.claim(out, "policy")


def test_tls_trust_file_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCT2NOTATION_CERTS_D", str(tmp_path / "certs.d"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(Dct2NotationError, match=r"--ca-file .*bad.pem: cannot load CA certificates"):
        tls_context("h.example:1", tmp_path / "bad.pem")
    with pytest.raises(Dct2NotationError, match=r"--ca-file .*absent.pem: no such file"):
        tls_context("h.example:2", tmp_path / "absent.pem")
    host = tmp_path / "certs.d" / "h.example:3"
    host.mkdir(parents=True)
    (host / "client.cert").write_text("x")
    with pytest.raises(Dct2NotationError, match="client certificate without its key client.key"):
        tls_context("h.example:3", None)


def test_signoff_refuses_a_journal_no_batch_ran_on(tmp_path: Path) -> None:
    with pytest.raises(Dct2NotationError, match="no batch ran on this journal"):
        require_journal_of_plan(None, tmp_path / "j.db", {"migration_id": "m"}, tmp_path / "plan.json")
