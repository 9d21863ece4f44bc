"""Timestamped envelopes end to end: sign_envelope + a real TSA → our verifier, openssl, and the sign CLI."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from dct2notation.cli import main
from dct2notation.config import DEFAULT_LIMITS, FixedClock, SystemClock
from dct2notation.keys.local import LocalKey
from dct2notation.keys.testcert import generate_test_key
from dct2notation.notation.envelope import TIMESTAMP_SIGNATURE, sign_envelope
from dct2notation.notation.policy import TrustPolicyDocument
from dct2notation.notation.timestamp import HttpTimestamper
from dct2notation.notation.truststore import TrustStore
from dct2notation.notation.verify import VerificationResult, verify_envelope
from dct2notation.oci import OCI_MANIFEST, Descriptor
from tests.support.images import layout_with_image
from tests.support.plugin_pki import Chain, make_chain, trust
from tests.support.tsa import TestTSA, openssl_verify

# Quick retries; the default per-read timeout, since no test here hangs the TSA (a 1 s one turned a slow
# `openssl ts -reply` on a loaded machine into a retry and an extra request).
FAST = dataclasses.replace(DEFAULT_LIMITS, retry_attempts=2, retry_max_wait_seconds=0.05)
TARGET = Descriptor(OCI_MANIFEST, "sha256:" + "cd" * 32, 4321)
REF = "registry.example/team/app@" + TARGET.digest

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


def strict_policy(*stores: str) -> TrustPolicyDocument:
    statement = {
        "name": "strict",
        "registryScopes": ["*"],
        "signatureVerification": {"level": "strict"},
        "trustStores": list(stores),
        "trustedIdentities": ["*"],
    }
    return TrustPolicyDocument.from_dict({"version": "1.0", "trustPolicies": [statement]})


def verify(
    raw: bytes, chain: Chain, tsa: TestTSA, tmp_path: Path, at: dt.datetime, *, with_tsa: bool = True
) -> VerificationResult:
    trust(tmp_path, "ca1", chain.root)
    root = trust(tmp_path, "tsa1", tsa.pki.root, kind="tsa")
    stores = ["ca:ca1", "tsa:tsa1"] if with_tsa else ["ca:ca1"]
    return verify_envelope(
        raw,
        subject=TARGET,
        reference=REF,
        policy=strict_policy(*stores),
        truststore=TrustStore(root),
        clock=FixedClock(at),
    )


def check(result: VerificationResult, name: str) -> tuple[bool | None, str]:
    found = next(c for c in result.checks if c.name == name)
    return found.ok, found.reason


def test_timestamped_envelope_verifies_here_and_with_openssl(tsa: TestTSA, tmp_path: Path) -> None:
    chain = make_chain("rsa-3072")  # PS384: the imprint uses SHA-384, the COSE alg's hash
    key = LocalKey("signer", chain.leaf_key, chain.chain)
    with HttpTimestamper(tsa.url, tsa.pki.root_pem, limits=FAST) as stamper:
        signed = sign_envelope(TARGET, key, clock=SystemClock(), timestamper=stamper)
    _protected, unprotected, _payload, signature = cbor2.loads(signed.raw).value
    token = unprotected[TIMESTAMP_SIGNATURE]
    checked = openssl_verify(token, signature, tsa.pki.root_pem, tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert b"\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x02" in tsa.requests[0]  # id-sha384 in the request
    result = verify(signed.raw, chain, tsa, tmp_path, dt.datetime.now(dt.UTC))
    assert result.ok, result.reason
    ok, reason = check(result, "authenticTimestamp")
    assert ok is True
    assert reason.endswith("verified against the tsa trust store")


def test_short_lived_certificate_outlived_by_its_timestamp(tsa: TestTSA, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    chain = make_chain(not_before=now - dt.timedelta(seconds=3), not_after=now + dt.timedelta(seconds=6))
    key = LocalKey("brief", chain.leaf_key, chain.chain)
    with HttpTimestamper(tsa.url, tsa.pki.root_pem, limits=FAST) as stamper:
        stamped = sign_envelope(TARGET, key, clock=SystemClock(), timestamper=stamper)
    plain = sign_envelope(TARGET, key, clock=SystemClock())
    later = now + dt.timedelta(hours=1)  # the leaf expired 59 minutes ago

    result = verify(stamped.raw, chain, tsa, tmp_path, later)
    assert result.ok, result.reason
    assert check(result, "authenticTimestamp")[0] is True

    result = verify(plain.raw, chain, tsa, tmp_path, later)
    assert not result.ok
    assert result.failed_check == "authenticTimestamp"
    assert result.reason == "a tsa trust store is configured but the signature has no timestamp countersignature"

    result = verify(plain.raw, chain, tsa, tmp_path, later, with_tsa=False)
    assert not result.ok
    assert result.failed_check == "authenticTimestamp"
    assert "is after certificate" in result.reason and "expired" in result.reason

    # Before expiry the untimestamped signature is fine: the failure above is the expiry, nothing else.
    assert verify(plain.raw, chain, tsa, tmp_path, now, with_tsa=False).ok


def test_timestamp_from_another_tsa_fails_authentic_timestamp(tsa: TestTSA, tmp_path: Path) -> None:
    chain = make_chain()
    key = LocalKey("signer", chain.leaf_key, chain.chain)
    # Signed with the rogue TSA's own root as the trusted one, then verified against our tsa store.
    with HttpTimestamper(tsa.url, tsa.rogue.root, limits=FAST) as stamper:
        tsa.mode = "rogue"
        signed = sign_envelope(TARGET, key, clock=SystemClock(), timestamper=stamper)
    result = verify(signed.raw, chain, tsa, tmp_path, dt.datetime.now(dt.UTC))
    assert not result.ok
    assert result.failed_check == "authenticTimestamp"
    assert result.reason.startswith(
        "timestamp countersignature does not verify: timestamp token does not verify against the TSA root"
    )


# --- the sign CLI: a wrong TSA answer means nothing is pushed, one line, exit 1 -------------------------------------
@pytest.fixture
def layout_target(tmp_path: Path) -> tuple[Path, str]:
    layout, digest = layout_with_image(tmp_path)
    return layout, f"app@{digest}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("bad-imprint", "message imprint"),
        ("wrong-nonce", "nonce"),
        ("rogue", "does not verify against the TSA root"),
        ("http500", "HTTP 500 (gave up after 5 attempts)"),
    ],
)
def test_cli_sign_refuses_wrong_tsa_answer(
    capsys: pytest.CaptureFixture[str],
    tsa: TestTSA,
    tmp_path: Path,
    layout_target: tuple[Path, str],
    mode: str,
    message: str,
) -> None:
    config = tmp_path / "notation"
    generate_test_key("tester", config, key_type="ec-p256", make_default=True)
    layout, ref = layout_target
    tsa.mode = mode
    code, out, err = run(
        capsys, "sign", ref, "--key", "tester", "--config-dir", str(config), "--oci-layout", str(layout),
        "--timestamp-url", tsa.url, "--timestamp-root-cert", str(tsa.pki.root_pem),
    )  # fmt: skip
    assert code == 1
    assert out == ""
    assert err.startswith(f"dct2notation: error: TSA {tsa.url}")
    assert message in err
    assert err.count("\n") == 1
    code, out, err = run(capsys, "ls", ref, "--json", "--oci-layout", str(layout))
    assert code == 0, err
    assert json.loads(out)["signatures"] == []


def test_cli_sign_with_timestamp_then_verify(
    capsys: pytest.CaptureFixture[str], tsa: TestTSA, tmp_path: Path, layout_target: tuple[Path, str]
) -> None:
    config = tmp_path / "notation"
    # A test certificate starts at its creation second; a timestamp taken in that same second would have genTime - 1s
    # before notBefore, which Notation's authenticTimestamp rule refuses. Back-date it as if made a minute ago.
    minute_ago = FixedClock(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    generate_test_key("tester", config, key_type="ec-p256", make_default=True, clock=minute_ago)
    layout, ref = layout_target
    code, out, err = run(
        capsys, "sign", ref, "--key", "tester", "--config-dir", str(config), "--oci-layout", str(layout),
        "--timestamp-url", tsa.url, "--timestamp-root-cert", str(tsa.pki.root_pem),
    )  # fmt: skip
    assert code == 0, err
    assert len(tsa.requests) == 1
    tsa_dir = config / "truststore" / "x509" / "tsa" / "tsa1"
    tsa_dir.mkdir(parents=True)
    (tsa_dir / "root.pem").write_bytes(tsa.pki.root.public_bytes(Encoding.PEM))
    policy = tmp_path / "trustpolicy.json"
    policy.write_text(
        json.dumps(
            {
                "version": "1.0",
                "trustPolicies": [
                    {
                        "name": "all",
                        "registryScopes": ["*"],
                        "signatureVerification": {"level": "strict"},
                        "trustStores": ["ca:tester", "tsa:tsa1"],
                        "trustedIdentities": ["*"],
                    }
                ],
            }
        )
    )
    code, out, err = run(
        capsys, "verify", ref, "--policy", str(policy), "--truststore", str(config / "truststore"), "--json",
        "--oci-layout", str(layout),
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["verified"] is True
