"""The Kubernetes Job runs as written (#19.5): `k8s-job` writes ConfigMaps (the plan and inventory gzipped, split and
content-addressed), a journal claim and an Indexed Job mounting the docker config, the Notation keys, the CA and the
TSA settings from Secrets. Validated against the Kubernetes 1.37 API schemas (kubernetes-validate, offline), and
every index run as its pod would run it (the container's command, args and env, mounts mapped to temp folders,
JOB_COMPLETION_INDEX set) against docker-registry 2.8.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dct2notation.cli import main
from dct2notation.migrate.plan import Job, Plan
from tests.support.plans import save_bound
from tests.support.servers import Registry
from tests.test_batch import push_images, signatures_by_subject, unique_repo

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
            "--notation-secret", "notation", "--key-files", "alpha", *extra]  # fmt: skip
    assert main(args) == 0
    return list(yaml.safe_load_all(out.read_text()))


def validate(docs: list[dict[str, Any]]) -> None:
    import kubernetes_validate

    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def materialize(
    docs: list[dict[str, Any]], index: int, root: Path, secrets: dict[str, dict[str, bytes]]
) -> dict[str, Path]:
    """Each volume of the pod as a folder: ConfigMap and Secret items written where the pod would see them."""
    maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    job = next(d for d in docs if d["kind"] == "Job")
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    folders: dict[str, Path] = {}
    for volume in pod["volumes"]:
        folder = root / f"vol-{volume['name']}"
        folder.mkdir(parents=True, exist_ok=True)
        items: list[tuple[str, bytes]] = []
        if "projected" in volume:
            for source in volume["projected"]["sources"]:
                cm = maps[source["configMap"]["name"]]
                for item in source["configMap"]["items"]:
                    value = cm.get("data", {}).get(item["key"])
                    raw = value.encode() if value is not None else base64.b64decode(cm["binaryData"][item["key"]])
                    items.append((item["path"], raw))
        elif "secret" in volume:
            secret = secrets[volume["secret"]["secretName"]]
            items = [(item["path"], secret[item["key"]]) for item in volume["secret"]["items"]]
        elif "persistentVolumeClaim" in volume:
            pass  # the claim: the mount's subPathExpr picks the shard's folder below
        for path, raw in items:
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_bytes(raw)
    for mount in container["volumeMounts"]:
        folder = root / f"vol-{mount['name']}"
        sub = mount.get("subPathExpr", "").replace("$(JOB_COMPLETION_INDEX)", str(index))
        folders[mount["mountPath"]] = folder / sub if sub else folder
        folders[mount["mountPath"]].mkdir(parents=True, exist_ok=True)
    return folders


def pod_process(docs: list[dict[str, Any]], index: int, folders: dict[str, Path]) -> tuple[list[str], dict[str, str]]:
    """The container's command and args with $(VAR) expanded as the kubelet does and mount paths mapped."""
    container = next(d for d in docs if d["kind"] == "Job")["spec"]["template"]["spec"]["containers"][0]
    env = {"JOB_COMPLETION_INDEX": str(index)}
    env.update({e["name"]: e["value"] for e in container.get("env", [])})

    def mapped(text: str) -> str:
        text = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), text)
        for mount, folder in sorted(folders.items(), key=lambda kv: -len(kv[0])):
            if text == mount or text.startswith(mount + "/"):
                return str(folder) + text[len(mount) :]
        return text

    assert container["command"] == ["dct2notation"]
    argv = [sys.executable, "-m", "dct2notation", *(mapped(a) for a in container["args"])]
    full = {**os.environ, "PYTHONPATH": str(ROOT), **{k: mapped(v) for k, v in env.items()}}
    return argv, full


def secrets_for(notation_dir: Path, folders_root: Path) -> dict[str, dict[str, bytes]]:
    """The Secrets a platform team creates: docker login, and the notation key whose paths are the pod's."""
    keys = json.loads((notation_dir / "signingkeys.json").read_text())
    mount = folders_root / "vol-notation"
    for entry in keys["keys"]:
        entry["keyPath"] = str(mount / "localkeys" / "alpha.key")
        entry["certPath"] = str(mount / "localkeys" / "alpha.crt")
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
    repo = unique_repo("k8s")
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
    for index in range(3):
        root = tmp_path / f"pod-{index}"
        folders = materialize(docs, index, root, secrets_for(notation_dir, root))
        argv, env = pod_process(docs, index, folders)
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["counts"] == {"signed": summary["jobs"]}, summary
        shard_jobs.append(summary["jobs"])
        # A rerun of the index (its pod rescheduled) resumes its own journal: nothing signed twice.
        again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["this_run"].get("signed", 0) == 0
        assert json.loads(again.stdout)["this_run"]["already-done"] == summary["jobs"]
    # Union = all jobs, no overlap: each subject has exactly one signature.
    assert sum(shard_jobs) == 24 and all(shard_jobs)
    signed = signatures_by_subject(registry.host, repo, [d for _, _, d in images])
    assert sorted(len(v) for v in signed.values()) == [1] * 24


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
    root = tmp_path / "pod-5"
    secrets = {"regcred": {".dockerconfigjson": b"{}"}, "notation": {"signingkeys.json": b"{}", "alpha.key": b"",
               "alpha.crt": b""}, "registry-ca": {"ca.crt": b"x"}, "tsa-root": {"root.crt": b"x"}}  # fmt: skip
    folders = materialize(docs, 5, root, secrets)
    argv, env = pod_process(docs, 5, folders)
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
    root = tmp_path / "pod"
    secrets = {"regcred": {".dockerconfigjson": b"{}"}, "notation": {"signingkeys.json": b"{}", "alpha.key": b"",
               "alpha.crt": b""}}  # fmt: skip
    folders = materialize(docs, 0, root, secrets)
    argv, _ = pod_process(docs, 0, folders)
    capsys.readouterr()
    assert main(argv[3:]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(
        r"dct2notation: error: \S+/index\.json: plan\.json: part [0-9a-f]{64} does not match its name"
        r" \(edited in the cluster\?\)\n",
        err,
    ), err
    assert not (folders["/work"] / "plan.json").exists()


def test_containerfile_runs_as_the_job_expects() -> None:
    """The Job's securityContext (runAsNonRoot, read-only root) needs a numeric non-root USER and no writes at run
    time; its command is the package's entry point."""
    text = (ROOT / "Containerfile").read_text()
    user = re.search(r"^USER (\d+)(?::\d+)?$", text, re.M)
    assert user is not None and int(user.group(1)) != 0
    assert "PYTHONDONTWRITEBYTECODE=1" in text
    assert 'dct2notation = "dct2notation.cli:run"' in (ROOT / "pyproject.toml").read_text()


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
        root = tmp_path / "pod-0"
        folders = materialize(docs, 0, root, secrets_for(notation_dir, root))
        argv, env = pod_process(docs, 0, folders)
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
        again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["this_run"].get("already-done", 0) >= 3
    # What the killed pod pushed but had not journaled is found and reused (verified), not signed again.
    this_run = summary["this_run"]
    assert this_run.get("already-done", 0) + this_run.get("signed", 0) + this_run.get("reused", 0) == 16, this_run
    signed = signatures_by_subject(registry.host, repo, [d for _, _, d in images])
    assert sorted(len(v) for v in signed.values()) == [1] * 16
