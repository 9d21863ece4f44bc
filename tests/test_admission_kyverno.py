"""Kyverno v1.19.0's own admission checks accept what `policy` emits, for every --level and both Kyverno forms.

``kyverno-check`` (tests/support/kyverno_check, built by scripts/peers.sh inside the kyverno module) runs the
ClusterPolicy through ``pkg/validation/policy.Validate`` (the webhook's and ``kyverno apply``'s validation, which
holds the "mutateDigest must be set to false for 'Audit' failure action" rule) and compiles each
ImageValidatingPolicy (CEL validations, attestors, image references) with Kyverno's image-verification compiler.
The old HEAD form, Audit with mutateDigest at its CRD default (true), is refused by the same code.

With the whole CLI built (``DCT2NOTATION_PEERS_SLOW=1 scripts/peers.sh``), ``kyverno apply`` runs both emitted forms
against a Pod whose image `dct2notation sign` signed in the loopback docker-registry: admitted; unsigned, or signed
under a root nobody trusts: denied.
Every other spelling of a migrated image (short name, ``library/``, ``index.docker.io``, ``registry-1.docker.io``,
upper-case host, tag-less, by digest, tag and digest) is checked too, never skipped: public names against a refusing
loopback proxy, a private registry with a port over TLS under its upper-case host.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import socketserver
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from dct2notation.cli import main
from dct2notation.config import FixedClock
from dct2notation.keys.testcert import generate_test_key
from tests.support.admission_estate import DIGEST, LEVELS, emit, emit_policy, inventory_doc, make_keys, push_image
from tests.support.peers import peers_root
from tests.support.servers import Registry
from tests.support.tsa import TestTSA

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "tests" / "support" / "kyverno_check" / "main.go"
VERSION = "v1.19.0"


@pytest.fixture(scope="module")
def kyverno_check() -> Path:
    folder = peers_root() / f"kyverno-check-{VERSION}-{hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]}"
    binary = folder / "kyverno-check"
    if binary.is_file():
        return binary
    log = folder.with_name(folder.name + ".tmp") / "build.log"
    why = "not built: run scripts/peers.sh (needs Go and the Go module proxy)"
    if log.is_file():
        lines = log.read_text(errors="replace").strip().splitlines()
        why = f"did not build: {lines[-1] if lines else 'empty build log'}"
    pytest.skip(f"kyverno-check {VERSION} {why}")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_keys(tmp_path_factory.mktemp("kyverno-keys"))


def run(binary: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *map(str, files)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("level", LEVELS)
def test_kyverno_accepts_both_forms_at_every_level(kyverno_check: Path, keys: Path, tmp_path: Path, level: str) -> None:
    ivp = emit(keys, tmp_path / "ivp", level) / "kyverno" / "imagevalidatingpolicies.yaml"
    cp = emit(keys, tmp_path / "cp", level, kyverno="clusterpolicy") / "kyverno" / "clusterpolicy.yaml"
    done = run(kyverno_check, ivp, cp)
    assert done.returncode == 0, done.stdout + done.stderr
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(ivp.read_text())]
    expected = [f"OK ImageValidatingPolicy {n}" for n in names] + ["OK ClusterPolicy dct2notation-verify-images"]
    assert done.stdout.splitlines() == expected


def test_kyverno_refuses_the_audit_form_head_emitted(kyverno_check: Path, keys: Path, tmp_path: Path) -> None:
    cp = emit(keys, tmp_path / "cp", "audit", kyverno="clusterpolicy") / "kyverno" / "clusterpolicy.yaml"
    (policy,) = yaml.safe_load_all(cp.read_text())
    policy["spec"]["validationFailureAction"] = "Audit"
    for rule in policy["spec"]["rules"]:
        (verify,) = rule["verifyImages"]
        del verify["failureAction"]
        verify["mutateDigest"] = True  # the CRD default the API server fills in when the field is left out
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump(policy))
    done = run(kyverno_check, old)
    assert done.returncode == 1
    assert "mutateDigest must be set to false for ‘Audit’ failure action" in done.stdout
    # And a CEL validation that does not type-check is caught by the same compiler Kyverno admits with.
    ivp = emit(keys, tmp_path / "ivp", "strict") / "kyverno" / "imagevalidatingpolicies.yaml"
    first = next(yaml.safe_load_all(ivp.read_text()))
    first["spec"]["validations"][0]["expression"] += " && 1"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(first))
    done = run(kyverno_check, broken)
    assert done.returncode == 1 and "expected type 'bool'" in done.stdout


@pytest.fixture(scope="module")
def kyverno_cli() -> Path:
    """The Kyverno CLI (``kubectl-kyverno`` v1.19.0), built by scripts/peers.sh when DCT2NOTATION_PEERS_SLOW=1."""
    binary = peers_root() / f"kyverno-{VERSION}" / "kyverno"
    if binary.is_file():
        return binary
    pytest.skip(f"kyverno {VERSION} not built: run DCT2NOTATION_PEERS_SLOW=1 scripts/peers.sh (a 15-minute cold build)")


def pod(path: Path, image: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "app", "namespace": "apps"},
                "spec": {"containers": [{"name": "app", "image": image}]},
            }  # fmt: skip
        )
    )
    return path


@pytest.mark.parametrize("form", ["ivp", "clusterpolicy"])
def test_kyverno_apply_admits_what_we_signed_and_denies_the_rest(
    kyverno_cli: Path, registry: Registry, tmp_path: Path, form: str
) -> None:
    """The emitted policy, run by `kyverno apply`, against signatures `dct2notation sign` pushed to docker-registry."""
    repo = f"kyverno-{uuid.uuid4().hex[:8]}/app"
    signed, unsigned = push_image(registry.host, repo, "v1"), push_image(registry.host, repo, "v2")
    config = tmp_path / "notation"
    generate_test_key("signer", config, key_type="ec-p256", days=2)
    stranger = tmp_path / "stranger"
    generate_test_key("signer", stranger, key_type="ec-p256", days=2)  # same subject, another root
    strange = push_image(registry.host, repo, "v3")
    for digest, keys in ((signed, config), (strange, stranger)):
        ref = f"{registry.host}/{repo}@{digest}"
        assert (
            main(["sign", ref, "--key", "signer", "--config-dir", str(keys), "--insecure-registry", registry.host]) == 0
        )
    gun = f"{registry.host}/{repo}"
    out = emit_policy(tmp_path, gun, signed, "signer", config, tmp_path / "out", "--kyverno", form)
    name = "imagevalidatingpolicies.yaml" if form == "ivp" else "clusterpolicy.yaml"
    docs = list(yaml.safe_load_all((out / "kyverno" / name).read_text()))
    for doc in docs:  # the only change: docker-registry on loopback speaks plain HTTP
        if form == "ivp":
            doc["spec"]["credentials"] = {"allowInsecureRegistry": True}
        else:
            for rule in doc["spec"]["rules"]:
                rule["verifyImages"][0]["imageRegistryCredentials"] = {"allowInsecureRegistry": True}
    policy = tmp_path / name
    policy.write_text(yaml.safe_dump_all(docs))
    results = {}
    for label, digest in (("signed", signed), ("unsigned", unsigned), ("stranger", strange)):
        resource = pod(tmp_path / f"{label}.yaml", f"{gun}@{digest}")
        done = subprocess.run(
            [str(kyverno_cli), "apply", str(policy), "--resource", str(resource), "--remove-color"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "HOME": str(tmp_path)},
        )  # fmt: skip
        results[label] = (done.returncode, done.stdout + done.stderr)
    counts = {label: summary(text) for label, (_, text) in results.items()}
    assert results["signed"][0] == 0 and counts["signed"]["pass"] >= 1, results["signed"][1]
    assert counts["signed"]["fail"] == counts["signed"]["error"] == 0
    for label in ("unsigned", "stranger"):  # no signature; a signature under a root nobody trusts
        assert results[label][0] == 1 and counts[label]["fail"] >= 1, results[label][1]
        if form == "ivp":
            assert "image is not signed by a signer of trust-policy statement dct-" in results[label][1]


def summary(text: str) -> dict[str, int]:
    """`kyverno apply`'s count line, e.g. ``pass: 2, fail: 0, warn: 0, error: 0, skip: 0``."""
    found = re.search(r"pass: (\d+), fail: (\d+), warn: (\d+), error: (\d+), skip: (\d+)", text)
    assert found, text
    return dict(zip(("pass", "fail", "warn", "error", "skip"), map(int, found.groups()), strict=True))


def test_kyverno_apply_keeps_a_timestamped_signature_after_its_certificate_expired(
    kyverno_cli: Path, registry: Registry, tsa: TestTSA, tmp_path: Path
) -> None:
    """A certificate that expires seconds after signing: with tsaCerts the signature still admits, without it not."""
    repo = f"kyverno-tsa-{uuid.uuid4().hex[:8]}/app"
    digest = push_image(registry.host, repo, "v1")
    config = tmp_path / "notation"
    lifetime = dt.timedelta(seconds=20)
    generate_test_key(
        "short",
        config,
        key_type="ec-p256",
        days=1,
        clock=FixedClock(dt.datetime.now(dt.UTC) - dt.timedelta(days=1) + lifetime),
    )
    cert = x509.load_pem_x509_certificate((config / "localkeys" / "short.crt").read_bytes())
    gun = f"{registry.host}/{repo}"
    sign = ["sign", f"{gun}@{digest}", "--key", "short", "--config-dir", str(config),
            "--insecure-registry", registry.host, "--timestamp-url", tsa.url,
            "--timestamp-root-cert", str(tsa.pki.root_pem)]  # fmt: skip
    assert main(sign) == 0
    tsa_root = str(tsa.pki.root_pem)
    out = emit_policy(tmp_path, gun, digest, "short", config, tmp_path / "out", "--timestamp-root-cert", tsa_root)
    (doc,) = yaml.safe_load_all((out / "kyverno" / "imagevalidatingpolicies.yaml").read_text())
    doc["spec"]["credentials"] = {"allowInsecureRegistry": True}  # docker-registry on loopback speaks plain HTTP
    assert doc["spec"]["attestors"][0]["notary"]["tsaCerts"]["value"] == tsa.pki.root_pem.read_text()
    with_tsa = tmp_path / "with-tsa.yaml"
    with_tsa.write_text(yaml.safe_dump(doc))
    del doc["spec"]["attestors"][0]["notary"]["tsaCerts"]
    without_tsa = tmp_path / "without-tsa.yaml"
    without_tsa.write_text(yaml.safe_dump(doc))
    resource = pod(tmp_path / "pod.yaml", f"{gun}@{digest}")
    wait = (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).total_seconds() + 2
    assert 0 < wait < 30
    time.sleep(wait)  # the signing certificate has now expired
    for policy, code in ((with_tsa, 0), (without_tsa, 1)):
        done = subprocess.run(
            [str(kyverno_cli), "apply", str(policy), "--resource", str(resource), "--remove-color"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "HOME": str(tmp_path)},
        )  # fmt: skip
        assert done.returncode == code, done.stdout + done.stderr


class RefusingProxy:
    """An HTTP proxy on loopback that records what it was asked for and refuses it (403): Kyverno's registry
    lookups of public names go here, so nothing leaves the machine and each lookup shows the image was checked."""

    def __init__(self) -> None:
        seen: list[str] = []

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                seen.append(self.rfile.readline(4096).decode(errors="replace").strip())
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

        self.seen = seen
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def proxy() -> Iterator[RefusingProxy]:
    server = RefusingProxy()
    yield server
    server.close()


def emit_kyverno(
    tmp_path: Path, guns: list[str], digest: str, form: str, config: Path, plain_http: bool = True
) -> Path:
    """`dct2notation policy` over an inventory of ``guns`` (one signer for all), as ``form``; plain HTTP allowed
    unless ``plain_http`` is false (then the policy is used exactly as emitted)."""
    repositories = [r for gun in guns for r in inventory_doc(gun, digest)["repositories"]]  # type: ignore[attr-defined]
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({**inventory_doc(guns[0], digest), "repositories": repositories}))
    (tmp_path / "signers.toml").write_text('[[signer]]\ngun = "*"\nkey = "signer"\n')
    out = tmp_path / f"out-{form}"
    args = ["policy", str(inventory), "--signers", str(tmp_path / "signers.toml"), "--config-dir", str(config)]
    assert main([*args, "-o", str(out), "--kyverno", form]) == 0
    name = "imagevalidatingpolicies.yaml" if form == "ivp" else "clusterpolicy.yaml"
    docs = list(yaml.safe_load_all((out / "kyverno" / name).read_text()))
    for doc in docs if plain_http else []:  # the only change: docker-registry on loopback speaks plain HTTP
        if form == "ivp":
            doc["spec"]["credentials"] = {"allowInsecureRegistry": True}
        else:
            for rule in doc["spec"]["rules"]:
                rule["verifyImages"][0]["imageRegistryCredentials"] = {"allowInsecureRegistry": True}
    policy = tmp_path / f"{form}.yaml"
    policy.write_text(yaml.safe_dump_all(docs))
    return policy


def apply(
    kyverno: Path, policy: Path, image: str, tmp_path: Path, proxy: str | None = None, env: dict[str, str] | None = None
) -> tuple[int, str]:
    resource = pod(tmp_path / "pod.yaml", image)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "NO_PROXY": "", "no_proxy": ""} | (
        env or {}
    )
    if proxy:
        env |= {"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "https_proxy": proxy, "http_proxy": proxy}
    done = subprocess.run(
        [str(kyverno), "apply", str(policy), "--resource", str(resource), "--remove-color"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


ANY_DIGEST = "sha256:" + "a" * 64
# Every way a pod can name docker.io/library/alpine (the runtime pulls each from Docker Hub), and what Kyverno then
# asks the registry for (through the refusing proxy) when it checks the image.
HUB_SPELLINGS = [
    "alpine:3.20", "alpine", "library/alpine:3.20", "docker.io/library/alpine", "docker.io/alpine:3.20",
    "index.docker.io/library/alpine:3.20", "index.docker.io/alpine", "registry-1.docker.io/library/alpine:3.20",
    "DOCKER.IO/library/alpine:3.20", f"alpine@{ANY_DIGEST}", f"alpine:3.20@{ANY_DIGEST}",
    "REG.EXAMPLE:5000/team/app:v1", "Reg.Example:5000/team/app", f"reg.example:5000/team/app:v1@{ANY_DIGEST}",
]  # fmt: skip


@pytest.mark.parametrize("form", ["ivp", "clusterpolicy"])
def test_attack_image_spelling_slips_past_kyverno_image_references(
    kyverno_cli: Path, proxy: RefusingProxy, tmp_path: Path, form: str
) -> None:
    """Another spelling of a migrated image (short name, library/, index.docker.io, registry-1.docker.io, upper-case
    host, tag-less, by digest, tag and digest) was not matched by the emitted globs, so Kyverno skipped it and the
    unsigned pod was admitted (old HEAD: IVP ``pass: 1``, ClusterPolicy nothing evaluated). Now every spelling is
    checked: the images are unsigned (their registries unreachable), so each is denied, and never passes."""
    config = tmp_path / "notation"
    generate_test_key("signer", config, key_type="ec-p256", days=2)
    policy = emit_kyverno(tmp_path, ["docker.io/library/alpine", "reg.example:5000/team/app"], DIGEST, form, config)
    for image in HUB_SPELLINGS:
        code, text = apply(kyverno_cli, policy, image, tmp_path, proxy.url)
        counts = summary(text)
        assert code == 1 and counts["pass"] == 0 and counts["skip"] == 0, (image, text)
        assert counts["fail"] + counts["error"] >= 1, (image, text)
    # Another repository of the same registry is not ours: not checked, so admitted.
    code, text = apply(kyverno_cli, policy, "reg.example:5000/team/other:v1", tmp_path, proxy.url)
    assert code == 0 and summary(text)["fail"] == summary(text)["error"] == 0, text
    asked = {line.split()[1] for line in proxy.seen if line.startswith("CONNECT ")}
    # The ClusterPolicy asks the registry of every tag spelling; both forms ask for every digest spelling.
    assert {"index.docker.io:443", "Reg.Example:5000" if form == "clusterpolicy" else "reg.example:5000"} <= asked


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """docker-registry over HTTPS (certificate for localhost and 127.0.0.1): Kyverno's Notary verifier reaches a
    plain-HTTP registry only under a host spelled exactly ``localhost``, so the upper-case spellings need TLS."""
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed")
    server = Registry(tmp_path_factory.mktemp("registry-tls"), tls=True).start()
    yield server
    server.stop()


@pytest.mark.parametrize("form", ["ivp", "clusterpolicy"])
def test_attack_upper_case_registry_host_slips_past_kyverno(
    kyverno_cli: Path, tls_registry: Registry, tmp_path: Path, form: str
) -> None:
    """A private registry with a port (localhost:PORT, a docker-registry over TLS) named with its host in upper
    case, tag-less, or by tag and digest: what `dct2notation sign` signed is admitted, everything else denied (old
    HEAD: the upper-case and tag-less spellings were never checked, so the unsigned ones were admitted)."""
    assert tls_registry.tls_files is not None
    ca = tls_registry.tls_files.ca_cert
    repo = f"kyverno-case-{uuid.uuid4().hex[:8]}/app"
    host = f"localhost:{tls_registry.port}"
    signed, unsigned = push_image(tls_registry.host, repo, "v1", ca), push_image(tls_registry.host, repo, "latest", ca)
    config = tmp_path / "notation"
    generate_test_key("signer", config, key_type="ec-p256", days=2)
    assert (
        main(["sign", f"{host}/{repo}@{signed}", "--key", "signer", "--config-dir", str(config), "--ca-file", str(ca)])
        == 0
    )
    policy = emit_kyverno(tmp_path, [f"{host}/{repo}"], signed, form, config, plain_http=False)
    env = {"SSL_CERT_FILE": str(ca)}
    port = tls_registry.port
    for image in (
        f"LOCALHOST:{port}/{repo}@{signed}",
        f"Localhost:{port}/{repo}:v1@{signed}",
    ):
        code, text = apply(kyverno_cli, policy, image, tmp_path, env=env)
        assert code == 0 and summary(text)["pass"] >= 1 and summary(text)["fail"] == 0, (image, text)
    for image in (f"LOCALHOST:{port}/{repo}@{unsigned}", f"LOCALHOST:{port}/{repo}", f"{host}/{repo}",
                  f"LocalHost:{port}/{repo}:latest"):  # fmt: skip
        code, text = apply(kyverno_cli, policy, image, tmp_path, env=env)
        assert code == 1 and summary(text)["pass"] == 0 and summary(text)["fail"] >= 1, (image, text)
