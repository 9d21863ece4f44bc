"""``ratify verify`` (the real Ratify v1.4.4 CLI) judges our signatures with the trust policy `policy` emitted.

The CLI reads a config file, not the CRDs: the emitted Verifier's ``trustPolicyDoc`` goes in unchanged, while its
``verificationCertStores`` (names of KeyManagementProvider objects, which only the controller resolves) become
``verificationCerts``, the emitted trust-store files. Ratify then accepts the image `dct2notation sign` signed in the
loopback docker-registry and refuses one signed by a key of the same subject under another root, which the trusted
identity alone would not tell apart. Opt-in build: ``DCT2NOTATION_PEERS_SLOW=1 scripts/peers.sh``.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from dct2notation.cli import main
from dct2notation.config import FixedClock
from dct2notation.keys.testcert import generate_test_key
from tests.support.admission_estate import emit_policy, push_image
from tests.support.peers import peers_root
from tests.support.servers import Registry
from tests.support.tsa import TestTSA

VERSION = "v1.4.4"


@pytest.fixture(scope="module")
def ratify() -> Path:
    binary = peers_root() / f"ratify-{VERSION}" / "ratify"
    if binary.is_file():
        return binary
    pytest.skip(f"ratify {VERSION} not built: run DCT2NOTATION_PEERS_SLOW=1 scripts/peers.sh (an 11-minute cold build)")


def cli_config(out: Path) -> dict[str, Any]:
    (verifier,) = yaml.safe_load_all((out / "ratify" / "verifier.yaml").read_text())
    (policy,) = yaml.safe_load_all((out / "ratify" / "policy.yaml").read_text())
    plugin = {k: v for k, v in verifier["spec"]["parameters"].items() if k != "verificationCertStores"}
    stores = sorted(str(p) for p in (out / "truststore" / "x509").glob("*/*"))
    return {
        "store": {"version": "1.0.0", "plugins": [{"name": "oras", "useHttp": True}]},
        "policy": {"version": "1.0.0", "plugin": {"name": "configPolicy", **policy["spec"]["parameters"]}},
        "verifier": {
            "version": "1.0.0",
            "plugins": [
                {
                    "name": verifier["spec"]["type"],
                    "artifactTypes": verifier["spec"]["artifactTypes"],
                    "verificationCerts": stores,
                    **plugin,
                }
            ],  # fmt: skip
        },
    }


def ratify_config(tmp_path: Path, out: Path, name: str = "ratify.json") -> Path:
    """The `ratify verify` config file over the policy folder ``out`` (cli_config), written as ``name``."""
    config_file = tmp_path / name
    config_file.write_text(json.dumps(cli_config(out)))
    return config_file


def ratify_verify(ratify: Path, subject: str, config_file: Path, home: Path) -> dict[str, Any]:
    """`ratify verify -s subject`: its JSON verdict (printed after any log lines)."""
    done = subprocess.run(
        [str(ratify), "verify", "-s", subject, "-c", str(config_file)],
        capture_output=True, text=True, timeout=300, env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    start = done.stdout.find("{")
    assert start >= 0, done.stdout + done.stderr
    verdict: dict[str, Any] = json.loads(done.stdout[start:])
    return verdict


def test_ratify_verify_accepts_what_we_signed_under_the_emitted_trust_policy(
    ratify: Path, registry: Registry, tmp_path: Path
) -> None:
    repo = f"ratify-{uuid.uuid4().hex[:8]}/app"
    gun = f"{registry.host}/{repo}"
    signed, unsigned, strange = (push_image(registry.host, repo, tag) for tag in ("v1", "v2", "v3"))
    config, stranger = tmp_path / "notation", tmp_path / "stranger"
    for keys, digest in ((config, signed), (stranger, strange)):
        generate_test_key("signer", keys, key_type="ec-p256", days=2)
        sign = ["sign", f"{gun}@{digest}", "--key", "signer", "--config-dir", str(keys),
                "--insecure-registry", registry.host]  # fmt: skip
        assert main(sign) == 0
    config_file = ratify_config(tmp_path, emit_policy(tmp_path, gun, signed, "signer", config, tmp_path / "out"))
    verdicts = {}
    for label, digest in (("signed", signed), ("unsigned", unsigned), ("stranger", strange)):
        verdicts[label] = ratify_verify(ratify, f"{gun}@{digest}", config_file, tmp_path)
    assert verdicts["signed"]["isSuccess"] is True, verdicts["signed"]
    (report,) = verdicts["signed"]["verifierReports"]
    assert report["isSuccess"] is True and report["message"] == "Notation signature verification success"
    for label in ("unsigned", "stranger"):
        assert verdicts[label].get("isSuccess", False) is False, verdicts[label]  # Ratify omits a false isSuccess
    (report,) = verdicts["stranger"]["verifierReports"]
    assert report["errorReason"] == "the signature's certificate chain does not contain any trusted certificate"


def test_ratify_verify_keeps_a_timestamped_signature_after_its_certificate_expired(
    ratify: Path, registry: Registry, tsa: TestTSA, tmp_path: Path
) -> None:
    """The emitted statement (tsa store, verifyTimestamp afterCertExpiry) admits it; the same without the tsa store
    (what HEAD emitted) does not."""
    repo = f"ratify-tsa-{uuid.uuid4().hex[:8]}/app"
    gun = f"{registry.host}/{repo}"
    digest = push_image(registry.host, repo, "v1")
    config = tmp_path / "notation"
    lifetime = dt.timedelta(seconds=20)
    start = FixedClock(dt.datetime.now(dt.UTC) - dt.timedelta(days=1) + lifetime)
    generate_test_key("short", config, key_type="ec-p256", days=1, clock=start)
    cert = x509.load_pem_x509_certificate((config / "localkeys" / "short.crt").read_bytes())
    sign = ["sign", f"{gun}@{digest}", "--key", "short", "--config-dir", str(config),
            "--insecure-registry", registry.host, "--timestamp-url", tsa.url,
            "--timestamp-root-cert", str(tsa.pki.root_pem)]  # fmt: skip
    assert main(sign) == 0
    tsa_root = str(tsa.pki.root_pem)
    emit_policy(tmp_path, gun, digest, "short", config, tmp_path / "out", "--timestamp-root-cert", tsa_root)
    emit_policy(tmp_path, gun, digest, "short", config, tmp_path / "no-tsa")
    wait = (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).total_seconds() + 2
    assert 0 < wait < 30
    time.sleep(wait)  # the signing certificate has now expired
    verdicts = {}
    for label in ("out", "no-tsa"):
        config_file = ratify_config(tmp_path, tmp_path / label, f"{label}.json")
        verdicts[label] = ratify_verify(ratify, f"{gun}@{digest}", config_file, tmp_path)
    assert verdicts["out"].get("isSuccess") is True, verdicts["out"]
    assert verdicts["no-tsa"].get("isSuccess", False) is False, verdicts["no-tsa"]
    (report,) = verdicts["no-tsa"]["verifierReports"]
    assert "expired" in report["errorReason"]


def signed_by_localhost(registry: Registry, tmp_path: Path, prefix: str) -> tuple[str, str, str, Path]:
    """An image pushed to a fresh repository and signed (key ``signer``) as ``localhost:PORT/…``, the host name
    whose case the spelling tests change: (host, repository, digest, Notation config)."""
    repo = f"{prefix}-{uuid.uuid4().hex[:8]}/app"
    host = f"localhost:{registry.port}"
    signed = push_image(registry.host, repo, "v1")
    config = tmp_path / "notation"
    generate_test_key("signer", config, key_type="ec-p256", days=2)
    assert main(["sign", f"{host}/{repo}@{signed}", "--key", "signer", "--config-dir", str(config),
                 "--insecure-registry", host]) == 0  # fmt: skip
    return host, repo, signed, config


def test_ratify_verify_fails_closed_for_a_spelling_the_trust_policy_does_not_name(
    ratify: Path, registry: Registry, tmp_path: Path
) -> None:
    """Ratify looks the subject up in the trust policy's registryScopes exactly (host case kept, after distribution's
    docker.io qualification): a migrated image signed by us but named with its host in upper case finds no statement
    and is refused, never passed unchecked. The Gatekeeper template therefore asks about the reference it qualified
    (host in lower case, tests/test_gatekeeper_rego.py), which verifies."""
    host, repo, signed, config = signed_by_localhost(registry, tmp_path, "ratify-case")
    out = emit_policy(tmp_path, f"{host}/{repo}", signed, "signer", config, tmp_path / "out")
    config_file = ratify_config(tmp_path, out)
    verdicts = {}
    for subject in (f"{host}/{repo}@{signed}", f"LOCALHOST:{registry.port}/{repo}@{signed}"):
        verdicts[subject.split("/")[0]] = ratify_verify(ratify, subject, config_file, tmp_path)
    assert verdicts[host]["isSuccess"] is True, verdicts[host]
    upper = verdicts[f"LOCALHOST:{registry.port}"]
    assert upper.get("isSuccess", False) is False, upper
    (report,) = upper["verifierReports"]
    assert "has no applicable trust policy statement" in json.dumps(report), report


def test_ratify_verifies_what_gatekeeper_asks_about_when_the_gun_is_spelled_otherwise(
    ratify: Path, registry: Registry, tmp_path: Path
) -> None:
    """A GUN written with its host in upper case (`LOCALHOST:PORT/…`): the Gatekeeper template asks Ratify about the
    qualified reference (`localhost:PORT/…`), which the Verifier's trust policy now names too. Old HEAD carried only
    the scope as written, so Ratify found no statement and refused the image we signed."""
    host, repo, signed, config = signed_by_localhost(registry, tmp_path, "ratify-gun")
    gun = f"LOCALHOST:{registry.port}/{repo}"
    config_file = ratify_config(tmp_path, emit_policy(tmp_path, gun, signed, "signer", config, tmp_path / "out"))
    verdict = ratify_verify(ratify, f"{host}/{repo}@{signed}", config_file, tmp_path)
    assert verdict["isSuccess"] is True, verdict
