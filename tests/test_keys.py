"""Signing keys: PEM files, Notation's signingkeys.json, config dir rules, and `cert generate-test` / `key list`."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from dct2notation.cli import main
from dct2notation.config import FixedClock, SystemClock
from dct2notation.errors import ConfigError, SigningKeyError, UsageError
from dct2notation.keys.local import LocalKey, load_local_key
from dct2notation.keys.resolve import load_signing_key
from dct2notation.keys.signingkeys import KeyEntry, SigningKeys, notation_config_dir
from dct2notation.keys.testcert import generate_test_key
from dct2notation.notation.envelope import sign_envelope
from dct2notation.notation.policy import TrustPolicyDocument
from dct2notation.notation.truststore import TrustStore
from dct2notation.notation.verify import verify_envelope
from dct2notation.oci import OCI_MANIFEST, Descriptor
from tests.support import cose_decoder
from tests.support.plugin_pki import NOW, make_chain

TARGET = Descriptor(OCI_MANIFEST, "sha256:" + "ef" * 32, 99)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_signingkeys_json_is_lossless(shared_fixtures: Path, tmp_path: Path) -> None:
    source = shared_fixtures / "notation" / "config" / "ng_signingkeys.json"
    original = json.loads(source.read_text())
    keys = SigningKeys.load(source)
    assert keys.to_dict() == original
    assert [(k.name, k.is_plugin) for k in keys.keys] == [
        ("wabbit-networks", False),
        ("import.acme-rockets", False),
        ("external-key", True),
    ]
    assert keys.get(None).key_path == "/home/demo/.config/notation/localkeys/wabbit-networks.key"
    assert keys.get("external-key").plugin_config == {"key": "value"}
    # Fields a newer Notation might add survive a load/save cycle.
    extended = dict(original, futureSetting=True)
    extended["keys"] = [dict(original["keys"][0], description="ci key"), *original["keys"][1:]]
    path = tmp_path / "signingkeys.json"
    path.write_text(json.dumps(extended))
    SigningKeys.load(path).save(path)
    assert json.loads(path.read_text()) == extended
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"keys": [{"name": "a", "keyPath": "k"}]}, "keys[0] (a): keyPath and certPath are both required"),
        ({"keys": [{"name": "a", "pluginName": "p"}]}, "keys[0] (a): a plugin key needs an id"),
        (
            {"keys": [{"name": "a", "id": "1", "pluginName": "p", "keyPath": "k"}]},
            "either keyPath/certPath or pluginName",
        ),
        ({"keys": [{"keyPath": "k", "certPath": "c"}]}, "keys[0]: name is required"),
        (
            {"keys": [{"name": "a", "keyPath": "k", "certPath": "c"}, {"name": "a", "keyPath": "k", "certPath": "c"}]},
            "key name 'a' is used more than once",
        ),
        ({"default": "b", "keys": [{"name": "a", "keyPath": "k", "certPath": "c"}]}, "default key 'b' is not among"),
        ({"keys": {}}, "keys must be an array"),
        ({"keys": [{"name": "a", "id": "1", "pluginName": "p", "pluginConfig": {"x": 1}}]}, "pluginConfig must map"),
    ],
)
def test_signingkeys_errors(tmp_path: Path, document: object, message: str) -> None:
    path = tmp_path / "signingkeys.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError) as info:
        SigningKeys.load(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value)


def test_signingkeys_lookup_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        SigningKeys.load(tmp_path / "bad.json")
    keys = SigningKeys.load(tmp_path / "absent.json")
    with pytest.raises(ConfigError, match="no default key set"):
        keys.get(None)
    keys.add(KeyEntry("a", key_path="k", cert_path="c"))
    assert keys.default is None
    with pytest.raises(ConfigError, match="signing key 'a' already exists"):
        keys.add(KeyEntry("a", key_path="k", cert_path="c"))
    with pytest.raises(ConfigError, match="no signing key named 'b'"):
        keys.get("b")


def test_config_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOTATION_CONFIG", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert notation_config_dir() == tmp_path / "home" / ".config" / "notation"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert notation_config_dir() == tmp_path / "xdg" / "notation"
    monkeypatch.setenv("NOTATION_CONFIG", str(tmp_path / "env"))
    assert notation_config_dir() == tmp_path / "env"
    assert notation_config_dir(tmp_path / "flag") == tmp_path / "flag"


@pytest.mark.parametrize(
    ("key_type", "key_spec", "alg"),
    [
        ("rsa-2048", "RSA-2048", "PS256"),
        ("rsa-3072", "RSA-3072", "PS384"),
        ("ec-p256", "EC-256", "ES256"),
        ("ec-p384", "EC-384", "ES384"),
    ],
)
def test_generate_test_then_sign_and_verify(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    key_type: str,
    key_spec: str,
    alg: str,
) -> None:
    config = tmp_path / "notation"
    monkeypatch.setenv("NOTATION_CONFIG", str(config))
    before = SystemClock().now().replace(microsecond=0)
    code, out, err = run(capsys, "cert", "generate-test", "wabbit", "--key-type", key_type, "--default")
    assert (code, err) == (0, "")
    key_file, cert_file = config / "localkeys" / "wabbit.key", config / "localkeys" / "wabbit.crt"
    store_file = config / "truststore" / "x509" / "ca" / "wabbit" / "wabbit.crt"
    assert out == f"generated {key_file} and {cert_file}; trust store: {store_file}\n"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert store_file.read_bytes() == cert_file.read_bytes()
    assert b"-----BEGIN PRIVATE KEY-----" in key_file.read_bytes()  # PKCS#8, as Notation writes it
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert cert.subject.rfc4514_string() == "CN=wabbit,O=Notary,L=Seattle,ST=WA,C=US"
    assert cert.issuer == cert.subject
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CODE_SIGNING
    ]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert before <= cert.not_valid_before_utc <= before + dt.timedelta(seconds=5)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=1)
    assert json.loads((config / "signingkeys.json").read_text()) == {
        "default": "wabbit",
        "keys": [{"name": "wabbit", "keyPath": str(key_file), "certPath": str(cert_file)}],
    }

    key = load_signing_key(None, config)
    assert key.key_spec() == key_spec
    clock = FixedClock(cert.not_valid_before_utc + dt.timedelta(minutes=1))
    raw = sign_envelope(TARGET, key, clock=clock).raw
    decoded = cose_decoder.decode(raw)
    assert decoded.alg_name == alg and decoded.verify()
    policy = TrustPolicyDocument.from_dict(
        {
            "version": "1.0",
            "trustPolicies": [
                {
                    "name": "gen",
                    "registryScopes": ["*"],
                    "signatureVerification": {"level": "strict"},
                    "trustStores": ["ca:wabbit"],
                    "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Notary, CN=wabbit"],
                }
            ],
        }
    )
    result = verify_envelope(
        raw,
        subject=TARGET,
        reference="r.example/app@" + TARGET.digest,
        policy=policy,
        truststore=TrustStore(config / "truststore"),
        clock=clock,
    )
    assert (result.ok, result.reason) == (True, "verified")


def test_generate_test_errors_and_key_list(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = str(tmp_path / "cfg")
    assert run(capsys, "cert", "generate-test", "one", "--config-dir", config)[0] == 0
    assert (
        run(capsys, "cert", "generate-test", "two", "--key-type", "ec-p256", "--config-dir", config, "--default")[0]
        == 0
    )
    code, out, err = run(capsys, "cert", "generate-test", "one", "--config-dir", config)
    assert (code, out) == (2, "")
    assert err == f"dct2notation: error: {tmp_path / 'cfg' / 'signingkeys.json'}: signing key 'one' already exists\n"
    code, _, err = run(capsys, "cert", "generate-test", "bad/name", "--config-dir", config)
    assert code == 2 and "key name 'bad/name' is not valid" in err and err.count("\n") == 1
    code, _, err = run(capsys, "cert", "generate-test", "three", "--key-type", "dsa-1024", "--config-dir", config)
    assert code == 2 and "key type 'dsa-1024' is not one of" in err
    code, out, err = run(capsys, "key", "list", "--config-dir", config)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "NAME\tKEY PATH\tCERTIFICATE PATH\tID\tPLUGIN NAME"
    assert lines[1] == f"  one\t{tmp_path}/cfg/localkeys/one.key\t{tmp_path}/cfg/localkeys/one.crt\t\t"
    assert lines[2].startswith("* two\t")
    code, out, _ = run(capsys, "key", "list", "--json", "--config-dir", config)
    assert json.loads(out)["default"] == "two"
    assert [k["name"] for k in json.loads(out)["keys"]] == ["one", "two"]


def test_local_key_files(tmp_path: Path) -> None:
    pki = make_chain("ec-p384")
    key_path, cert_path = pki.write(tmp_path, "signer")
    key = load_signing_key(f"{key_path}:{cert_path}", tmp_path)
    assert key.key_spec() == "EC-384"
    assert key.certificate_chain() == pki.chain
    decoded = cose_decoder.decode(sign_envelope(TARGET, key, clock=FixedClock(NOW)).raw)
    assert (decoded.alg_name, decoded.chain, decoded.verify()) == ("ES384", pki.chain, True)
    with pytest.raises(SigningKeyError, match=f"{tmp_path}/absent.key: cannot read key file"):
        load_local_key(tmp_path / "absent.key", cert_path)
    with pytest.raises(SigningKeyError, match="not a PEM private key"):
        load_local_key(cert_path, cert_path)
    with pytest.raises(SigningKeyError, match="not a PEM certificate chain"):
        load_local_key(key_path, key_path)
    encrypted = tmp_path / "enc.key"
    encrypted.write_bytes(
        pki.leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    with pytest.raises(SigningKeyError, match="encrypted private keys are not supported"):
        load_local_key(encrypted, cert_path)
    other = make_chain("ec-p384")
    with pytest.raises(SigningKeyError, match="the private key does not match the leaf certificate"):
        LocalKey("x", other.leaf_key, pki.chain)
    with pytest.raises(UsageError, match="file keys are written KEY.pem:CHAIN.pem"):
        load_signing_key(f"{key_path}:", tmp_path)
    with pytest.raises(UsageError, match="plugin keys are written plugin:NAME:KEYID"):
        load_signing_key("plugin:kms", tmp_path)


def test_disallowed_key_sizes_are_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pki = make_chain("rsa-2048")
    with pytest.raises(SigningKeyError, match="RSA key size 1024 is not allowed"):
        LocalKey("weak", weak, pki.chain)
    p192 = ec.generate_private_key(ec.SECP192R1())
    with pytest.raises(SigningKeyError, match="EC curve secp192r1 is not allowed"):
        LocalKey("weak", p192, pki.chain)


def test_generate_test_key_refusals(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="validity must be at least one day"):
        generate_test_key("a", tmp_path, days=0)
    store_cert = tmp_path / "truststore" / "x509" / "ca" / "b" / "b.crt"
    store_cert.parent.mkdir(parents=True)
    store_cert.write_text("left over")
    with pytest.raises(ConfigError, match="trust store certificate already exists"):
        generate_test_key("b", tmp_path)
    assert not (tmp_path / "localkeys" / "b.key").exists()
    result = generate_test_key("c", tmp_path, key_type="ec-p521", days=7)
    assert result.certificate.not_valid_after_utc - result.certificate.not_valid_before_utc == dt.timedelta(days=7)
    assert load_signing_key("c", tmp_path).key_spec() == "EC-521"


def test_signingkeys_field_types(tmp_path: Path) -> None:
    path = tmp_path / "signingkeys.json"
    path.write_text(json.dumps({"keys": [{"name": "a", "keyPath": 5, "certPath": "c"}]}))
    with pytest.raises(ConfigError, match=r"keys\[0\] \(a\): keyPath must be a string"):
        SigningKeys.load(path)
    path.write_text(json.dumps({"default": 1, "keys": []}))
    with pytest.raises(ConfigError, match="default must be a string"):
        SigningKeys.load(path)
    path.write_text("[]")
    with pytest.raises(ConfigError, match="not a JSON object"):
        SigningKeys.load(path)
