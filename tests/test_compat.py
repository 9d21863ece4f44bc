"""Version traps are reported when the choice is made: an artifact-form signature in an OCI layout (invisible to
Notation 1.x), a leaf with keyUsage nonRepudiation (refused by Notation < 1.1.1)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dct2notation.cli import main
from dct2notation.keys.testcert import generate_test_key
from dct2notation.migrate.compat import LAYOUT_ARTIFACT_FORM, leaf_warnings
from tests.support.images import layout_with_image
from tests.support.servers import NotaryServer, Registry
from tests.test_plan_cli import _inventory


def leaf(directory: Path, *, non_repudiation: bool) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
            x509.NameAttribute(NameOID.COMMON_NAME, "signer"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    usage = x509.KeyUsage(True, non_repudiation, False, False, False, False, False, False, False)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = directory / "leaf.key", directory / "leaf.crt"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def test_leaf_warnings_name_the_key_and_the_versions(tmp_path: Path) -> None:
    _, with_nr = leaf(tmp_path / "nr", non_repudiation=True)
    _, plain = leaf(tmp_path / "plain", non_repudiation=False)
    (warning,) = leaf_warnings(x509.load_pem_x509_certificates(with_nr.read_bytes()), "key file k.pem")
    assert warning == (
        "warning: key file k.pem: the signing certificate has keyUsage nonRepudiation (contentCommitment), which "
        "Notation before 1.1.1 refuses at verification: verifiers on Notation < 1.1.1 must upgrade, or issue the "
        "leaf with keyUsage digitalSignature only"
    )
    assert leaf_warnings(x509.load_pem_x509_certificates(plain.read_bytes()), "k") == []


@pytest.mark.parametrize("non_repudiation", [True, False])
def test_plan_warns_about_a_non_repudiation_leaf(
    notary_server: NotaryServer,
    notary_binary: None,
    registry: Registry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    non_repudiation: bool,
) -> None:
    gun, _ = _inventory(notary_server, registry, tmp_path, capsys)
    key_path, cert_path = leaf(tmp_path / "keys", non_repudiation=non_repudiation)
    signers = tmp_path / "signers.toml"
    signers.write_text(f'[[signer]]\ngun = "{gun}"\nkey_file = "{key_path}"\ncert_file = "{cert_path}"\n')
    code = main(
        [
            "plan",
            str(tmp_path / "inventory.json"),
            "--signers",
            str(signers),
            "--no-preflight",
            "-o",
            str(tmp_path / "p"),
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert (f"warning: key file {key_path}: the signing certificate has keyUsage nonRepudiation" in err) is (
        non_repudiation
    )
    assert (tmp_path / "p").is_file()


@pytest.mark.parametrize(("form", "warned"), [("artifact", True), ("legacy", False)])
def test_sign_into_a_layout_warns_about_the_artifact_form(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str, warned: bool
) -> None:
    config = tmp_path / "notation"
    generate_test_key("k", config, key_type="ec-p256")
    layout, digest = layout_with_image(tmp_path)
    args = ["sign", f"app@{digest}", "--oci-layout", str(layout), "--key", "k", "--config-dir", str(config)]
    assert main([*args, "--signature-manifest", form]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert (LAYOUT_ARTIFACT_FORM in err) is warned
