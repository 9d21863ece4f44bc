"""Envelopes signed / verified per second per key type, against raw ``cryptography`` sign / verify in the same run.

    python bench/sign_verify.py [--seconds 1.0]

"raw" signs or verifies the same ToBeSigned bytes with cryptography directly (ECDSA in DER, RSA-PSS), which is the
floor any COSE layer adds to. "envelope sign" is ``sign_envelope`` (payload, headers, chain check, encoding);
"envelope verify" is ``verify_envelope`` under a strict policy with a trust store (parse, crit, signature, chain,
authenticity, identities, validity).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

from dct2notation.config import FixedClock  # noqa: E402
from dct2notation.keys.local import LocalKey  # noqa: E402
from dct2notation.keys.testcert import generate_private_key, make_test_certificate  # noqa: E402
from dct2notation.notation.envelope import parse_envelope, sign_envelope  # noqa: E402
from dct2notation.notation.policy import TrustPolicyDocument  # noqa: E402
from dct2notation.notation.truststore import TrustStore  # noqa: E402
from dct2notation.notation.verify import verify_envelope  # noqa: E402
from dct2notation.oci import OCI_MANIFEST, Descriptor  # noqa: E402

KEY_TYPES = ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"]
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TARGET = Descriptor(OCI_MANIFEST, "sha256:" + "ab" * 32, 1234)


def rate(fn: Callable[[], object], seconds: float) -> float:
    fn()  # warm-up
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        count += 1
    return count / elapsed


def bench(key_type: str, seconds: float, store_root: Path) -> dict[str, float]:
    key = generate_private_key(key_type)
    cert = make_test_certificate(f"bench-{key_type}", key, now=NOW - dt.timedelta(hours=1), days=30)
    store_dir = store_root / "x509" / "ca" / key_type
    store_dir.mkdir(parents=True)
    (store_dir / "cert.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    signing_key = LocalKey(key_type, key, [cert])
    clock = FixedClock(NOW)
    signed = sign_envelope(TARGET, signing_key, clock=clock)
    tbs = parse_envelope(signed.raw).to_be_signed()
    if isinstance(key, rsa.RSAPrivateKey):
        digest = {2048: hashes.SHA256(), 3072: hashes.SHA384()}[key.key_size]
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        raw_sig = key.sign(tbs, pss, digest)
        pub_rsa = key.public_key()

        def raw_sign() -> object:
            return key.sign(tbs, pss, digest)

        def raw_verify() -> object:
            pub_rsa.verify(raw_sig, tbs, pss, digest)
            return None
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        ec_digest: hashes.HashAlgorithm = hashes.SHA256() if key.curve.key_size == 256 else hashes.SHA384()
        raw_sig = key.sign(tbs, ec.ECDSA(ec_digest))
        pub_ec = key.public_key()

        def raw_sign() -> object:
            return key.sign(tbs, ec.ECDSA(ec_digest))

        def raw_verify() -> object:
            pub_ec.verify(raw_sig, tbs, ec.ECDSA(ec_digest))
            return None

    policy = TrustPolicyDocument.from_dict(
        {
            "version": "1.0",
            "trustPolicies": [
                {
                    "name": "bench",
                    "registryScopes": ["*"],
                    "signatureVerification": {"level": "strict"},
                    "trustStores": [f"ca:{key_type}"],
                    "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Notary"],
                }
            ],
        }
    )
    store = TrustStore(store_root)
    ref = "bench.example/app@" + TARGET.digest

    def env_verify() -> object:
        result = verify_envelope(
            signed.raw, subject=TARGET, reference=ref, policy=policy, truststore=store, clock=clock
        )
        assert result.ok, result.reason
        return result

    return {
        "raw_sign": rate(raw_sign, seconds),
        "env_sign": rate(lambda: sign_envelope(TARGET, signing_key, clock=clock), seconds),
        "raw_verify": rate(raw_verify, seconds),
        "env_verify": rate(env_verify, seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()
    print(
        f"{'key type':<10} {'raw sign/s':>11} {'env sign/s':>11} {'ratio':>6}"
        f" {'raw verify/s':>13} {'env verify/s':>13} {'ratio':>6}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for key_type in KEY_TYPES:
            r = bench(key_type, args.seconds, Path(tmp))
            print(
                f"{key_type:<10} {r['raw_sign']:>11.0f} {r['env_sign']:>11.0f} {r['env_sign'] / r['raw_sign']:>6.2f}"
                f" {r['raw_verify']:>13.0f} {r['env_verify']:>13.0f} {r['env_verify'] / r['raw_verify']:>6.2f}"
            )


if __name__ == "__main__":
    main()
