"""Trusted identities are matched on the leaf subject exactly as notation-go reads it.

notation-go matches ``x509.subject:`` identities against ``ParseDistinguishedName(leaf.Subject.String())``: Go's
``pkix.Name.String()`` regroups the subject (every O value into one RDN, only the last CN), and the DN parser then
refuses duplicates, multi-valued RDNs, ``=#`` values and a missing C/ST/O. A verifier that reads the certificate's
attributes any other way accepts signatures Notation refuses after the migration, or the reverse.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from dct2notation.errors import ConfigError
from dct2notation.keys.local import LocalKey
from dct2notation.notation.envelope import sign_envelope
from dct2notation.notation.policy import parse_dn
from dct2notation.notation.truststore import TrustStore
from dct2notation.notation.verify import VerificationResult, go_subject_string, verify_envelope
from tests.support.plugin_pki import NOW, issue, name, new_key, trust
from tests.test_verify import CLOCK, REF, TARGET, policy

A = x509.NameAttribute
RDN = x509.RelativeDistinguishedName
C, ST, ORG, OU, CN = (
    NameOID.COUNTRY_NAME,
    NameOID.STATE_OR_PROVINCE_NAME,
    NameOID.ORGANIZATION_NAME,
    NameOID.ORGANIZATIONAL_UNIT_NAME,
    NameOID.COMMON_NAME,
)


def leaf_with(subject: x509.Name, tmp_path: Path) -> tuple[LocalKey, TrustStore]:
    root_key, leaf_key = new_key("ec-p384"), new_key("ec-p256")
    root_name = name("corp root", "Acme")
    root = issue(root_name, root_key, root_name, root_key, ca=True, not_after=NOW.replace(year=NOW.year + 10))
    leaf = issue(subject, leaf_key, root_name, root_key, ca=False)
    return LocalKey("k", leaf_key, [leaf, root]), TrustStore(trust(tmp_path, "corp", root))


def verify(subject: x509.Name, identity: str, tmp_path: Path) -> VerificationResult:
    key, store = leaf_with(subject, tmp_path)
    raw = sign_envelope(TARGET, key, clock=CLOCK).raw
    return verify_envelope(
        raw,
        subject=TARGET,
        reference=REF,
        policy=policy(["ca:corp"], [f"x509.subject: {identity}"]),
        truststore=store,
        clock=CLOCK,
    )


def rdns(*groups: list[A[str]]) -> x509.Name:
    return x509.Name([RDN(group) for group in groups])


def test_attack_leaf_duplicate_organization_passes_identity_check(tmp_path: Path) -> None:
    # The identity names O=Acme; the leaf also carries O=Evil. Go renders "O=Acme+O=Evil": notation-go refuses it.
    subject = x509.Name([A(C, "US"), A(ST, "WA"), A(ORG, "Acme"), A(ORG, "Evil"), A(CN, "signer")])
    result = verify(subject, "C=US, ST=WA, O=Acme", tmp_path)
    assert (result.ok, result.failed_check) == (False, "authenticity")
    assert result.reason == (
        'cannot parse the signing certificate subject "CN=signer,O=Acme+O=Evil,ST=WA,C=US" as notation-go does: '
        "it has multi-valued RDN attributes, which are not supported"
    )


def test_attack_leaf_second_common_name_hides_behind_the_first(tmp_path: Path) -> None:
    # Go keeps the last CN: notation-go sees CN=evil, so an identity naming CN=trusted does not match.
    subject = x509.Name([A(C, "US"), A(ST, "WA"), A(ORG, "Acme"), A(CN, "trusted"), A(CN, "evil")])
    result = verify(subject, "C=US, ST=WA, O=Acme, CN=trusted", tmp_path)
    assert (result.ok, result.failed_check) == (False, "authenticity")
    assert result.reason.endswith('does not match the X.509 trusted identities of trust policy statement "test"')
    assert verify(subject, "C=US, ST=WA, O=Acme, CN=evil", tmp_path).ok


def test_attack_leaf_multi_valued_rdn_with_unnamed_attribute(tmp_path: Path) -> None:
    # CN+UID in one RDN: Go renders UID as "0.9.2342.19200300.100.1.1=#...", which notation-go's parser refuses.
    subject = rdns([A(C, "US")], [A(ST, "WA")], [A(ORG, "Acme")], [A(CN, "signer"), A(NameOID.USER_ID, "u1")])
    result = verify(subject, "C=US, ST=WA, O=Acme", tmp_path)
    assert (result.ok, result.failed_check) == (False, "authenticity")
    assert result.reason == (
        'cannot parse the signing certificate subject "CN=signer,O=Acme,ST=WA,C=US,0.9.2342.19200300.100.1.1=#13027531"'
        ' as notation-go does: notation does not support x509.subject identities containing "=#"'
    )


def test_leaf_multi_valued_rdn_of_named_types_is_flattened_as_go_does(tmp_path: Path) -> None:
    # O+OU in one RDN are two named fields to Go, written back as two RDNs: notation-go accepts, so do we.
    subject = rdns([A(C, "US")], [A(ST, "WA")], [A(ORG, "Acme"), A(OU, "Build")], [A(CN, "signer")])
    assert go_subject_string(subject) == "CN=signer,OU=Build,O=Acme,ST=WA,C=US"
    assert verify(subject, "C=US, ST=WA, O=Acme, OU=Build", tmp_path).ok


def test_leaf_without_state_matches_no_identity(tmp_path: Path) -> None:
    subject = x509.Name([A(C, "US"), A(ORG, "Acme"), A(CN, "signer")])
    result = verify(subject, "C=US, O=Acme, ST=WA", tmp_path)
    assert (result.ok, result.failed_check) == (False, "authenticity")
    assert result.reason.endswith(
        'as notation-go does: it has no mandatory RDN attribute for "ST" (C, ST and O are all required)'
    )


# --- the rendering against Go's own crypto/x509 ---------------------------------------------------------------------

_GO_PROGRAM = """package main

import (
\t"crypto/x509"
\t"encoding/pem"
\t"fmt"
\t"os"
)

func main() {
\tdata, _ := os.ReadFile(os.Args[1])
\tfor {
\t\tblock, rest := pem.Decode(data)
\t\tif block == nil {
\t\t\treturn
\t\t}
\t\tdata = rest
\t\tcert, err := x509.ParseCertificate(block.Bytes)
\t\tif err != nil {
\t\t\tpanic(err)
\t\t}
\t\tfmt.Println(cert.Subject.String())
\t}
}
"""

SUBJECTS = [
    x509.Name([A(C, "US"), A(ST, "WA"), A(ORG, "Acme"), A(ORG, "Evil"), A(CN, "a"), A(CN, "b")]),
    rdns([A(C, "US")], [A(ST, "WA"), A(ORG, "Acme")], [A(CN, "x"), A(NameOID.USER_ID, "u1")]),
    x509.Name(
        [
            A(C, "US"),
            A(ST, ' W,A+"\\<>;# '),
            A(ORG, "#Ac=#me café "),
            A(NameOID.EMAIL_ADDRESS, "a@b.c"),
            A(NameOID.DOMAIN_COMPONENT, "com"),
            A(NameOID.SERIAL_NUMBER, "1"),
            A(NameOID.POSTAL_CODE, "98101"),
            A(NameOID.STREET_ADDRESS, "1 Main St"),
            A(NameOID.LOCALITY_NAME, "Seattle"),
        ]
    ),
]


def test_subject_rendering_matches_go_crypto_x509(tmp_path: Path) -> None:
    go = shutil.which("go")
    if go is None:
        pytest.skip("the Go toolchain is not installed: cannot compare with crypto/x509")
    (tmp_path / "main.go").write_text(_GO_PROGRAM)
    (tmp_path / "go.mod").write_text("module subject\n\ngo 1.22\n")
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    subprocess.run([go, "build", "-o", "subject", "."], cwd=tmp_path, env=env, check=True, timeout=300)
    key = new_key("ec-p256")
    pems = b"".join(
        issue(subject, key, subject, key, ca=True).public_bytes(serialization.Encoding.PEM) for subject in SUBJECTS
    )
    (tmp_path / "certs.pem").write_bytes(pems)
    done = subprocess.run(
        [str(tmp_path / "subject"), str(tmp_path / "certs.pem")], capture_output=True, check=True, timeout=60
    )
    assert done.stdout.decode().splitlines() == [go_subject_string(subject) for subject in SUBJECTS]


# --- trust-policy values, as go-ldap v3.4.11 (notation-go's parser) reads them ------------------------------------
# Expected values were read off go-ldap's own ParseDN for the same strings.


@pytest.mark.parametrize(
    ("text", "rdns"),
    [
        ("c=US, st=WA, o=Acme", [[("c", "US")], [("st", "WA")], [("o", "Acme")]]),
        ("C=US, O=", [[("C", "US")], [("O", "")]]),
        ("O=a=b", [[("O", "a=b")]]),
        ("O=a\\  ", [[("O", "a ")]]),
        ("O=\\41\\42", [[("O", "AB")]]),
        (" C = US ; ST = WA ", [[("C", "US")], [("ST", "WA")]]),
        ("C=US,ST=WA,O=A;CN=x+OU=y", [[("C", "US")], [("ST", "WA")], [("O", "A")], [("CN", "x"), ("OU", "y")]]),
    ],
)
def test_dn_parsing_matches_go_ldap(text: str, rdns: list[list[tuple[str, str]]]) -> None:
    assert parse_dn(text) == rdns


@pytest.mark.parametrize("text", ["C=US,", "C=US,,ST=WA", "O=\\zz", "O=\\é1", "O=a\\", "=US"])
def test_dn_go_ldap_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not valid RFC 4514"):
        parse_dn(text)


def test_attack_lowercase_attribute_types_in_trusted_identity(tmp_path: Path) -> None:
    # notation-go keeps attribute types as written: "c=US, st=WA, o=Acme" has no C, ST or O, so Notation refuses
    # the policy. Read case-insensitively it matched every Acme leaf.
    with pytest.raises(ConfigError) as caught:
        policy(["ca:corp"], ["x509.subject: c=US, st=WA, o=Acme"])
    assert str(caught.value).endswith(
        'has trusted identity "x509.subject: c=US, st=WA, o=Acme" whose distinguished name (DN) has no mandatory '
        'RDN attribute for "C" (C, ST and O are all required)'
    )


def test_empty_value_in_identity_means_the_leaf_has_none(tmp_path: Path) -> None:
    # Go's map lookup of a missing type is "": "OU=" accepts a leaf without OU and refuses one with an OU.
    without = x509.Name([A(C, "US"), A(ST, "WA"), A(ORG, "Acme"), A(CN, "signer")])
    with_ou = x509.Name([A(C, "US"), A(ST, "WA"), A(ORG, "Acme"), A(OU, "Build"), A(CN, "signer")])
    assert verify(without, "C=US, ST=WA, O=Acme, OU=", tmp_path / "a").ok
    assert not verify(with_ou, "C=US, ST=WA, O=Acme, OU=", tmp_path / "b").ok


def test_identity_prefix_is_compared_exactly(tmp_path: Path) -> None:
    # "x509.subject :" is not notation-go's prefix: a plugin identity, so no X.509 identity matches the leaf.
    subject = x509.Name([A(C, "US"), A(ST, "WA"), A(ORG, "Acme"), A(CN, "signer")])
    key, store = leaf_with(subject, tmp_path)
    raw = sign_envelope(TARGET, key, clock=CLOCK).raw
    result = verify_envelope(
        raw,
        subject=TARGET,
        reference=REF,
        policy=policy(["ca:corp"], ["x509.subject : C=US, ST=WA, O=Acme"]),
        truststore=store,
        clock=CLOCK,
    )
    assert (result.ok, result.failed_check) == (False, "authenticity")
