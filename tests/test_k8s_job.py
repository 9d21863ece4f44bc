"""The Kubernetes Job runs as written (#19.5): `k8s-job` writes ConfigMaps (the plan and inventory gzipped, split and
content-addressed), a journal claim and an Indexed Job mounting the docker config, the Notation keys, the CA and the
TSA settings from Secrets, and a plugin key's plugin copied from its image by an init container. Validated against the
Kubernetes 1.37 API schemas (kubernetes-validate, offline), and every index run as its pod would run it (the
container's command, args and env, mounts mapped to temp folders laid out as the kubelet writes them,
JOB_COMPLETION_INDEX set) against docker-registry 2.8. The Containerfile is checked against the Job and its package
built, installed and run as the image's RUN line does.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from dct2notation.cli import main
from dct2notation.migrate.plan import Job, Plan
from tests.support.plans import save_bound
from tests.support.servers import Registry
from tests.test_batch import push_images, repo_over_shards, signatures_by_subject, unique_repo

ROOT = Path(__file__).resolve().parents[1]
K8S_VERSION = "1.37.0"


@pytest.fixture(scope="module")
def notation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dct2notation.keys.testcert import generate_test_key

    config = tmp_path_factory.mktemp("notation-k8s")
    generate_test_key("alpha", config, key_type="ec-p256", make_default=True)
    return config


def k8s_job(tmp_path: Path, plan: Path, inventory: Path, *extra: str) -> list[dict[str, Any]]:
    out = tmp_path / "job.yaml"
    args = ["k8s-job", str(plan), "--inventory", str(inventory), "-o", str(out), "--name", "mig",
            "--image", "registry.example/dct2notation:1", "--docker-config-secret", "regcred",
            "--notation-secret", "notation", *extra]  # fmt: skip
    if "--plugin" not in extra and "--key-files" not in extra:
        args += ["--key-files", "alpha"]
    assert main(args) == 0
    return list(yaml.safe_load_all(out.read_text()))


def validate(docs: list[dict[str, Any]]) -> None:
    import kubernetes_validate

    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


# The kubelet's atomic writer: a Secret, ConfigMap or projected volume holds its items under a timestamped folder,
# ``..data`` links to it and each top-level name is a symlink into ``..data`` (so a reader refusing symlinks fails).
KUBELET_STAMP = "..2026_12_01_11_00_00.000000001"


def atomic_volume(folder: Path, items: list[tuple[str, bytes]]) -> None:
    for path, raw in items:
        target = folder / KUBELET_STAMP / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(raw)
    (folder / "..data").symlink_to(KUBELET_STAMP)
    for top in sorted({path.split("/")[0] for path, _ in items}):
        (folder / top).symlink_to(f"..data/{top}")


SecretsFor = Callable[[Path], dict[str, dict[str, bytes]]]


def secret_manifests(data: dict[str, dict[str, bytes]]) -> list[dict[str, Any]]:
    """``kubectl create secret`` of each: the docker login as kubernetes.io/dockerconfigjson, the others Opaque."""
    out = []
    for name, items in data.items():
        kind = "kubernetes.io/dockerconfigjson" if ".dockerconfigjson" in items else "Opaque"
        encoded = {key: base64.b64encode(raw).decode() for key, raw in items.items()}
        out.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": kind, "data": encoded})
    return out


class Pod:
    """One pod of the Job on this machine: each volume a folder (the claim shared by every attempt, emptyDirs new
    per attempt), each mount path mapped to its folder; a mount inside another mount (the plugin directory inside
    the config directory, a subPath file) is a link at its mount point, where the runtime would mount it."""

    def __init__(
        self, docs: list[dict[str, Any]], index: int, root: Path, secrets: SecretsFor, attempt: int = 0
    ) -> None:
        self.docs, self.index = docs, index
        self.job = next(d for d in docs if d["kind"] == "Job")
        self.spec = self.job["spec"]["template"]["spec"]
        self.root = root / f"attempt-{attempt}"
        self.claim = root / "claim"
        # Secret contents may name pod paths (signingkeys.json's keyPath): given the config directory's folder.
        # The Secrets as the platform team would apply them, checked against the API schema, are what is mounted.
        self.secrets = secret_manifests(secrets(self.root / "vol-notation"))
        validate(self.secrets)
        self.secret_data = secret_data = {
            m["metadata"]["name"]: {k: base64.b64decode(v) for k, v in m["data"].items()} for m in self.secrets
        }
        maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
        self.volumes: dict[str, Path] = {}
        for volume in self.spec["volumes"]:
            items: list[tuple[str, bytes]] = []
            if "persistentVolumeClaim" in volume:
                self.volumes[volume["name"]] = self.claim
                self.claim.mkdir(parents=True, exist_ok=True)
                continue
            folder = self.root / f"vol-{volume['name']}"
            folder.mkdir(parents=True)
            self.volumes[volume["name"]] = folder
            if "projected" in volume:
                for source in volume["projected"]["sources"]:
                    cm = maps[source["configMap"]["name"]]
                    for item in source["configMap"]["items"]:
                        value = cm.get("data", {}).get(item["key"])
                        raw = value.encode() if value is not None else base64.b64decode(cm["binaryData"][item["key"]])
                        items.append((item["path"], raw))
            elif "secret" in volume:
                secret = secret_data[volume["secret"]["secretName"]]
                listed = volume["secret"].get("items") or [{"key": k, "path": k} for k in secret]
                items = [(item["path"], secret[item["key"]]) for item in listed]
            if items:
                atomic_volume(folder, items)

    def folders(self, container: dict[str, Any]) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for mount in sorted(container["volumeMounts"], key=lambda m: m["mountPath"]):
            source = self.volumes[mount["name"]]
            sub = mount.get("subPathExpr", "").replace("$(JOB_COMPLETION_INDEX)", str(self.index))
            sub = sub or mount.get("subPath", "")
            if sub:
                source = (source / sub).resolve()  # the kubelet resolves a subPath inside its volume
                if not source.exists():
                    source.mkdir(parents=True)
            parent = max((p for p in out if mount["mountPath"].startswith(p + "/")), key=len, default=None)
            if parent is not None:
                point = out[parent] / mount["mountPath"][len(parent) + 1 :]
                point.parent.mkdir(parents=True, exist_ok=True)
                if not point.is_symlink():
                    point.symlink_to(source)
            out[mount["mountPath"]] = source
        return out

    def process(
        self, container: dict[str, Any], image_root: Path | None = None
    ) -> tuple[list[str], dict[str, str], dict[str, Path]]:
        """The container's command and args with $(VAR) expanded as the kubelet does and paths mapped: a mount path to
        its folder, any other absolute path into ``image_root`` (the image's own files)."""
        folders = self.folders(container)
        env = {"JOB_COMPLETION_INDEX": str(self.index)}
        for source in container.get("envFrom", []):
            env.update({k: v.decode() for k, v in self.secret_data[source["secretRef"]["name"]].items()})
        env.update({e["name"]: e["value"] for e in container.get("env", [])})

        def mapped(text: str) -> str:
            text = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), text)
            for mount, folder in sorted(folders.items(), key=lambda kv: -len(kv[0])):
                if text == mount or text.startswith(mount + "/"):
                    return str(folder) + text[len(mount) :]
            if image_root is not None and text.startswith("/"):
                return str(image_root) + text
            return text

        if container["command"] == ["dct2notation"]:
            argv = [sys.executable, "-m", "dct2notation", *(mapped(a) for a in container["args"])]
        else:
            tool = shutil.which(container["command"][0])
            assert tool is not None, container["command"]
            argv = [tool, *(mapped(a) for a in container["command"][1:] + container.get("args", []))]
        full = {**os.environ, "PYTHONPATH": str(ROOT), **{k: mapped(v) for k, v in env.items()}}
        return argv, full, folders

    def sign(self) -> tuple[list[str], dict[str, str], dict[str, Path]]:
        return self.process(self.spec["containers"][0])

    def read_only(self) -> dict[str, bytes]:
        """Every file under the signing container's read-only mounts: the kubelet would refuse a write to them."""
        container = self.spec["containers"][0]
        out: dict[str, bytes] = {}
        folders = self.folders(container)
        for mount in container["volumeMounts"]:
            if mount.get("readOnly"):
                top = folders[mount["mountPath"]]
                for path in [top] if top.is_file() else sorted(top.rglob("*")):
                    if path.is_file():
                        out[f"{mount['mountPath']}:{path.relative_to(top) if path != top else ''}"] = path.read_bytes()
        return out

    def mount(self, path: str) -> Path:
        return self.folders(self.spec["containers"][0])[path]


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # In the image's WORKDIR, which is HOME (/work, an emptyDir): nothing lands in this checkout.
    cwd = env["HOME"] if env.get("HOME") != os.environ.get("HOME") else None
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def local_key_secrets(notation_dir: Path) -> SecretsFor:
    """The Secrets a platform team creates: docker login, and the notation key whose paths are the pod's
    (/notation/localkeys/alpha.key: here the attempt's config-dir folder, where /notation/localkeys is linked)."""
    return lambda config_dir: _local_key_secrets(notation_dir, config_dir)


def _local_key_secrets(notation_dir: Path, config_dir: Path) -> dict[str, dict[str, bytes]]:
    keys = json.loads((notation_dir / "signingkeys.json").read_text())
    for entry in keys["keys"]:
        entry["keyPath"] = str(config_dir / "localkeys" / "alpha.key")
        entry["certPath"] = str(config_dir / "localkeys" / "alpha.crt")
    return {
        "regcred": {".dockerconfigjson": b'{"auths": {}}'},
        "notation": {
            "signingkeys.json": json.dumps(keys).encode(),
            "alpha.key": (notation_dir / "localkeys" / "alpha.key").read_bytes(),
            "alpha.crt": (notation_dir / "localkeys" / "alpha.crt").read_bytes(),
        },
    }


@pytest.mark.servers
def test_every_index_of_the_job_runs_as_its_pod_would(registry: Registry, notation_dir: Path, tmp_path: Path) -> None:
    repo = repo_over_shards(registry.host, "k8s", 24, 3)
    images = push_images(registry.host, repo, 24)
    jobs = [Job(f"{registry.host}/{repo}", d, size, "alpha", f"dct.example/{repo}", "targets/releases", (tag,), "m")
            for tag, size, d in images]  # fmt: skip
    plan_path = tmp_path / "plan.json"
    inventory = save_bound(Plan("m-k8s", jobs), plan_path)
    before = plan_path.read_bytes()
    docs = k8s_job(tmp_path, plan_path, inventory, "--shards", "3", "--insecure-registry", registry.host)
    assert plan_path.read_bytes() == before  # the plan is not changed
    validate(docs)
    kinds = [d["kind"] for d in docs]
    assert kinds == ["ConfigMap", "ConfigMap", "ConfigMap", "PersistentVolumeClaim", "Job"]
    shard_jobs: list[int] = []
    secrets = local_key_secrets(notation_dir)
    for index in range(3):
        pod = Pod(docs, index, tmp_path / f"pod-{index}", secrets)
        argv, env, _ = pod.sign()
        before_run = pod.read_only()
        done = run(argv, env)
        assert done.returncode == 0, done.stderr
        assert pod.read_only() == before_run and len(before_run) >= 7  # parts, index, docker, keys: none written
        summary = json.loads(done.stdout)
        assert summary["counts"] == {"signed": summary["jobs"]}, summary
        shard_jobs.append(summary["jobs"])
        # A rerun of the index (its pod rescheduled: new emptyDirs, the same claim folder) resumes its own journal.
        argv, env, folders = Pod(docs, index, tmp_path / f"pod-{index}", secrets, attempt=1).sign()
        assert folders["/journal"] == tmp_path / f"pod-{index}" / "claim" / f"shard-{index}"
        again = run(argv, env)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["this_run"].get("signed", 0) == 0
        assert json.loads(again.stdout)["this_run"]["already-done"] == summary["jobs"]
    # Union = all jobs, no overlap: each subject has exactly one signature.
    assert sum(shard_jobs) == 24 and all(shard_jobs)
    signed = signatures_by_subject(registry.host, repo, [d for _, _, d in images])
    assert sorted(len(v) for v in signed.values()) == [1] * 24


@pytest.fixture(scope="module")
def kms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The plugin's image (a folder holding /notation-gokms, the real test plugin) and its KMS: a key and chain the
    plugin reads from the files of the plugin-config Secret (keyId = their path stem in the pod)."""
    from cryptography.hazmat.primitives import serialization

    from tests.support.peers import gokms_plugin
    from tests.support.plugin_pki import make_chain

    binary = gokms_plugin()
    root = tmp_path_factory.mktemp("k8s-kms")
    image = root / "plugin-image"
    image.mkdir()
    shutil.copy2(binary, image / "notation-gokms")
    pki = make_chain("ec-p256", cn="k8s kms signer")
    key_path, cert_path = pki.write(root / "kms", "leaf")
    leaf = hashlib.sha256(pki.chain[0].public_bytes(serialization.Encoding.DER)).hexdigest()
    return {"image": image, "key": key_path.read_bytes(), "crt": cert_path.read_bytes(), "leaf": leaf}


def plugin_secrets(kms: dict[str, Any], pod_root: Path) -> SecretsFor:
    """signingkeys.json names the plugin key (pluginName gokms, keyId the plugin-config Secret's leaf): the
    /plugin-config mount's folder of the attempt, as the pod would see /plugin-config/leaf."""

    def make(config_dir: Path) -> dict[str, dict[str, bytes]]:
        key_id = str(config_dir.parent / "vol-plugin-config" / "leaf")
        keys = {"default": "alpha", "keys": [{"name": "alpha", "id": key_id, "pluginName": "gokms"}]}
        return {
            "regcred": {".dockerconfigjson": b'{"auths": {}}'},
            "notation": {"signingkeys.json": json.dumps(keys).encode()},
            "kms": {"leaf.key": kms["key"], "leaf.crt": kms["crt"]},
        }

    return make


@pytest.mark.servers
def test_a_plugin_key_plan_signs_in_the_pods_layout(registry: Registry, kms: dict[str, Any], tmp_path: Path) -> None:
    """The init container copies the plugin from its image into the emptyDir mounted at
    /notation/plugins/gokms; sign finds it there and signs every job of each index with the KMS key."""
    repo = repo_over_shards(registry.host, "k8s-plugin", 6, 2)
    images = push_images(registry.host, repo, 6)
    jobs = [Job(f"{registry.host}/{repo}", d, size, "alpha", f"dct.example/{repo}", "targets/releases", (tag,), "m")
            for tag, size, d in images]  # fmt: skip
    plan_path = tmp_path / "plan.json"
    inventory = save_bound(Plan("m-k8s-plugin", jobs), plan_path)
    docs = k8s_job(tmp_path, plan_path, inventory, "--shards", "2", "--plugin", "gokms", "--plugin-image",
                   "registry.example/kms/notation-gokms@sha256:" + "0" * 64, "--plugin-config-secret", "kms",
                   "--insecure-registry", registry.host)  # fmt: skip
    validate(docs)
    counts = []
    for index in range(2):
        pod = Pod(docs, index, tmp_path / f"pod-{index}", plugin_secrets(kms, tmp_path))
        (init,) = pod.spec["initContainers"]
        argv, env, folders = pod.process(init, image_root=kms["image"])
        copied = run(argv, env)
        assert copied.returncode == 0, copied.stderr
        installed = pod.mount("/notation") / "plugins" / "gokms" / "notation-gokms"
        assert installed.resolve() == folders["/plugin"] / "notation-gokms"
        assert os.access(installed, os.X_OK) and not (folders["/plugin"] / "notation-gokms").is_symlink()
        argv, env, _ = pod.sign()
        before_run = pod.read_only()
        done = run(argv, env)
        assert done.returncode == 0, done.stderr
        assert pod.read_only() == before_run and "/notation/plugins/gokms:notation-gokms" in before_run
        summary = json.loads(done.stdout)
        assert summary["counts"] == {"signed": summary["jobs"]}, summary
        counts.append(summary["jobs"])
    assert sum(counts) == 6 and all(counts)  # the shards split by hash: together every job, once
    signed = signatures_by_subject(registry.host, repo, [d for _, _, d in images])
    assert signed == {d: [kms["leaf"]] for _, _, d in images}  # one signature each, by the plugin's KMS key


@pytest.mark.servers
def test_a_plugin_key_pod_without_its_plugin_fails_its_index(
    registry: Registry, kms: dict[str, Any], tmp_path: Path
) -> None:
    """Two ways the plugin does not arrive: the binary is not where --plugin-binary says (cp fails: the Job's rule
    fails the index on the init container), and sign run without the init container (one line, exit 2: the rule
    failing the index on exit 2 without retries)."""
    jobs = [Job(f"{registry.host}/x", "sha256:" + "a" * 64, 10, "alpha", "dct.example/x", "targets", ("v1",), "m")]
    plan_path = tmp_path / "plan.json"
    inventory = save_bound(Plan("m-k8s-noplugin", jobs), plan_path)
    docs = k8s_job(tmp_path, plan_path, inventory, "--shards", "1", "--plugin", "gokms", "--plugin-image", "kms/p:1",
                   "--plugin-binary", "/usr/local/bin/notation-gokms", "--plugin-config-secret", "kms")  # fmt: skip
    rules = next(d for d in docs if d["kind"] == "Job")["spec"]["podFailurePolicy"]["rules"]
    pod = Pod(docs, 0, tmp_path / "pod", plugin_secrets(kms, tmp_path))
    argv, env, _ = pod.process(pod.spec["initContainers"][0], image_root=kms["image"])
    copied = run(argv, env)
    assert copied.returncode != 0 and "notation-gokms" in copied.stderr
    assert rules[1] == {"action": "FailIndex",
                        "onExitCodes": {"containerName": "plugin", "operator": "NotIn", "values": [0]}}  # fmt: skip
    argv, env, _ = pod.sign()
    done = run(argv, env)
    plugin_path = pod.mount("/notation") / "plugins" / "gokms" / "notation-gokms"
    assert done.returncode == 2, done.stderr
    assert done.stderr.endswith(f'plugin "gokms": not installed (no executable at {plugin_path})\n'), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert rules[0] == {"action": "FailIndex",
                        "onExitCodes": {"containerName": "sign", "operator": "In", "values": [2]}}  # fmt: skip


def test_a_plan_of_10000_jobs_reaches_the_pods(tmp_path: Path) -> None:
    jobs = [
        Job(f"registry.example/team/app{n % 97}", "sha256:" + hashlib.sha256(str(n).encode()).hexdigest(), 500 + n,
            "alpha", f"dct.example/team/app{n % 97}", "targets/releases", (f"v{n}",), "m")
        for n in range(10_000)
    ]  # fmt: skip
    plan_path = tmp_path / "plan.json"
    inventory = save_bound(Plan("m-big", jobs), plan_path)
    docs = k8s_job(tmp_path, plan_path, inventory, "--shards", "8", "--ca-secret", "registry-ca",
                   "--timestamp-url", "https://tsa.example/tsr", "--tsa-root-secret", "tsa-root")  # fmt: skip
    validate(docs)
    parts = [d for d in docs if d["kind"] == "ConfigMap" and "binaryData" in d]
    assert len(parts) >= 2  # more than one ConfigMap's worth
    for doc in docs:
        assert len(json.dumps(doc).encode()) < 1024 * 1024, doc["metadata"]["name"]
    secrets = {"regcred": {".dockerconfigjson": b"{}"}, "notation": {"signingkeys.json": b"{}", "alpha.key": b"",
               "alpha.crt": b""}, "registry-ca": {"ca.crt": b"x"}, "tsa-root": {"root.crt": b"x"}}  # fmt: skip
    argv, env, folders = Pod(docs, 5, tmp_path / "pod-5", lambda _: secrets).sign()
    args = argv[argv.index("--") + 1 :]
    assert "--ca-file" in args and "--timestamp-url" in args
    # Joined in the pod: byte for byte the plan and inventory that were split.
    assert main(argv[3 : argv.index("--")] + ["--", "sign", "--help"]) == 0
    assert (folders["/work"] / "plan.json").read_bytes() == plan_path.read_bytes()
    assert (folders["/work"] / "inventory.json").read_bytes() == inventory.read_bytes()


def test_attack_k8s_part_edited_in_the_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jobs = [Job("registry.example/a", "sha256:" + "a" * 64, 10, "alpha", "dct.example/a", "targets", ("v1",), "m")]
    plan_path = tmp_path / "plan.json"
    inventory = save_bound(Plan("m-edit", jobs), plan_path)
    docs = k8s_job(tmp_path, plan_path, inventory)
    part = next(d for d in docs if "binaryData" in d)
    part["binaryData"]["part"] = base64.b64encode(b"tampered").decode()
    secrets = {"regcred": {".dockerconfigjson": b"{}"}, "notation": {"signingkeys.json": b"{}", "alpha.key": b"",
               "alpha.crt": b""}}  # fmt: skip
    argv, _, folders = Pod(docs, 0, tmp_path / "pod", lambda _: secrets).sign()
    capsys.readouterr()
    assert main(argv[3:]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(
        r"dct2notation: error: \S+/index\.json: plan\.json: part [0-9a-f]{64} does not match its name"
        r" \(edited in the cluster\?\)\n",
        err,
    ), err
    assert not (folders["/work"] / "plan.json").exists()


def containerfile() -> dict[str, list[str]]:
    """The Containerfile's instructions, by keyword (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", (ROOT / "Containerfile").read_text())
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.setdefault(word, []).append(rest.strip())
    return out


def test_containerfile_runs_as_the_job_expects(tmp_path: Path) -> None:
    """The image's user is the Job's runAsUser/fsGroup, its WORKDIR and HOME the Job's /work emptyDir, its Python the
    one whose site-packages it compiles, and the Job's command the package's console script."""
    from dct2notation.migrate.k8s import IMAGE_UID

    plan_path, inventory = small_plan(tmp_path)
    pod = next(d for d in k8s_job(tmp_path, plan_path, inventory) if d["kind"] == "Job")["spec"]["template"]["spec"]
    steps = containerfile()
    assert steps["USER"] == [f"{IMAGE_UID}:{IMAGE_UID}"]
    security = pod["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"], security["fsGroup"]) == (IMAGE_UID,) * 3
    account = steps["RUN"][0]
    assert f"groupadd --gid {IMAGE_UID} " in account and f"useradd --uid {IMAGE_UID} --gid {IMAGE_UID} " in account
    assert f"install -d -o {IMAGE_UID} -g {IMAGE_UID} /work" in account
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert steps["WORKDIR"] == [env["HOME"]] == ["/work"]
    assert "HOME=/work" in steps["ENV"][0] and "PYTHONDONTWRITEBYTECODE=1" in steps["ENV"][0]
    (base,) = steps["FROM"]
    version = re.fullmatch(r"docker\.io/library/python:(3\.\d+)-slim-\w+", base)
    assert version is not None, base
    assert f"/usr/local/lib/python{version.group(1)}" in steps["RUN"][1]
    assert "ENTRYPOINT" not in steps  # the Job's command is the whole command line
    assert pod["containers"][0]["command"] == ["dct2notation"]


def test_container_constraints_pin_every_dependency_consistently() -> None:
    """The image installs with container-constraints.txt: every runtime dependency of pyproject.toml is pinned inside
    its range, and every requirement of a pinned package (as installed here at that version) is pinned inside its own,
    so pip resolves the image to exactly these versions."""
    import importlib.metadata as md
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    assert "-c /src/container-constraints.txt /src" in " ".join(containerfile()["RUN"])
    pins: dict[str, str] = {}
    for line in (ROOT / "container-constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and canonicalize_name(name) not in pins, line
            pins[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def satisfied(requirement: str, where: str) -> None:
        req = Requirement(requirement)
        if req.marker is not None and not req.marker.evaluate({"extra": "", "python_version": "3.11"}):
            return
        name = canonicalize_name(req.name)
        assert name in pins, f"{where}: {req.name} is not pinned"
        assert req.specifier.contains(pins[name], prereleases=True), f"{where}: {req} excludes {pins[name]}"

    for requirement in project["dependencies"]:
        satisfied(requirement, "pyproject.toml")
    for name, version in pins.items():
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        if dist.version == version:  # what this machine can vouch for
            for requirement in dist.requires or []:
                satisfied(requirement, f"{name}=={version}")


@pytest.mark.slow
def test_containerfile_package_builds_installs_and_runs(tmp_path: Path) -> None:
    """What the image's RUN pip install does, from exactly the files its COPY lines bring in: the wheel builds, installs
    (alone, into a folder), its console script is the Job's command and writes the same Job as the tree does."""
    import importlib.util

    import setuptools

    if importlib.util.find_spec("wheel") is None and tuple(map(int, setuptools.__version__.split(".")[:2])) < (70, 1):
        pytest.skip("no offline wheel build: setuptools < 70.1 and no wheel package (pip install '.[test]')")
    steps = containerfile()
    src = tmp_path / "src"
    for copy in steps["COPY"]:
        *sources, dest = copy.split()
        for source in sources:
            target = src / Path(dest).relative_to("/src") if not dest.endswith("/") else src / source
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / source, target)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(wheels),
                            str(src)], capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("dct2notation-*.whl")
    target = tmp_path / "site"
    # --target installs beside, never over, the editable install the other tests use.
    installed = subprocess.run([*pip, "install", "--no-deps", "--no-index", "-q", "--target", str(target), str(wheel)],
                               capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    script = target / "bin" / "dct2notation"
    assert script.is_file() and os.access(script, os.X_OK)
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([str(script), "--version"], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=60, check=False)  # fmt: skip
    assert (where.returncode, where.stdout) == (0, "dct2notation 0.1.0\n"), where.stderr
    plan_path, inventory = small_plan(tmp_path)
    args = ["k8s-job", str(plan_path), "--inventory", str(inventory), "--name", "mig", "--image", "r.example/d:1",
            "--docker-config-secret", "regcred", "--notation-secret", "notation"]  # fmt: skip
    done = subprocess.run([str(script), *args, "-o", str(tmp_path / "wheel.yaml")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    probe = subprocess.run([str(script), "k8s-run", "--help"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert probe.returncode == 0 and "k8s-run" in probe.stdout, probe.stderr
    assert main([*args, "-o", str(tmp_path / "tree.yaml")]) == 0
    assert (tmp_path / "wheel.yaml").read_bytes() == (tmp_path / "tree.yaml").read_bytes()


@pytest.mark.servers
def test_a_killed_index_rerun_resumes_its_own_journal(registry: Registry, notation_dir: Path, tmp_path: Path) -> None:
    """The pod of an index is killed mid-batch (SIGKILL, as on node loss); its rescheduled pod, same index and same
    journal folder, finishes only what is left: one signature per subject, none twice."""
    import sqlite3
    import time

    from tests.support.delay_proxy import delayed

    repo = unique_repo("k8s-kill")
    images = push_images(registry.host, repo, 16)
    with delayed("127.0.0.1", registry.port, 0.02) as proxy:
        jobs = [Job(f"{proxy.host}/{repo}", d, size, "alpha", f"dct.example/{repo}", "targets/releases", (tag,), "m")
                for tag, size, d in images]  # fmt: skip
        plan_path = tmp_path / "plan.json"
        inventory = save_bound(Plan("m-kill", jobs), plan_path)
        docs = k8s_job(tmp_path, plan_path, inventory, "--shards", "1", "--concurrency", "1",
                       "--insecure-registry", proxy.host)  # fmt: skip
        argv, env, folders = Pod(docs, 0, tmp_path / "pod-0", local_key_secrets(notation_dir)).sign()
        journal = folders["/journal"] / "journal.sqlite"
        pod = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        done = 0
        deadline = time.monotonic() + 120
        while done < 3 and time.monotonic() < deadline and pod.poll() is None:
            time.sleep(0.05)
            if journal.exists():
                with contextlib.suppress(sqlite3.Error), sqlite3.connect(journal, timeout=1) as db:
                    done = db.execute("SELECT count(*) FROM jobs WHERE state IN ('signed','reused')").fetchone()[0]
        pod.kill()
        pod.wait(30)
        assert 3 <= done < 16, done
        # The rescheduled pod: new emptyDirs (the plan joined again), the same claim folder for index 0.
        argv, env, _ = Pod(docs, 0, tmp_path / "pod-0", local_key_secrets(notation_dir), attempt=1).sign()
        again = run(argv, env)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["this_run"].get("already-done", 0) >= 3
    # What the killed pod pushed but had not journaled is found and reused (verified), not signed again.
    this_run = summary["this_run"]
    assert this_run.get("already-done", 0) + this_run.get("signed", 0) + this_run.get("reused", 0) == 16, this_run
    signed = signatures_by_subject(registry.host, repo, [d for _, _, d in images])
    assert sorted(len(v) for v in signed.values()) == [1] * 16


def small_plan(tmp_path: Path) -> tuple[Path, Path]:
    jobs = [Job("registry.example/a", "sha256:" + "a" * 64, 10, "alpha", "dct.example/a", "targets", ("v1",), "m")]
    plan_path = tmp_path / "plan.json"
    return plan_path, save_bound(Plan("m-spec", jobs), plan_path)


RESTRICTED = {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
              "capabilities": {"drop": ["ALL"]}}  # fmt: skip


def test_the_job_carries_what_a_platform_team_needs(tmp_path: Path) -> None:
    """Exact values: the restricted Pod Security Standard as the image's user (fsGroup so the claim and the 0440
    Secrets are readable), requests and limits, retries per index that spare bad input and disruptions, no second pod
    on a journal, clean-up of the finished Job (not of the journal claim), and the plugin's init container."""
    plan_path, inventory = small_plan(tmp_path)
    docs = k8s_job(tmp_path, plan_path, inventory, "--shards", "2", "--plugin", "gokms", "--plugin-image",
                   "registry.example/kms/gokms:1.2", "--plugin-config-secret", "kms", "--cpu", "500m", "--memory",
                   "768Mi", "--journal-storage", "5Gi", "--storage-class", "nfs.csi", "--backoff-limit-per-index",
                   "5", "--ttl-seconds-after-finished", "3600", "--ca-secret", "registry-ca")  # fmt: skip
    validate(docs)
    claim = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    assert claim["spec"] == {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "5Gi"}},
                             "storageClassName": "nfs.csi"}  # fmt: skip
    job = next(d for d in docs if d["kind"] == "Job")
    spec = job["spec"]
    assert {k: v for k, v in spec.items() if k != "template"} == {
        "completionMode": "Indexed", "completions": 2, "parallelism": 2, "backoffLimitPerIndex": 5,
        "podReplacementPolicy": "Failed",
        "podFailurePolicy": {"rules": [
            {"action": "FailIndex", "onExitCodes": {"containerName": "sign", "operator": "In", "values": [2]}},
            {"action": "FailIndex", "onExitCodes": {"containerName": "plugin", "operator": "NotIn", "values": [0]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]},
        "ttlSecondsAfterFinished": 3600,
    }  # fmt: skip
    pod = spec["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                      "fsGroup": 10001, "fsGroupChangePolicy": "OnRootMismatch",
                                      "seccompProfile": {"type": "RuntimeDefault"}}  # fmt: skip
    assert (pod["restartPolicy"], pod["automountServiceAccountToken"]) == ("Never", False)
    assert pod["initContainers"] == [{
        "name": "plugin", "image": "registry.example/kms/gokms:1.2", "imagePullPolicy": "IfNotPresent",
        "command": ["cp", "/notation-gokms", "/plugin/notation-gokms"],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": RESTRICTED, "volumeMounts": [{"name": "plugin", "mountPath": "/plugin"}],
    }]  # fmt: skip
    (sign,) = pod["containers"]
    assert sign["resources"] == {"requests": {"cpu": "500m", "memory": "768Mi"}, "limits": {"memory": "768Mi"}}
    assert sign["securityContext"] == RESTRICTED
    assert sign["env"] == [
        {"name": "DOCKER_CONFIG", "value": "/docker"}, {"name": "HOME", "value": "/work"},
        {"name": "TMPDIR", "value": "/tmp"}, {"name": "NOTATION_CONFIG", "value": "/notation"},
    ]  # fmt: skip
    # Every path the read-only root filesystem would refuse a write to is a volume; the journal is the claim's.
    assert [(m["mountPath"], m["name"], m.get("subPath") or m.get("subPathExpr"), m.get("readOnly", False))
            for m in sign["volumeMounts"]] == [
        ("/plan", "plan", None, True), ("/work", "work", None, False), ("/tmp", "tmp", None, False),
        ("/journal", "journals", "shard-$(JOB_COMPLETION_INDEX)", False), ("/docker", "docker", None, True),
        ("/notation", "notation", None, False),
        ("/notation/signingkeys.json", "notation-keys", "signingkeys.json", True),
        ("/notation/plugins/gokms", "plugin", None, True), ("/ca", "ca", None, True),
        ("/plugin-config", "plugin-config", None, True),
    ]  # fmt: skip
    volumes = {v["name"]: {k: x for k, x in v.items() if k != "name"} for v in pod["volumes"]}
    assert volumes["journals"] == {"persistentVolumeClaim": {"claimName": "mig-journals"}}
    items = [{"key": "signingkeys.json", "path": "signingkeys.json"}]
    assert volumes["notation-keys"] == {"secret": {"secretName": "notation", "defaultMode": 0o440, "items": items}}
    assert volumes["docker"]["secret"]["defaultMode"] == 0o440
    assert volumes["plugin-config"] == {"secret": {"secretName": "kms", "defaultMode": 0o440}}
    assert volumes["plugin"] == {"emptyDir": {"sizeLimit": "512Mi"}}
    assert volumes["work"] == {"emptyDir": {"sizeLimit": "2Gi"}}
    assert volumes["tmp"] == {"emptyDir": {"sizeLimit": "1Gi"}}
    assert sign["args"][-4:] == ["--config-dir", "/notation", "--ca-file", "/ca/ca.crt"]


def test_a_local_key_job_mounts_localkeys_and_no_plugin(tmp_path: Path) -> None:
    plan_path, inventory = small_plan(tmp_path)
    docs = k8s_job(tmp_path, plan_path, inventory)
    text = (tmp_path / "job.yaml").read_text()
    assert "&id0" not in text and "*id0" not in text  # the shared labels written out, not as YAML aliases
    assert text.count("app.kubernetes.io/instance: mig") == 4  # index map, claim, Job, pod template
    job = next(d for d in docs if d["kind"] == "Job")
    pod = job["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert [r["action"] for r in job["spec"]["podFailurePolicy"]["rules"]] == ["FailIndex", "Ignore"]
    keys = next(v for v in pod["volumes"] if v["name"] == "notation-keys")["secret"]["items"]
    assert keys == [{"key": "signingkeys.json", "path": "signingkeys.json"},
                    {"key": "alpha.key", "path": "localkeys/alpha.key"},
                    {"key": "alpha.crt", "path": "localkeys/alpha.crt"}]  # fmt: skip
    assert {"name": "notation-keys", "mountPath": "/notation/localkeys", "subPath": "localkeys",
            "readOnly": True} in pod["containers"][0]["volumeMounts"]  # fmt: skip
    assert job["spec"]["ttlSecondsAfterFinished"] == 604800 and job["spec"]["backoffLimitPerIndex"] == 3
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}
    assert "storageClassName" not in next(d for d in docs if d["kind"] == "PersistentVolumeClaim")["spec"]


BASE = ["--docker-config-secret", "regcred", "--notation-secret", "notation"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "k8s-job: --image REF is required (the tool's image, built from Containerfile)"),
        (
            ["--image", "Registry.Example/Tool:1"],
            "--image: reference 'Registry.Example/Tool:1': invalid repository name 'Tool'",
        ),
        (["--image", "i:1", "--plugin", "gokms"], "--plugin NAME and --plugin-image REF go together"),
        (["--image", "i:1", "--plugin-image", "kms:1"], "--plugin NAME and --plugin-image REF go together"),
        (
            ["--image", "i:1", "--plugin", "gokms", "--plugin-image", "kms plugin:1"],
            "--plugin-image 'kms plugin:1': not an image reference (empty, or a space or control character)",
        ),
        (
            ["--image", "i:1", "--plugin", "gokms", "--plugin-image", "kms@sha256:abc"],
            "--plugin-image: reference 'kms@sha256:abc': 'sha256:abc' is not a digest (algorithm:hex)",
        ),
        (
            ["--image", "i:1", "--plugin", "gokms", "--plugin-image", "kms:bad/tag"],
            "--plugin-image 'kms:bad/tag': registry 'kms:bad' is not a host[:port]",
        ),
        (
            ["--image", "i:1", "--plugin", "../x", "--plugin-image", "kms:1"],
            "--plugin '../x': a plugin name is letters, digits, '.', '_' and '-'",
        ),
        (
            ["--image", "i:1", "--plugin", "gokms", "--plugin-image", "kms:1", "--plugin-binary", "notation-gokms"],
            "--plugin-binary 'notation-gokms': must be an absolute path in the plugin image",
        ),
        (
            ["--image", "i:1", "--plugin", "gokms", "--plugin-image", "kms:1", "--plugin-binary", "/bin/../x"],
            "--plugin-binary '/bin/../x': must be an absolute path in the plugin image",
        ),
        (["--image", "i:1", "--plugin-binary", "/x"], "--plugin-binary needs --plugin NAME and --plugin-image REF"),
        (
            ["--image", "i:1", "--plugin-config-secret", "KMS_creds"],
            "--plugin-config-secret 'KMS_creds': must be a DNS label (a Secret name)",
        ),
        (
            ["--image", "i:1", "--key-files", "../alpha"],
            "--key-files '../alpha': must be a file stem (letters, digits, '.', '_', '-')",
        ),
        (
            ["--image", "i:1", "--plugin-env-secret", "Vault_Env"],
            "--plugin-env-secret 'Vault_Env': must be a DNS label (a Secret name)",
        ),
        (
            ["--image", "i:1", "--image-pull-secret", "pull", "--image-pull-secret", "Pull_2"],
            "--image-pull-secret 'Pull_2': must be a DNS label (a Secret name)",
        ),
        (
            ["--image", "i:1", "--service-account", "signer/kms"],
            "--service-account 'signer/kms': must be a DNS subdomain (a ServiceAccount name)",
        ),
        (["--image", "i:1", "--cpu", "lots"], "--cpu 'lots': not a Kubernetes quantity (e.g. 500m, 1, 512Mi, 2Gi)"),
        (["--image", "i:1", "--memory", "1GB"], "--memory '1GB': not a Kubernetes quantity (e.g. 500m, 1, 512Mi, 2Gi)"),
        (
            ["--image", "i:1", "--journal-storage", "-1Gi"],
            "--journal-storage '-1Gi': not a Kubernetes quantity (e.g. 500m, 1, 512Mi, 2Gi)",
        ),
        (
            ["--image", "i:1", "--storage-class", "Fast_SSD"],
            "--storage-class 'Fast_SSD': must be a DNS subdomain (a StorageClass name)",
        ),
        (["--image", "i:1", "--backoff-limit-per-index", "-1"], "--backoff-limit-per-index: must be at least 0"),
        (["--image", "i:1", "--ttl-seconds-after-finished", "-5"], "--ttl-seconds-after-finished: must be at least 0"),
        (["--image", "i:1", "--concurrency", "0"], "--concurrency: must be at least 1"),
        (["--image", "i:1", "--shards", "0"], "--shards: must be at least 1"),
        (["--image", "i:1", "--name", "Mig"], "--name 'Mig': must be a DNS label of at most 52 characters"),
    ],
)
def test_k8s_job_refuses_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    plan_path, inventory = small_plan(tmp_path)
    out = tmp_path / "job.yaml"
    capsys.readouterr()
    assert main(["k8s-job", str(plan_path), "--inventory", str(inventory), "-o", str(out), *BASE, *extra]) == 2
    assert capsys.readouterr().err == f"dct2notation: error: {message}\n"
    assert not out.exists()


def test_k8s_job_refuses_a_missing_plan_or_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan_path, inventory = small_plan(tmp_path)
    out = tmp_path / "job.yaml"
    for plan_arg, inventory_arg in ((tmp_path / "nope.json", inventory), (plan_path, tmp_path / "nope-inv.json")):
        capsys.readouterr()
        code = main(["k8s-job", str(plan_arg), "--inventory", str(inventory_arg), "-o", str(out), *BASE,
                     "--image", "i:1"])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "nope" in err and err.startswith("dct2notation: error: "), err
        assert not out.exists()


def test_attack_k8s_image_reference_smuggles_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An image reference carrying a newline (pasted from a hostile plan review, a CI variable) would be a second key
    in the emitted manifest if it were written unchecked; it is refused before anything is written."""
    plan_path, inventory = small_plan(tmp_path)
    out = tmp_path / "job.yaml"
    for option in ("--image", "--plugin-image"):
        extra = ["--image", "i:1", "--plugin", "gokms"] if option == "--plugin-image" else []
        capsys.readouterr()
        code = main(["k8s-job", str(plan_path), "--inventory", str(inventory), "-o", str(out), *BASE, *extra,
                     option, "evil:1\nprivileged: true"])  # fmt: skip
        assert code == 2
        assert capsys.readouterr().err == (
            f"dct2notation: error: {option} 'evil:1\\nprivileged: true': not an image reference"
            " (empty, or a space or control character)\n"
        )
        assert not out.exists()


def keys_file(tmp_path: Path, *entries: dict[str, Any]) -> Path:
    path = tmp_path / "signingkeys.json"
    path.write_text(json.dumps({"keys": list(entries)}))
    return path


LOCAL_ALPHA = {"name": "alpha", "keyPath": "/notation/localkeys/alpha.key", "certPath": "/notation/localkeys/alpha.crt"}
PLUGIN_ALPHA = {"name": "alpha", "id": "arn:kms:alpha", "pluginName": "gokms"}


def test_k8s_job_accepts_signing_keys_the_pods_can_load(tmp_path: Path) -> None:
    plan_path, inventory = small_plan(tmp_path)
    local = keys_file(tmp_path, LOCAL_ALPHA)
    assert k8s_job(tmp_path, plan_path, inventory, "--signing-keys", str(local))[-1]["kind"] == "Job"
    plugin = keys_file(tmp_path, PLUGIN_ALPHA)
    docs = k8s_job(tmp_path, plan_path, inventory, "--signing-keys", str(plugin), "--plugin", "gokms",
                   "--plugin-image", "kms:1")  # fmt: skip
    assert docs[-1]["spec"]["template"]["spec"]["initContainers"][0]["image"] == "kms:1"


@pytest.mark.parametrize(
    ("entries", "extra", "message"),
    [
        ([], ["--key-files", "alpha"], "--signing-keys {keys}: no key named 'alpha' (plan identity 'alpha')"),
        (
            [PLUGIN_ALPHA],
            ["--key-files", "alpha"],
            "--signing-keys {keys}: key 'alpha': plugin 'gokms' is not installed by this Job (--plugin gokms "
            "--plugin-image REF)",
        ),
        (
            [PLUGIN_ALPHA],
            ["--plugin", "other", "--plugin-image", "kms:1"],
            "--signing-keys {keys}: key 'alpha': plugin 'gokms' is not installed by this Job (--plugin gokms "
            "--plugin-image REF)",
        ),
        (
            [{**LOCAL_ALPHA, "keyPath": "/home/me/alpha.key"}],
            ["--key-files", "alpha"],
            "--signing-keys {keys}: key 'alpha' reads /home/me/alpha.key; the pod mounts /notation/localkeys/KEY.key "
            "and KEY.crt (--key-files KEY)",
        ),
        (
            [LOCAL_ALPHA],
            ["--key-files", "beta"],
            "--signing-keys {keys}: key 'alpha' reads /notation/localkeys/alpha.key; the pod mounts "
            "/notation/localkeys/KEY.key and KEY.crt (--key-files KEY)",
        ),
        (
            [LOCAL_ALPHA],
            [],
            "--signing-keys {keys}: key 'alpha' reads /notation/localkeys/alpha.key; the pod mounts "
            "/notation/localkeys/KEY.key and KEY.crt (--key-files KEY)",
        ),
    ],
)
def test_k8s_job_refuses_keys_no_pod_could_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], entries: list[dict[str, Any]], extra: list[str], message: str
) -> None:
    """A Job whose every pod would fail at its first key is refused when it is written, not when it runs."""
    plan_path, inventory = small_plan(tmp_path)
    keys = keys_file(tmp_path, *entries)
    out = tmp_path / "job.yaml"
    capsys.readouterr()
    code = main(["k8s-job", str(plan_path), "--inventory", str(inventory), "-o", str(out), *BASE, "--image", "i:1",
                 "--signing-keys", str(keys), *extra])  # fmt: skip
    assert (code, capsys.readouterr().err) == (2, f"dct2notation: error: {message.format(keys=keys)}\n")
    assert not out.exists()


@pytest.mark.parametrize(
    ("identity", "extra", "message"),
    [
        (
            "plugin:aws:arn-1",
            [],
            "plan identity 'plugin:aws:arn-1': plugin 'aws' is not installed by this Job"
            " (--plugin aws --plugin-image REF)",
        ),
        (
            "/keys/a.key:/keys/a.crt",
            ["--key-files", "a"],
            "plan identity '/keys/a.key:/keys/a.crt': its key files are not mounted in the pod; the pod mounts "
            "/notation/localkeys/KEY.key and KEY.crt (--key-files KEY)",
        ),
    ],
)
def test_k8s_job_refuses_plan_identities_no_pod_could_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], identity: str, extra: list[str], message: str
) -> None:
    jobs = [Job("registry.example/a", "sha256:" + "a" * 64, 10, identity, "dct.example/a", "targets", ("v1",), "m")]
    plan_path = tmp_path / "plan.json"
    inventory = save_bound(Plan("m-ids", jobs), plan_path)
    capsys.readouterr()
    code = main(["k8s-job", str(plan_path), "--inventory", str(inventory), "-o", str(tmp_path / "j.yaml"), *BASE,
                 "--image", "i:1", *extra])  # fmt: skip
    assert (code, capsys.readouterr().err) == (2, f"dct2notation: error: {message}\n")


def test_k8s_job_refuses_a_missing_signing_keys_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan_path, inventory = small_plan(tmp_path)
    capsys.readouterr()
    code = main(["k8s-job", str(plan_path), "--inventory", str(inventory), "-o", str(tmp_path / "j.yaml"), *BASE,
                 "--image", "i:1", "--signing-keys", str(tmp_path / "nope.json")])  # fmt: skip
    assert (code, capsys.readouterr().err) == (
        2, f"dct2notation: error: --signing-keys {tmp_path / 'nope.json'}: no such file (the signingkeys.json of "
        "--notation-secret)\n")  # fmt: skip


def test_k8s_job_mounts_each_key_files_stem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An estate with two local-key identities: both pairs in localkeys/, each identity checked against its own."""
    jobs = [Job("registry.example/a", "sha256:" + c * 64, 10, ident, "dct.example/a", "targets", (f"v{c}",), "m")
            for c, ident in (("a", "alpha"), ("b", "beta"))]  # fmt: skip
    plan_path = tmp_path / "plan.json"
    inventory = save_bound(Plan("m-two", jobs), plan_path)
    beta = {"name": "beta", "keyPath": "/notation/localkeys/beta.key", "certPath": "/notation/localkeys/beta.crt"}
    keys = keys_file(tmp_path, LOCAL_ALPHA, beta)
    docs = k8s_job(tmp_path, plan_path, inventory, "--key-files", "alpha", "--key-files", "beta",
                   "--signing-keys", str(keys))  # fmt: skip
    pod = docs[-1]["spec"]["template"]["spec"]
    items = next(v for v in pod["volumes"] if v["name"] == "notation-keys")["secret"]["items"]
    assert [i["path"] for i in items] == ["signingkeys.json", "localkeys/alpha.key", "localkeys/alpha.crt",
                                          "localkeys/beta.key", "localkeys/beta.crt"]  # fmt: skip
    capsys.readouterr()
    code = main(["k8s-job", str(plan_path), "--inventory", str(inventory), "-o", str(tmp_path / "j.yaml"), *BASE,
                 "--image", "i:1", "--key-files", "alpha", "--signing-keys", str(keys)])  # fmt: skip
    assert (code, capsys.readouterr().err) == (2, (
        f"dct2notation: error: --signing-keys {keys}: key 'beta' reads /notation/localkeys/beta.key; the pod mounts "
        "/notation/localkeys/KEY.key and KEY.crt (--key-files KEY)\n"))  # fmt: skip
    code = main(["k8s-job", str(plan_path), "--inventory", str(inventory), "-o", str(tmp_path / "j.yaml"), *BASE,
                 "--image", "i:1", "--key-files", "alpha", "--key-files", "alpha"])  # fmt: skip
    assert (code, capsys.readouterr().err) == (2, "dct2notation: error: --key-files: each KEY once\n")


@pytest.mark.servers
def test_attack_k8s_plugin_mounted_from_a_secret_item(registry: Registry, kms: dict[str, Any], tmp_path: Path) -> None:
    """A plugin put in the pod as a Secret or ConfigMap item (what a hand-edited Job would do) is a symlink into the
    kubelet's ..data, swappable under the pod: sign refuses to run it (one line, exit 2), which is why the plugin
    arrives by the init container's copy."""
    jobs = [Job(f"{registry.host}/x", "sha256:" + "b" * 64, 10, "alpha", "dct.example/x", "targets", ("v1",), "m")]
    plan_path = tmp_path / "plan.json"
    inventory = save_bound(Plan("m-k8s-secret-plugin", jobs), plan_path)
    docs = k8s_job(tmp_path, plan_path, inventory, "--shards", "1", "--plugin", "gokms", "--plugin-image", "kms:1",
                   "--plugin-config-secret", "kms")  # fmt: skip
    pod = Pod(docs, 0, tmp_path / "pod", plugin_secrets(kms, tmp_path))
    plugin_dir = pod.volumes["plugin"]
    atomic_volume(plugin_dir, [("notation-gokms", (kms["image"] / "notation-gokms").read_bytes())])
    (plugin_dir / KUBELET_STAMP / "notation-gokms").chmod(0o755)
    argv, env, _ = pod.sign()
    done = run(argv, env)
    installed = pod.mount("/notation") / "plugins" / "gokms" / "notation-gokms"
    assert done.returncode == 2, done.stderr
    assert done.stderr.endswith(f"{installed} is a symlink, plugins must be regular files\n"), done.stderr
    assert done.stderr.count("\n") == 1


def test_k8s_job_pulls_and_identifies_as_told(tmp_path: Path) -> None:
    """Private registries for the images, a KMS reached by workload identity, a plugin configured by environment."""
    plan_path, inventory = small_plan(tmp_path)
    docs = k8s_job(tmp_path, plan_path, inventory, "--plugin", "vault", "--plugin-image", "kms:1",
                   "--plugin-env-secret", "vault-env", "--image-pull-secret", "pull-a", "--image-pull-secret",
                   "pull-b", "--service-account", "signer")  # fmt: skip
    validate(docs)
    pod = docs[-1]["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "pull-a"}, {"name": "pull-b"}]
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == ("signer", False)
    assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "vault-env"}}]
    plain = next(d for d in k8s_job(tmp_path, plan_path, inventory) if d["kind"] == "Job")["spec"]["template"]["spec"]
    assert not {"imagePullSecrets", "serviceAccountName"} & set(plain) and "envFrom" not in plain["containers"][0]


def test_k8s_job_checks_only_the_identity_it_signs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A plan whose identities use two plugins runs as one Job per identity (--key): each is checked for its own."""
    jobs = [Job("registry.example/a", "sha256:" + c * 64, 10, ident, "dct.example/a", "targets", (f"v{c}",), "m")
            for c, ident in (("a", "plugin:aws:arn-1"), ("b", "plugin:vault:k1"))]  # fmt: skip
    plan_path = tmp_path / "plan.json"
    inventory = save_bound(Plan("m-two-plugins", jobs), plan_path)
    docs = k8s_job(tmp_path, plan_path, inventory, "--key", "plugin:vault:k1", "--plugin", "vault",
                   "--plugin-image", "vault-plugin:1", "--name", "mig-vault")  # fmt: skip
    sign = docs[-1]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert sign[sign.index("--key") : sign.index("--key") + 2] == ["--key", "plugin:vault:k1"]
    capsys.readouterr()
    code = main(["k8s-job", str(plan_path), "--inventory", str(inventory), "-o", str(tmp_path / "j.yaml"), *BASE,
                 "--image", "i:1", "--plugin", "vault", "--plugin-image", "vault-plugin:1"])  # fmt: skip
    message = (
        "plan identity 'plugin:aws:arn-1': plugin 'aws' is not installed by this Job (--plugin aws --plugin-image REF)"
    )
    assert (code, capsys.readouterr().err) == (2, f"dct2notation: error: {message}\n")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--name", "mig\n"], "--name 'mig\\n': must be a DNS label of at most 52 characters"),
        (["--ca-secret", "registry-ca\n"], "--ca-secret 'registry-ca\\n': must be a DNS label (a Secret name)"),
        (
            ["--service-account", "signer.kms\n"],
            "--service-account 'signer.kms\\n': must be a DNS subdomain (a ServiceAccount name)",
        ),
        (
            ["--storage-class", "nfs.csi\n"],
            "--storage-class 'nfs.csi\\n': must be a DNS subdomain (a StorageClass name)",
        ),
        (["--key-files", "alpha\n"], "--key-files 'alpha\\n': must be a file stem (letters, digits, '.', '_', '-')"),
        (
            ["--plugin", "gokms\n", "--plugin-image", "kms:1"],
            "--plugin 'gokms\\n': a plugin name is letters, digits, '.', '_' and '-'",
        ),
        (["--cpu", "500m\n"], "--cpu '500m\\n': not a Kubernetes quantity (e.g. 500m, 1, 512Mi, 2Gi)"),
        (["--memory", "1Gi\n"], "--memory '1Gi\\n': not a Kubernetes quantity (e.g. 500m, 1, 512Mi, 2Gi)"),
    ],
)
def test_attack_k8s_names_with_a_trailing_newline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    """Object names, Secret names, key file stems, a plugin name and quantities ending in "\\n" matched their
    ``$``-anchored patterns and went into the emitted YAML (and a pod's file paths); each is refused, none written."""
    plan_path, inventory = small_plan(tmp_path)
    out = tmp_path / "job.yaml"
    capsys.readouterr()
    args = ["k8s-job", str(plan_path), "--inventory", str(inventory), "-o", str(out), *BASE, "--image", "i:1", *extra]
    assert main(args) == 2
    assert capsys.readouterr().err == f"dct2notation: error: {message}\n"
    assert not out.exists()
