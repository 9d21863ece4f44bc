"""Every admission document `policy` emits validates against the CRD of its apiVersion (../shared/fixtures/admission).

The CRD schemas are made strict the way the API server treats them: an object schema with ``properties`` and no
``x-kubernetes-preserve-unknown-fields`` gets ``additionalProperties: false``, because the API server would silently
prune an unknown field (a dropped ``verifyTimestamp`` is a weakening nobody sees). Other ``x-kubernetes-*`` keys are
ignored. Kyverno's admission rule that a Notary ``verifyImages`` rule whose failure action is Audit sets
``mutateDigest: false`` (kyverno pkg/validation/policy/validate.go, v1.19.0) is checked on top.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from dct2notation.migrate.admission.image_names import connaisseur_globs, ivp_globs
from dct2notation.migrate.policy import write_emission
from tests.support.admission_estate import LEVELS, emission, emit, make_keys
from tests.support.plugin_pki import make_chain

CRD_FILES = (
    "kyverno-v1.19.0/kyverno.io_clusterpolicies.yaml",
    "kyverno-v1.19.0/policies.kyverno.io_imagevalidatingpolicies.yaml",
    "ratify-v1.4.4/config.ratify.deislabs.io_verifiers.yaml",
    "ratify-v1.4.4/config.ratify.deislabs.io_keymanagementproviders.yaml",
    "ratify-v1.4.4/config.ratify.deislabs.io_policies.yaml",
    "ratify-v1.4.4/config.ratify.deislabs.io_stores.yaml",
    "ratify-v2.0.0-beta.1/config.ratify.sh_executors.yaml",
    "gatekeeper-v3.22.2/constrainttemplate-customresourcedefinition.yaml",
    "kyverno-notation-aws-v1.1/notation.nirmata.io_trustpolicies.yaml",
    "kyverno-notation-aws-v1.1/notation.nirmata.io_truststores.yaml",
)


def strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    preserved = schema.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in schema and "additionalProperties" not in schema and not preserved:
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def schemas(shared_fixtures: Path) -> dict[tuple[str, str], Any]:
    found: dict[tuple[str, str], Any] = {}
    for name in CRD_FILES:
        crd = yaml.safe_load((shared_fixtures / "admission" / name).read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            # metadata is an opaque object in CRD schemas; names are checked by the API server, here by hand.
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            found[(f"{group}/{version['name']}", kind)] = schema
    return found


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_keys(tmp_path_factory.mktemp("admission-keys"))


def documents(out: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(out.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            yield str(path.relative_to(out)), doc


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(("kyverno", "ratify"), [("ivp", "v1"), ("clusterpolicy", "v2")])
def test_every_emitted_document_validates_against_its_crd(
    schemas: dict[tuple[str, str], Any], keys: Path, tmp_path: Path, level: str, kyverno: str, ratify: str
) -> None:
    out = emit(keys, tmp_path / "out", level, kyverno=kyverno, ratify=ratify)
    kinds = []
    for name, doc in documents(out):
        if name.startswith("connaisseur/"):
            continue  # Helm values, not a Kubernetes object (checked in test_connaisseur_values_step_the_window)
        kinds.append(doc["kind"])
        if doc["apiVersion"].startswith("constraints.gatekeeper.sh/"):
            # A constraint's CRD is generated from its template: its parameters follow the template's schema.
            template = next(d for _, d in documents(out / "ratify") if d["kind"] == "ConstraintTemplate")
            assert doc["kind"] == template["spec"]["crd"]["spec"]["names"]["kind"]
            jsonschema.validate(
                doc["spec"]["parameters"], strict(template["spec"]["crd"]["spec"]["validation"]["openAPIV3Schema"])
            )
            assert doc["spec"]["enforcementAction"] in ("deny", "warn", "dryrun")
            continue
        schema = schemas[(doc["apiVersion"], doc["kind"])]
        jsonschema.validate(doc, schema)
    expected = {"TrustPolicy", "TrustStore", "ConstraintTemplate", "RatifyVerification"}
    expected |= {"ImageValidatingPolicy"} if kyverno == "ivp" else {"ClusterPolicy"}
    expected |= {"KeyManagementProvider", "Verifier", "Policy", "Store"} if ratify == "v1" else {"Executor"}
    assert set(kinds) == expected


def test_strict_schema_catches_a_field_the_api_server_would_prune(
    schemas: dict[tuple[str, str], Any], keys: Path, tmp_path: Path
) -> None:
    out = emit(keys, tmp_path / "out", "strict")
    (policy,) = yaml.safe_load_all((out / "nirmata" / "trustpolicy.yaml").read_text())
    broken = copy.deepcopy(policy)
    broken["spec"]["trustPolicies"][0]["signatureVerification"]["verifyTimestamp"] = "always"
    with pytest.raises(jsonschema.ValidationError, match="verifyTimestamp"):
        jsonschema.validate(broken, schemas[("notation.nirmata.io/v1alpha1", "TrustPolicy")])


def effective_action(policy: dict[str, Any], verify: dict[str, Any]) -> str:
    return str(verify.get("failureAction") or policy["spec"].get("validationFailureAction") or "Audit")


@pytest.mark.parametrize("level", LEVELS)
def test_kyverno_audit_never_mutates_digests(keys: Path, tmp_path: Path, level: str) -> None:
    out = emit(keys, tmp_path / "cp", level, kyverno="clusterpolicy")
    (policy,) = yaml.safe_load_all((out / "kyverno" / "clusterpolicy.yaml").read_text())
    spec = policy["spec"]
    assert "validationFailureAction" not in spec and "webhookTimeoutSeconds" not in spec  # deprecated since 1.13
    assert spec["webhookConfiguration"] == {"failurePolicy": "Fail", "timeoutSeconds": 30}
    for rule in spec["rules"]:
        assert rule["match"] == {"any": [{"resources": {"kinds": ["Pod"], "namespaces": ["apps", "web"]}}]}
        (verify,) = rule["verifyImages"]
        action = effective_action(policy, verify)
        assert action == ("Enforce" if level == "strict" else "Audit")
        if action == "Audit":
            assert verify["mutateDigest"] is False
        assert verify["imageRegistryCredentials"] == {"secrets": ["regcred"]}
    ivp = emit(keys, tmp_path / "ivp", level)
    for _, doc in documents(ivp / "kyverno"):
        actions = doc["spec"]["validationActions"]
        assert actions == {"strict": ["Deny"], "permissive": ["Warn", "Audit"], "audit": ["Audit"]}[level]
        assert doc["spec"]["validationConfigurations"]["mutateDigest"] is (actions == ["Deny"])


def test_the_old_clusterpolicy_form_is_what_kyverno_refuses() -> None:
    # HEAD emitted this for --level audit: Audit with mutateDigest left at its CRD default (true).
    old = {"spec": {"validationFailureAction": "Audit", "rules": [{"verifyImages": [{"type": "Notary"}]}]}}
    (verify,) = old["spec"]["rules"][0]["verifyImages"]  # type: ignore[index]
    assert effective_action(old, verify) == "Audit" and verify.get("mutateDigest", True) is True


def pem_of(path: Path) -> str:
    return path.read_text()


def test_ivp_per_statement_with_certs_tsa_certs_and_credentials(keys: Path, tmp_path: Path) -> None:
    out = emit(keys, tmp_path / "out", "strict")
    policy = json.loads((out / "trustpolicy.json").read_text())
    ivps = {doc["metadata"]["name"]: doc for _, doc in documents(out / "kyverno")}
    assert sorted(ivps) == sorted(f"dct2notation-{st['name']}" for st in policy["trustPolicies"])
    tsa_pem = pem_of(out / "truststore" / "x509" / "tsa" / "tsa-root" / "tsa-root.pem")
    for statement in policy["trustPolicies"]:
        assert statement["signatureVerification"] == {"level": "strict", "verifyTimestamp": "afterCertExpiry"}
        assert statement["trustStores"][-1] == "tsa:tsa-root"
        spec = ivps[f"dct2notation-{statement['name']}"]["spec"]
        globs = [g for scope in statement["registryScopes"] for g in ivp_globs(scope)]
        assert spec["matchImageReferences"] == [{"glob": g} for g in globs]
        cas = [s.removeprefix("ca:") for s in statement["trustStores"] if s.startswith("ca:")]
        certs = "".join(pem_of(out / "truststore" / "x509" / "ca" / n / f"{n}.pem") for n in cas)
        (attestor,) = spec["attestors"]
        assert attestor == {"name": "notary", "notary": {"certs": {"value": certs}, "tsaCerts": {"value": tsa_pem}}}
        assert "verifyImageSignatures(image, [attestors.notary])" in spec["validations"][0]["expression"]
        assert spec["credentials"] == {"secrets": ["regcred"]}
        assert spec["webhookConfiguration"] == {"timeoutSeconds": 30}
        selector = spec["matchConstraints"]["namespaceSelector"]["matchExpressions"]
        assert selector == [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["apps", "web"]}]


def test_gaps_report_kyverno_weakening_per_statement(keys: Path, tmp_path: Path) -> None:
    out = emit(keys, tmp_path / "out", "strict")
    policy = json.loads((out / "trustpolicy.json").read_text())
    by_scope = {scope: st["name"] for st in policy["trustPolicies"] for scope in st["registryScopes"]}
    gaps = {(g["kind"], g["detail"].split(" ")[0]): g for g in json.loads((out / "gaps.json").read_text())["gaps"]}
    weakened = {name for kind, name in gaps if kind == "kyverno-any-identity"}
    # a ({alice, rel}) and b ({rel}) share rel's root; kms's root is a CA; c (admin) has a root of its own.
    a, b, c, kms = (by_scope[f"reg.example/{n}"] for n in ("a", "b", "c", "kms"))
    assert weakened == {a, b, kms}
    assert f"shares a root with {b}" in gaps[("kyverno-any-identity", a)]["detail"]
    assert "CA root" in gaps[("kyverno-any-identity", kms)]["detail"]
    assert gaps[("kyverno-any-identity", kms)]["repositories"] == ["reg.example/kms"]
    markdown = (out / "GAPS.md").read_text()
    assert f"## kyverno-any-identity: {a} (shares a root with {b})\n" in markdown
    assert 'trustedIdentities ["*"]' in markdown
    # Kyverno's IVP checks timestamps always once tsaCerts are set; the statements say afterCertExpiry.
    always = {name for kind, name in gaps if kind == "kyverno-timestamp-always"}
    assert always == {a, b, c, kms}
    # The ClusterPolicy form cannot carry TSA roots; Nirmata's CRDs cannot either; Ratify v2 has one verifier.
    out2 = emit(keys, tmp_path / "out2", "strict", kyverno="clusterpolicy", ratify="v2")
    kinds = {(g["kind"], g["detail"]) for g in json.loads((out2 / "gaps.json").read_text())["gaps"]}
    for name in (a, b, c, kms):
        assert ("kyverno-clusterpolicy-no-tsa", name) in kinds
        assert ("nirmata-no-tsa", name) in kinds
        assert ("ratify-v2-one-statement", name) in kinds


def test_ratify_v1_carries_trust_policy_tsa_stores_and_pull_secret(keys: Path, tmp_path: Path) -> None:
    out = emit(keys, tmp_path / "out", "permissive")
    policy = json.loads((out / "trustpolicy.json").read_text())
    (verifier,) = yaml.safe_load_all((out / "ratify" / "verifier.yaml").read_text())
    assert verifier["metadata"]["name"] == "verifier-notation"  # replaces the chart's own notation verifier
    assert verifier["spec"]["type"] == "notation" and verifier["spec"]["parameters"]["trustPolicyDoc"] == policy
    stores = verifier["spec"]["parameters"]["verificationCertStores"]
    assert stores["tsa"] == {"tsa-root": ["dct2notation-tsa-tsa-root"]}
    providers = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all((out / "ratify" / "keymanagementproviders.yaml").read_text())
    }
    tsa_pem = pem_of(out / "truststore" / "x509" / "tsa" / "tsa-root" / "tsa-root.pem")
    assert providers["dct2notation-tsa-tsa-root"]["spec"]["parameters"]["value"] == tsa_pem
    for store, (kmp,) in stores["ca"].items():
        assert providers[kmp]["spec"]["parameters"]["value"] == pem_of(
            out / "truststore/x509/ca" / store / f"{store}.pem"
        )
    (ratify_policy,) = yaml.safe_load_all((out / "ratify" / "policy.yaml").read_text())
    assert ratify_policy["metadata"]["name"] == "ratify-policy" and ratify_policy["spec"]["type"] == "config-policy"
    (store_doc,) = yaml.safe_load_all((out / "ratify" / "store.yaml").read_text())
    assert store_doc["spec"]["parameters"]["authProvider"] == {
        "name": "k8Secrets",
        "secrets": [{"secretName": "regcred"}],
    }
    (template,) = yaml.safe_load_all((out / "ratify" / "constrainttemplate.yaml").read_text())
    (constraint,) = yaml.safe_load_all((out / "ratify" / "constraint" / "ratifyverification.yaml").read_text())
    assert '"provider": "ratify-provider"' in template["spec"]["targets"][0]["rego"]
    assert constraint["metadata"]["name"] == "dct2notation-verify"
    assert constraint["spec"]["enforcementAction"] == "warn"
    assert constraint["spec"]["match"]["namespaces"] == ["apps", "web"]
    assert constraint["spec"]["parameters"]["repositories"] == [f"reg.example/{n}" for n in ("a", "b", "c", "kms")]
    for level, action in (("strict", "deny"), ("audit", "dryrun")):
        again = emit(keys, tmp_path / level, level)
        (constraint,) = yaml.safe_load_all((again / "ratify" / "constraint" / "ratifyverification.yaml").read_text())
        assert constraint["spec"]["enforcementAction"] == action


def test_ratify_v2_store_has_a_credential_provider_and_the_pull_secret_is_a_gap(
    shared_fixtures: Path, keys: Path, tmp_path: Path
) -> None:
    """v2.0.0-beta.1 refuses a registry-store without ``credential.provider`` (HEAD emitted ``parameters: {}``); its
    providers are static (a login written into the Executor) and Azure, none reads a Kubernetes secret."""
    out = emit(keys, tmp_path / "out", "strict", ratify="v2")
    (executor,) = yaml.safe_load_all((out / "ratify" / "executor.yaml").read_text())
    sample = yaml.safe_load(
        (shared_fixtures / "admission" / "ratify-v2.0.0-beta.1" / "config_v2alpha1_executor.yaml").read_text()
    )
    assert executor["spec"]["stores"] == sample["spec"]["stores"]
    store = {"type": "registry-store", "parameters": {"credential": {"provider": "static"}}}
    assert executor["spec"]["stores"] == [store]
    (gap,) = [g for g in json.loads((out / "gaps.json").read_text())["gaps"] if g["kind"] == "ratify-v2-no-pull-secret"]
    assert gap["detail"] == "regcred"
    assert gap["repositories"] == [f"reg.example/{n}" for n in ("a", "b", "c", "kms")]
    assert gap["what"] == (
        "Ratify v2's registry-store takes no Kubernetes secret (only a username and password written into the "
        "Executor, or Azure workload identity): pull secret regcred is not used and Ratify reads the signatures "
        "anonymously"
    )
    assert "## ratify-v2-no-pull-secret: regcred\n" in (out / "GAPS.md").read_text()
    again = emit(keys, tmp_path / "no-secret", "strict", ratify="v2", pull_secret=None)
    kinds = {g["kind"] for g in json.loads((again / "gaps.json").read_text())["gaps"]}
    assert "ratify-v2-no-pull-secret" not in kinds and "ratify-v2-one-statement" in kinds
    v1 = emit(keys, tmp_path / "v1", "strict")
    assert "ratify-v2-no-pull-secret" not in {g["kind"] for g in json.loads((v1 / "gaps.json").read_text())["gaps"]}


def test_connaisseur_values_step_the_window(keys: Path, tmp_path: Path) -> None:
    out = emit(keys, tmp_path / "out", "strict")
    policy = json.loads((out / "trustpolicy.json").read_text())
    (dct_phase,) = yaml.safe_load_all((out / "connaisseur" / "values-dct.yaml").read_text())
    (notation_phase,) = yaml.safe_load_all((out / "connaisseur" / "values-notation.yaml").read_text())
    validators = {v["name"]: v for v in dct_phase["application"]["validators"]}
    assert validators == {v["name"]: v for v in notation_phase["application"]["validators"]}
    notary = validators["dct2notation-dct"]
    assert notary["type"] == "notaryv1" and notary["host"] == "notary.example"
    (root,) = notary["trustRoots"]
    assert root["key"].startswith("-----BEGIN PUBLIC KEY-----")
    rules = dct_phase["application"]["policy"]
    host = "[rR][eE][gG].[eE][xX][aA][mM][pP][lL][eE]"  # reg.example in any case
    assert [r["pattern"] for r in rules] == [f"{host}/a:*", f"{host}/a@*", f"{host}/c:*", f"{host}/c@*"]
    assert rules[0]["with"] == {"trustRoot": root["name"], "delegations": ["releases"]}
    assert rules[2]["with"] == {"trustRoot": root["name"]}
    tsa_pem = pem_of(out / "truststore" / "x509" / "tsa" / "tsa-root" / "tsa-root.pem")
    for statement in policy["trustPolicies"]:
        validator = validators[f"dct2notation-{statement['name']}"]
        assert validator["type"] == "notation" and validator["auth"] == {"secretName": "regcred"}
        cas = [s.removeprefix("ca:") for s in statement["trustStores"] if s.startswith("ca:")]
        assert [r["name"] for r in validator["trustRoots"]] == cas
        assert all(r["tsCert"] == tsa_pem for r in validator["trustRoots"])
        mine = [r for r in notation_phase["application"]["policy"] if r["validator"] == validator["name"]]
        assert [r["pattern"] for r in mine] == [g for s in statement["registryScopes"] for g in connaisseur_globs(s)]
        assert all(r["with"]["verifyTimestamp"] == "afterCertExpiry" for r in mine)
    gaps = json.loads((out / "gaps.json").read_text())["gaps"]
    assert [g["detail"] for g in gaps if g["kind"] == "connaisseur-moved"] == ["reg.example/c -> mirror.example/c"]
    # Its notation validator is chain-only too: the same statements as under Kyverno are reported for it.
    kyverno = sorted(g["detail"] for g in gaps if g["kind"] == "kyverno-any-identity")
    assert sorted(g["detail"] for g in gaps if g["kind"] == "connaisseur-any-identity") == kyverno and kyverno
    # Without an archive and a notary host there is nothing to pin: no Connaisseur values.
    plain = tmp_path / "plain"
    write_emission(emission(keys, "strict"), plain)
    assert not (plain / "connaisseur").exists()


def test_timestamp_root_must_be_a_readable_self_signed_root(keys: Path, tmp_path: Path) -> None:
    from dct2notation.errors import InputError
    from dct2notation.migrate.policy import load_tsa_roots

    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(make_chain().chain[0].public_bytes(serialization.Encoding.PEM))
    with pytest.raises(InputError, match=r"leaf.pem: .* is not a self-signed root certificate"):
        load_tsa_roots([leaf])
    with pytest.raises(InputError, match=r"absent.pem: cannot read TSA root certificate \(No such file or directory\)"):
        load_tsa_roots([tmp_path / "absent.pem"])
    (tmp_path / "empty.pem").write_text("no certificate here\n")
    with pytest.raises(InputError, match="empty.pem: not a PEM or DER certificate"):
        load_tsa_roots([tmp_path / "empty.pem"])
    roots = load_tsa_roots([keys / "tsa-root.crt", keys / "tsa-root.crt"])
    assert len(roots) == 1 and next(iter(roots)).startswith("tsa-")


def test_kyverno_and_ratify_can_be_left_out(keys: Path, tmp_path: Path) -> None:
    out = emit(keys, tmp_path / "out", "strict", kyverno="none", ratify="none")
    assert not (out / "kyverno").exists() and not (out / "ratify").exists()
    assert sorted(p.name for p in (out / "nirmata").iterdir()) == ["trustpolicy.yaml", "truststores.yaml"]
    kinds = {g["kind"] for g in json.loads((out / "gaps.json").read_text())["gaps"]}
    assert not any(k.startswith(("kyverno-", "ratify-")) for k in kinds)


def test_verify_timestamp_always_agrees_with_kyverno(keys: Path, tmp_path: Path) -> None:
    strict_ts = emission(keys, "strict")
    strict_ts.verify_timestamp = "always"
    write_emission(strict_ts, tmp_path / "out")
    policy = json.loads((tmp_path / "out" / "trustpolicy.json").read_text())
    assert {st["signatureVerification"]["verifyTimestamp"] for st in policy["trustPolicies"]} == {"always"}
    kinds = {g["kind"] for g in json.loads((tmp_path / "out" / "gaps.json").read_text())["gaps"]}
    assert "kyverno-timestamp-always" not in kinds
