"""``cert generate-test``: a key and self-signed certificate in Notation's test profile, installed where Notation
looks for them (``localkeys/``, ``signingkeys.json``, trust store ``ca/NAME``).

Profile (notation-core-go ``testhelper``): subject C=US, ST=WA, L=Seattle, O=Notary, CN=NAME; self-signed non-CA;
keyUsage digitalSignature (critical); extendedKeyUsage codeSigning; valid for one day by default.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..config import Clock, SystemClock
from ..errors import ConfigError, UsageError
from ..files import create_private, write_beneath, write_error
from .base import PrivateKey
from .signingkeys import NAME_PATTERN, KeyEntry, SigningKeys, signing_keys_path

KEY_TYPES = ("rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384", "ec-p521")


def generate_private_key(key_type: str) -> PrivateKey:
    if key_type.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    curves: dict[str, ec.EllipticCurve] = {
        "ec-p256": ec.SECP256R1(),
        "ec-p384": ec.SECP384R1(),
        "ec-p521": ec.SECP521R1(),
    }
    return ec.generate_private_key(curves[key_type])


def _cert_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size == 384:
        return hashes.SHA384()
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size == 521:
        return hashes.SHA512()
    return hashes.SHA256()


def make_test_certificate(name: str, key: PrivateKey, *, now: dt.datetime, days: int = 1) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Seattle"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Notary"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, _cert_hash(key))
    )


@dataclass(frozen=True)
class GeneratedTestKey:
    name: str
    key_path: Path
    cert_path: Path
    trust_store_cert: Path
    certificate: x509.Certificate


MAX_NAME_LENGTH = 64  # the name is the certificate's CN, at most 64 characters (RFC 5280 ub-common-name)


def generate_test_key(
    name: str,
    config_dir: Path,
    *,
    key_type: str = "rsa-2048",
    make_default: bool = False,
    days: int = 1,
    clock: Clock | None = None,
) -> GeneratedTestKey:
    if not NAME_PATTERN.fullmatch(name):
        raise UsageError(f"key name {name!r} is not valid: use letters, digits, '_', '.' and '-' only")
    if key_type not in KEY_TYPES:
        raise UsageError(f"key type {key_type!r} is not one of {', '.join(KEY_TYPES)}")
    if days < 1:
        raise UsageError("validity must be at least one day")
    if len(name) > MAX_NAME_LENGTH:
        raise UsageError(
            f"key name {name[:20]!r}... is {len(name)} characters; "
            f"the certificate's common name allows at most {MAX_NAME_LENGTH}"
        )
    keys_file = signing_keys_path(config_dir)
    keys = SigningKeys.load(keys_file)
    if any(entry.name == name for entry in keys.keys):
        raise ConfigError(f"{keys_file}: signing key {name!r} already exists")
    store_dir = config_dir / "truststore" / "x509" / "ca" / name
    store_cert = store_dir / f"{name}.crt"
    if store_cert.exists():
        raise ConfigError(f"{store_cert}: trust store certificate already exists")

    now = (clock or SystemClock()).now().replace(microsecond=0)
    # X.509 times end at 9999-12-31 (and Python's datetime with them).
    if days > (dt.datetime(9999, 12, 31, tzinfo=dt.UTC) - now).days:
        raise UsageError(f"validity of {days} days ends after the year 9999")
    key = generate_private_key(key_type)
    cert = make_test_certificate(name, key, now=now, days=days)

    local = config_dir / "localkeys"
    key_path = local / f"{name}.key"
    cert_path = local / f"{name}.crt"
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem_cert = cert.public_bytes(serialization.Encoding.PEM)
    try:
        local.mkdir(parents=True, exist_ok=True)
        store_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(Path(exc.filename or local), exc) from exc
    # 0600 from creation and O_EXCL|O_NOFOLLOW, as notation writes it: a leftover key file (perhaps 0644) or a
    # planted symlink is refused, never reused or followed.
    create_private(key_path, pem_key)
    try:
        # Replaced, never written through: a symlink planted at either name is not followed.
        write_beneath(local, cert_path.name, pem_cert)
        write_beneath(store_dir, store_cert.name, pem_cert)
    except BaseException:
        key_path.unlink(missing_ok=True)  # created by us just above: no key without its certificate
        raise

    keys.add(KeyEntry(name=name, key_path=str(key_path), cert_path=str(cert_path)), make_default=make_default)
    keys.save(keys_file)
    return GeneratedTestKey(name, key_path, cert_path, store_cert, cert)
