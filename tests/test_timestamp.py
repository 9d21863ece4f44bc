"""RFC 3161 timestamps against a real TSA (``openssl ts -reply`` on loopback) and the real GlobalSign token."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import shutil
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from dct2notation.config import DEFAULT_LIMITS, FixedClock
from dct2notation.errors import InputError, TimestampError, UsageError
from dct2notation.notation.timestamp import HttpTimestamper, TimestampInfo, load_tsa_roots, verify_timestamp_token
from tests.support.plugin_pki import make_chain
from tests.support.servers import free_port
from tests.support.tsa import TestTSA, openssl_verify

# Quick retries. The per-read timeout stays the default except where the TSA hangs on purpose: a 0.5 s one for
# every test turned a slow `openssl ts -reply` on a loaded machine into a retry (attempts 2, two requests).
FAST = dataclasses.replace(DEFAULT_LIMITS, retry_attempts=2, retry_max_wait_seconds=0.05)
HANG_TIMEOUT = dataclasses.replace(FAST, http_timeout_seconds=0.5)
GLOBALSIGN_GEN_TIME = dt.datetime(2024, 6, 18, 6, 27, 16, tzinfo=dt.UTC)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


def cose_signature() -> bytes:
    """A raw ES256 signature (r‖s), the bytes a COSE envelope carries and the TSA countersigns."""
    key = ec.generate_private_key(ec.SECP256R1())
    r, s = decode_dss_signature(key.sign(b"to be signed", ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


SIGNING_CHAIN = make_chain().chain


@pytest.mark.parametrize("hash_name", ["SHA-256", "SHA-384", "SHA-512"])
def test_token_verifies_with_openssl_and_ours(tsa: TestTSA, tmp_path: Path, hash_name: str) -> None:
    signature = cose_signature()
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with HttpTimestamper(tsa.url, tsa.pki.root_pem, limits=FAST) as stamper:
        token = stamper.timestamp(signature, hash_algorithm=hash_name, signing_chain=SIGNING_CHAIN)
        assert (stamper.calls, stamper.attempts) == (1, 1)
        assert stamper.seconds > 0
    after = dt.datetime.now(dt.UTC)
    checked = openssl_verify(token, signature, tsa.pki.root_pem, tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == "Verification: OK"
    # OpenSSL rejects the same token over other bytes: the imprint really is over the raw signature.
    wrong = openssl_verify(token, signature + b"x", tsa.pki.root_pem, tmp_path)
    assert wrong.returncode == 1
    info = verify_timestamp_token(token, signature, [tsa.pki.root], hash_name)
    assert before <= info.gen_time <= after
    assert info == TimestampInfo(
        info.gen_time, info.gen_time - dt.timedelta(seconds=1), info.gen_time + dt.timedelta(seconds=1)
    )
    # The request the TSA saw: our imprint algorithm over the signature, certReq set.
    assert len(tsa.requests) == 1
    assert hashlib.new(hash_name.replace("-", "").lower(), signature).digest() in tsa.requests[0]
    assert tsa.requests[0].endswith(b"\x01\x01\xff")


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("bad-imprint", "message imprint"),
        ("wrong-nonce", "differs from the request's nonce"),
        ("rogue", "does not verify against the TSA root certificate(s)"),
        ("reject", "refused the request: REJECTION"),
        ("wrong-type", "reply content type is 'text/html', not application/timestamp-reply"),
        ("garbage", "reply is not a DER RFC 3161 TimeStampResp"),
        ("no-token", "reply grants the request but carries no timestamp token"),
        ("ess-v1", "timestamp token has no signingCertificateV2 attribute (RFC 5816; Notation requires it)"),
    ],
)
def test_wrong_answers_are_refused(tsa: TestTSA, mode: str, message: str) -> None:
    tsa.mode = mode
    stamper = HttpTimestamper(tsa.url, tsa.pki.root_pem, limits=FAST)
    with pytest.raises(TimestampError) as caught:
        stamper.timestamp(cose_signature(), hash_algorithm="SHA-256", signing_chain=SIGNING_CHAIN)
    assert str(caught.value).startswith(f"TSA {tsa.url}")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == 1
    assert stamper.calls == 0
    assert len(tsa.requests) == 1  # a wrong answer is final, not retried


def test_http_500_is_retried_then_refused(tsa: TestTSA) -> None:
    tsa.mode = "http500"
    stamper = HttpTimestamper(tsa.url, tsa.pki.root_pem, limits=FAST)
    with pytest.raises(TimestampError, match=r": HTTP 500 \(gave up after 2 attempts\)$"):
        stamper.timestamp(cose_signature(), hash_algorithm="SHA-256", signing_chain=SIGNING_CHAIN)
    assert (len(tsa.requests), stamper.attempts, stamper.calls) == (2, 2, 0)


def test_timeout_is_retried_then_refused(tsa: TestTSA) -> None:
    tsa.mode = "hang"
    stamper = HttpTimestamper(tsa.url, tsa.pki.root_pem, limits=HANG_TIMEOUT)
    with pytest.raises(TimestampError, match=r": ReadTimeout: .*\(gave up after 2 attempts\)$"):
        stamper.timestamp(cose_signature(), hash_algorithm="SHA-256", signing_chain=SIGNING_CHAIN)
    assert stamper.attempts == 2


def test_connection_refused_is_refused(tsa: TestTSA) -> None:
    stamper = HttpTimestamper(f"http://127.0.0.1:{free_port()}/", tsa.pki.root_pem, limits=FAST)
    with pytest.raises(TimestampError, match=r": ConnectError: .*\(gave up after 2 attempts\)$"):
        stamper.timestamp(cose_signature(), hash_algorithm="SHA-256", signing_chain=SIGNING_CHAIN)


def test_http_400_is_not_retried(tsa: TestTSA) -> None:
    tsa.mode = "http400"
    stamper = HttpTimestamper(tsa.url, tsa.pki.root_pem, limits=FAST)
    with pytest.raises(TimestampError, match=r"^TSA http://127\.0\.0\.1:\d+/tsa: HTTP 400$"):
        stamper.timestamp(cose_signature(), hash_algorithm="SHA-256", signing_chain=SIGNING_CHAIN)
    assert len(tsa.requests) == 1


def test_transient_500_then_token(tsa: TestTSA) -> None:
    tsa.mode, tsa.failures = "fail-then-ok", 1
    stamper = HttpTimestamper(tsa.url, tsa.pki.root_pem, limits=FAST)
    signature = cose_signature()
    token = stamper.timestamp(signature, hash_algorithm="SHA-256", signing_chain=SIGNING_CHAIN)
    assert (stamper.attempts, stamper.calls) == (2, 1)
    assert verify_timestamp_token(token, signature, [tsa.pki.root], "SHA-256").gen_time.tzinfo == dt.UTC


def test_one_client_is_reused(tsa: TestTSA) -> None:
    stamper = HttpTimestamper(tsa.url, tsa.pki.root_pem, limits=FAST)
    client = stamper.client
    for _ in range(3):
        stamper.timestamp(cose_signature(), hash_algorithm="SHA-256", signing_chain=SIGNING_CHAIN)
    assert stamper.client is client
    assert stamper.stats()["calls"] == 3
    stamper.close()
    assert client.is_closed


def test_gen_time_outside_signing_certificate_validity(tsa: TestTSA) -> None:
    expired = make_chain(not_after=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).chain
    stamper = HttpTimestamper(tsa.url, tsa.pki.root_pem, limits=FAST)
    with pytest.raises(TimestampError, match=r'is outside the validity of certificate "CN=signer,O=Notary'):
        stamper.timestamp(cose_signature(), hash_algorithm="SHA-256", signing_chain=expired)


def test_gen_time_far_ahead_of_our_clock(tsa: TestTSA) -> None:
    yesterday = FixedClock(dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    stamper = HttpTimestamper(tsa.url, tsa.pki.root_pem, limits=FAST, clock=yesterday)
    with pytest.raises(TimestampError, match=r"s ahead of this machine's clock$"):
        stamper.timestamp(cose_signature(), hash_algorithm="SHA-256", signing_chain=SIGNING_CHAIN)


def test_response_size_cap(tsa: TestTSA) -> None:
    stamper = HttpTimestamper(tsa.url, tsa.pki.root_pem, limits=dataclasses.replace(FAST, tsa_response_bytes=100))
    with pytest.raises(TimestampError, match=r": reply is larger than 100 bytes$"):
        stamper.timestamp(cose_signature(), hash_algorithm="SHA-256", signing_chain=SIGNING_CHAIN)


def test_unknown_hash_name(tsa: TestTSA) -> None:
    stamper = HttpTimestamper(tsa.url, tsa.pki.root_pem, limits=FAST)
    with pytest.raises(TimestampError, match=r"^hash algorithm 'SHA-1' is not one of SHA-256, SHA-384, SHA-512$"):
        stamper.timestamp(cose_signature(), hash_algorithm="SHA-1", signing_chain=SIGNING_CHAIN)
    assert tsa.requests == []


def test_root_certificate_input_errors(tsa: TestTSA, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.pem: cannot read TSA root certificate \(No such file"):
        HttpTimestamper(tsa.url, tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_bytes(b"not a certificate")
    with pytest.raises(InputError, match=r"junk\.pem: not a PEM or DER certificate"):
        HttpTimestamper(tsa.url, tmp_path / "junk.pem")
    with pytest.raises(InputError, match=r'tsa\.pem: "CN=test TSA,O=dct2notation tests" is not a self-signed root'):
        HttpTimestamper(tsa.url, tsa.pki.directory / "tsa.pem")
    with pytest.raises(UsageError, match=r"^--timestamp-url: 'ftp://x/' is not an http\(s\) URL$"):
        HttpTimestamper("ftp://x/", tsa.pki.root_pem)
    der = tmp_path / "root.cer"
    der.write_bytes(tsa.pki.root.public_bytes(Encoding.DER))
    assert load_tsa_roots(der) == [tsa.pki.root]


# --- the real GlobalSign token in notation-go's coseWithTimestamp.sig ----------------------------------------------
def globalsign(shared: Path) -> tuple[bytes, bytes, x509.Certificate]:
    cose_dir = shared / "notation" / "cose"
    message = cbor2.loads((cose_dir / "ng_coseWithTimestamp.sig").read_bytes())
    _protected, unprotected, _payload, signature = message.value
    root = x509.load_der_x509_certificate((cose_dir / "ng_truststore_tsa_globalsignRoot.cer").read_bytes())
    return unprotected["io.cncf.notary.timestampSignature"], signature, root


def test_real_globalsign_token(shared_fixtures: Path) -> None:
    token, signature, root = globalsign(shared_fixtures)
    info = verify_timestamp_token(token, signature, [root], "SHA-256")
    assert info == TimestampInfo(
        GLOBALSIGN_GEN_TIME,
        GLOBALSIGN_GEN_TIME - dt.timedelta(seconds=1),
        GLOBALSIGN_GEN_TIME + dt.timedelta(seconds=1),
    )


def test_real_globalsign_token_refusals(shared_fixtures: Path, tsa: TestTSA) -> None:
    token, signature, root = globalsign(shared_fixtures)
    with pytest.raises(TimestampError, match=r"^timestamp token message imprint [0-9a-f]{64} is not the SHA-256"):
        verify_timestamp_token(token, signature[:-1] + bytes([signature[-1] ^ 1]), [root], "SHA-256")
    with pytest.raises(TimestampError, match=r"^timestamp token does not verify against the TSA root certificate"):
        verify_timestamp_token(token, signature, [tsa.pki.root], "SHA-256")
    with pytest.raises(TimestampError, match=r"^timestamp token is not a DER RFC 3161 TimeStampToken"):
        verify_timestamp_token(token[:100], signature, [root], "SHA-256")
    with pytest.raises(TimestampError, match=r"^no TSA root certificate"):
        verify_timestamp_token(token, signature, [], "SHA-256")
    with pytest.raises(TimestampError, match=r"^hash algorithm 'MD5'"):
        verify_timestamp_token(token, signature, [root], "MD5")
