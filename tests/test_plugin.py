"""Signing through a real Notation plugin process, and every way a KMS plugin can fail."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from dct2notation.cli import main
from dct2notation.config import FixedClock, Limits
from dct2notation.errors import SigningKeyError
from dct2notation.keys.plugin import PluginKey
from dct2notation.keys.resolve import load_signing_key
from dct2notation.notation.envelope import sign_envelope
from dct2notation.notation.policy import TrustPolicyDocument
from dct2notation.notation.truststore import TrustStore
from dct2notation.notation.verify import verify_envelope
from dct2notation.oci import OCI_MANIFEST, Descriptor
from tests.support import cose_decoder
from tests.support.images import layout_with_image
from tests.support.plugin_pki import NOW, install_plugin, make_chain, set_mode, trust

CLOCK = FixedClock(NOW)
TARGET = Descriptor(OCI_MANIFEST, "sha256:" + "12" * 32, 321)
POLICY = TrustPolicyDocument.from_dict(
    {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "kms",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:kms"],
                "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Notary, CN=kms signer"],
            }
        ],
    }
)


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-3072"])
def test_plugin_signs_and_envelope_verifies(tmp_path: Path, key_type: str) -> None:
    pki = make_chain(key_type, cn="kms signer")
    install_plugin(tmp_path, pki)
    key = load_signing_key("plugin:testkms:kms-key-1", tmp_path)
    signed = sign_envelope(TARGET, key, clock=CLOCK)
    d = cose_decoder.decode(signed.raw)
    assert d.verify()
    assert d.alg_name == {"ec-p256": "ES256", "rsa-3072": "PS384"}[key_type]
    assert d.unprotected["io.cncf.notary.signingAgent"] == "dct2notation/0.1.0 testkms/1.2.3"
    assert d.chain == pki.chain
    assert d.payload["targetArtifact"]["digest"] == TARGET.digest
    result = verify_envelope(
        signed.raw,
        subject=TARGET,
        reference="r.example/app@" + TARGET.digest,
        policy=POLICY,
        truststore=TrustStore(trust(tmp_path, "kms", pki.root)),
        clock=CLOCK,
    )
    assert (result.ok, result.reason) == (True, "verified")


def test_plugin_key_from_signingkeys_json(tmp_path: Path) -> None:
    pki = make_chain("ec-p384", cn="kms signer")
    install_plugin(tmp_path, pki)
    (tmp_path / "signingkeys.json").write_text(
        json.dumps(
            {
                "default": "kms",
                "keys": [{"name": "kms", "id": "kms-key-1", "pluginName": "testkms", "pluginConfig": {"region": "x"}}],
            }
        )
    )
    key = load_signing_key(None, tmp_path)
    assert isinstance(key, PluginKey)
    assert (key.name, key.key_id, key.plugin_config, key.key_spec()) == ("kms", "kms-key-1", {"region": "x"}, "EC-384")
    assert cose_decoder.decode(sign_envelope(TARGET, key, clock=CLOCK).raw).verify()


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        (
            "denied",
            'plugin "testkms" generate-signature: failed with exit code 1: ACCESS_DENIED: caller may not use key',
        ),
        ("garbage", 'plugin "testkms" generate-signature: response is not valid JSON'),
        ("wrongkey", "generate-signature: answered for keyId 'other-key', asked 'kms-key-1'"),
        ("badsig", "generate-signature: signature does not verify against the returned signing certificate"),
        ("oldcontract", "get-plugin-metadata: contract version 1.0 is not supported (['2.0'])"),
        (
            "nocap",
            "get-plugin-metadata: plugin has neither the SIGNATURE_GENERATOR.RAW nor the "
            "SIGNATURE_GENERATOR.ENVELOPE capability",
        ),
        # Envelope plugins are driven by generate-envelope (tests/test_interop_plugin.py), which this one refuses.
        (
            "envelopeonly",
            'plugin "testkms" generate-envelope: failed with exit code 1: VALIDATION_ERROR: unsupported command '
            "generate-envelope",
        ),
        ("badspec", "unsupported key spec 'RSA-1024'"),
        ("specmismatch", "generate-signature: certificate key is EC-256 but describe-key said EC-384"),
        ("badalg", "signingAlgorithm 'RSASSA-PSS-SHA-512' does not match key spec EC-256 (expected ECDSA-SHA-256)"),
        ("badb64", "generate-signature: malformed signature or certificateChain"),
        ("nochain", "generate-signature: certificateChain must be a non-empty array"),
    ],
)
def test_plugin_failures_are_one_line(tmp_path: Path, mode: str, message: str) -> None:
    plugin_dir = install_plugin(tmp_path, make_chain())
    set_mode(plugin_dir, mode)
    key = load_signing_key("plugin:testkms:kms-key-1", tmp_path)
    with pytest.raises(SigningKeyError) as info:
        sign_envelope(TARGET, key, clock=CLOCK)
    assert message in str(info.value)


def test_plugin_hang_times_out(tmp_path: Path) -> None:
    plugin_dir = install_plugin(tmp_path, make_chain())
    set_mode(plugin_dir, "hang")
    key = PluginKey(
        "k",
        plugin_name="testkms",
        key_id="kms-key-1",
        config_dir=tmp_path,
        limits=Limits(plugin_timeout_seconds=0.5),
    )
    with pytest.raises(SigningKeyError, match='plugin "testkms" get-plugin-metadata: timed out after 0.5s'):
        key.key_spec()


def test_plugin_describe_key_for_unknown_key(tmp_path: Path) -> None:
    install_plugin(tmp_path, make_chain())
    key = load_signing_key("plugin:testkms:nope", tmp_path)
    with pytest.raises(
        SigningKeyError, match="describe-key: failed with exit code 1: VALIDATION_ERROR: unknown key nope"
    ):
        key.key_spec()


def test_plugin_flooding_output_is_cut_off_without_waiting_for_the_timeout(tmp_path: Path) -> None:
    set_mode(install_plugin(tmp_path, make_chain()), "flood")
    key = PluginKey(
        "k",
        plugin_name="testkms",
        key_id="kms-key-1",
        config_dir=tmp_path,
        limits=Limits(plugin_output_bytes=1024 * 1024, plugin_timeout_seconds=30),
    )
    started = time.monotonic()
    with pytest.raises(SigningKeyError, match="get-plugin-metadata: output exceeds the 1048576-byte limit"):
        key.key_spec()
    assert time.monotonic() - started < 10


def test_plugin_name_must_match_its_directory(tmp_path: Path) -> None:
    install_plugin(tmp_path, make_chain(), plugin_name="otherkms")
    key = load_signing_key("plugin:otherkms:kms-key-1", tmp_path)
    with pytest.raises(SigningKeyError, match="plugin reports name 'testkms', installed as 'otherkms'"):
        key.key_spec()


def test_plugin_output_cap(tmp_path: Path) -> None:
    install_plugin(tmp_path, make_chain())
    key = PluginKey(
        "k", plugin_name="testkms", key_id="kms-key-1", config_dir=tmp_path, limits=Limits(plugin_output_bytes=64)
    )
    with pytest.raises(SigningKeyError, match="get-plugin-metadata: output exceeds the 64-byte limit"):
        key.key_spec()


def test_plugin_missing_or_unusable(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match='plugin "ghost": not installed'):
        load_signing_key("plugin:ghost:k", tmp_path)
    plugin_dir = install_plugin(tmp_path, make_chain())
    exe = plugin_dir / "notation-testkms"
    os.chmod(exe, 0o644)
    with pytest.raises(SigningKeyError, match="is not executable"):
        load_signing_key("plugin:testkms:kms-key-1", tmp_path)
    exe.rename(plugin_dir / "real")
    exe.symlink_to(plugin_dir / "real")
    with pytest.raises(SigningKeyError, match="is a symlink, plugins must be regular files"):
        load_signing_key("plugin:testkms:kms-key-1", tmp_path)


@pytest.mark.parametrize("mode", ["denied", "garbage", "wrongkey", "badsig", "missing"])
def test_plugin_failures_through_the_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, mode: str) -> None:
    config = tmp_path / "notation"
    if mode != "missing":
        set_mode(install_plugin(config, make_chain()), mode)
    layout, digest = layout_with_image(tmp_path)
    code = main(
        [
            "sign",
            f"app@{digest}",
            "--oci-layout",
            str(layout),
            "--key",
            "plugin:testkms:kms-key-1",
            "--config-dir",
            str(config),
        ]
    )
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith('dct2notation: error: plugin "testkms"') and err.count("\n") == 1


def test_plugin_signs_through_the_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "notation"
    install_plugin(config, make_chain(cn="kms signer"))
    layout, digest = layout_with_image(tmp_path)
    argv = ["sign", f"app@{digest}", "--oci-layout", str(layout), "--key", "plugin:testkms:kms-key-1"]
    code = main([*argv, "--config-dir", str(config)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["signature"]["digest"].startswith("sha256:")


# --- the SIGNATURE_GENERATOR.ENVELOPE contract (generate-envelope); the reference-framework plugin is driven in
# tests/test_interop_plugin.py, these are the ways an envelope plugin's answer can be wrong ----------------------


def envelope_key(tmp_path: Path, mode: str) -> PluginKey:
    pki = make_chain("ec-p256", cn="kms signer")
    install_plugin(tmp_path, pki, mode=mode)
    key = load_signing_key("plugin:testkms:kms-key-1", tmp_path)
    assert isinstance(key, PluginKey)
    return key


def test_envelope_plugin_makes_the_envelope_we_verify(tmp_path: Path) -> None:
    from dct2notation.notation.formats import sign_in_format

    key = envelope_key(tmp_path, "env-ok")
    assert key.contract == "envelope"
    # The probe (first use) is an envelope too: the chain comes from it, before any artifact is signed.
    assert key.certificate_chain()[0].subject.rfc4514_string().startswith("CN=kms signer,")
    signed = sign_in_format("jws", TARGET, key, clock=CLOCK, user_metadata={"team": "a"})
    assert signed.media_type == "application/jose+json"
    pki_root = key.certificate_chain()[-1]
    result = verify_envelope(
        signed.raw,
        subject=TARGET,
        reference="r.example/app@" + TARGET.digest,
        policy=POLICY,
        truststore=TrustStore(trust(tmp_path, "kms", pki_root)),
        clock=FixedClock(signed.signing_time),
        user_metadata={"team": "a"},
    )
    assert (result.ok, result.reason) == (True, "verified")
    with pytest.raises(SigningKeyError, match="makes whole envelopes"):
        key.sign(b"raw bytes")


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        (
            "env-wrongtype",
            "signatureEnvelopeType 'application/cose' does not match the request 'application/jose+json'",
        ),
        ("env-b64", "generate-envelope: signatureEnvelope is not base64"),
        ("env-badannot", "generate-envelope: annotations must be an object of strings"),
        ("env-badsig", "generate-envelope: the envelope's signature does not verify with its signing certificate"),
        ("env-extra", "generate-envelope: the plugin added unknown payload fields platform_hint"),
        ("env-dropmeta", "generate-envelope: the plugin changed the signed artifact"),
    ],
)
def test_envelope_plugin_answers_refused(tmp_path: Path, mode: str, message: str) -> None:
    from dct2notation.notation.formats import sign_in_format

    key = envelope_key(tmp_path, mode)
    with pytest.raises(SigningKeyError) as caught:
        sign_in_format("jws", TARGET, key, clock=CLOCK, user_metadata={"team": "a"})
    assert message in str(caught.value)
    assert str(caught.value).startswith('plugin "testkms" generate-envelope: ')


def test_plugin_id_and_plugin_config_as_notation_takes_them(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`notation sign --plugin NAME --id KEYID --plugin-config k=v REF` (issue #16): the plugin gets the key id and
    the config on every call. Before: "No such option: --plugin" (only --key plugin:NAME:KEYID)."""
    config = tmp_path / "notation"
    plugin_dir = install_plugin(config, make_chain(cn="kms signer"), mode="record")
    layout, digest = layout_with_image(tmp_path)
    plugin = ["--plugin", "testkms", "--id", "kms-key-1", "--plugin-config", "region=eu-west-1"]
    plugin += ["--plugin-config", "vault=ci"]
    code = main(["sign", "--oci-layout", f"{layout}@{digest}", *plugin, "--config-dir", str(config)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["signature"]["digest"].startswith("sha256:")
    calls = [json.loads(line) for line in (plugin_dir / "requests.jsonl").read_text().splitlines()]
    assert {c["command"] for c in calls} >= {"describe-key", "generate-signature"}
    assert all(c["request"]["pluginConfig"] == {"region": "eu-west-1", "vault": "ci"} for c in calls)
    assert all(c["request"].get("keyId", "kms-key-1") == "kms-key-1" for c in calls)


NEEDS_BOTH = "--plugin NAME and --id KEYID go together (--plugin-config needs both)"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--plugin", "testkms"], NEEDS_BOTH),
        (["--id", "k"], NEEDS_BOTH),
        (["--plugin", "testkms", "--id", "k", "--key", "x"], "--key and --plugin: give one of them"),
        (["--plugin", "testkms", "--id", "k", "--plugin-config", "x"], "--plugin-config: 'x' is not KEY=VALUE"),
    ],
)
def test_plugin_options_refused_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str], message: str
) -> None:
    layout, digest = layout_with_image(tmp_path)
    code = main(["sign", "--oci-layout", f"{layout}@{digest}", *extra, "--config-dir", str(tmp_path)])
    _, err = capsys.readouterr()
    assert (code, err) == (2, f"dct2notation: error: {message}\n")
