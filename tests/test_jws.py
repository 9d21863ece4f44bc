"""JWS envelopes (application/jose+json): what we write is laid out as notation-core-go lays it out, what Notation
writes verifies, and every malformed or hostile header is refused by the integrity check."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from dct2notation.cli import main
from dct2notation.config import FixedClock, Limits
from dct2notation.keys.base import algorithm_for
from dct2notation.keys.local import LocalKey
from dct2notation.keys.testcert import generate_test_key
from dct2notation.notation.envelope import EnvelopeError, build_payload
from dct2notation.notation.formats import parse_signature_envelope, sign_in_format, signature_valid
from dct2notation.notation.jws import parse_jws_envelope, sign_jws_envelope
from dct2notation.notation.verify import verify_envelope
from dct2notation.oci import JWS_MEDIA_TYPE, OCI_MANIFEST, Descriptor
from tests.support.images import layout_with_image
from tests.support.plugin_pki import NOW, make_chain
from tests.test_verify import REF, TARGET, check, policy, store_with

CLOCK = FixedClock(NOW)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_for(key_type: str = "ec-p256") -> tuple[LocalKey, Any]:
    pki = make_chain(key_type, cn="jws signer")
    return LocalKey("k", pki.leaf_key, pki.chain), pki


def protected_header(alg: str = "ES256", **extra: Any) -> dict[str, Any]:
    header: dict[str, Any] = {
        "alg": alg,
        "crit": ["io.cncf.notary.signingScheme"],
        "cty": "application/vnd.cncf.notary.payload.v1+json",
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": "2026-01-01T00:00:00Z",
    }
    header.update(extra)
    return {k: v for k, v in header.items() if v is not None}


def forge(
    key: LocalKey,
    protected: dict[str, Any],
    *,
    unprotected: dict[str, Any] | None = None,
    payload: bytes | None = None,
) -> bytes:
    """A JWS signed by ``key`` over exactly these headers (the attacker controls every byte and holds a key)."""
    encoded_protected = b64url(json.dumps(protected).encode())
    encoded_payload = b64url(payload if payload is not None else build_payload(TARGET))
    signature = key.sign(f"{encoded_protected}.{encoded_payload}".encode())
    header = {"x5c": [base64.b64encode(c.public_bytes(_der())).decode() for c in key.certificate_chain()]}
    header.update(unprotected or {})
    return json.dumps(
        {"payload": encoded_payload, "protected": encoded_protected, "header": header, "signature": b64url(signature)}
    ).encode()


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def verify(raw: bytes, pki: Any, **kwargs: Any) -> Any:
    return verify_envelope(
        raw,
        subject=TARGET,
        reference=REF,
        policy=policy(["ca:corp"]),
        truststore=kwargs.pop("store"),
        clock=kwargs.pop("clock", CLOCK),
        media_type=JWS_MEDIA_TYPE,
    )


@pytest.mark.parametrize("key_type", ["ec-p256", "ec-p384", "rsa-2048", "rsa-4096"])
def test_our_jws_verifies_with_joserfc_and_our_verifier(tmp_path: Path, key_type: str) -> None:
    key, pki = key_for(key_type)
    signed = sign_jws_envelope(TARGET, key, clock=CLOCK, user_metadata={"team": "a<b"})
    assert signed.media_type == JWS_MEDIA_TYPE
    env = parse_jws_envelope(signed.raw)
    assert signature_valid(env)
    assert env.algorithm == algorithm_for(key.key_spec())
    assert env.user_metadata == {"team": "a<b"}
    result = verify(signed.raw, pki, store=store_with(tmp_path, "corp", pki.root))
    assert (result.ok, result.reason) == (True, "verified")


def test_jws_layout_is_notation_core_go_layout() -> None:
    """Sorted protected header and payload keys, Go's escaping, whole-second UTC times, x5c in std base64."""
    key, pki = key_for()
    expiry = NOW + dt.timedelta(hours=24)
    signed = sign_jws_envelope(TARGET, key, clock=CLOCK, expiry=expiry, user_metadata={"k": "<&>"})
    envelope = json.loads(signed.raw)
    assert list(envelope) == ["payload", "protected", "header", "signature"]
    assert list(envelope["header"]) == ["x5c", "io.cncf.notary.signingAgent"]
    assert unb64url(envelope["protected"]) == (
        b'{"alg":"ES256","crit":["io.cncf.notary.signingScheme","io.cncf.notary.expiry"],'
        b'"cty":"application/vnd.cncf.notary.payload.v1+json","io.cncf.notary.expiry":"2026-01-02T00:00:00Z",'
        b'"io.cncf.notary.signingScheme":"notary.x509","io.cncf.notary.signingTime":"2026-01-01T00:00:00Z"}'
    )
    assert unb64url(envelope["payload"]) == (
        b'{"targetArtifact":{"annotations":{"k":"\\u003c\\u0026\\u003e"},"digest":"' + TARGET.digest.encode() + b'",'
        b'"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1234}}'
    )
    assert [base64.b64decode(c) for c in envelope["header"]["x5c"]] == [c.public_bytes(_der()) for c in pki.chain]
    assert envelope["header"]["io.cncf.notary.signingAgent"] == "dct2notation/0.1.0"


def test_notation_jws_from_a_real_layout_verifies(shared_fixtures: Path, tmp_path: Path) -> None:
    """The JWS that Notation 1.0 pushed in its e2e OCI layout (the public fixture) passes every check."""
    layout = shared_fixtures / "notation" / "oci-layout-e2e-valid-signature"
    index = json.loads((layout / "index.json").read_text())
    manifests = [json.loads((layout / "blobs/sha256" / m["digest"][7:]).read_bytes()) for m in index["manifests"]]
    (signature_manifest,) = [m for m in manifests if m.get("subject")]
    layer = signature_manifest["layers"][0]
    assert layer["mediaType"] == JWS_MEDIA_TYPE
    raw = (layout / "blobs/sha256" / layer["digest"][7:]).read_bytes()
    subject = Descriptor(
        signature_manifest["subject"]["mediaType"],
        signature_manifest["subject"]["digest"],
        signature_manifest["subject"]["size"],
    )
    root = shared_fixtures / "notation" / "config" / "n_e2e.crt"
    from cryptography import x509

    store = store_with(tmp_path, "e2e", *x509.load_pem_x509_certificates(root.read_bytes()))
    result = verify_envelope(
        raw,
        subject=subject,
        reference="localhost:5000/e2e@" + subject.digest,
        policy=policy(["ca:e2e"], ["x509.subject: C=US, ST=WA, O=Notary, CN=e2e"]),
        truststore=store,
        clock=FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),
        media_type=JWS_MEDIA_TYPE,
    )
    assert (result.ok, result.reason) == (True, "verified")
    env = parse_signature_envelope(raw)  # the bytes alone tell the format
    assert (env.media_type, env.algorithm.name, env.signing_agent) == (JWS_MEDIA_TYPE, "PS256", "Notation/1.0.0")


def test_jws_tampered_payload_fails_integrity(tmp_path: Path) -> None:
    key, pki = key_for()
    envelope = json.loads(sign_jws_envelope(TARGET, key, clock=CLOCK).raw)
    other = Descriptor(OCI_MANIFEST, "sha256:" + "cd" * 32, 1234)
    envelope["payload"] = b64url(build_payload(other))
    result = verify(json.dumps(envelope).encode(), pki, store=store_with(tmp_path, "corp", pki.root))
    assert (result.ok, result.failed_check) == (False, "integrity")
    assert (
        result.reason == "the signature does not verify with the signing certificate's key (payload or header altered)"
    )


def test_jws_timestamp_countersignature_is_checked(tmp_path: Path, tsa: Any) -> None:
    from dct2notation.notation.timestamp import HttpTimestamper

    key, pki = key_for()
    with HttpTimestamper(tsa.url, tsa.pki.root_pem) as stamper:
        signed = sign_jws_envelope(TARGET, key, clock=CLOCK, timestamper=stamper)
    header = json.loads(signed.raw)["header"]
    assert list(header) == ["io.cncf.notary.timestampSignature", "x5c", "io.cncf.notary.signingAgent"]
    env = parse_jws_envelope(signed.raw)
    assert env.timestamp_token == base64.b64decode(header["io.cncf.notary.timestampSignature"])
    store = store_with(tmp_path, "corp", pki.root)
    store_with(tmp_path, "tsa", tsa.pki.root, kind="tsa")
    result = verify_envelope(
        signed.raw,
        subject=TARGET,
        reference=REF,
        policy=policy(["ca:corp", "tsa:tsa"]),
        truststore=store,
        clock=FixedClock(dt.datetime.now(dt.UTC)),
        media_type=JWS_MEDIA_TYPE,
    )
    # The TSA's genTime is now, after this test chain's fixed NOW: inside its validity, so it passes.
    assert check(result, "authenticTimestamp")[1] is True, result.checks


# --- hostile headers: each is refused, naming the header --------------------------------------------------------


@pytest.mark.parametrize(
    ("protected", "unprotected", "reason"),
    [
        (
            protected_header(crit=["io.cncf.notary.signingScheme", "io.cncf.notary.verificationPlugin"]),
            None,
            "critical label 'io.cncf.notary.verificationPlugin' is not present",
        ),
        (
            protected_header(**{"io.cncf.notary.expiry": "2026-02-01T00:00:00Z"}),
            None,
            "'io.cncf.notary.expiry' must be marked critical",
        ),
        (protected_header(crit=[]), None, "crit: must be a non-empty array"),
        (protected_header(cty="application/json"), None, "cty: must be"),
        (protected_header(alg="HS256"), None, "alg: 'HS256' is not one of"),
        (protected_header(alg="none"), None, "alg: 'none' is not one of"),
        (protected_header(b64=False), None, "b64: unencoded payloads"),
        (
            protected_header(**{"io.cncf.notary.authenticSigningTime": "2026-01-01T00:00:00Z"}),
            None,
            "authenticSigningTime: must not be present for notary.x509",
        ),
        (protected_header(**{"io.cncf.notary.signingTime": "yesterday"}), None, "is not an RFC 3339 time"),
        (protected_header(**{"io.cncf.notary.signingTime": "2026-01-01"}), None, "is not an RFC 3339 time"),
        (protected_header(), {"alg": "ES256"}, "alg in both the protected and unprotected header"),
        (protected_header(), {"x5c": []}, "x5c: certificate chain is not present"),
        (protected_header(), {"x5c": ["not base64!"]}, "x5c[0]: not base64"),
        (protected_header(), {"io.cncf.notary.timestampSignature": 5}, "timestampSignature: must be a base64 string"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_attack_jws_hostile_headers(protected: dict[str, Any], unprotected: Any, reason: str, tmp_path: Path) -> None:
    key, pki = key_for()
    raw = forge(key, protected, unprotected=unprotected)
    result = verify(raw, pki, store=store_with(tmp_path, "corp", pki.root))
    assert (result.ok, result.failed_check) == (False, "integrity")
    assert result.reason.startswith("malformed signature envelope: ") and reason in result.reason, result.reason


def test_attack_jws_unknown_critical_claim_fails_closed(tmp_path: Path) -> None:
    """A present critical claim nobody here understands (a verification plugin's): joserfc refuses the crit name."""
    key, pki = key_for()
    raw = forge(
        key,
        protected_header(
            crit=["io.cncf.notary.signingScheme", "io.cncf.notary.verificationPlugin"],
            **{"io.cncf.notary.verificationPlugin": "acme-verifier"},
        ),
    )
    result = verify(raw, pki, store=store_with(tmp_path, "corp", pki.root))
    assert (result.ok, result.failed_check) == (False, "integrity")
    assert "io.cncf.notary.verificationPlugin" in result.reason


def test_attack_jws_crit_in_unprotected_header(tmp_path: Path) -> None:
    """crit must be integrity-protected (RFC 7515 4.1.11): an unprotected crit is refused."""
    key, pki = key_for()
    raw = forge(key, protected_header(), unprotected={"crit": ["io.cncf.notary.signingScheme"]})
    result = verify(raw, pki, store=store_with(tmp_path, "corp", pki.root))
    assert (result.ok, result.failed_check) == (False, "integrity")
    assert "crit" in result.reason


def test_attack_jws_alg_not_dictated_by_the_key(tmp_path: Path) -> None:
    """An ES384 label over a P-256 key: the algorithm comes from the key, not from the header."""
    key, pki = key_for("ec-p256")
    raw = forge(key, protected_header(alg="ES384"))
    result = verify(raw, pki, store=store_with(tmp_path, "corp", pki.root))
    assert (result.ok, result.failed_check) == (False, "integrity")


def test_attack_jws_general_serialization_and_padding(tmp_path: Path) -> None:
    key, pki = key_for()
    envelope = json.loads(sign_jws_envelope(TARGET, key, clock=CLOCK).raw)
    general = {"payload": envelope["payload"], "signatures": [{"protected": envelope["protected"]}]}
    general.update({"protected": envelope["protected"], "signature": envelope["signature"], "header": {}})
    store = store_with(tmp_path, "corp", pki.root)
    result = verify(json.dumps(general).encode(), pki, store=store)
    assert "general serialization" in result.reason
    padded = dict(envelope, signature=envelope["signature"] + "==")
    result = verify(json.dumps(padded).encode(), pki, store=store)
    assert (result.failed_check, "signature: not unpadded base64url" in result.reason) == ("integrity", True)


def test_attack_jws_media_type_mismatch(tmp_path: Path) -> None:
    """A COSE envelope in a layer labelled application/jose+json is refused, not sniffed into passing."""
    key, pki = key_for()
    cose = sign_in_format("cose", TARGET, key, clock=CLOCK).raw
    result = verify(cose, pki, store=store_with(tmp_path, "corp", pki.root))
    assert (result.ok, result.failed_check) == (False, "integrity")
    assert "JWS envelope: not JSON" in result.reason


def test_attack_jws_oversized_or_not_an_object() -> None:
    """The envelope cap holds before any JSON is decoded; a JSON value that is not an object is refused."""
    key, _ = key_for()
    raw = sign_jws_envelope(TARGET, key, clock=CLOCK).raw
    with pytest.raises(EnvelopeError) as big:
        parse_jws_envelope(raw, Limits(envelope_bytes=100))
    assert str(big.value) == f"JWS envelope: {len(raw)} bytes exceeds the 100-byte limit"
    with pytest.raises(EnvelopeError, match=r"^JWS envelope: must be a JSON object$"):
        parse_jws_envelope(b"[]")


# --- the CLI -----------------------------------------------------------------------------------------------------


def test_cli_sign_jws_into_a_layout_then_ls_inspect_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "notation"
    generate_test_key("jws", config, key_type="ec-p256", make_default=True)
    layout, digest = layout_with_image(tmp_path)
    ref, at = f"app@{digest}", ["--oci-layout", str(layout)]
    assert main(["sign", ref, *at, "--key", "jws", "--config-dir", str(config), "--signature-format", "jws"]) == 0
    signed = json.loads(capsys.readouterr().out)
    assert signed["signature"]["envelopeMediaType"] == JWS_MEDIA_TYPE
    assert main(["ls", ref, "--json", *at]) == 0
    (listed,) = json.loads(capsys.readouterr().out)["signatures"]
    assert (listed["digest"], listed["envelopeMediaType"]) == (signed["signature"]["digest"], JWS_MEDIA_TYPE)
    trust = tmp_path / "trust"
    (trust / "x509/ca/jws").mkdir(parents=True)
    (trust / "x509/ca/jws/jws.crt").write_bytes((config / "localkeys/jws.crt").read_bytes())
    policy_file = tmp_path / "trustpolicy.json"
    statement = {
        "name": "all",
        "registryScopes": ["*"],
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:jws"],
        "trustedIdentities": ["*"],
    }
    policy_file.write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
    assert main(["verify", ref, *at, "--policy", str(policy_file), "--truststore", str(trust), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["signature"] == signed["signature"]["digest"]


def test_cli_signature_format_refusal_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout, digest = layout_with_image(tmp_path)
    assert (
        main(["sign", f"app@{digest}", "--oci-layout", str(layout), "--key", "x", "--signature-format", "pkcs7"]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.endswith("--signature-format: 'pkcs7' is not one of cose, jws") and "\n" not in err
