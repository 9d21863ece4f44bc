"""Timestamp trust in the emitted policy (#17 item 5): a 1-day key, timestamped, still verifies three days later.

The demo estate's images are pushed to the loopback docker-registry and signed from a plan with a 1-day test
certificate and the loopback TSA (real ``openssl ts``); the journal records the TSA root, and ``policy --journal``
writes it as a tsa trust store. Three days on (``faketime``
for ``verify`` and ``signoff``, the tool's ``--at`` for ``check``) the signing certificate has expired: under the
emitted policy ``verify``, ``check`` and ``signoff`` still pass, because the timestamp proves the signature was made
while the certificate was valid. The policy HEAD emitted (no tsa store) fails all three.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from dct2notation.cli import main
from dct2notation.cli.migrate import make_plan
from dct2notation.config import DEFAULT_LIMITS, FixedClock, parse_rfc3339
from dct2notation.dct.inventory import build_inventory
from dct2notation.dct.source import ArchiveSource
from dct2notation.keys.testcert import generate_test_key
from dct2notation.migrate.journal import read_tsa_roots
from dct2notation.registry.options import RegistryOptions
from tests.support.demo_registry import push_demo_images
from tests.support.servers import Registry
from tests.support.tsa import TestTSA

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "demo"
EXPECTED = json.loads((DEMO / "expected.json").read_text())
LATER = dt.timedelta(days=3)

pytestmark = pytest.mark.skipif(shutil.which("faketime") is None, reason="faketime is not installed")


def later(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI three days from now (libfaketime; monotonic clocks left alone so timeouts and asyncio behave)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    env.pop("NOTATION_CONFIG", None)
    command = ["faketime", "-f", f"+{LATER.days}d", sys.executable, "-m", "dct2notation", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, tsa_server: TestTSA, registry: Registry) -> Path:
    work = tmp_path_factory.mktemp("tsa-estate")
    tsa_server.reset()
    at, guns = EXPECTED["evaluate_at"], EXPECTED["guns"]
    prefix = f"tsa-{uuid.uuid4().hex[:8]}"
    push_demo_images(registry.host, prefix)
    rmap = f"registry.demo.local={registry.host}/{prefix}"
    (work / "env.json").write_text(json.dumps({"registry": registry.host, "map": rmap}))
    assert main(["archive", *guns, "--trust-dir", str(DEMO / "trust"), "--at", at, "-o", str(work / "archive")]) == 0
    inventory = build_inventory(guns, ArchiveSource(work / "archive"), FixedClock(parse_rfc3339(at)), DEFAULT_LIMITS)
    (work / "inventory.json").write_text(json.dumps(inventory.to_dict()))
    config = work / "notation"
    # Valid from an hour ago: a timestamp's genTime ± accuracy must lie inside the certificate's validity.
    an_hour_ago = FixedClock(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    generate_test_key("short", config, key_type="ec-p256", days=1, clock=an_hour_ago)
    options = RegistryOptions(insecure_registries=frozenset({registry.host}))
    plan = make_plan(work / "inventory.json", lambda gun, role: "short", registry_map=[rmap], registry_options=options)
    plan.save(work / "plan.json")
    sign = ["sign", str(work / "plan.json"), "--inventory", str(work / "inventory.json"),
            "--insecure-registry", registry.host, "--journal", str(work / "j.db"),
            "--config-dir", str(config), "--timestamp-url", tsa_server.url,
            "--timestamp-root-cert", str(tsa_server.pki.root_pem)]  # fmt: skip
    assert main(sign) == 0
    (work / "signers.toml").write_text('[[signer]]\ngun = "registry.demo.local/*"\nkey = "short"\n')
    emit = ["policy", str(work / "inventory.json"), "--signers", str(work / "signers.toml"),
            "--config-dir", str(config), "--registry-map", rmap]  # fmt: skip
    assert main([*emit, "-o", str(work / "policy"), "--journal", str(work / "j.db")]) == 0
    assert main([*emit, "-o", str(work / "policy-no-tsa")]) == 0  # what HEAD emitted
    return work


def test_journal_records_the_tsa_root_and_policy_writes_the_tsa_store(signed: Path, tsa_server: TestTSA) -> None:
    root_pem = tsa_server.pki.root_pem.read_text()
    assert read_tsa_roots(signed / "j.db") == root_pem
    policy = json.loads((signed / "policy" / "trustpolicy.json").read_text())
    (statement,) = policy["trustPolicies"]
    (tsa_store,) = [s for s in statement["trustStores"] if s.startswith("tsa:")]
    assert statement["signatureVerification"] == {"level": "strict", "verifyTimestamp": "afterCertExpiry"}
    name = tsa_store.removeprefix("tsa:")
    assert (signed / "policy" / "truststore" / "x509" / "tsa" / name / f"{name}.pem").read_text() == root_pem
    # Naming the root directly gives the same policy and store as reading it from the journal.
    rmap = json.loads((signed / "env.json").read_text())["map"]
    emit = ["policy", str(signed / "inventory.json"), "--signers", str(signed / "signers.toml"), "--config-dir",
            str(signed / "notation"), "--registry-map", rmap]  # fmt: skip
    direct = signed / "policy-direct"
    assert main([*emit, "-o", str(direct), "--timestamp-root-cert", str(tsa_server.pki.root_pem)]) == 0
    for same in ("trustpolicy.json", f"truststore/x509/tsa/{name}/{name}.pem"):
        assert (direct / same).read_bytes() == (signed / "policy" / same).read_bytes()
    plain = json.loads((signed / "policy-no-tsa" / "trustpolicy.json").read_text())
    assert [s for s in plain["trustPolicies"][0]["trustStores"] if s.startswith("tsa:")] == []


def test_timestamped_signatures_outlive_their_one_day_certificate(
    signed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leaf = x509.load_pem_x509_certificate((signed / "notation" / "localkeys" / "short.crt").read_bytes())
    three_days = dt.datetime.now(dt.UTC) + LATER
    assert leaf.not_valid_after_utc < three_days  # the certificate has expired by then
    job = json.loads((signed / "plan.json").read_text())["jobs"][0]
    ref = f"{job['repository']}@{job['digest']}"
    env = json.loads((signed / "env.json").read_text())
    remote = ["--insecure-registry", env["registry"]]

    def verify(policy: str) -> subprocess.CompletedProcess[str]:
        root = signed / policy
        return later("verify", ref, "--policy", str(root / "trustpolicy.json"), "--truststore",
                     str(root / "truststore"), *remote)  # fmt: skip

    ok = verify("policy")
    assert ok.returncode == 0, ok.stderr
    # Notation's success line, then (as notation verify) the user metadata the migration signed.
    assert ok.stdout.startswith(f"Successfully verified signature for {ref}\n\nThe artifact was signed with the ")
    refused = verify("policy-no-tsa")
    assert refused.returncode == 1
    assert "expired" in refused.stderr

    at = (three_days + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for policy, code in (("policy", 0), ("policy-no-tsa", 1)):
        root = signed / policy
        check = ["check", "--inventory", str(signed / "inventory.json"), "--policy", str(root / "trustpolicy.json"),
                 "--truststore", str(root / "truststore"), *remote, "--registry-map", env["map"], "--at", at,
                 "--json", "--no-table"]  # fmt: skip
        capsys.readouterr()
        assert main(check) == code, capsys.readouterr().err
        result = json.loads(capsys.readouterr().out)
        assert result["summary"]["total"] == 7 and result["summary"]["unmet"] == (0 if code == 0 else 7)
        (signed / f"check-{policy}.json").write_text(json.dumps(result))

    for policy, verdict in (("policy", "ready"), ("policy-no-tsa", "not ready")):
        bundle = signed / f"bundle-{policy}"
        done = later("signoff", "--archive", str(signed / "archive"), "--inventory", str(signed / "inventory.json"),
                     "--plan", str(signed / "plan.json"), "--journal", str(signed / "j.db"),
                     "--policy-dir", str(signed / policy), *remote,
                     "--check-json", str(signed / "check-policy.json"), "-o", str(bundle))  # fmt: skip
        assert done.returncode == (0 if verdict == "ready" else 1), done.stderr
        assert json.loads((bundle / "SIGNOFF.json").read_text())["verdict"] == verdict
    again = later("signoff", "verify", str(signed / "bundle-policy"))
    assert again.returncode == 0, again.stderr
    assert "ready" in again.stdout.splitlines()


def test_policy_journal_refusals_are_one_line_and_never_create_a_journal(tmp_path: Path) -> None:
    from dct2notation.errors import ConfigError, InputError
    from dct2notation.migrate.journal import Journal
    from dct2notation.migrate.policy import journal_tsa_roots

    with pytest.raises(InputError, match=r"--journal .*absent.db: no such journal"):
        journal_tsa_roots([tmp_path / "absent.db"])
    assert not (tmp_path / "absent.db").exists()
    (tmp_path / "text.db").write_text("not sqlite at all, " * 100)
    with pytest.raises(InputError, match=r"--journal .*text.db: not a usable journal"):
        journal_tsa_roots([tmp_path / "text.db"])
    book = Journal(tmp_path / "plain.db")
    book.bind_plan("m-1")
    book.close()
    with pytest.raises(ConfigError, match=r"plain.db: its signatures were not timestamped \(no TSA root recorded\)"):
        journal_tsa_roots([tmp_path / "plain.db"])
    # Two runs under two TSAs: both roots kept, each once.
    from tests.support.plugin_pki import make_chain

    first, second = (make_chain().chain[-1].public_bytes(Encoding.PEM).decode() for _ in range(2))
    book = Journal(tmp_path / "plain.db")
    for pem in (first, second, first):
        book.record_tsa_roots(pem)
    book.close()
    assert read_tsa_roots(tmp_path / "plain.db") == first + second
    assert len(journal_tsa_roots([tmp_path / "plain.db"])) == 2


def test_attack_journal_records_a_leaf_as_tsa_root(tmp_path: Path) -> None:
    """A journal edited to name a TSA leaf (or garbage) as the root is refused: policy never writes it to a store."""
    import sqlite3

    from dct2notation.errors import ConfigError
    from dct2notation.migrate.journal import Journal
    from dct2notation.migrate.policy import journal_tsa_roots
    from tests.support.plugin_pki import make_chain

    path = tmp_path / "j.db"
    Journal(path).close()
    leaf = make_chain().chain[0].public_bytes(Encoding.PEM).decode()
    for value, message in ((leaf, "is not a root"), ("-----BEGIN CERTIFICATE-----\nAAAA\n", "not PEM certificates")):
        with sqlite3.connect(path) as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('tsa_roots', ?)", (value,))
        before = path.read_bytes()
        with pytest.raises(ConfigError, match=message):
            journal_tsa_roots([path])
        assert path.read_bytes() == before  # read-only: nothing written to a journal it only reads
