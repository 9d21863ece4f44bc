"""Trust policy emitted from real notary GUNs, then enforced by our Notation verifier over freshly signed envelopes.

GUNs (built with the notary 0.7 client against notary-server):
  a: releases + alice co-sign v1          -> identities {alice, rel}
  b: releases signs v1                     -> {rel}
  c: Repo Admin only                       -> {admin}
  rich (tests/support/notary_builders.build_rich_gun): releases, alice (threshold 2), bob (--paths v), a tag only
     in bob and a tag only in targets. notary 0.7 has no ``--threshold``: a second alice key is added with
     ``delegation add``, then the Resigner sets ``threshold: 2`` in targets.json and signs alice with both keys;
     that GUN is inventoried from the resulting archive.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dct2notation.cli import main
from dct2notation.config import SystemClock
from dct2notation.errors import ConfigError
from dct2notation.keys.resolve import load_signing_key
from dct2notation.keys.testcert import generate_test_key
from dct2notation.migrate.admission.image_names import clusterpolicy_globs, connaisseur_globs, ivp_globs
from dct2notation.migrate.policy import build_emission, check_policy_dir, write_emission
from dct2notation.migrate.signers import RegistryMap, load_signers
from dct2notation.notation.envelope import sign_envelope
from dct2notation.notation.policy import TrustPolicyDocument
from dct2notation.notation.truststore import TrustStore
from dct2notation.notation.verify import verify_envelope
from dct2notation.oci import OCI_MANIFEST, Descriptor
from tests.support.notary_builders import Resigner, build_rich_gun, sha256_hex, write_key_and_cert
from tests.support.servers import NotaryServer

PREFIX = "dct.example/polemit"
REGISTRY = "reg.example:5000/polemit"


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory, notary_server: NotaryServer) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("policy-estate")
    notary = notary_server.client(root / "trust")
    keys = root / "dctkeys"
    guns = {name: f"{PREFIX}/{name}" for name in ("a", "b", "c")}
    for name in ("rel", "alice"):
        write_key_and_cert(keys, name)
    for gun in guns.values():
        notary.init(gun)
    for name in ("a", "b"):
        gun = guns[name]
        notary.run("delegation", "add", gun, "targets/releases", str(keys / "rel.crt"), "--all-paths")
        notary.run("key", "import", str(keys / "rel.key"), "--role", "targets/releases", "--gun", gun)
    notary.run("delegation", "add", guns["a"], "targets/alice", str(keys / "alice.crt"), "--all-paths")
    notary.run("key", "import", str(keys / "alice.key"), "--role", "targets/alice", "--gun", guns["a"])
    notary.addhash(guns["a"], "v1", 10, sha256_hex("a-v1"), "targets/releases", "targets/alice")
    notary.addhash(guns["b"], "v1", 11, sha256_hex("b-v1"), "targets/releases")
    notary.addhash(guns["c"], "v1", 12, sha256_hex("c-v1"))
    for gun in guns.values():
        notary.publish(gun)

    rich_gun = f"{PREFIX}/rich"
    rich_keys = root / "richkeys"
    rich_client = notary_server.client(root / "rich-trust")
    built = build_rich_gun(rich_client, rich_gun, rich_keys)
    write_key_and_cert(rich_keys, "alice2")
    rich_client.run("delegation", "add", rich_gun, "targets/alice", str(rich_keys / "alice2.crt"), "--all-paths")
    rich_client.publish(rich_gun)
    rich_client.list(rich_gun)  # refresh the cache with every published role
    signer = Resigner(rich_client.trust_dir / "tuf" / rich_gun / "metadata", rich_client.trust_dir, rich_keys)
    for role in signer.docs["targets"]["signed"]["delegations"]["roles"]:
        if role["name"] == "targets/alice":
            role["threshold"] = 2
    alice_keys = [
        serialization.load_pem_private_key((rich_keys / f"{n}.key").read_bytes(), None) for n in ("alice", "alice2")
    ]
    signer.resign("targets")
    signer.resign("targets/alice", alice_keys)
    signer.rechain()
    archive = signer.write_archive(root / "archive", rich_gun)
    return {"root": root, "guns": guns, "rich": rich_gun, "archive": archive, "built": built}


def _inventory_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["inventory", *args, "--json"]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


@pytest.fixture(scope="module")
def notation_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tmp_path_factory.mktemp("policy-notation")
    for name in ("rel", "alice", "admin", "stranger"):
        generate_test_key(name, config, key_type="ec-p256", days=2)
    return config


def write_signers(directory: Path, c_gun: str) -> Path:
    path = directory / "signers.toml"
    path.write_text(
        f'[[signer]]\ngun = "{c_gun}"\nrole = "targets"\nkey = "admin"\n\n'
        '[[signer]]\ngun = "dct.example/*"\nrole = "targets/releases"\nkey = "rel"\n\n'
        '[[signer]]\ngun = "dct.example/*"\nrole = "targets/alice"\nkey = "alice"\n'
    )
    return path


@pytest.fixture
def inventory_file(
    estate: dict[str, Any], notary_server: NotaryServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Path:
    served = _inventory_json(capsys, *estate["guns"].values(), "--server", notary_server.url)
    rich = _inventory_json(capsys, estate["rich"], "--archive", str(estate["archive"]))
    served["repositories"] += rich["repositories"]
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(served))
    return path


def emit(inventory: Path, signers: Path, config: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "policy",
            str(inventory),
            "--signers",
            str(signers),
            "-o",
            str(out),
            "--config-dir",
            str(config),
            "--registry-map",
            f"{PREFIX}={REGISTRY}",
            *extra,
        ]
    )


def verified(out: Path, config: Path, key: str, repository: str, *, key_config: Path | None = None) -> tuple[bool, str]:
    content = f"{repository}-{key}".encode()
    subject = Descriptor(OCI_MANIFEST, "sha256:" + hashlib.sha256(content).hexdigest(), len(content))
    signing_key = load_signing_key(key, key_config or config)
    envelope = sign_envelope(subject, signing_key, clock=SystemClock())
    result = verify_envelope(
        envelope.raw,
        subject=subject,
        reference=f"{repository}@{subject.digest}",
        policy=TrustPolicyDocument.load_from_config(out),
        truststore=TrustStore(out / "truststore"),
        clock=SystemClock(),
    )
    return result.ok, result.reason


def subject_of(config: Path, name: str) -> str:
    cert = x509.load_pem_x509_certificate((config / "localkeys" / f"{name}.crt").read_bytes())
    return cert.subject.rfc4514_string()


def test_emitted_policy_accepts_mapped_signers_on_their_repositories_only(
    inventory_file: Path, notation_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert emit(inventory_file, write_signers(tmp_path, f"{PREFIX}/c"), notation_config, out) == 0
    policy = json.loads((out / "trustpolicy.json").read_text())
    by_scope = {scope: st for st in policy["trustPolicies"] for scope in st["registryScopes"]}
    assert sorted(by_scope) == [f"{REGISTRY}/{n}" for n in ("a", "b", "c", "rich")]
    ident = {n: f"x509.subject: {subject_of(notation_config, n)}" for n in ("rel", "alice", "admin")}
    assert by_scope[f"{REGISTRY}/a"]["trustedIdentities"] == sorted([ident["alice"], ident["rel"]])
    assert by_scope[f"{REGISTRY}/a"] is by_scope[f"{REGISTRY}/rich"]  # same signers: one statement
    assert by_scope[f"{REGISTRY}/b"]["trustedIdentities"] == [ident["rel"]]
    assert by_scope[f"{REGISTRY}/c"]["trustedIdentities"] == [ident["admin"]]
    assert len(policy["trustPolicies"]) == 3
    assert all(st["signatureVerification"] == {"level": "strict"} for st in policy["trustPolicies"])
    assert not (out / "trustpolicy.oci.json").exists()

    assert verified(out, notation_config, "rel", f"{REGISTRY}/b")[0]
    assert verified(out, notation_config, "alice", f"{REGISTRY}/a")[0]
    assert verified(out, notation_config, "admin", f"{REGISTRY}/c")[0]
    # alice was never a DCT signer of b, admin never of a: their certificates are in the store but not trusted there.
    ok, reason = verified(out, notation_config, "alice", f"{REGISTRY}/b")
    assert not ok and "trusted" in reason
    assert not verified(out, notation_config, "admin", f"{REGISTRY}/a")[0]
    # A certificate nobody mapped.
    assert not verified(out, notation_config, "stranger", f"{REGISTRY}/a")[0]
    # A self-signed impostor with rel's exact subject, whose certificate is not in the trust store.
    impostor = tmp_path / "impostor"
    generate_test_key("rel", impostor, key_type="ec-p256", days=2)
    assert subject_of(impostor, "rel") == subject_of(notation_config, "rel")
    assert not verified(out, notation_config, "rel", f"{REGISTRY}/b", key_config=impostor)[0]
    # A repository outside the policy has no statement at all.
    with pytest.raises(ConfigError, match="no applicable oci trust policy statement"):
        verified(out, notation_config, "rel", f"{REGISTRY}/elsewhere")


def test_policy_check_reads_the_directory_as_notation_would(
    inventory_file: Path, notation_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert (
        emit(inventory_file, write_signers(tmp_path, f"{PREFIX}/c"), notation_config, out, "--notation-version", "2")
        == 0
    )
    assert (out / "trustpolicy.oci.json").read_bytes() == (out / "trustpolicy.json").read_bytes()
    capsys.readouterr()
    assert main(["policy", "--check", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all("trusted certificates" in line for line in lines)
    shutil.rmtree(next((out / "truststore" / "x509" / "ca").iterdir()))
    assert main(["policy", "--check", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_rerun_is_byte_identical_and_one_delegation_touches_only_its_statements(
    inventory_file: Path, notation_config: Path, tmp_path: Path
) -> None:
    signers = write_signers(tmp_path, f"{PREFIX}/c")
    first, second = tmp_path / "one", tmp_path / "two"
    assert emit(inventory_file, signers, notation_config, first) == 0
    assert emit(inventory_file, signers, notation_config, second) == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)

    # alice stops co-signing in a: a now has the same signers as b.
    doc = json.loads(inventory_file.read_text())
    repo_a = next(r for r in doc["repositories"] if r["gun"] == f"{PREFIX}/a")
    repo_a["role_targets"]["targets/alice"] = []
    changed_inventory = tmp_path / "changed.json"
    changed_inventory.write_text(json.dumps(doc))
    third = tmp_path / "three"
    assert emit(changed_inventory, signers, notation_config, third) == 0
    before = {st["name"]: st for st in json.loads((first / "trustpolicy.json").read_text())["trustPolicies"]}
    after = {st["name"]: st for st in json.loads((third / "trustpolicy.json").read_text())["trustPolicies"]}
    assert sorted(before) == sorted(after)
    touched = {name for name in before if before[name] != after[name]}
    untouched = set(before) - touched
    assert len(touched) == 2 and len(untouched) == 1
    assert [after[n]["registryScopes"] for n in untouched] == [[f"{REGISTRY}/c"]]
    scopes_after = sorted(after[n]["registryScopes"] for n in touched)
    assert scopes_after == [[f"{REGISTRY}/a", f"{REGISTRY}/b"], [f"{REGISTRY}/rich"]]


def test_admission_resources_carry_the_same_scopes_identities_and_certificates(
    inventory_file: Path, notation_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert emit(inventory_file, write_signers(tmp_path, f"{PREFIX}/c"), notation_config, out, "--level", "audit") == 0
    policy = json.loads((out / "trustpolicy.json").read_text())
    roots = {p.parent.name: p.read_text() for p in (out / "truststore" / "x509" / "ca").glob("*/*.pem")}
    assert sorted(roots.values()) == sorted(
        (notation_config / "localkeys" / f"{n}.crt").read_text() for n in ("admin", "alice", "rel")
    )

    providers = list(yaml.safe_load_all((out / "ratify" / "keymanagementproviders.yaml").read_text()))
    assert {p["kind"] for p in providers} == {"KeyManagementProvider"}
    assert sorted(p["spec"]["parameters"]["value"] for p in providers) == sorted(roots.values())
    (verifier,) = yaml.safe_load_all((out / "ratify" / "verifier.yaml").read_text())
    assert verifier["apiVersion"] == "config.ratify.deislabs.io/v1beta1" and verifier["kind"] == "Verifier"
    assert verifier["spec"]["name"] == "notation" and verifier["spec"]["type"] == "notation"
    assert verifier["spec"]["parameters"]["trustPolicyDoc"] == policy
    stores = verifier["spec"]["parameters"]["verificationCertStores"]["ca"]
    names = {p["metadata"]["name"]: p["spec"]["parameters"]["value"] for p in providers}
    assert {store: names[kmp] for store, (kmp,) in stores.items()} == roots

    # Default Kyverno form: one ImageValidatingPolicy per statement, audit level records only.
    ivps = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all((out / "kyverno" / "imagevalidatingpolicies.yaml").read_text())
    }
    assert sorted(ivps) == sorted(f"dct2notation-{st['name']}" for st in policy["trustPolicies"])
    for statement in policy["trustPolicies"]:
        spec = ivps[f"dct2notation-{statement['name']}"]["spec"]
        assert spec["validationActions"] == ["Audit"]
        assert spec["validationConfigurations"] == {"mutateDigest": False, "verifyDigest": False, "required": True}
        expected_refs = [g for scope in statement["registryScopes"] for g in ivp_globs(scope)]
        assert spec["matchImageReferences"] == [{"glob": ref} for ref in expected_refs]
        certs = spec["attestors"][0]["notary"]["certs"]["value"]
        assert certs == "".join(roots[store.removeprefix("ca:")] for store in statement["trustStores"])

    # The ClusterPolicy form (clusters older than Kyverno 1.17): HEAD emitted validationFailureAction Audit with
    # mutateDigest left at true, which Kyverno's admission refuses.
    cp_out = tmp_path / "cp"
    args = ("--level", "audit", "--kyverno", "clusterpolicy")
    assert emit(inventory_file, write_signers(tmp_path, f"{PREFIX}/c"), notation_config, cp_out, *args) == 0
    (cluster_policy,) = yaml.safe_load_all((cp_out / "kyverno" / "clusterpolicy.yaml").read_text())
    assert cluster_policy["kind"] == "ClusterPolicy" and "validationFailureAction" not in cluster_policy["spec"]
    assert cluster_policy["metadata"]["name"] == "dct2notation-verify-images"
    rules = {rule["name"]: rule for rule in cluster_policy["spec"]["rules"]}
    assert sorted(rules) == sorted(st["name"] for st in policy["trustPolicies"])
    for statement in policy["trustPolicies"]:
        (verify,) = rules[statement["name"]]["verifyImages"]
        assert verify["type"] == "Notary" and verify["failureAction"] == "Audit" and verify["mutateDigest"] is False
        expected_refs = [g for scope in statement["registryScopes"] for g in clusterpolicy_globs(scope)]
        assert verify["imageReferences"] == expected_refs
        cert = verify["attestors"][0]["entries"][0]["certificates"]["cert"]
        assert cert == "".join(roots[store.removeprefix("ca:")] for store in statement["trustStores"])
    assert not (cp_out / "kyverno" / "imagevalidatingpolicies.yaml").exists()


def test_connaisseur_pins_the_archived_root_key_and_delegations(
    estate: dict[str, Any], notation_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rich = _inventory_json(capsys, estate["rich"], "--archive", str(estate["archive"]))
    inventory = tmp_path / "rich.json"
    inventory.write_text(json.dumps(rich))
    out = tmp_path / "out"
    extra = ("--archive", str(estate["archive"]), "--notary-host", "notary.example:4443")
    assert emit(inventory, write_signers(tmp_path, f"{PREFIX}/c"), notation_config, out, *extra) == 0
    (values,) = yaml.safe_load_all((out / "connaisseur" / "values-dct.yaml").read_text())
    dct = next(v for v in values["application"]["validators"] if v["type"] == "notaryv1")
    assert dct["host"] == "notary.example:4443"
    root_doc = json.loads((estate["archive"] / estate["rich"] / "root.json").read_text())["signed"]
    (root_id,) = root_doc["roles"]["root"]["keyids"]
    import base64

    cert = x509.load_pem_x509_certificate(base64.b64decode(root_doc["keys"][root_id]["keyval"]["public"]))
    expected = (
        cert.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert [r["key"] for r in dct["trustRoots"]] == [expected]
    rules = values["application"]["policy"]
    assert [r["pattern"] for r in rules] == connaisseur_globs(estate["rich"])
    # One pullable tag of rich is signed by targets (Repo Admin) alone: no delegation holds every tag, so none is
    # required (requiring releases would deny that tag, which docker pull trusts).
    assert rules[0]["with"] == {"trustRoot": dct["trustRoots"][0]["name"]}
    gaps = json.loads((out / "gaps.json").read_text())["gaps"]
    found = {(g["kind"], g["detail"]) for g in gaps}
    assert ("connaisseur-moved", f"{estate['rich']} -> {REGISTRY}/rich") in found
    # With delegations present and none required, Connaisseur reads targets/releases only: the Repo Admin's tag is
    # denied in the dct phase, and said so.
    admin_tags = sorted(t["tag"] for t in rich["repositories"][0]["trusted_tags"] if t["role"] == "targets")
    assert admin_tags and ("connaisseur-releases-only", f"{estate['rich']} ({', '.join(admin_tags)})") in found


def test_attack_tampered_archive_root_pins_another_connaisseur_key(
    estate: dict[str, Any], notation_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An archive whose root.json was edited (to pin another root key in Connaisseur) is re-verified and refused."""
    archive = tmp_path / "archive"
    shutil.copytree(estate["archive"], archive)
    rich = _inventory_json(capsys, estate["rich"], "--archive", str(archive))
    inventory = tmp_path / "rich.json"
    inventory.write_text(json.dumps(rich))
    root_file = archive / estate["rich"] / "root.json"
    doc = json.loads(root_file.read_text())
    (root_id,) = doc["signed"]["roles"]["root"]["keyids"]
    other = next(k for k in doc["signed"]["keys"] if k != root_id)
    doc["signed"]["keys"][root_id] = doc["signed"]["keys"][other]  # another key's certificate under the root's ID
    root_file.write_text(json.dumps(doc))
    extra = ("--archive", str(archive), "--notary-host", "notary.example")
    out = tmp_path / "out"
    assert emit(inventory, write_signers(tmp_path, f"{PREFIX}/c"), notation_config, out, *extra) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and estate["rich"] in err and "root" in err
    assert not (out / "connaisseur").exists()


def test_gaps_name_every_lost_rule_with_exact_wording(
    inventory_file: Path, notation_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert emit(inventory_file, write_signers(tmp_path, f"{PREFIX}/c"), notation_config, out) == 0
    gaps = json.loads((out / "gaps.json").read_text())
    assert gaps["format"] == "dct2notation-gaps/1"
    rich = f"{REGISTRY}/rich"
    policy = json.loads((out / "trustpolicy.json").read_text())
    name = {scope: st["name"] for st in policy["trustPolicies"] for scope in st["registryScopes"]}
    a_rich, b = name[rich], name[f"{REGISTRY}/b"]
    assert [(g["kind"], g["detail"], g["repositories"]) for g in gaps["gaps"]] == [
        ("threshold", "targets/alice (threshold 2)", [rich]),
        ("path-restricted", "targets/bob (v)", [rich]),
        ("non-release-only", "v3 (targets/bob)", [rich]),
        ("unmapped-signer", f"{PREFIX}/rich targets", [rich]),
        # rel signs for both statements: under Kyverno's chain-only check each accepts the other's signers.
        ("kyverno-any-identity", f"{a_rich} (shares a root with {b})", [f"{REGISTRY}/a", rich]),
        ("kyverno-any-identity", f"{b} (shares a root with {a_rich})", [f"{REGISTRY}/b"]),
    ]
    assert gaps["gaps"][0]["what"] == (
        "delegation requires targets/alice (threshold 2) signatures; Notation accepts one valid signature per artifact"
    )
    markdown = (out / "GAPS.md").read_text()
    assert f"## unmapped-signer: {PREFIX}/rich targets\n" in markdown
    assert "- Do: add a [[signer]] entry for this GUN and role to signers.toml and rerun.\n" in markdown
    assert f"- Repositories: {rich}\n" in markdown


def test_gaps_for_keys_without_certificate_or_incomplete_subject(notation_config: Path, tmp_path: Path) -> None:
    import datetime as dt

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cn-only")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "cn.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "signers.toml").write_text(
        '[[signer]]\ngun = "g/one"\nkey = "missing-key"\n\n'
        '[[signer]]\ngun = "g/two"\nplugin = "kms"\nkey_id = "k1"\ncert_file = "cn.crt"\n\n'
        '[[signer]]\ngun = "g/three"\nkey = "rel"\n'
    )
    inventory = {
        "repositories": [
            {"gun": gun, "trusted_tags": [{"tag": "v1", "digest": "sha256:" + "0" * 64, "size": 1, "role": "targets"}]}
            for gun in ("g/one", "g/two", "g/three")
        ]
    }
    emission = build_emission(inventory, load_signers(tmp_path / "signers.toml"), config_dir=notation_config)
    assert [(g.kind, g.detail, g.repositories) for g in emission.gaps] == [
        ("no-certificate", "g/one targets (key missing-key)", ("g/one",)),
        ("incomplete-subject", "g/two targets (CN=cn-only)", ("g/two",)),
    ]
    assert [s.repositories for s in emission.statements] == [("g/three",)]
    write_emission(emission, tmp_path / "out")
    assert check_policy_dir(tmp_path / "out")[0].endswith("1 repositories, 1 identities, 1 trusted certificates")


def test_nothing_emittable_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "signers.toml").write_text('[[signer]]\ngun = "x/*"\nkey = "k"\n')
    (tmp_path / "inv.json").write_text(
        json.dumps({"format": "dct2notation-inventory/1", "evaluated_at": "2026-01-01T00:00:00Z", "repositories": []})
    )
    code = main(
        ["policy", str(tmp_path / "inv.json"), "--signers", str(tmp_path / "signers.toml"), "-o", str(tmp_path / "o")]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "policy: no repository has a mapped signer with a usable certificate: "
        "the inventory has no repository with a trusted tag"
    )
    assert "\n" not in err
    assert RegistryMap.parse([]).apply("x/y") == "x/y"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "policy: INVENTORY, --signers FILE and -o OUTDIR are required (or --check OUTDIR)"),
        (["inv.json", "--check", "out"], "policy --check OUTDIR: takes no INVENTORY, --signers or -o"),
        (["inv.json", "--signers", "s.toml", "-o", "o", "--level", "skip"], "--level 'skip': expected one of"),
        (["inv.json", "--signers", "s.toml", "-o", "o", "--notation-version", "3"], "--notation-version 3: expected"),
        (["--check", "absent-dir"], "absent-dir: policy directory does not exist"),
        (["inv.json", "--signers", "s.toml", "-o", "o", "--kyverno", "v2"], "--kyverno 'v2': expected one of ivp,"),
        (["inv.json", "--signers", "s.toml", "-o", "o", "--ratify", "v3"], "--ratify 'v3': expected one of v1, v2"),
        (["inv.json", "--signers", "s.toml", "-o", "o", "--verify-timestamp", "never"], "--verify-timestamp 'never'"),
        (["inv.json", "--signers", "s.toml", "-o", "o", "--pull-secret", "Reg_Cred"], "not a Kubernetes secret name"),
        (["inv.json", "--signers", "s.toml", "-o", "o", "--namespace", "a.b"], "--namespace 'a.b': not a Kubernetes"),
        (["inv.json", "--signers", "s.toml", "-o", "o", "--archive", "a"], "--archive and --notary-host go together"),
        (
            ["inv.json", "--signers", "s.toml", "-o", "o", "--notary-host", "ftp://n"],
            "expected HOST[:PORT] or an http(s)",
        ),
    ],
)
def test_cli_refusals_are_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["policy", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_chain_without_its_root_asks_for_ca_file(tmp_path: Path) -> None:
    from tests.support.plugin_pki import make_chain

    chain = make_chain()
    leaf_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain.chain[:-1])
    (tmp_path / "chain.crt").write_bytes(leaf_pem)
    (tmp_path / "signers.toml").write_text(
        '[[signer]]\ngun = "g/*"\nplugin = "kms"\nkey_id = "k"\ncert_file = "chain.crt"\n'
    )
    inventory = {
        "repositories": [{"gun": "g/x", "trusted_tags": [{"tag": "v", "digest": "d", "size": 1, "role": "targets"}]}]
    }
    with pytest.raises(ConfigError, match=r"signer\[0\]: chain of .* does not end in a root; set ca_file"):
        build_emission(inventory, load_signers(tmp_path / "signers.toml"))
    (tmp_path / "root.crt").write_bytes(chain.chain[-1].public_bytes(serialization.Encoding.PEM))
    (tmp_path / "signers.toml").write_text(
        '[[signer]]\ngun = "g/*"\nplugin = "kms"\nkey_id = "k"\ncert_file = "chain.crt"\nca_file = "root.crt"\n'
    )
    emission = build_emission(inventory, load_signers(tmp_path / "signers.toml"))
    assert list(emission.roots.values()) == [chain.chain[-1]]


def test_check_refuses_a_hand_edited_wildcard_scope(
    inventory_file: Path, notation_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert emit(inventory_file, write_signers(tmp_path, f"{PREFIX}/c"), notation_config, out) == 0
    policy = json.loads((out / "trustpolicy.json").read_text())
    policy["trustPolicies"][0]["registryScopes"].append(f"{REGISTRY}/*")
    (out / "trustpolicy.json").write_text(json.dumps(policy))
    capsys.readouterr()
    assert main(["policy", "--check", str(out)]) == 2
    err = capsys.readouterr().err
    assert f'registry scope "{REGISTRY}/*" is not valid' in err
