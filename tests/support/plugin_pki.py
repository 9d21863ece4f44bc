"""Test PKI (leaf → intermediate → root chains in Notation's profile) and a real Notation plugin executable.

The plugin is a Python script written into ``{config}/plugins/NAME/notation-NAME``; it holds its key in a PEM file
beside it and speaks the plugin protocol on stdin/stdout. Its ``MODE`` makes it misbehave in the ways a KMS plugin
can (hang, fail, garble, answer for another key, sign wrongly), so error paths are exercised with a real process.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def new_key(key_type: str) -> Key:
    if key_type.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    curve: ec.EllipticCurve = {"ec-p256": ec.SECP256R1(), "ec-p384": ec.SECP384R1(), "ec-p521": ec.SECP521R1()}[
        key_type
    ]
    return ec.generate_private_key(curve)


def name(cn: str, org: str = "Notary") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Seattle"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ku(*, sign: bool = False, cert_sign: bool = False, encipher: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=encipher,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def certificate(
    subject: x509.Name,
    key: Key,
    issuer: x509.Name,
    issuer_key: Key,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    hash_alg: hashes.HashAlgorithm | None = None,
) -> x509.Certificate:
    """The one certificate builder of the test PKIs (Notation chains, TLS servers, TSAs, DCT keys): ``extensions``
    as (value, critical) pairs, in order."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hash_alg or hashes.SHA256())  # type: ignore[arg-type]


def ca_extensions() -> list[tuple[x509.ExtensionType, bool]]:
    """A CA's: basicConstraints cA (critical) and keyUsage keyCertSign + cRLSign (critical)."""
    return [(x509.BasicConstraints(ca=True, path_length=None), True), (_ku(cert_sign=True), True)]


def pem_private_key(key: Key) -> bytes:
    """Unencrypted PKCS8 PEM, what Notation's local keys, notary and OpenSSL read."""
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(pem, pkcs8, serialization.NoEncryption())


def issue(
    subject: x509.Name,
    key: Key,
    issuer: x509.Name,
    issuer_key: Key,
    *,
    ca: bool,
    not_before: dt.datetime = NOW - dt.timedelta(days=1),
    not_after: dt.datetime = NOW + dt.timedelta(days=3650),
    eku: list[x509.ObjectIdentifier] | None = None,
    encipher: bool = False,
    ku_critical: bool = True,
    hash_alg: hashes.HashAlgorithm | None = None,
) -> x509.Certificate:
    extensions = (
        ca_extensions()
        if ca
        else [
            (_ku(sign=True, encipher=encipher), ku_critical),
            (x509.ExtendedKeyUsage(eku if eku is not None else [ExtendedKeyUsageOID.CODE_SIGNING]), False),
        ]
    )
    return certificate(
        subject, key, issuer, issuer_key, not_before=not_before, not_after=not_after, extensions=extensions,
        hash_alg=hash_alg,
    )  # fmt: skip


@dataclass
class Chain:
    leaf_key: Key
    chain: list[x509.Certificate]  # leaf, intermediate, root

    @property
    def root(self) -> x509.Certificate:
        return self.chain[-1]

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        key_path = directory / f"{stem}.key"
        cert_path = directory / f"{stem}.crt"
        key_path.write_bytes(pem_private_key(self.leaf_key))
        cert_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain))
        return key_path, cert_path


def make_chain(key_type: str = "ec-p256", *, cn: str = "signer", org: str = "Notary", **leaf_args: object) -> Chain:
    """leaf → intermediate → root; ``leaf_args`` tweak the leaf to break one certificate requirement."""
    root_key = new_key("ec-p384")
    inter_key = new_key("ec-p256")
    leaf_key = new_key(key_type)
    root_name, inter_name = name(f"{cn} root", org), name(f"{cn} intermediate", org)
    root = issue(root_name, root_key, root_name, root_key, ca=True, not_after=NOW + dt.timedelta(days=5000))
    inter = issue(inter_name, inter_key, root_name, root_key, ca=True, not_after=NOW + dt.timedelta(days=4000))
    leaf = issue(name(cn, org), leaf_key, inter_name, inter_key, ca=False, **leaf_args)  # type: ignore[arg-type]
    return Chain(leaf_key, [leaf, inter, root])


def trust(config: Path, store: str, *certs: x509.Certificate, kind: str = "ca") -> Path:
    """Put certificates into ``{config}/truststore/x509/{kind}/{store}``; returns the trust store root."""
    directory = config / "truststore" / "x509" / kind / store
    directory.mkdir(parents=True, exist_ok=True)
    for i, cert in enumerate(certs):
        (directory / f"{store}-{i}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return config / "truststore"


PLUGIN_SOURCE = r"""
import base64, json, os, sys, time
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = os.path.dirname(os.path.abspath(__file__))
MODE = open(os.path.join(HERE, "mode")).read().strip()
KEY_ID = "kms-key-1"
HASHES = {"SHA-256": hashes.SHA256(), "SHA-384": hashes.SHA384(), "SHA-512": hashes.SHA512()}


def fail(code, message):
    sys.stderr.write(json.dumps({"errorCode": code, "errorMessage": message}))
    sys.exit(1)


def key_spec(key):
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA-%d" % key.key_size
    return {"secp256r1": "EC-256", "secp384r1": "EC-384", "secp521r1": "EC-521"}[key.curve.name]


command = sys.argv[1]
request = json.loads(sys.stdin.read() or "{}")
if MODE == "record":  # works as "ok", and keeps each request for the test to read
    with open(os.path.join(HERE, "requests.jsonl"), "a") as fh:
        fh.write(json.dumps({"command": command, "request": request}) + "\n")
with open(os.path.join(HERE, "key.pem"), "rb") as fh:
    key = serialization.load_pem_private_key(fh.read(), None)
with open(os.path.join(HERE, "chain.pem"), "rb") as fh:
    chain = x509.load_pem_x509_certificates(fh.read())
if MODE == "hang":
    time.sleep(600)
if MODE == "flood":
    sys.stdout.write("x" * (8 * 1024 * 1024))
    sys.stdout.flush()
    time.sleep(600)
if command == "get-plugin-metadata":
    print(json.dumps({"name": "testkms", "description": "test KMS", "version": "1.2.3", "url": "http://127.0.0.1",
                      "supportedContractVersions": ["2.0"] if MODE == "oldcontract" else ["1.0"],
                      "capabilities": {"nocap": ["SIGNATURE_VERIFIER.TRUSTED_IDENTITY"],
                                       "envelopeonly": ["SIGNATURE_GENERATOR.ENVELOPE"]}.get(
                          MODE, ["SIGNATURE_GENERATOR.ENVELOPE"] if MODE.startswith("env-")
                          else ["SIGNATURE_GENERATOR.RAW"])}))
elif command == "describe-key":
    if request.get("keyId") != KEY_ID:
        fail("VALIDATION_ERROR", "unknown key " + str(request.get("keyId")))
    spec = {"badspec": "RSA-1024", "specmismatch": "EC-384"}.get(MODE, key_spec(key))
    print(json.dumps({"keyId": KEY_ID, "keySpec": spec}))
elif command == "generate-signature":
    if MODE == "denied":
        fail("ACCESS_DENIED", "caller may not use key kms-key-1")
    if MODE == "garbage":
        print("{not json")
        sys.exit(0)
    payload = base64.b64decode(request["payload"])
    digest = HASHES[request["hashAlgorithm"]]
    if isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(payload, padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size), digest)
        alg = "RSASSA-PSS-" + request["hashAlgorithm"]
    else:
        r, s = decode_dss_signature(key.sign(payload, ec.ECDSA(digest)))
        n = (key.curve.key_size + 7) // 8
        sig = r.to_bytes(n, "big") + s.to_bytes(n, "big")
        alg = "ECDSA-" + request["hashAlgorithm"]
    if MODE == "badsig":
        sig = bytes([sig[0] ^ 1]) + sig[1:]
    out_key = "other-key" if MODE == "wrongkey" else KEY_ID
    if MODE == "badalg":
        alg = "RSASSA-PSS-SHA-512"
    encoded_sig = "%%%" if MODE == "badb64" else base64.b64encode(sig).decode()
    ders = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
    if MODE == "nochain":
        ders = []
    print(json.dumps({"keyId": out_key, "signature": encoded_sig, "signingAlgorithm": alg, "certificateChain": ders}))
elif command == "generate-envelope" and MODE.startswith("env-"):
    # A JWS envelope as an envelope-generating KMS returns it; each env-* mode breaks one thing.
    def b64url(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    payload = json.loads(base64.b64decode(request["payload"]))
    if MODE == "env-extra":
        payload["targetArtifact"]["platform_hint"] = "x"
    if MODE == "env-dropmeta":
        payload["targetArtifact"].pop("annotations", None)
    spec = key_spec(key)
    digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "521": hashes.SHA512(), "048": hashes.SHA256(),
              "072": hashes.SHA384(), "096": hashes.SHA512()}[spec[-3:]]
    alg = ("PS" if spec.startswith("RSA") else "ES") + str(digest.digest_size * 8)
    protected = {"alg": alg, "crit": ["io.cncf.notary.signingScheme"],
                 "cty": "application/vnd.cncf.notary.payload.v1+json",
                 "io.cncf.notary.signingScheme": "notary.x509",
                 "io.cncf.notary.signingTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    signing_input = (b64url(json.dumps(protected).encode()) + "." + b64url(json.dumps(payload).encode())).encode()
    if isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(signing_input, padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size), digest)
    else:
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(digest)))
        n = (key.curve.key_size + 7) // 8
        sig = r.to_bytes(n, "big") + s.to_bytes(n, "big")
    if MODE == "env-badsig":
        sig = bytes([sig[0] ^ 1]) + sig[1:]
    head, _, body = signing_input.decode().partition(".")
    envelope = {"payload": body, "protected": head, "signature": b64url(sig),
                "header": {"x5c": [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
                                   for c in chain], "io.cncf.notary.signingAgent": "testkms/1.2.3"}}
    answer = {"signatureEnvelope": base64.b64encode(json.dumps(envelope).encode()).decode(),
              "signatureEnvelopeType": "application/cose" if MODE == "env-wrongtype"
              else request["signatureEnvelopeType"],
              "annotations": {"k": 1} if MODE == "env-badannot" else {"com.example.kms": "testkms"}}
    if MODE == "env-b64":
        answer["signatureEnvelope"] = "%%%"
    print(json.dumps(answer))
else:
    fail("VALIDATION_ERROR", "unsupported command " + command)
"""


def install_plugin(config: Path, chain: Chain, *, plugin_name: str = "testkms", mode: str = "ok") -> Path:
    """Write a working plugin executable (``mode`` selects a failure) and return its directory."""
    directory = config / "plugins" / plugin_name
    chain.write(directory, "bundle")
    (directory / "bundle.key").rename(directory / "key.pem")
    (directory / "bundle.crt").rename(directory / "chain.pem")
    (directory / "mode").write_text(mode)
    exe = directory / f"notation-{plugin_name}"
    exe.write_text(f"#!{sys.executable}\n{PLUGIN_SOURCE}")
    os.chmod(exe, exe.stat().st_mode | stat.S_IXUSR)
    return directory


def set_mode(plugin_dir: Path, mode: str) -> None:
    (plugin_dir / "mode").write_text(mode)


def write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path
