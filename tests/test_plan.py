"""Plans from a real notary-built GUN whose digests are in the real registry: inventory → plan → sign → verify."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from dct2notation.cli import main
from dct2notation.cli.migrate import make_plan
from dct2notation.config import DEFAULT_LIMITS, SystemClock
from dct2notation.keys.testcert import generate_test_key
from dct2notation.migrate.plan import ANNOTATION_PREFIX, load_plan
from dct2notation.notation.envelope import parse_envelope
from dct2notation.notation.policy import TrustPolicyDocument
from dct2notation.notation.truststore import TrustStore
from dct2notation.notation.verify import verify_envelope
from dct2notation.oci import OCI_MANIFEST, Descriptor, sha256_digest
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.options import RegistryOptions
from dct2notation.registry.reference import Reference
from dct2notation.registry.store import RegistryStore, fetch_signatures
from tests.support.notary_builders import write_key_and_cert
from tests.support.servers import NotaryServer, Registry
from tests.test_batch import image_manifest, push_images

_ids = itertools.count()
MAPPING = {"targets/releases": "alpha", "targets": "beta"}


def key_for(gun: str, role: str) -> str | None:
    return MAPPING.get(role)


@pytest.fixture(scope="module")
def notation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tmp_path_factory.mktemp("notation-plan")
    generate_test_key("alpha", config, key_type="ec-p256", make_default=True)
    generate_test_key("beta", config, key_type="ec-p256")
    return config


def verifies(raw: bytes, subject: Descriptor, reference: str, config: Path, identity: str, tmp: Path) -> bool:
    store_dir = tmp / f"truststore-{identity}"
    (store_dir / "x509" / "ca" / identity).mkdir(parents=True, exist_ok=True)
    shutil.copy(config / "localkeys" / f"{identity}.crt", store_dir / "x509" / "ca" / identity / "cert.pem")
    policy = TrustPolicyDocument.from_dict(
        {
            "version": "1.0",
            "trustPolicies": [
                {
                    "name": "migration",
                    "registryScopes": ["*"],
                    "signatureVerification": {"level": "strict"},
                    "trustStores": [f"ca:{identity}"],
                    "trustedIdentities": ["*"],
                }
            ],
        }
    )
    result = verify_envelope(
        raw, subject=subject, reference=reference, policy=policy, truststore=TrustStore(store_dir), clock=SystemClock()
    )
    return result.ok


def test_notary_gun_to_signatures_end_to_end(
    notary_server: NotaryServer,
    notary_binary: None,
    registry: Registry,
    notation_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    n = next(_ids)
    gun = f"dct.example/e2e{n}/app"
    repo = f"e2e{n}/app"
    # v1 and latest share a digest (one job, tags merged); v2 is Repo Admin only; v3 only in targets/alice;
    # "stable" is trusted at one digest but the registry tag was moved to another (drift).
    images = dict((tag, (size, digest)) for tag, size, digest in push_images(registry.host, repo, 4, "img"))
    (_, d_v1), (_, d_v2), (_, d_v3), (_, d_stable) = (images[f"img{i}"] for i in range(4))
    options = RegistryOptions(insecure_registries=frozenset({registry.host}))
    moved_raw = image_manifest(f"{repo}-moved")
    moved = ("stable", len(moved_raw), sha256_digest(moved_raw))
    with RegistryClient(registry.host, options) as client:
        client.put_manifest(repo, moved[2], moved_raw, OCI_MANIFEST)
        for tag, digest in (("v1", d_v1), ("latest", d_v1), ("v2", d_v2), ("v3", d_v3), ("stable", d_stable)):
            raw = client.get_manifest(repo, digest, 1 << 20)[0]
            client.put_manifest(repo, tag, raw, OCI_MANIFEST)
        client.put_manifest(repo, "stable", client.get_manifest(repo, moved[2], 1 << 20)[0], OCI_MANIFEST)

    notary = notary_server.client(tmp_path / "trust")
    notary.init(gun)
    for name in ("releases", "alice"):
        write_key_and_cert(tmp_path / "keys", name)
        notary.run("delegation", "add", gun, f"targets/{name}", str(tmp_path / "keys" / f"{name}.crt"), "--all-paths")
        notary.run("key", "import", str(tmp_path / "keys" / f"{name}.key"), "--role", f"targets/{name}", "--gun", gun)
    size = {d: s for s, d in images.values()}
    for tag, digest, roles in (
        ("v1", d_v1, ("targets/releases",)),
        ("latest", d_v1, ("targets/releases",)),
        ("v2", d_v2, ()),
        ("v3", d_v3, ("targets/alice",)),
        ("stable", d_stable, ("targets/releases",)),
    ):
        notary.addhash(gun, tag, size[digest], digest.removeprefix("sha256:"), *roles)
    notary.publish(gun)

    assert main(["inventory", gun, "--server", notary_server.url, "--json"]) == 0
    (tmp_path / "inventory.json").write_text(capsys.readouterr().out)

    plan = make_plan(
        tmp_path / "inventory.json",
        key_for,
        registry_map=[f"dct.example/e2e{n}={registry.host}/e2e{n}"],
        migration_id="mig-e2e",
        registry_options=options,
    )
    plan.save(tmp_path / "plan.json")
    jobs = {(j.digest, j.identity): j for j in load_plan(tmp_path / "plan.json").jobs}
    assert sorted(jobs) == sorted([(d_v1, "alpha"), (d_stable, "alpha"), (d_v2, "beta")])
    assert jobs[(d_v1, "alpha")].tags == ("latest", "v1")
    assert jobs[(d_v1, "alpha")].annotations() == {
        ANNOTATION_PREFIX + "gun": gun,
        ANNOTATION_PREFIX + "tags": "latest,v1",
        ANNOTATION_PREFIX + "role": "targets/releases",
        ANNOTATION_PREFIX + "tuf-sha256": d_v1.removeprefix("sha256:"),
        ANNOTATION_PREFIX + "id": "mig-e2e",
    }
    assert plan.findings == [
        {
            "repository": f"{registry.host}/{repo}",
            "digest": d_stable,
            "kind": "tag-drift",
            "tag": "stable",
            "registry_digest": moved[2],
            "detail": f"tag stable now points at {moved[2]}; the trusted DCT digest is signed",
        }
    ]
    assert plan.preflight == {"subjects": 3, "jobs": 3, "findings": {"tag-drift": 1}}

    code = main(
        [
            "sign",
            str(tmp_path / "plan.json"),
            "--inventory",
            str(tmp_path / "inventory.json"),
            "--config-dir",
            str(notation_dir),
            "--insecure-registry",
            registry.host,
        ]  # fmt: skip
    )
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["counts"] == {"signed": 3}

    store = RegistryStore(registry.host, options)
    try:
        for digest, wanted in ((d_v1, ["alpha"]), (d_v2, ["beta"]), (d_stable, ["alpha"])):
            found = fetch_signatures(store, repo, digest)
            subject = store.resolve(Reference(registry.host, repo, None, digest))
            ref = f"{registry.host}/{repo}@{digest}"
            owners = [
                i
                for s in found
                for i in ("alpha", "beta")
                if verifies(s.envelope, subject, ref, notation_dir, i, tmp_path)
            ]
            assert owners == wanted
            # The provenance is signed: it travels in the payload's target annotations (Notation user metadata).
            signed = parse_envelope(found[0].envelope, DEFAULT_LIMITS).target_artifact
            assert signed.digest == digest
            assert signed.annotations == jobs[(digest, wanted[0])].annotations()
        assert fetch_signatures(store, repo, d_v3) == []  # only in a non-release delegation: never signed
        assert fetch_signatures(store, repo, moved[2]) == []  # the drifted-to digest is not what DCT trusted
    finally:
        store.close()
