"""Trust policy v1.0 validation: Notation's own e2e policies, and each rule of the spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dct2notation.errors import ConfigError, UsageError
from dct2notation.notation.policy import TrustPolicyDocument, dn_map, repository_of

VALID = [
    "trustpolicy.json",
    "any_registry_scope_trust_policy.json",
    "registry_scope_trustpolicy.json",
    "multiple_registry_scope_trustpolicy.json",
    "multiple_trust_store_trustpolicy.json",
    "multiple_trusted_identity_trustpolicy.json",
    "valid_trusted_identity_trustpolicy.json",
    "multi_statements_with_wildcard_registry_scope_trustpolicy.json",
    "timestamp_trustpolicy.json",
    "timestamp_after_cert_expiry_trustpolicy.json",
    "override_audit_trustpolicy.json",
    "override_permissive_trustpolicy.json",
    "override_strict_trustpolicy.json",
    "audit_trustpolicy.json",
    "permissive_trustpolicy.json",
    "skip_trustpolicy.json",
    "quickstart_trustpolicy.json",
    "generate_test_trustpolicy.json",
    # Validation passes; these fail later, at verification time (unknown store / identity mismatch).
    "invalid_trust_store_trustpolicy.json",
    "invalid_trusted_identity_trustpolicy.json",
    "invalid_registry_scope_trustpolicy.json",
]

INVALID = {
    "empty_registry_scope_trustpolicy.json": 'trust policy statement "e2e" has zero registry scopes',
    "malformed_registry_scope_trustpolicy.json": 'registry scope "localhost:5000\\test-repo" is not valid',
    "overlapped_registry_scope_trustpolicy.json": (
        'registry scope "localhost:5000/test-repo6" is present in multiple oci trust policy statements'
    ),
    "wildcard_plus_other_registry_scope_trustpolicy.json": (
        "uses wildcard registry scope '*', a wildcard scope cannot be used in conjunction with other scope values"
    ),
    "multi_statements_with_the_same_registry_scope_trustpolicy.json": (
        "is present in multiple oci trust policy statements, one registry scope value can only be associated with one "
        "statement"
    ),
    "multi_statements_with_multi_wildcard_registry_scope_trustpolicy.json": (
        'registry scope "*" is present in multiple oci trust policy statements'
    ),
    "multi_statements_with_the_same_name_trustpolicy.json": (
        'multiple oci trust policy statements use the same name "e2e", statement names must be unique'
    ),
    "unset_trust_store_trustpolicy.json": (
        'statement "e2e" is either missing trust stores or trusted identities, both must be specified'
    ),
    "unset_trusted_identity_trustpolicy.json": (
        'statement "e2e" is either missing trust stores or trusted identities, both must be specified'
    ),
    "malformed_trust_store_trustpolicy.json": (
        'statement "e2e" uses an unsupported trust store name "" in trust store value "ca:". Named store name needs '
        "to follow [a-zA-Z0-9_.-]+ format"
    ),
    "wildcard_trust_store_trustpolicy.json": (
        'statement "e2e" has malformed trust store value "*". The required format is <TrustStoreType>:<TrustStoreName>'
    ),
    "malformed_trusted_identity_trustpolicy.json": "missing separator",
    "empty_trusted_identity_trustpolicy.json": 'statement "e2e" has an empty trusted identity',
    "overlapped_trusted_identity_trustpolicy.json": 'statement "e2e" has overlapping x509 trustedIdentities',
    "wildcard_plus_other_trusted_identity_trustpolicy.json": (
        "uses a wildcard trusted identity '*', a wildcard identity cannot be used in conjunction with other values"
    ),
    "missing_organization_trusted_identity_trustpolicy.json": 'has no mandatory RDN attribute for "O"',
    "missing_state_trusted_identity_trustpolicy.json": 'has no mandatory RDN attribute for "ST"',
    "missing_country_trusted_identity_trustpolicy.json": 'has no mandatory RDN attribute for "C"',
    "override_integrity_for_permissive_trustpolicy.json": 'overrides "integrity" verification',
    "overlapped_trust_store_trustpolicy.json": 'lists trust store "ca:e2e" more than once',
    "invalid_format_trustpolicy.json": "malformed trust policy, not valid JSON",
}


def policies(shared: Path) -> Path:
    return shared / "notation" / "trustpolicies"


@pytest.mark.parametrize("name", VALID)
def test_notation_valid_policies_load(shared_fixtures: Path, name: str) -> None:
    doc = TrustPolicyDocument.load(policies(shared_fixtures) / name)
    assert doc.version == "1.0" and doc.statements


@pytest.mark.parametrize(("name", "message"), sorted(INVALID.items()))
def test_notation_invalid_policies_rejected(shared_fixtures: Path, name: str, message: str) -> None:
    path = policies(shared_fixtures) / name
    with pytest.raises(ConfigError) as info:
        TrustPolicyDocument.load(path)
    assert message in str(info.value)
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)


def test_blob_policies_load(shared_fixtures: Path) -> None:
    doc = TrustPolicyDocument.load(policies(shared_fixtures) / "trustpolicy.blob.json", kind="blob")
    assert doc.statement_named(None).name == "test-blob-global-statement"
    assert doc.statement_named("test-blob-with-timestamping").stores("tsa") == ["e2e"]
    # Read as an OCI policy, a blob policy lacks registry scopes.
    with pytest.raises(ConfigError, match='"test-blob-statement" has zero registry scopes'):
        TrustPolicyDocument.load(policies(shared_fixtures) / "trustpolicy.blob.json")


def statement(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "s1",
        "registryScopes": ["registry.example/team/app"],
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:corp"],
        "trustedIdentities": ["*"],
    }
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def doc(*statements: dict[str, Any], version: str = "1.0") -> dict[str, Any]:
    return {"version": version, "trustPolicies": list(statements)}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (doc(statement(), version="2.0"), 'unsupported version "2.0"'),
        (doc(), "can not have zero trust policy statements"),
        ({"version": "1.0", "trustPolicies": [], "x": 1}, "unknown field(s) ['x']"),
        (doc(statement(signatureVerification={"level": "paranoid"})), 'statement "s1" uses invalid signature'),
        (doc(statement(signatureVerification={})), 'statement "s1" is missing signatureVerification.level'),
        (
            doc(statement(signatureVerification={"level": "strict", "override": {"expiry": "skip"}})),
            'statement "s1" uses verification action "skip" for "expiry"; only "revocation" can be skipped',
        ),
        (
            doc(statement(signatureVerification={"level": "strict", "override": {"expiry": "ignore"}})),
            'unsupported verification action "ignore" for "expiry"',
        ),
        (
            doc(statement(signatureVerification={"level": "strict", "override": {"freshness": "log"}})),
            'overrides an unknown validation type "freshness"',
        ),
        (
            doc(
                statement(
                    signatureVerification={"level": "skip", "override": {"revocation": "log"}},
                    trustStores=None,
                    trustedIdentities=None,
                )
            ),
            'statement "s1" uses the "skip" level, which cannot be overridden',
        ),
        (
            doc(statement(signatureVerification={"level": "skip"})),
            'statement "s1" is set to skip signature verification but configured with trust stores',
        ),
        (
            doc(statement(signatureVerification={"level": "strict", "verifyTimestamp": "never"})),
            'invalid verifyTimestamp value "never"',
        ),
        (
            doc(statement(trustStores=["kms:corp"])),
            'unsupported trust store type "kms" in trust store value "kms:corp"',
        ),
        (doc(statement(registryScopes=["registry.example/*"])), 'registry scope "registry.example/*" is not valid'),
        (doc(statement(registryScopes=["app"])), 'registry scope "app" is not valid'),
        (doc(statement(registryScopes=["registry.example/Team/app"])), "is not valid"),
        (
            doc(statement(trustedIdentities=["x509.subject: C=US+ST=WA, O=Acme"])),
            "has multi-valued RDN attributes",
        ),
        (
            doc(statement(trustedIdentities=["x509.subject: C=US, ST=WA, ST=OR, O=Acme"])),
            'has duplicate RDN attribute for "ST"',
        ),
        (
            doc(statement(trustedIdentities=["x509.subject: C=US, ST=WA, O=#04024869"])),
            'containing "=#"',
        ),
        (doc(statement(trustedIdentities=["x509.subject:"])), "without an identity value"),
        (doc(statement(extra=1)), "statement \"s1\" has unknown field(s) ['extra']"),
        (doc(statement(name="")), "statement #1 is missing a name"),
    ],
)
def test_rules(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrustPolicyDocument.from_dict(document, "policy.json")
    assert message in str(info.value)
    assert str(info.value).startswith("policy.json: ")


def test_other_identity_prefixes_are_left_to_plugins() -> None:
    loaded = TrustPolicyDocument.from_dict(
        doc(statement(trustedIdentities=["x509.subject: C=US, ST=WA, O=Acme", "kms.keyid: abc"]))
    )
    assert loaded.statements[0].x509_subjects == ({"C": "US", "ST": "WA", "O": "Acme"},)


def test_rfc4514_escapes() -> None:
    assert dn_map(r"C=US, ST=WA, O=Acme\, Inc., OU=\ lead\\trail\ ,CN=a\;b") == {
        "C": "US",
        "ST": "WA",
        "O": "Acme, Inc.",
        "OU": " lead\\trail ",
        "CN": "a;b",
    }
    assert dn_map(r"C=US, S=WA, O=caf\C3\A9") == {"C": "US", "ST": "WA", "O": "café"}


def test_scope_selection(tmp_path: Path) -> None:
    document = TrustPolicyDocument.from_dict(doc(statement(), statement(name="all", registryScopes=["*"])))
    digest = "sha256:" + "0" * 64
    assert document.statement_for(f"registry.example/team/app@{digest}").name == "s1"
    assert document.statement_for(f"registry.example/team/app:v1@{digest}").name == "s1"
    assert document.statement_for(f"localhost:5000/team/app@{digest}").name == "all"
    only_exact = TrustPolicyDocument.from_dict(doc(statement()))
    with pytest.raises(ConfigError, match='no applicable oci trust policy statement \\(scope "other.example/x"\\)'):
        only_exact.statement_for(f"other.example/x@{digest}")
    with pytest.raises(UsageError, match="must contain a digest"):
        repository_of("registry.example/team/app:v1")
    path = tmp_path / "trustpolicy.json"
    path.write_text(json.dumps(doc(statement())))
    link = tmp_path / "link.json"
    link.symlink_to(path)
    with pytest.raises(ConfigError, match="symlink"):
        TrustPolicyDocument.load(link)
    with pytest.raises(ConfigError, match="cannot read trust policy"):
        TrustPolicyDocument.load(tmp_path / "absent.json")
