"""sign → ls → inspect (→ verify) through the CLI against the real registry, an OCI layout and the referrers API."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from dct2notation.cli import main
from dct2notation.keys.testcert import generate_test_key
from dct2notation.notation.manifest import referrers_tag
from dct2notation.oci import EMPTY_JSON, NOTATION_SIGNATURE, OCI_MANIFEST, sha256_digest
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.layout import OCILayout
from dct2notation.registry.options import RegistryOptions
from tests.support.images import image_manifest
from tests.support.referrers_registry import ReferrersRegistry
from tests.support.servers import Registry

_ids = itertools.count()


def push_image(host: str, repo: str, tag: str = "v1") -> str:
    with RegistryClient(host, RegistryOptions(insecure_registries=frozenset({host}))) as client:
        client.push_blob(repo, EMPTY_JSON)
        raw = image_manifest(repo)
        client.put_manifest(repo, tag, raw, OCI_MANIFEST)
    return sha256_digest(raw)


@pytest.fixture(scope="module")
def notation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tmp_path_factory.mktemp("notation")
    generate_test_key("tester", config, key_type="ec-p256", make_default=True)
    return config


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def cert_thumbprint(config: Path) -> str:
    cert = x509.load_pem_x509_certificate((config / "localkeys" / "tester.crt").read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex()


def round_trip(capsys: pytest.CaptureFixture[str], ref: str, notation_dir: Path, *extra: str) -> dict[str, object]:
    code, out, err = run(
        capsys, "sign", ref, "--key", "tester", "--config-dir", str(notation_dir), "-m", "team=platform", *extra
    )
    assert code == 0, err
    signed = json.loads(out)
    assert signed["signature"]["artifactType"] == NOTATION_SIGNATURE
    assert signed["thumbprints"] == [cert_thumbprint(notation_dir)]

    code, out, err = run(capsys, "ls", ref, "--json", *extra)
    assert code == 0, err
    listed = json.loads(out)
    assert [s["digest"] for s in listed["signatures"]] == [signed["signature"]["digest"]]
    assert listed["signatures"][0]["thumbprints"] == [cert_thumbprint(notation_dir)]
    assert listed["signatures"][0]["signingTime"] == signed["signingTime"]
    assert listed["signatures"][0]["form"] == signed["signature"]["form"]

    code, out, err = run(capsys, "inspect", ref, "--json", *extra)
    assert code == 0, err
    inspected = json.loads(out)["signatures"]
    assert len(inspected) == 1
    assert inspected[0]["signatureAlgorithm"] == "ES256"
    assert inspected[0]["userMetadata"] == {"team": "platform"}
    assert inspected[0]["signedArtifact"]["digest"] == signed["subject"]["digest"]
    assert inspected[0]["certificates"][0]["sha256Thumbprint"] == cert_thumbprint(notation_dir)
    assert "CN=tester" in inspected[0]["certificates"][0]["subject"]

    verify_args = ["--policy", str(write_policy(notation_dir)), "--truststore", str(notation_dir / "truststore")]
    code, out, err = run(capsys, "verify", ref, *verify_args, "-m", "team=platform", "--json", *extra)
    assert code == 0, err
    verified = json.loads(out)
    assert verified["verified"] is True
    assert verified["signature"] == signed["signature"]["digest"]

    code, out, err = run(capsys, "verify", ref, *verify_args, "-m", "team=other", *extra)
    assert code == 1
    assert err.startswith("dct2notation: error: ") and "team" in err
    assert err.count("\n") == 1
    return signed


def write_policy(config: Path, store: str = "tester") -> Path:
    path = config / f"trustpolicy-{store}.json"
    statement = {
        "name": "all",
        "registryScopes": ["*"],
        "signatureVerification": {"level": "strict"},
        "trustStores": [f"ca:{store}"],
        "trustedIdentities": ["*"],
    }
    path.write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
    return path


@pytest.mark.servers
@pytest.mark.parametrize("form", ["legacy", "artifact"])
def test_registry_round_trip(
    capsys: pytest.CaptureFixture[str], registry: Registry, notation_dir: Path, form: str
) -> None:
    repo = f"cli/r{next(_ids)}"
    digest = push_image(registry.host, repo)
    ref = f"{registry.host}/{repo}@{digest}"
    code, out, err = run(
        capsys,
        "sign",
        ref,
        "--key",
        "tester",
        "--config-dir",
        str(notation_dir),
        "-m",
        "team=platform",
        "--signature-manifest",
        form,
        "--insecure-registry",
        registry.host,
    )
    assert code == 0, err
    signed = json.loads(out)
    assert signed["signature"]["form"] == form
    assert signed["retries"] == {"total": 0, "by_reason": {}}
    with RegistryClient(registry.host, RegistryOptions(insecure_registries=frozenset({registry.host}))) as client:
        tags = client.list_tags(repo)
        assert sorted(tags) == sorted(["v1", referrers_tag(digest)])
        entries = client.tag_index(repo, digest)
    assert [e.digest for e in entries] == [signed["signature"]["digest"]]
    code, out, err = run(capsys, "ls", f"{registry.host}/{repo}:v1", "--json", "--insecure-registry", registry.host)
    assert code == 0, err
    assert [s["form"] for s in json.loads(out)["signatures"]] == [form]


@pytest.mark.servers
def test_registry_sign_ls_inspect(capsys: pytest.CaptureFixture[str], registry: Registry, notation_dir: Path) -> None:
    repo = f"cli/r{next(_ids)}"
    digest = push_image(registry.host, repo)
    round_trip(capsys, f"{registry.host}/{repo}@{digest}", notation_dir, "--insecure-registry", registry.host)


def test_referrers_api_round_trip(capsys: pytest.CaptureFixture[str], notation_dir: Path) -> None:
    server = ReferrersRegistry().start()
    try:
        digest = push_image(server.host, "api/app")
        round_trip(capsys, f"{server.host}/api/app@{digest}", notation_dir, "--insecure-registry", server.host)
        assert server.tags("api/app") == ["v1"]  # no fallback index where the API exists
    finally:
        server.stop()


def test_oci_layout_round_trip(capsys: pytest.CaptureFixture[str], notation_dir: Path, tmp_path: Path) -> None:
    layout = OCILayout(tmp_path / "layout")
    layout.init()
    layout.put_blob(EMPTY_JSON)
    raw = image_manifest("layout")
    layout.put_blob(raw)
    from dct2notation.oci import Descriptor

    with layout.locked():
        layout.tag(Descriptor(OCI_MANIFEST, sha256_digest(raw), len(raw)), "v1")
    signed = round_trip(capsys, f"app@{sha256_digest(raw)}", notation_dir, "--oci-layout", str(tmp_path / "layout"))
    code, out, err = run(capsys, "ls", "v1", "--json", "--oci-layout", str(tmp_path / "layout"))
    assert code == 0, err
    assert [s["digest"] for s in json.loads(out)["signatures"]] == [signed["signature"]["digest"]]  # type: ignore[index]


@pytest.mark.servers
def test_sign_refuses_tag(capsys: pytest.CaptureFixture[str], registry: Registry, notation_dir: Path) -> None:
    code, out, err = run(
        capsys,
        "sign",
        f"{registry.host}/x/y:v1",
        "--key",
        "tester",
        "--config-dir",
        str(notation_dir),
        "--insecure-registry",
        registry.host,
    )
    assert code == 2
    assert out == ""
    assert err.startswith("dct2notation: error: sign: ") and "is a tag reference" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sign", "r.example/a@sha256:" + "0" * 64, "--key", "k", "-m", "novalue"], "is not KEY=VALUE"),
        (["sign", "r.example/a@sha256:" + "0" * 64, "--key", "k", "--expiry", "soon"], "is not a duration"),
        (["sign", "r.example/a@sha256:" + "0" * 64, "--key", "k", "--signature-manifest", "v3"], "is not one of"),
        (["sign", "r.example/a@sha256:" + "0" * 64, "--key", "k", "--password-stdin"], "needs --username"),
        (["sign", "r.example/a@sha256:" + "0" * 64, "--key", "k", "--timestamp-url", "http://t"], "go together"),
        (["sign", "r.example/a@sha256:" + "0" * 64, "--dry-run"], "--dry-run only apply to signing a plan file"),
        (["sign", "./plan.jsn", "--key", "k"], "sign: ./plan.jsn: no such plan file"),
        (["sign", "r.example/a:v1", "--key", "no-such-key"], "is a tag reference; sign by digest"),
        (["ls", "r.example/a@sha256:abc"], "is not a digest"),
        (["ls", "Bad Name"], "invalid"),
    ],
)
def test_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [("{}", "not a plan (expected format 'dct2notation-plan/1')"), ("nope", "plan is not valid JSON")],
)
def test_sign_hands_a_plan_file_to_the_batch_signer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, message: str
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(content)
    code, _, err = run(capsys, "sign", str(plan))
    assert code == 2
    assert err.startswith(f"dct2notation: error: {plan}: {message}")
    assert err.count("\n") == 1


@pytest.mark.servers
def test_sign_through_faults_reports_retries(
    capsys: pytest.CaptureFixture[str], registry: Registry, notation_dir: Path
) -> None:
    from tests.support.fault_proxy import FaultProxy

    repo = f"cli/r{next(_ids)}"
    digest = push_image(registry.host, repo)
    proxy = FaultProxy(registry.url, every=3, kinds=("503", "drop-after", "429", "drop"), retry_after=1).start()
    try:
        code, out, err = run(
            capsys,
            "sign",
            f"{proxy.host}/{repo}@{digest}",
            "--key",
            "tester",
            "--config-dir",
            str(notation_dir),
            "--insecure-registry",
            proxy.host,
        )
    finally:
        proxy.stop()
    assert code == 0, err
    signed = json.loads(out)
    assert signed["retries"]["total"] == sum(proxy.faults.values()) > 0
    with RegistryClient(registry.host, RegistryOptions(insecure_registries=frozenset({registry.host}))) as client:
        assert [e.digest for e in client.tag_index(repo, digest)] == [signed["signature"]["digest"]]


@pytest.mark.servers
def test_verify_fails_with_untrusted_certificate(
    capsys: pytest.CaptureFixture[str], registry: Registry, notation_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    generate_test_key("stranger", other, key_type="ec-p256")
    repo = f"cli/r{next(_ids)}"
    digest = push_image(registry.host, repo)
    ref = f"{registry.host}/{repo}@{digest}"
    flags = ["--insecure-registry", registry.host]
    assert run(capsys, "sign", ref, "--key", "tester", "--config-dir", str(notation_dir), *flags)[0] == 0
    code, out, err = run(
        capsys,
        "verify",
        ref,
        "--policy",
        str(write_policy(other, "stranger")),
        "--truststore",
        str(other / "truststore"),
        "--json",
        *flags,
    )
    assert code == 1
    report = json.loads(out)
    assert report["verified"] is False
    assert report["failedCheck"] == "authenticity"
    assert err.startswith("dct2notation: error: authenticity: ")


@pytest.mark.servers
def test_verify_without_signatures(capsys: pytest.CaptureFixture[str], registry: Registry, notation_dir: Path) -> None:
    repo = f"cli/r{next(_ids)}"
    push_image(registry.host, repo)
    code, _, err = run(
        capsys,
        "verify",
        f"{registry.host}/{repo}:v1",
        "--policy",
        str(write_policy(notation_dir)),
        "--truststore",
        str(notation_dir / "truststore"),
        "--insecure-registry",
        registry.host,
    )
    assert code == 1
    assert "no signature is associated with the artifact" in err


def test_ls_and_inspect_real_notation_layout(capsys: pytest.CaptureFixture[str], shared_fixtures: Path) -> None:
    layout = str(shared_fixtures / "notation" / "oci-layout-e2e-valid-signature")
    code, out, err = run(capsys, "ls", "v1", "--json", "--oci-layout", layout)
    assert code == 0, err
    listed = json.loads(out)
    assert listed["subject"]["digest"] == "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9"
    assert listed["signatures"] == [
        {
            "digest": "sha256:90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f",
            "artifactType": NOTATION_SIGNATURE,
            "form": "legacy",
            "envelopeMediaType": "application/jose+json",
            "signingTime": "2023-06-27T05:30:33Z",
            "thumbprints": ["e38aea13f2b051f7183cca64a51ee676f4d4456f41d9fecf15eb367efc7343b9"],
        }
    ]
    code, out, err = run(capsys, "inspect", "v1", "--json", "--oci-layout", layout)
    assert code == 0, err
    (entry,) = json.loads(out)["signatures"]
    # A JWS envelope (Notation's default format) is read like a COSE one.
    assert "error" not in entry
    assert (entry["mediaType"], entry["signatureAlgorithm"], entry["signingScheme"]) == (
        "application/jose+json",
        "PS256",
        "notary.x509",
    )
    assert (entry["signingTime"], entry["signingAgent"], entry["timestamped"]) == (
        "2023-06-27T05:30:33Z",
        "Notation/1.0.0",
        False,
    )
    assert entry["signedArtifact"]["digest"] == listed["subject"]["digest"]
    assert [c["sha256Thumbprint"] for c in entry["certificates"]] == listed["signatures"][0]["thumbprints"]
    code, _, err = run(capsys, "ls", "v9", "--oci-layout", layout)
    assert code == 2
    assert "v9 not found in index.json" in err
