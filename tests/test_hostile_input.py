"""Hand-edited or damaged input files through the real CLI: one ``dct2notation: error:`` line and exit 2, never a
traceback. Each case names the file, the field and the reason the user has to fix."""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dct2notation.cli import main

DIGEST = "sha256:" + "a" * 64

INVENTORY: dict[str, Any] = {
    "format": "dct2notation-inventory/1",
    "evaluated_at": "2026-01-01T00:00:00Z",
    "repositories": [
        {
            "gun": "registry.example/app",
            "trusted_tags": [{"tag": "v1", "digest": DIGEST, "size": 10, "role": "targets/releases"}],
            "role_targets": {"targets/releases": [{"tag": "v1", "digest": DIGEST, "size": 10}]},
            "delegations": [{"role": "targets/releases", "threshold": 1, "paths": [""], "keys": []}],
        }
    ],
}


def error_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and the whole of stderr, which must be one error line."""
    code = main(argv)
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("dct2notation: error: "), err
    return code, err.removeprefix("dct2notation: error: ").rstrip("\n")


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        node = doc
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value

    return edit


R0 = ["repositories", 0]
SKIP_POLICY = {
    "version": "1.0",
    "trustPolicies": [
        {
            "name": "p",
            "registryScopes": ["*"],
            "signatureVerification": {"level": "skip"},
            "trustStores": [],
            "trustedIdentities": [],
        }
    ],
}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set([*R0, "trusted_tags"], None), "repositories[0].trusted_tags: expected a list"),
        (_set([*R0, "trusted_tags", 0], "v1"), "repositories[0].trusted_tags[0]: expected an object"),
        (_set([*R0, "trusted_tags", 0], {}), "repositories[0].trusted_tags[0].tag: expected a string (missing)"),
        (
            _set([*R0, "trusted_tags", 0, "digest"], 7),
            "repositories[0].trusted_tags[0].digest: expected a string (got int)",
        ),
        (
            _set([*R0, "trusted_tags", 0, "digest"], "sha256:abc"),
            "repositories[0].trusted_tags[0].digest: expected sha256:<64 lowercase hex>, got 'sha256:abc'",
        ),
        (
            _set([*R0, "trusted_tags", 0, "size"], True),
            "repositories[0].trusted_tags[0].size: expected an integer (got bool)",
        ),
        (
            _set([*R0, "trusted_tags", 0, "role"], None),
            "repositories[0].trusted_tags[0].role: expected a string (got null)",
        ),
        (_set([*R0, "role_targets"], []), "repositories[0].role_targets: expected an object of role -> targets"),
        (
            _set([*R0, "role_targets", "targets/releases"], {}),
            "repositories[0].role_targets['targets/releases']: expected a list",
        ),
        (
            _set([*R0, "role_targets", "targets/releases", 0, "tag"], 1),
            "repositories[0].role_targets['targets/releases'][0].tag: expected a string (got int)",
        ),
        (_set([*R0, "delegations"], {}), "repositories[0].delegations: expected a list"),
        (_set([*R0, "delegations", 0], None), "repositories[0].delegations[0]: expected an object"),
        (
            _set([*R0, "delegations", 0, "threshold"], "2"),
            "repositories[0].delegations[0].threshold: expected an integer (got str)",
        ),
        (
            _set([*R0, "delegations", 0, "paths"], [1]),
            "repositories[0].delegations[0].paths: expected a list of strings",
        ),
    ],
)
@pytest.mark.parametrize("command", ["policy", "plan", "check"])
def test_inventory_with_wrong_shapes(
    command: str,
    edit: Callable[[dict[str, Any]], None],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc = copy.deepcopy(INVENTORY)
    edit(doc)
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(doc))
    # The inventory is read before any store is opened, which therefore need not exist.
    (tmp_path / "p.json").write_text(json.dumps(SKIP_POLICY))
    (tmp_path / "signers.toml").write_text('[[signer]]\ngun = "*"\nrole = "*"\nkey = "k"\n')
    argv = {
        "policy": ["policy", str(inventory), "--signers", str(tmp_path / "signers.toml"), "-o", str(tmp_path / "o")],
        "plan": ["plan", str(inventory), "--signers", str(tmp_path / "signers.toml"), "--no-preflight"],
        "check": [
            "check",
            "--inventory",
            str(inventory),
            "--policy",
            str(tmp_path / "p.json"),
            "--truststore",
            str(tmp_path),
        ],
    }[command]
    assert error_of(argv, capsys) == (2, f"{inventory}: {message}")


def test_inventory_shapes_of_a_valid_document_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dct2notation.dct.inventory import load_inventory

    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(INVENTORY))
    assert load_inventory(inventory).repositories == INVENTORY["repositories"]


def test_check_huge_concurrency_starts_no_more_threads_than_tags(tmp_path: Path) -> None:
    """--concurrency 10**9 on one tag: before, a thread per unit of concurrency (minutes, then a traceback)."""
    inventory, policy = tmp_path / "inventory.json", tmp_path / "p.json"
    inventory.write_text(json.dumps(INVENTORY))
    policy.write_text(json.dumps(SKIP_POLICY))
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text('{"schemaVersion":2,"manifests":[]}')
    argv = ["check", "--inventory", str(inventory), "--policy", str(policy), "--truststore", str(tmp_path)]
    argv += ["--oci-layout", str(layout), "--concurrency", str(10**9), "--json", "--no-table"]
    # A subprocess so the old behaviour fails on the timeout instead of exhausting this test process.
    done = subprocess.run([sys.executable, "-m", "dct2notation", *argv], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (1, "")
    assert [(t["tag"], t["status"]) for t in json.loads(done.stdout)["tags"]] == [("v1", "manifest-missing")]


PLAN: dict[str, Any] = {
    "format": "dct2notation-plan/1",
    "migration_id": "m",
    "jobs": [{"repository": "registry.example/app", "digest": DIGEST, "size": 10, "identity": "k", "tags": ["v1"]}],
}
PLAN_SHAPES = [
    (_set(["jobs", 0], None), "jobs[0]: must be an object"),
    (_set(["jobs", 0, "annotations"], 3), "jobs[0]: field 'annotations' must be an object"),
    (_set(["jobs", 0, "repository"], None), "jobs[0]: field 'repository' must be str"),
    (_set(["jobs", 0, "digest"], "sha256:abc"), "jobs[0]: field 'digest' must be sha256:<64 hex>"),
    (_set(["format"], "dct2notation-plan/2"), "not a plan (expected format 'dct2notation-plan/1')"),
]


@pytest.mark.parametrize(("edit", "message"), PLAN_SHAPES)
def test_signoff_refuses_a_plan_sign_would_refuse(
    edit: Callable[[dict[str, Any]], None], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, a job of the wrong shape was a TypeError/KeyError traceback after the staging dir was made."""
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "ARCHIVE.json").write_text("{}")
    (tmp_path / "policy").mkdir()
    (tmp_path / "inventory.json").write_text(json.dumps(INVENTORY))
    doc = copy.deepcopy(PLAN)
    edit(doc)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(doc))
    argv = ["signoff", "--archive", str(tmp_path / "archive"), "--inventory", str(tmp_path / "inventory.json")]
    argv += ["--plan", str(plan), "--policy-dir", str(tmp_path / "policy"), "-o", str(tmp_path / "bundle")]
    assert error_of(argv, capsys) == (2, f"{plan}: {message}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive", "inventory.json", "plan.json", "policy"]


@pytest.mark.parametrize(("edit", "message"), PLAN_SHAPES)
def test_signoff_verify_refuses_a_bundled_plan_of_the_wrong_shape(
    edit: Callable[[dict[str, Any]], None], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dct2notation.migrate.signoff import write_manifest

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    stamp = "2026-01-01T00:00:00Z"
    (bundle / "SIGNOFF.json").write_text(json.dumps({**SIGNOFF_RECORD, "dct_evaluated_at": stamp}))
    doc = copy.deepcopy(PLAN)
    edit(doc)
    (bundle / "plan.json").write_text(json.dumps(doc))
    # A consistent MANIFEST: the damage is in what the bundle says, not in its integrity.
    write_manifest(bundle)
    assert error_of(["signoff", "verify", str(bundle)], capsys) == (2, f"{bundle / 'plan.json'}: {message}")


ARCHIVE_ENTRY = {"path": "registry.example/app/root.json", "sha256": "0" * 64, "length": 2}


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"guns": [1], "files": []}, "guns: expected a list of strings"),
        ({"guns": [], "files": [None]}, "files[0]: expected an object with path, sha256 and length"),
        (
            {"guns": [], "files": [{**ARCHIVE_ENTRY, "path": 7}]},
            "files[0].path: expected a relative path inside the archive",
        ),
        (
            {"guns": [], "files": [{**ARCHIVE_ENTRY, "path": "../../etc/passwd"}]},
            "files[0].path: expected a relative path inside the archive",
        ),
        (
            {"guns": [], "files": [{**ARCHIVE_ENTRY, "path": "/etc/passwd"}]},
            "files[0].path: expected a relative path inside the archive",
        ),
        ({"guns": [], "files": [{**ARCHIVE_ENTRY, "sha256": None}]}, "files[0].sha256: expected a hex string"),
        ({"guns": [], "files": [{**ARCHIVE_ENTRY, "length": "2"}]}, "files[0].length: expected an integer"),
    ],
)
@pytest.mark.parametrize("command", ["inventory", "check"])
def test_archive_manifest_with_wrong_shapes(
    command: str, manifest: dict[str, Any], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, a files[] entry that was not an object was an AttributeError traceback."""
    archive = tmp_path / "archive"
    (archive / "registry.example" / "app").mkdir(parents=True)
    (archive / "registry.example" / "app" / "root.json").write_text("{}")
    (archive / "ARCHIVE.json").write_text(json.dumps({"format": "dct2notation-archive/1", **manifest}))
    argv = [command, "registry.example/app", "--archive", str(archive)]
    if command == "check":
        argv += ["--policy", str(tmp_path / "p.json"), "--truststore", str(tmp_path), "--no-table"]
        (tmp_path / "p.json").write_text(json.dumps(SKIP_POLICY))
    assert error_of(argv, capsys) == (2, f"{archive / 'ARCHIVE.json'}: {message}")


DEEP_JSON = "[" * 5000 + "]" * 5000
RECURSION = "maximum recursion depth exceeded while decoding a JSON array from a unicode string"


@pytest.mark.parametrize(
    ("argv", "deep", "message", "code"),
    [
        (
            ["plan", "{t}/deep.json", "--signers", "{t}/signers.toml", "--no-preflight"],
            "deep.json",
            "inventory is not valid JSON",
            2,
        ),
        (
            ["policy", "{t}/deep.json", "--signers", "{t}/s.toml", "-o", "{t}/o"],
            "deep.json",
            "inventory is not valid JSON",
            2,
        ),
        (["sign", "{t}/deep.json", "--oci-layout", "{t}/layout"], "deep.json", "plan is not valid JSON", 2),
        (
            ["check", "--inventory", "{t}/inventory.json", "--policy", "{t}/deep.json", "--truststore", "{t}"],
            "deep.json",
            "malformed trust policy, not valid JSON",
            2,
        ),
        (
            ["check", "--inventory", "{t}/inventory.json", "--policy", "{t}/p.json", "--truststore", "{t}"]
            + ["--oci-layout", "{t}/layout", "--since", "{t}/deep.json"],
            "deep.json",
            "previous check is not valid JSON",
            2,
        ),
        (["key", "list"], "notation/signingkeys.json", "signingkeys.json is not valid JSON", 2),
        (["ls", "registry.example/app@" + DIGEST, "--oci-layout", "{t}/layout"], "layout/index.json", "not JSON", 2),
        (
            ["inventory", "registry.example/app", "--archive", "{t}/archive"],
            "archive/ARCHIVE.json",
            "unreadable archive manifest",
            2,
        ),
        (["signoff", "verify", "{t}/bundle"], "bundle/MANIFEST.json", "not a sign-off bundle manifest", 1),
    ],
)
def test_json_nested_too_deeply(
    argv: list[str],
    deep: str,
    message: str,
    code: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """5,000 nested arrays: before, json's RecursionError escaped every loader as a traceback."""
    for folder in ("notation", "layout", "archive", "bundle"):
        (tmp_path / folder).mkdir()
    (tmp_path / "layout" / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (tmp_path / "inventory.json").write_text(json.dumps(INVENTORY))
    (tmp_path / "p.json").write_text(json.dumps(SKIP_POLICY))
    (tmp_path / "signers.toml").write_text('[[signer]]\ngun = "*"\nrole = "*"\nkey = "k"\n')
    (tmp_path / deep).write_text(DEEP_JSON)
    monkeypatch.setenv("NOTATION_CONFIG", str(tmp_path / "notation"))
    assert error_of([a.replace("{t}", str(tmp_path)) for a in argv], capsys) == (
        code,
        f"{tmp_path / deep}: {message} ({RECURSION})",
    )


def test_signers_toml_nested_too_deeply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signers = tmp_path / "signers.toml"
    signers.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    (tmp_path / "inventory.json").write_text(json.dumps(INVENTORY))
    argv = ["plan", str(tmp_path / "inventory.json"), "--signers", str(signers), "--no-preflight"]
    assert error_of(argv, capsys) == (2, f"{signers}: not valid TOML: nested too deeply")


@pytest.mark.parametrize("parse", ["parse_signature_manifest", "parse_index"])
def test_remote_manifest_nested_too_deeply(parse: str) -> None:
    """A registry serving a deeply nested manifest gets the same InputError as one serving invalid JSON."""
    from dct2notation.errors import InputError
    from dct2notation.notation import manifest

    with pytest.raises(InputError) as err:
        getattr(manifest, parse)(DEEP_JSON.encode(), where="registry.example/app@" + DIGEST)
    assert str(err.value) == f"registry.example/app@{DIGEST}: not JSON ({RECURSION})"


def test_archived_tuf_metadata_nested_too_deeply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The bytes match ARCHIVE.json, so the archive is intact; the metadata itself is refused as malformed."""
    import hashlib

    archive = tmp_path / "archive"
    (archive / "registry.example" / "app").mkdir(parents=True)
    (archive / "registry.example" / "app" / "root.json").write_text(DEEP_JSON)
    entry = {
        "path": "registry.example/app/root.json",
        "sha256": hashlib.sha256(DEEP_JSON.encode()).hexdigest(),
        "length": len(DEEP_JSON),
    }
    manifest = {"format": "dct2notation-archive/1", "guns": ["registry.example/app"], "files": [entry]}
    (archive / "ARCHIVE.json").write_text(json.dumps(manifest))
    argv = ["inventory", "registry.example/app", "--archive", str(archive)]
    assert error_of(argv, capsys) == (1, f"registry.example/app: root: malformed JSON ({RECURSION})")


SIGNOFF_RECORD = {
    "format": "dct2notation-signoff/1",
    "dct_evaluated_at": "2026-01-01T00:00:00Z",
    "notation_verified_at": "2026-01-01T00:00:00Z",
}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ([], "the sign-off record is not a JSON object"),
        (None, "the sign-off record is not a JSON object"),
        ({**SIGNOFF_RECORD, "dct_evaluated_at": "soon"}, "field 'dct_evaluated_at': not an RFC 3339 time: 'soon'"),
        (
            {**SIGNOFF_RECORD, "notation_verified_at": None},
            "field 'notation_verified_at': not an RFC 3339 time: 'None'",
        ),
        (
            {**SIGNOFF_RECORD, "format": "dct2notation-signoff/2"},
            "format is 'dct2notation-signoff/2', expected 'dct2notation-signoff/1'",
        ),
    ],
)
def test_signoff_verify_record_of_the_wrong_shape(
    record: Any, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: 'field list indices must be integers or slices, not str is missing'; a record of another format or
    with an unparseable time passed, or failed without naming SIGNOFF.json."""
    from dct2notation.migrate.signoff import write_manifest

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "SIGNOFF.json").write_text(json.dumps(record))
    write_manifest(bundle)
    assert error_of(["signoff", "verify", str(bundle)], capsys) == (2, f"{bundle / 'SIGNOFF.json'}: {message}")


def test_signoff_inventory_time_is_named_and_nothing_is_staged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "ARCHIVE.json").write_text("{}")
    (tmp_path / "policy").mkdir()
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({**INVENTORY, "evaluated_at": "soon"}))
    (tmp_path / "plan.json").write_text(json.dumps(PLAN))
    argv = ["signoff", "--archive", str(tmp_path / "archive"), "--inventory", str(inventory)]
    argv += ["--plan", str(tmp_path / "plan.json"), "--policy-dir", str(tmp_path / "policy"), "-o", str(tmp_path / "b")]
    assert error_of(argv, capsys) == (2, f"{inventory}: field 'evaluated_at': not an RFC 3339 time: 'soon'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive", "inventory.json", "plan.json", "policy"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("jobs (a INTEGER)", "table jobs has columns a; expected key, state, signature, attempts, error"),
        ("meta (x INTEGER)", "table meta has columns x; expected name, value"),
    ],
)
def test_sqlite_file_of_another_shape_is_not_a_journal(
    table: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: sqlite3.OperationalError ('no such column') as a traceback from sign and signoff."""
    import sqlite3

    journal = tmp_path / "journal.db"
    with contextlib.closing(sqlite3.connect(journal)) as db:
        db.execute(f"CREATE TABLE {table}")
        db.commit()
    expected = (2, f"{journal}: not a usable journal ({message})")
    assert error_of(signoff_with_journal(tmp_path, journal), capsys) == expected
    assert not (tmp_path / "bundle").exists() and not (tmp_path / "bundle.partial").exists()


def signoff_with_journal(tmp_path: Path, journal: Path) -> list[str]:
    """``signoff`` over minimal inputs written to ``tmp_path``: the journal is the first thing it reads in depth."""
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "ARCHIVE.json").write_text("{}")
    (tmp_path / "policy").mkdir()
    (tmp_path / "inventory.json").write_text(json.dumps(INVENTORY))
    (tmp_path / "plan.json").write_text(json.dumps(PLAN))
    argv = ["signoff", "--archive", str(tmp_path / "archive"), "--inventory", str(tmp_path / "inventory.json")]
    argv += ["--plan", str(tmp_path / "plan.json"), "--journal", str(journal), "--policy-dir", str(tmp_path / "policy")]
    return [*argv, "-o", str(tmp_path / "bundle")]


@pytest.mark.parametrize(
    ("expiry", "message"),
    [
        (
            "99999999999999999h",
            "--expiry: '99999999999999999h' is longer than Notation accepts (at most 2562047h47m16.854775807s)",
        ),
        (
            "2562047h47m17s",
            "--expiry: '2562047h47m17s' is longer than Notation accepts (at most 2562047h47m16.854775807s)",
        ),
    ],
)
def test_expiry_longer_than_notation_accepts(expiry: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: an OverflowError traceback (timedelta, or the expiry date past year 9999)."""
    argv = ["sign", "r.example/a@" + DIGEST, "--key", "k", "--expiry", expiry]
    assert error_of(argv, capsys) == (2, message)


def test_expiry_at_notations_longest_duration_parses() -> None:
    import datetime as dt

    from dct2notation.duration import parse_go_duration

    assert parse_go_duration("2562047h47m16s") == dt.timedelta(seconds=9223372036)


@pytest.mark.parametrize("rate", ["nan", "0", "-1"])
def test_rate_limit_must_be_a_positive_number(rate: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before, NaN passed the > 0 check (every comparison with NaN is false) and reached the token bucket."""
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    argv = ["sign", str(plan), "--journal", str(tmp_path / "j.db"), "--rate-limit", rate, "--dry-run"]
    assert error_of(argv, capsys) == (2, "--rate-limit: must be greater than 0")


SIGNERS_K = '[[signer]]\ngun = "*"\nrole = "*"\nkey = "k"\n'


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-o", "{t}"], "{t}: cannot write the plan (Is a directory)"),
        (["-o", "{t}/missing/plan.json"], "{t}/missing/plan.json: cannot write the plan (No such file or directory)"),
        (
            ["-o", "{t}/plan.json", "--emit-k8s-job", "{t}", "--image", "i"],
            "--emit-k8s-job {t}: cannot write (Is a directory)",
        ),
    ],
)
def test_plan_outputs_that_cannot_be_written(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: IsADirectoryError / FileNotFoundError tracebacks."""
    (tmp_path / "inventory.json").write_text(json.dumps(INVENTORY))
    (tmp_path / "signers.toml").write_text(SIGNERS_K)
    argv = ["plan", str(tmp_path / "inventory.json"), "--signers", str(tmp_path / "signers.toml"), "--no-preflight"]
    argv += [a.replace("{t}", str(tmp_path)) for a in extra]
    assert error_of(argv, capsys) == (2, message.replace("{t}", str(tmp_path)))


def test_policy_output_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a FileExistsError traceback from mkdir."""
    monkeypatch.setenv("NOTATION_CONFIG", str(tmp_path / "notation"))
    assert main(["cert", "generate-test", "k", "--key-type", "ec-p256"]) == 0
    capsys.readouterr()
    cert = tmp_path / "notation" / "localkeys" / "k.crt"
    (tmp_path / "signers.toml").write_text(SIGNERS_K + f'cert_file = "{cert}"\n')
    (tmp_path / "inventory.json").write_text(json.dumps(INVENTORY))
    taken = tmp_path / "taken"
    taken.write_text("not a directory")
    argv = ["policy", str(tmp_path / "inventory.json"), "--signers", str(tmp_path / "signers.toml"), "-o", str(taken)]
    assert error_of(argv, capsys) == (2, f"-o {taken}: exists and is not a directory")
    assert taken.read_text() == "not a directory"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--days", str(10**11)], f"validity of {10**11} days ends after the year 9999"),
        (["--days", "3000000"], "validity of 3000000 days ends after the year 9999"),
    ],
)
def test_generate_test_cert_validity_past_year_9999(
    extra: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: an OverflowError traceback from timedelta / the not-after date."""
    monkeypatch.setenv("NOTATION_CONFIG", str(tmp_path))
    assert error_of(["cert", "generate-test", "k", *extra], capsys) == (2, message)
    assert list(tmp_path.iterdir()) == []


def test_generate_test_cert_name_longer_than_a_common_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a ValueError traceback from the certificate builder (65..250 characters) or an OSError (longer)."""
    monkeypatch.setenv("NOTATION_CONFIG", str(tmp_path))
    message = "key name 'aaaaaaaaaaaaaaaaaaaa'... is 65 characters; the certificate's common name allows at most 64"
    assert error_of(["cert", "generate-test", "a" * 65], capsys) == (2, message)
    assert main(["cert", "generate-test", "a" * 64, "--key-type", "ec-p256"]) == 0
    assert (tmp_path / "localkeys" / ("a" * 64 + ".crt")).is_file()


DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("taken", "-o {o}: exists and is not a directory"),
        ("taken/archive", "-o {o}: cannot create (File exists)"),
    ],
)
def test_archive_output_that_cannot_be_a_directory(
    output: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: NotADirectoryError / FileExistsError tracebacks."""
    expected = json.loads((DEMO / "expected.json").read_text())
    (tmp_path / "taken").write_text("not a directory")
    out = tmp_path / output
    argv = ["archive", expected["guns"][0], "--trust-dir", str(DEMO / "trust"), "--at", expected["evaluate_at"]]
    assert error_of([*argv, "-o", str(out)], capsys) == (2, message.replace("{o}", str(out)))
    assert (tmp_path / "taken").read_text() == "not a directory"


def test_signoff_output_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: a NotADirectoryError traceback from making the staging directory."""
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "ARCHIVE.json").write_text("{}")
    (tmp_path / "policy").mkdir()
    (tmp_path / "inventory.json").write_text(json.dumps(INVENTORY))
    (tmp_path / "plan.json").write_text(json.dumps(PLAN))
    (tmp_path / "taken").write_text("not a directory")
    out = tmp_path / "taken" / "bundle"
    argv = ["signoff", "--archive", str(tmp_path / "archive"), "--inventory", str(tmp_path / "inventory.json")]
    argv += ["--plan", str(tmp_path / "plan.json"), "--policy-dir", str(tmp_path / "policy"), "-o", str(out)]
    assert error_of(argv, capsys) == (2, f"-o {out}: cannot create (Not a directory)")
