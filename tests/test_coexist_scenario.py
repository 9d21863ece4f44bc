"""Every coexistence status, each caused by the real operation, with notary-server, notary and docker-registry.

Layout of the scenario (three GUNs mapped onto one registry by ``--registry-map``):

- ``main``: ``ok`` + ``ok-alias`` (one digest, signed by the trusted key), ``moved`` (re-pushed after DCT signing,
  the new digest signed: drift), ``rogue`` (signed with a key whose CA is not in the trust store), ``tampered``
  (signed, then its envelope blob altered on the registry's disk), ``late`` (published to DCT after the migration
  signing run), ``nodct`` (pushed to the registry only, signed by Notation).
- ``gone``: its manifest deleted from the registry.
- ``broken``: archived, then its targets metadata corrupted in the archive.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from dct2notation.cli import main
from dct2notation.config import SystemClock
from dct2notation.keys.resolve import load_signing_key
from dct2notation.keys.testcert import generate_test_key
from dct2notation.oci import OCI_MANIFEST, sha256_digest
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.options import RegistryOptions
from dct2notation.registry.signing import sign_artifact
from dct2notation.registry.target import open_target
from tests.support.servers import NotaryServer, Registry
from tests.test_batch import image_manifest

_ids = itertools.count()


def sign(host: str, repo: str, digest: str, config: Path, key: str) -> None:
    target = open_target(f"{host}/{repo}@{digest}", options=RegistryOptions(insecure_registries=frozenset({host})))
    try:
        sign_artifact(target, load_signing_key(key, config), clock=SystemClock())
    finally:
        target.close()


def push(client: RegistryClient, repo: str, tag: str, label: str) -> tuple[int, str]:
    raw = image_manifest(label)
    client.put_manifest(repo, tag, raw, OCI_MANIFEST)
    return len(raw), sha256_digest(raw)


def envelope_blob(client: RegistryClient, repo: str, subject_digest: str) -> str:
    """The envelope blob digest of the one signature on ``subject_digest``."""
    (desc,) = client.referrers(repo, subject_digest) or client.tag_index(repo, subject_digest)
    manifest = json.loads(client.get_manifest(repo, desc.digest)[0])
    return str(manifest["layers"][0]["digest"])


def write_policy(directory: Path, config: Path, trusted: str) -> tuple[Path, Path]:
    store = directory / "truststore"
    (store / "x509" / "ca" / "migration").mkdir(parents=True)
    shutil.copy(config / "localkeys" / f"{trusted}.crt", store / "x509" / "ca" / "migration" / "cert.pem")
    policy = directory / "trustpolicy.json"
    statement = {
        "name": "migration",
        "registryScopes": ["*"],
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:migration"],
        "trustedIdentities": ["*"],
    }
    policy.write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
    return policy, store


@pytest.fixture(scope="module")
def notation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tmp_path_factory.mktemp("notation-coexist")
    generate_test_key("trusted", config, key_type="ec-p256", make_default=True)
    generate_test_key("unmapped", config, key_type="ec-p256")
    return config


class Scenario:
    def __init__(self, base: Path, host: str, n: int, archive: Path, policy: Path, truststore: Path) -> None:
        self.base, self.host, self.n = base, host, n
        self.archive, self.policy, self.truststore = archive, policy, truststore
        self.guns = [f"dct.example/co{n}/{name}" for name in ("main", "gone", "broken")]
        self.digests: dict[str, str] = {}
        self.server = ""

    def repo(self, name: str) -> str:
        return f"{self.host}/co{self.n}/{name}"

    def args(self, *extra: str, guns: list[str] | None = None) -> list[str]:
        return [
            "check",
            *(guns or self.guns),
            "--archive",
            str(self.archive),
            "--policy",
            str(self.policy),
            "--truststore",
            str(self.truststore),
            "--registry-map",
            f"dct.example/co{self.n}={self.host}/co{self.n}",
            "--insecure-registry",
            self.host,
            "--no-table",
            *extra,
        ]


@pytest.fixture(scope="module")
def scenario(
    notary_server: NotaryServer, registry: Registry, notation_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Scenario:
    if shutil.which("notary") is None:
        pytest.skip("notary is not installed")
    base = tmp_path_factory.mktemp("coexist")
    n = next(_ids)
    host = registry.host
    options = RegistryOptions(insecure_registries=frozenset({host}))
    main_gun, gone_gun, broken_gun = (f"dct.example/co{n}/{name}" for name in ("main", "gone", "broken"))
    main_repo, gone_repo, broken_repo = (f"co{n}/{name}" for name in ("main", "gone", "broken"))
    d: dict[str, tuple[int, str]] = {}
    with RegistryClient(host, options) as client:
        client.push_blob(main_repo, b"{}")
        client.push_blob(gone_repo, b"{}")
        client.push_blob(broken_repo, b"{}")
        for tag in ("ok", "moved", "rogue", "tampered", "late", "nodct"):
            d[tag] = push(client, main_repo, tag, f"{main_repo}-{tag}")
        client.put_manifest(main_repo, "ok-alias", image_manifest(f"{main_repo}-ok"), OCI_MANIFEST)
        d["gone"] = push(client, gone_repo, "gone", f"{gone_repo}-gone")
        d["x"] = push(client, broken_repo, "x", f"{broken_repo}-x")

    notary = notary_server.client(base / "trust")
    for gun in (main_gun, gone_gun, broken_gun):
        notary.init(gun)
    for tag in ("ok", "ok-alias", "moved", "rogue", "tampered"):
        size, digest = d["ok" if tag == "ok-alias" else tag]
        notary.addhash(main_gun, tag, size, digest.removeprefix("sha256:"))
    notary.addhash(gone_gun, "gone", *d["gone"][:1], d["gone"][1].removeprefix("sha256:"))
    notary.addhash(broken_gun, "x", *d["x"][:1], d["x"][1].removeprefix("sha256:"))
    for gun in (main_gun, gone_gun, broken_gun):
        notary.publish(gun)

    # The migration signing run: what DCT trusted at that moment gets a Notation signature.
    for tag in ("ok", "moved", "tampered", "nodct"):
        sign(host, main_repo, d[tag][1], notation_dir, "trusted")
    sign(host, main_repo, d["rogue"][1], notation_dir, "unmapped")
    sign(host, broken_repo, d["x"][1], notation_dir, "trusted")

    with RegistryClient(host, options) as client:
        # After the migration: a publisher re-pushes "moved" (and signs the new digest with Notation only) ...
        d["moved-new"] = push(client, main_repo, "moved", f"{main_repo}-moved-new")
        sign(host, main_repo, d["moved-new"][1], notation_dir, "trusted")
        # ... someone deletes a manifest ...
        assert client.delete_manifest(gone_repo, d["gone"][1])
        # ... and someone alters a signature envelope on the registry's disk.
        blob = envelope_blob(client, main_repo, d["tampered"][1]).removeprefix("sha256:")
    data = registry.workdir / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256" / blob[:2] / blob / "data"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    # A DCT tag published after the migration run: never signed with Notation.
    notary.addhash(main_gun, "late", d["late"][0], d["late"][1].removeprefix("sha256:"))
    notary.publish(main_gun)

    archive = base / "archive"
    assert main(["archive", main_gun, gone_gun, broken_gun, "--server", notary_server.url, "-o", str(archive)]) == 0
    targets = archive / broken_gun / "targets.json"
    doc = json.loads(targets.read_bytes())
    doc["signed"]["targets"]["x"]["length"] += 1  # corrupt the signed part: its signature no longer verifies
    targets.write_text(json.dumps(doc))
    # Whoever altered it also rewrote ARCHIVE.json; only the TUF signatures can catch it now.
    manifest = json.loads((archive / "ARCHIVE.json").read_bytes())
    for entry in manifest["files"]:
        if entry["path"] == f"{broken_gun}/targets.json":
            entry.update(sha256=hashlib.sha256(targets.read_bytes()).hexdigest(), length=targets.stat().st_size)
    (archive / "ARCHIVE.json").write_text(json.dumps(manifest))

    policy, truststore = write_policy(base, notation_dir, "trusted")
    s = Scenario(base, host, n, archive, policy, truststore)
    s.server = notary_server.url
    s.digests = {tag: digest for tag, (_, digest) in d.items()}
    return s


def run_json(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, dict[str, Any]]:
    code = main(args)
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_every_status_from_its_real_cause(scenario: Scenario, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run_json(capsys, scenario.args("--json"))
    d = scenario.digests
    rows = {(t["repository"], t["tag"]): t for t in doc["tags"]}
    main_r, gone_r, broken_r = scenario.repo("main"), scenario.repo("gone"), scenario.repo("broken")
    matrix = {key: (row["status"], row["dct"], row["notation"], row["failed_check"]) for key, row in rows.items()}
    assert matrix == {
        (main_r, "late"): ("notation-missing", "valid", "missing", None),
        (main_r, "moved"): ("drift", "valid", "valid", None),
        (main_r, "nodct"): ("dct-missing", "missing", "valid", None),
        (main_r, "ok"): ("ok", "valid", "valid", None),
        (main_r, "ok-alias"): ("ok", "valid", "valid", None),
        (main_r, "rogue"): ("notation-invalid", "valid", "invalid", "authenticity"),
        (main_r, "tampered"): ("notation-invalid", "valid", "invalid", "integrity"),
        (gone_r, "gone"): ("manifest-missing", "valid", "not-checked", None),
        (broken_r, "x"): ("dct-invalid", "invalid", "valid", None),
    }
    assert [(t["repository"], t["tag"]) for t in doc["tags"]] == sorted(rows)
    assert rows[(main_r, "moved")]["dct_digest"] == d["moved"]
    assert rows[(main_r, "moved")]["registry_digest"] == d["moved-new"]
    assert rows[(gone_r, "gone")]["registry_digest"] is None
    assert rows[(gone_r, "gone")]["dct_digest"] == d["gone"]
    assert rows[(broken_r, "x")]["dct_digest"] is None
    assert rows[(main_r, "tampered")]["reason"].startswith("integrity: ")
    assert doc["summary"] == {
        "total": 9,
        "unmet": 7,
        "counts": {
            "ok": 2,
            "notation-missing": 1,
            "notation-invalid": 2,
            "notation-unenforced": 0,
            "drift": 1,
            "dct-missing": 1,
            "dct-invalid": 1,
            "manifest-missing": 1,
        },
        "empty_guns": [],
        "failures": [],
    }
    assert code == 1
    assert "evaluated_at" not in rows[(main_r, "ok")]  # per-tag rows carry no timestamps: runs diff cleanly


UNMET = {
    "both": {"late", "moved", "nodct", "rogue", "tampered", "gone", "x"},
    # "x" has a broken DCT GUN but a valid Notation signature on the registry's digest.
    "notation": {"late", "rogue", "tampered", "gone"},
    "either": {"gone"},
}


@pytest.mark.parametrize("mode", ["both", "notation", "either"])
def test_require_modes_on_the_scenario(scenario: Scenario, capsys: pytest.CaptureFixture[str], mode: str) -> None:
    code, doc = run_json(capsys, scenario.args("--json", "--require", mode))
    assert {t["tag"] for t in doc["tags"] if not t["requirement_met"]} == UNMET[mode]
    assert doc["summary"]["unmet"] == len(UNMET[mode])
    assert code == 1
    # Without the deleted manifest and the broken GUN, only "either" is satisfied by every tag of main.
    code_main = main(scenario.args("--require", mode, guns=[scenario.guns[0]]))
    assert code_main == (0 if mode == "either" else 1)


def test_a_digest_under_two_tags_is_verified_once(scenario: Scenario) -> None:
    from dct2notation.config import DEFAULT_LIMITS
    from dct2notation.dct.source import ArchiveSource
    from dct2notation.migrate.coexist import dct_from_source, registry_view, run_check
    from dct2notation.migrate.plan import map_repository
    from dct2notation.notation.policy import TrustPolicyDocument
    from dct2notation.notation.truststore import TrustStore

    clock = SystemClock()
    reported: list[tuple[str, int, int]] = []
    repos = dct_from_source([scenario.guns[0]], ArchiveSource(scenario.archive), clock, DEFAULT_LIMITS)
    view, close = registry_view(RegistryOptions(insecure_registries=frozenset({scenario.host})))
    mapping = [(f"dct.example/co{scenario.n}", f"{scenario.host}/co{scenario.n}")]
    try:
        result = run_check(
            repos,
            view,
            policy=TrustPolicyDocument.load(scenario.policy),
            truststore=TrustStore(scenario.truststore),
            clock=clock,
            limits=DEFAULT_LIMITS,
            registry_map=lambda gun: map_repository(gun, mapping),
            concurrency=4,
            progress=lambda phase, n, total: reported.append((phase, n, total)),
        )
    finally:
        close()
    # 8 tags in main ("ok" and "ok-alias" share a digest) -> 7 distinct digests verified.
    assert len(result.rows) == 7
    assert result.verified_digests == 6
    # Progress bars know their total (issue #16): every tag of the resolve phase, and the digests to verify
    # (complete once the last tag resolved).
    resolved = [r for r in reported if r[0] == "resolve"]
    verified = [r for r in reported if r[0] == "verify"]
    assert len(resolved) == 7 and {total for _, _, total in resolved} == {7}
    assert len(verified) == 6 and max(total for _, _, total in verified) == 6


def test_junit_and_markdown_outputs(scenario: Scenario, tmp_path: Path) -> None:
    junit, markdown = tmp_path / "check.xml", tmp_path / "check.md"
    assert main(scenario.args("--junit", str(junit), "--markdown", str(markdown))) == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("9", "7")
    failed = {c.get("name"): c.find("failure") for c in suite.iter("testcase")}
    assert {name for name, f in failed.items() if f is None} == {"ok", "ok-alias"}
    assert failed["rogue"] is not None and failed["rogue"].get("type") == "notation-invalid"
    text = markdown.read_text()
    assert text.startswith("## Coexistence check: FAIL (require `both`)\n")
    assert "| `manifest-missing` | 1 |" in text
    assert f"| {scenario.repo('gone')} | gone | `manifest-missing` | - |" in text
    assert f"| {scenario.repo('main')} | ok |" not in text  # only blocking tags are listed


def test_since_reports_only_changes(scenario: Scenario, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, first = run_json(capsys, scenario.args("--json"))
    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps(first))
    code, diff = run_json(capsys, scenario.args("--json", "--since", str(previous)))
    assert (code, diff["changes"]) == (1, [])
    # Make the previous run say "late" was ok: the diff names exactly that tag, before and after.
    for row in first["tags"]:
        if row["tag"] == "late":
            row.update(status="ok", notation="valid", requirement_met=True)
    previous.write_text(json.dumps(first))
    _, diff = run_json(capsys, scenario.args("--json", "--since", str(previous)))
    (change,) = diff["changes"]
    assert change["key"] == f"{scenario.repo('main')}:late"
    assert change["change"] == "changed"
    assert (change["before"]["status"], change["after"]["status"]) == ("ok", "notation-missing")


def test_watch_is_bounded_and_reports_changes_only(scenario: Scenario, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(scenario.args("--json", "--watch", "0", "--max-runs", "2"))
    out = capsys.readouterr().out
    decoder = json.JSONDecoder()
    first, end = decoder.raw_decode(out)
    second, _ = decoder.raw_decode(out[end:].lstrip())
    assert len(first["tags"]) == 9
    assert second["changes"] == []  # nothing moved between the two runs
    assert code == 1


def test_server_source_matches_the_archive_except_the_corrupted_copy(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    _, from_archive = run_json(capsys, scenario.args("--json"))
    args = scenario.args("--json")
    at = args.index("--archive")
    args[at : at + 2] = ["--server", scenario.server]
    code, from_server = run_json(capsys, args)
    archived = {(t["repository"], t["tag"]): t for t in from_archive["tags"]}
    served = {(t["repository"], t["tag"]): t for t in from_server["tags"]}
    broken = (scenario.repo("broken"), "x")
    # The server's copy of "broken" was never altered: DCT and Notation agree there.
    assert (served[broken]["status"], served[broken]["dct_digest"]) == ("ok", scenario.digests["x"])
    del archived[broken], served[broken]
    assert served == archived
    assert code == 1


def test_human_table_goes_to_stderr(scenario: Scenario, capsys: pytest.CaptureFixture[str]) -> None:
    args = [a for a in scenario.args() if a != "--no-table"]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout stays free for --json
    last = captured.err.strip().splitlines()[-1]
    assert last == (
        "9 tags: ok 2, notation-missing 1, notation-invalid 2, drift 1, dct-missing 1, dct-invalid 1, "
        "manifest-missing 1; 7 not meeting --require"
    )


def test_same_document_at_any_concurrency(scenario: Scenario, capsys: pytest.CaptureFixture[str]) -> None:
    _, serial = run_json(capsys, scenario.args("--json", "--concurrency", "1"))
    _, parallel = run_json(capsys, scenario.args("--json", "--concurrency", "32"))
    del serial["evaluated_at"], parallel["evaluated_at"]
    assert serial == parallel


def _policy_at(scenario: Scenario, tmp_path: Path, verification: dict[str, Any], stores: bool = True) -> list[str]:
    statement: dict[str, Any] = {"name": "lax", "registryScopes": ["*"], "signatureVerification": verification}
    if stores:
        statement.update(trustStores=["ca:migration"], trustedIdentities=["*"])
    path = tmp_path / "lax.json"
    path.write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
    args = scenario.args("--json", "--require", "notation")
    args[args.index("--policy") + 1] = str(path)
    return args


def test_attack_audit_policy_gate_passes_untrusted_signer(
    scenario: Scenario, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Under "audit" Notation passes any well-formed signature; the gate must not count it ("rogue" has no trusted
    signer at all)."""
    code, doc = run_json(capsys, _policy_at(scenario, tmp_path, {"level": "audit"}))
    rows = {t["tag"]: t for t in doc["tags"]}
    gap = (
        'trust policy statement "lax" (level audit) does not enforce integrity and authenticity (authenticity is only '
        "logged), so a signature passing under it is not counted as Notation-valid"
    )
    assert (rows["rogue"]["status"], rows["rogue"]["notation"], rows["rogue"]["failed_check"]) == (
        "notation-unenforced",
        "unenforced",
        "trustPolicy",
    )
    assert rows["rogue"]["reason"] == (
        f"{gap}; its signer is not trusted (signature is not produced by a trusted signer: no certificate of the "
        "chain is in trust store(s) ca:migration)"
    )
    trusted = "its signer is trusted, but the statement would pass an untrusted one as well"
    assert rows["ok"]["reason"] == f"{gap}; {trusted}"
    assert rows["ok"]["signature"] is not None  # which signature passed is still recorded
    assert {tag: (t["status"], t["notation"]) for tag, t in rows.items()} == {
        "late": ("notation-missing", "missing"),
        "moved": ("drift", "unenforced"),
        "nodct": ("dct-missing", "unenforced"),
        "ok": ("notation-unenforced", "unenforced"),
        "ok-alias": ("notation-unenforced", "unenforced"),
        "rogue": ("notation-unenforced", "unenforced"),
        "tampered": ("notation-invalid", "invalid"),  # audit still enforces integrity
        "gone": ("manifest-missing", "not-checked"),
        "x": ("dct-invalid", "unenforced"),
    }
    assert [t["tag"] for t in doc["tags"] if t["requirement_met"]] == []
    assert doc["summary"]["counts"]["notation-unenforced"] == 3
    assert code == 1


def test_attack_skip_policy_gate_passes_any_signature(
    scenario: Scenario, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, doc = run_json(capsys, _policy_at(scenario, tmp_path, {"level": "skip"}, stores=False))
    rows = {t["tag"]: t for t in doc["tags"]}
    assert rows["nodct"]["notation"] == "unenforced"
    # Skip checks nothing; a blob whose bytes do not match its digest is still unreadable, whatever the policy.
    assert rows["tampered"]["status"] == "notation-invalid"
    assert rows["rogue"]["reason"] == (
        'trust policy statement "lax" (level skip) does not enforce integrity and authenticity (integrity is skipped, '
        "authenticity is skipped), so a signature passing under it is not counted as Notation-valid"
    )
    assert not any(t["requirement_met"] for t in doc["tags"])
    assert code == 1


def test_attack_strict_policy_with_authenticity_override_to_log(
    scenario: Scenario, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    verification = {"level": "strict", "override": {"authenticity": "log"}}
    code, doc = run_json(capsys, _policy_at(scenario, tmp_path, verification))
    rows = {t["tag"]: t for t in doc["tags"]}
    assert rows["rogue"]["status"] == "notation-unenforced"
    assert (
        "(level strict) does not enforce integrity and authenticity (authenticity is only logged)"
        in (rows["rogue"]["reason"])
    )
    assert code == 1


def test_permissive_policy_still_counts_a_trusted_signer(
    scenario: Scenario, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, doc = run_json(capsys, _policy_at(scenario, tmp_path, {"level": "permissive"}))
    rows = {t["tag"]: t for t in doc["tags"]}
    assert (rows["ok"]["status"], rows["ok"]["requirement_met"]) == ("ok", True)
    assert (rows["rogue"]["status"], rows["rogue"]["failed_check"]) == ("notation-invalid", "authenticity")
    assert code == 1
