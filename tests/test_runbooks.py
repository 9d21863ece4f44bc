"""Every ```bash block of runbooks/01-08 runs in order, as written, on a TLS and authenticated estate (#8, #15).

notary-server with TLS and token auth (the token service on TLS), docker-registry with TLS and htpasswd, one internal
CA; the demo estate is published with the real notary client under a unique GUN prefix. The runbooks get only their
documented variables: ``NOTARY_URL``, ``REGISTRY``, ``GUNS``, ``REGISTRY_MAP``, ``WORK``, ``CA_FILE``, the
``DOCKER_CONFIG`` a `docker login` wrote, and the TSA of runbook 03. Blocks that only make sense in a cluster are
```text (or carry ``# runbook-test: skip``) and are not run.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dct2notation.oci import DOCKER_MANIFEST_LIST, EMPTY_JSON, OCI_INDEX, OCI_MANIFEST, go_json, sha256_digest
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.options import Basic, RegistryOptions
from fixtures.generate_demo import prefixed, publish_estate
from tests.support.demo_registry import push_demo_images
from tests.support.images import image_manifest
from tests.support.notary_builders import write_key_and_cert
from tests.support.tls_estate import TLSEstate, tls_estate
from tests.support.tsa import TestTSA

ROOT = Path(__file__).resolve().parent.parent
RUNBOOKS = sorted((ROOT / "runbooks").glob("0[1-8]-*.md"))
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
NAMES = [
    "01-inventory-and-archive",
    "02-keys-and-identity-mapping",
    "03-batch-re-sign",
    "04-policy-and-admission",
    "05-coexistence-window",
    "06-cutover",
    "07-rollback",
    "08-decommission-sign-off",
]


def bash_blocks(path: Path) -> list[str]:
    return [b for b in BLOCK.findall(path.read_text()) if "# runbook-test: skip" not in b]


def commands_used(path: Path) -> set[str]:
    found = set()
    for block in bash_blocks(path):
        found |= set(re.findall(r"\bdct2notation (?!-)([a-z0-9-]+)", block))
    return found


def registered_commands() -> set[str]:
    from dct2notation.cli import app

    return {c.name or "" for c in app.registered_commands} | {g.name or "" for g in app.registered_groups}


def test_the_eight_runbooks_exist_with_commands() -> None:
    assert [p.stem for p in RUNBOOKS] == NAMES
    for path in RUNBOOKS:
        assert bash_blocks(path), f"{path.name} has no bash block"
        assert commands_used(path), f"{path.name} runs no dct2notation command"
    assert "2026-12-08" in RUNBOOKS[0].read_text()


@dataclass
class Env:
    vars: dict[str, str]
    work: Path
    results: dict[str, str]
    # What happens on the estate before a runbook runs (the world moving during the migration).
    before: dict[str, Callable[[], None]] = field(default_factory=dict)


USER, PASSWORD = "operator", "s3cret-operator-pw"


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSEstate]:
    with tls_estate(tmp_path_factory.mktemp("runbook-estate"), USER, PASSWORD) as servers:
        yield servers


# DCT-trusted; "unsigned" is registry-only, "canary" is signed only in targets/alice (not pull-trusted).
EDGE_TAGS = ("badsize", "conflict", "drift", "ghost", "multi-docker", "multi-oci")


def publish_edge_cases(
    estate: TLSEstate, work: Path, gun: str, repo: str, options: RegistryOptions
) -> Callable[[], None]:
    """The kinds of tag an operator meets (#15): a tag re-pushed outside DCT (drift), one signed but never pushed
    (ghost), one pushed but never signed (unsigned), one whose TUF length is wrong (badsize), an OCI index and a
    Docker manifest list, a conflict (targets and targets/releases sign ``conflict`` at different digests; docker
    trusts the releases one, which the registry serves) and a tag signed only in a non-release delegation (``canary``
    in targets/alice, pushed); real notary client. Returns the owner's later fix of the drift: re-signing the tag in DCT
    at what the registry serves (during the coexistence window)."""
    manifests = {name: image_manifest(f"edge-{name}-{repo}") for name in ("drift-old", "drift-new", "ghost",
                                                                        "unsigned", "badsize", "conflict-top",
                                                                        "conflict-released", "canary")}  # fmt: skip
    with RegistryClient(estate.registry.host, options) as client:
        client.push_blob(repo, EMPTY_JSON)
        for tag, name in (("drift", "drift-new"), ("unsigned", "unsigned"), ("badsize", "badsize"),
                          ("conflict", "conflict-released"), ("canary", "canary")):  # fmt: skip
            client.put_manifest(repo, tag, manifests[name], OCI_MANIFEST)
        # Multi-platform images: an OCI image index and a Docker manifest list over two pushed platform manifests.
        children = []
        for arch in ("amd64", "arm64"):
            raw = manifests[f"platform-{arch}"] = image_manifest(f"edge-{arch}-{repo}")
            client.put_manifest(repo, sha256_digest(raw), raw, OCI_MANIFEST)
            children.append({"mediaType": OCI_MANIFEST, "digest": sha256_digest(raw), "size": len(raw),
                             "platform": {"architecture": arch, "os": "linux"}})  # fmt: skip
        for tag, media in (("multi-oci", OCI_INDEX), ("multi-docker", DOCKER_MANIFEST_LIST)):
            manifests[tag] = go_json({"schemaVersion": 2, "mediaType": media, "manifests": children})
            client.put_manifest(repo, tag, manifests[tag], media)
    signed: list[tuple[str, str, int, tuple[str, ...]]] = [
        ("drift", "drift-old", 0, ()), ("ghost", "ghost", 0, ()), ("badsize", "badsize", 9, ()),
        ("multi-oci", "multi-oci", 0, ()), ("multi-docker", "multi-docker", 0, ()),
        ("conflict", "conflict-top", 0, ()), ("conflict", "conflict-released", 0, ("targets/releases",)),
        ("canary", "canary", 0, ("targets/alice",)),
    ]  # fmt: skip
    client_ = estate.notary.client(work / "edge-trust")
    keys = work / "edge-keys"
    estate.token.allow_anonymous = True
    try:
        client_.init(gun)
        for role in ("releases", "alice"):
            write_key_and_cert(keys, role)
            client_.run("delegation", "add", gun, f"targets/{role}", str(keys / f"{role}.crt"), "--all-paths")
            client_.run("key", "import", str(keys / f"{role}.key"), "--role", f"targets/{role}", "--gun", gun)
        for tag, name, extra, roles in signed:
            raw = manifests[name]
            client_.addhash(gun, tag, len(raw) + extra, sha256_digest(raw).removeprefix("sha256:"), *roles)
        client_.publish(gun)
    finally:
        estate.token.allow_anonymous = False

    def resign_drift_in_dct() -> None:
        raw = manifests["drift-new"]
        estate.token.allow_anonymous = True
        try:
            client_.addhash(gun, "drift", len(raw), sha256_digest(raw).removeprefix("sha256:"))
            client_.publish(gun)
        finally:
            estate.token.allow_anonymous = False

    return resign_drift_in_dct


BULK_TAGS = 300


def publish_bulk(estate: TLSEstate, work: Path, gun: str, repo: str, options: RegistryOptions) -> str:
    """One GUN with 300 tags, each its own image (a resumed batch, the check and the sign-off at that size)."""
    client_ = estate.notary.client(work / "bulk-trust")
    with RegistryClient(estate.registry.host, options) as client:
        client.push_blob(repo, EMPTY_JSON)
        estate.token.allow_anonymous = True
        try:
            client_.init(gun)
            for n in range(BULK_TAGS):
                raw = image_manifest(f"bulk-{n}-{repo}")
                client.put_manifest(repo, f"t{n:03d}", raw, OCI_MANIFEST)
                client_.addhash(gun, f"t{n:03d}", len(raw), sha256_digest(raw).removeprefix("sha256:"))
            client_.publish(gun)
        finally:
            estate.token.allow_anonymous = False
    return gun


@pytest.fixture(scope="module")
def env(estate: TLSEstate, tsa_server: TestTSA, tmp_path_factory: pytest.TempPathFactory) -> Env:
    work = tmp_path_factory.mktemp("runbooks")
    unique = uuid.uuid4().hex[:8]
    prefix = f"runbook.example/{unique}"
    images = prefixed(prefix)
    notary_server, registry = estate.notary, estate.registry
    # The publisher (the real notary client) gets tokens anonymously; the runbooks must log in.
    estate.token.allow_anonymous = True
    try:
        publish_estate(notary_server.client(work / "operator-trust"), work / "operator-keys", images)
    finally:
        estate.token.allow_anonymous = False
    # The very images DCT names, in the real registry under the mapped repositories.
    options = RegistryOptions(ca_file=estate.ca, credentials=Basic(USER, PASSWORD))
    push_demo_images(registry.host, unique, images, gun_prefix=prefix, options=options)
    edge = f"{prefix}/edge/app"
    resign_drift = publish_edge_cases(estate, work, edge, f"{unique}/edge/app", options)
    bulk = publish_bulk(estate, work, f"{prefix}/bulk/app", f"{unique}/bulk/app", options)
    guns = sorted({image.gun for image in images} | {edge, bulk})
    # What `docker login REGISTRY` and `docker login NOTARY_HOST` leave in ~/.docker/config.json.
    docker_config = work / "docker"
    docker_config.mkdir()
    login = {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    (docker_config / "config.json").write_text(json.dumps({"auths": {registry.host: login, notary_server.url: login}}))
    variables = {
        "NOTARY_URL": notary_server.url,
        "REGISTRY": registry.host,
        "GUNS": " ".join(guns),
        "REGISTRY_MAP": f"{prefix}={registry.host}/{unique}",
        "WORK": str(work / "work"),
        "CA_FILE": str(estate.ca),
        "REVIEWER": "reviewer@example.com",
        "WAIVE_UNTIL": "2099-01-01T00:00:00Z",
        "DOCKER_CONFIG": str(docker_config),
        # The loopback RFC 3161 TSA (real openssl ts): runbook 03 timestamps, runbook 04 trusts its root.
        "TSA_URL": tsa_server.url,
        "TSA_ROOT": str(tsa_server.pki.root_pem),
    }
    (work / "work").mkdir()
    # Runbook 05 must see a DCT re-sign made after the inventory: it reads DCT live and refreshes.
    return Env(variables, work / "work", {}, {"05-coexistence-window": resign_drift})


@pytest.mark.parametrize("name", NAMES)
def test_runbook_blocks_run(name: str, env: Env) -> None:
    path = ROOT / "runbooks" / f"{name}.md"
    missing = sorted(commands_used(path) - registered_commands())
    if missing:
        env.results[name] = "skipped"
        pytest.skip(f"{name} uses command(s) not in this build yet: {', '.join(missing)}")
    earlier = [n for n in NAMES[: NAMES.index(name)] if env.results.get(n) != "passed"]
    if earlier:
        env.results[name] = "skipped"
        pytest.skip(f"{name} builds on runbook(s) that did not run: {', '.join(earlier)}")
    env.results[name] = "failed"
    if name in env.before:
        env.before[name]()
    bindir = env.work.parent / "bin"
    bindir.mkdir(exist_ok=True)
    shim = bindir / "dct2notation"
    # The runbooks call `dct2notation`; run it from this checkout with this interpreter.
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dct2notation "$@"\n')
    shim.chmod(0o755)
    script = "set -euo pipefail\n" + "\n".join(bash_blocks(path))
    run_env = {**os.environ, **env.vars, "PATH": f"{bindir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    run_env.pop("NOTATION_CONFIG", None)
    done = subprocess.run(
        ["bash", "-c", script], cwd=env.work, env=run_env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{name}: exit {done.returncode}\n{done.stderr[-4000:]}\n{done.stdout[-2000:]}"
    env.results[name] = "passed"
    check_outcome(name, env.work, done.stdout)


def check_outcome(name: str, work: Path, out: str) -> None:
    """What each runbook must have produced, beyond exiting 0."""
    if name == "01-inventory-and-archive":
        doc = json.loads((work / "inventory.json").read_text())
        assert sorted(len(r["trusted_tags"]) for r in doc["repositories"]) == [2, 2, 3, len(EDGE_TAGS), BULK_TAGS]
        assert (work / "archive" / "ARCHIVE.json").is_file()
        edge = next(r for r in doc["repositories"] if r["gun"].endswith("/edge/app"))
        assert f"{edge['gun']}: {len(EDGE_TAGS)} trusted tag(s), 1 conflict(s)" in out.splitlines()
        trusted = {t["tag"]: t for t in edge["trusted_tags"]}
        # The conflict: both roles' digests, in walk order; docker pull trusts the releases one.
        [conflict] = edge["conflicts"]
        assert conflict["tag"] == "conflict" and list(conflict["digests"]) == ["targets", "targets/releases"]
        assert len(set(conflict["digests"].values())) == 2
        assert (trusted["conflict"]["digest"], trusted["conflict"]["role"]) == (
            conflict["digests"]["targets/releases"], "targets/releases")  # fmt: skip
        # docker trust inspect's rows: both digests of the conflict; canary is in no released role, so only in
        # role_targets (targets/alice), neither pull-trusted nor a signed_tags row.
        assert sorted(t["digest"] for t in edge["signed_tags"] if t["tag"] == "conflict") == sorted(
            conflict["digests"].values())  # fmt: skip
        assert "canary" not in trusted and all(t["tag"] != "canary" for t in edge["signed_tags"])
        assert [t["tag"] for t in edge["role_targets"]["targets/alice"]] == ["canary"]
    elif name == "05-coexistence-window":
        # The re-sign in DCT was seen live and refreshed into archive, inventory, plan and one new signature.
        refresh = json.loads((work / "sign-refresh.json").read_text())
        assert refresh["this_run"].get("signed") == 1 and refresh["failures"] == []
        check = json.loads((work / "check.json").read_text())
        statuses = {t["tag"]: t["status"] for t in check["tags"] if t["gun"].endswith("/edge/app")}
        assert statuses == {"badsize": "ok", "drift": "ok", "ghost": "manifest-missing", "unsigned": "dct-missing",
                            "multi-oci": "ok", "multi-docker": "ok", "conflict": "ok",
                            "canary": "dct-missing"}  # fmt: skip
        [canary] = [t for t in check["tags"] if t["gun"].endswith("/edge/app") and t["tag"] == "canary"]
        assert canary["reason"] == ("the registry has the tag but DCT signs it only in targets/alice, which docker "
                                    "pull does not trust (only targets/releases, then targets)")  # fmt: skip
        waived = json.loads((work / "check-waived.json").read_text())["summary"]
        assert (waived["unmet"], waived["waived"], waived["unused_waivers"]) == (0, 3, [])
    elif name == "03-batch-re-sign":
        assert json.loads((work / "plan.json").read_text())["jobs"]
        assert json.loads((work / "sign.json").read_text())["failures"] == []
        import yaml

        # k8s-job, checked against the pod paths of the runbook's signingkeys.json: the key files in localkeys/.
        job = [d for d in yaml.safe_load_all((work / "sign-job.yaml").read_text()) if d["kind"] == "Job"][0]
        keys = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "notation-keys")
        assert [i["path"] for i in keys["secret"]["items"]] == [
            "signingkeys.json", "localkeys/release-signer.key", "localkeys/release-signer.crt"]  # fmt: skip
    elif name == "04-policy-and-admission":
        policy = json.loads((work / "policy" / "trustpolicy.json").read_text())
        tsa = {s for st in policy["trustPolicies"] for s in st["trustStores"] if s.startswith("tsa:")}
        assert len(tsa) == 1  # the root runbook 03 timestamped under, read back from the journal
        assert all(st["signatureVerification"]["level"] == "strict" for st in policy["trustPolicies"])
    elif name == "07-rollback":
        check_cluster_commands(work)
    elif name == "08-decommission-sign-off":
        assert "ready" in out.splitlines()
        record = json.loads((work / "signoff-bundle" / "SIGNOFF.json").read_text())
        assert record["verdict"] == "ready"
        assert len(record["coverage"]) == 6 + len(EDGE_TAGS) + BULK_TAGS  # the demo's 6, the edge and bulk GUNs

        # Never pushed: waived, with who and until when; the re-signed drift, the wrong TUF length, both
        # multi-platform images are covered.
        assert len(record["waived"]) == 1 and "reviewer@example.com" in record["waived"][0]  # the never-pushed tag
        covered = {c["tags"][0]: c["covered"] for c in record["coverage"] if len(c["tags"]) == 1}
        assert covered["badsize"] and covered["multi-oci"] and covered["multi-docker"] and covered["drift"]
        # The conflict is covered at the digest docker pull trusts (targets/releases'), never at targets' one;
        # canary (only in targets/alice) is no DCT-trusted digest, so not a coverage row (it is waived in check).
        inventory = json.loads((work / "inventory.json").read_text())
        [conflict] = next(r for r in inventory["repositories"] if r["gun"].endswith("/edge/app"))["conflicts"]
        rows = [c for c in record["coverage"] if "conflict" in c["tags"]]
        assert [(c["digest"], c["covered"]) for c in rows] == [(conflict["digests"]["targets/releases"], True)]
        assert all("canary" not in c["tags"] for c in record["coverage"])


FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)
KUBECTL_OBJECT = re.compile(r"kubectl (patch|delete) (\S+) (\S+)(?: .*?-p '(.*?)')?")
FILE_ARG = re.compile(r"(?:kubectl apply|helm upgrade .*?) -f \"\$WORK/([^\"]+)\"")


def emitted_objects(work: Path) -> list[dict[str, object]]:
    import yaml

    found = []
    for directory in ("policy", "policy-audit"):
        for path in sorted((work / directory).rglob("*.yaml")):
            found += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict) and "kind" in d]
    return found


def has_path(doc: object, patch: object) -> bool:
    if not isinstance(patch, dict):
        return True
    return isinstance(doc, dict) and all(k in doc and has_path(doc[k], v) for k, v in patch.items())


def check_cluster_commands(work: Path) -> None:
    """Runbooks 04-07 patch, delete and apply only what `policy` emitted (#17 item 7: they patched a name it never
    wrote, ``clusterpolicy dct2notation-verify``)."""
    objects = emitted_objects(work)
    checked = 0
    for name in NAMES[3:7]:
        for block in FENCE.findall((ROOT / "runbooks" / f"{name}.md").read_text()):
            for line in block.splitlines():
                if "# the chart's sample" in line:
                    continue
                for verb, kind, obj, patch in KUBECTL_OBJECT.findall(line):
                    matches = [o for o in objects if str(o["kind"]).lower() == kind and o["metadata"]["name"] == obj]  # type: ignore[index]
                    assert matches, f"{name}: kubectl {verb} {kind} {obj}: no such emitted object"
                    if patch:
                        assert any(has_path(m, json.loads(patch)) for m in matches), f"{name}: {line}: no such field"
                    checked += 1
                for relative in FILE_ARG.findall(line):
                    assert (work / relative).exists(), f"{name}: {line}: $WORK/{relative} was not emitted"
                    checked += 1
    assert checked >= 8
