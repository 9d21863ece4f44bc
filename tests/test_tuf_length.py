"""One rule for a TUF length that differs from the registry's size (docs/check.md), in plan, check and signoff (#15).

`plan` kept the job and `check` said ok, while `signoff` said "not covered" and nothing could make it covered.
Real notary-server (the real notary client records the wrong length) and a real docker-registry.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from dct2notation.cli import main
from dct2notation.keys.testcert import generate_test_key
from dct2notation.oci import EMPTY_JSON, OCI_MANIFEST, sha256_digest
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.options import RegistryOptions
from tests.support.images import image_manifest
from tests.support.servers import NotaryServer, Registry

pytestmark = pytest.mark.servers


def test_a_wrong_tuf_length_is_one_verdict_everywhere(
    notary_server: NotaryServer, registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unique = uuid.uuid4().hex[:8]
    gun, repo = f"example.com/tufsize/{unique}/app", f"tufsize/{unique}/app"
    host = registry.host
    with RegistryClient(host, RegistryOptions(insecure_registries=frozenset({host}))) as client:
        client.push_blob(repo, EMPTY_JSON)
        raw = image_manifest(f"tuf-length-{unique}")
        client.put_manifest(repo, "v1", raw, OCI_MANIFEST)
    digest = sha256_digest(raw)
    notary = notary_server.client(tmp_path / "trust")
    notary.init(gun)
    notary.addhash(gun, "v1", len(raw) + 7, digest.removeprefix("sha256:"))  # the length DCT recorded is wrong
    notary.publish(gun)

    w = tmp_path
    config = w / "notation"
    generate_test_key("k", config, key_type="ec-p256", make_default=True)
    (w / "signers.toml").write_text(f'[[signer]]\ngun = "example.com/*"\nrole = "*"\nkey = "k"\n'
                                    f'cert_file = "{config / "localkeys" / "k.crt"}"\n')  # fmt: skip
    rmap = ["--registry-map", f"example.com/tufsize/{unique}={host}/tufsize/{unique}"]
    plain = ["--insecure-registry", host]
    assert main(["archive", gun, "--server", notary_server.url, "-o", str(w / "archive")]) == 0
    assert main(["inventory", gun, "--archive", str(w / "archive"), "--json"]) == 0
    (w / "inventory.json").write_text(capsys.readouterr().out)
    assert main(["plan", str(w / "inventory.json"), "--signers", str(w / "signers.toml"), *rmap, *plain,
                 "--config-dir", str(config), "-o", str(w / "plan.json")]) == 0  # fmt: skip
    plan = json.loads((w / "plan.json").read_text())
    assert [f["kind"] for f in plan["findings"]] == ["size-mismatch"]
    assert len(plan["jobs"]) == 1  # the job is kept: the digest is what DCT trusts
    assert main(["sign", str(w / "plan.json"), "--inventory", str(w / "inventory.json"), "--config-dir", str(config),
                 "--journal", str(w / "j.db"), *plain]) == 0  # fmt: skip
    assert main(["policy", str(w / "inventory.json"), "--signers", str(w / "signers.toml"), *rmap,
                 "-o", str(w / "policy")]) == 0  # fmt: skip
    capsys.readouterr()
    code = main(["check", "--inventory", str(w / "inventory.json"), "--policy", str(w / "policy" / "trustpolicy.json"),
                 "--truststore", str(w / "policy" / "truststore"), *rmap, *plain, "--json", "--no-table"])  # fmt: skip
    check = capsys.readouterr().out
    assert code == 0
    assert [t["status"] for t in json.loads(check)["tags"]] == ["ok"]
    (w / "check.json").write_text(check)
    code = main(["signoff", "--archive", str(w / "archive"), "--inventory", str(w / "inventory.json"), "--plan",
                 str(w / "plan.json"), "--journal", str(w / "j.db"), "--policy-dir", str(w / "policy"),
                 "--check-json", str(w / "check.json"), *plain, "-o", str(w / "bundle")])  # fmt: skip
    out, err = capsys.readouterr()
    assert (code, out) == (0, "ready\n"), err
    coverage = json.loads((w / "bundle" / "SIGNOFF.json").read_text())["coverage"]
    assert [(c["covered"], c["reason"]) for c in coverage] == [
        (True, f"verified (TUF length {len(raw) + 7} differs from the registry's size {len(raw)}; "
               "the digest is what DCT trusts)")  # fmt: skip
    ]
    assert main(["signoff", "verify", str(w / "bundle")]) == 0
