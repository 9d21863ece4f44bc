"""A Kubernetes Indexed Job running a plan's shards: ``JOB_COMPLETION_INDEX`` → ``--shard``, a journal per shard."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from ..errors import UsageError

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def indexed_job(
    *,
    name: str,
    image: str,
    shards: int,
    plan_config_map: str,
    key: str | None = None,
    concurrency: int = 16,
    journal_storage: str = "1Gi",
    extra_args: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The journal claim and the Job; a rescheduled pod of index i resumes shard i's own journal."""
    if not _NAME.match(name) or len(name) > 52:
        raise UsageError(f"--k8s-name {name!r}: must be a DNS label of at most 52 characters")
    if shards < 1:
        raise UsageError("--shards: must be at least 1")
    # One ReadWriteMany claim, each shard on its own sub-directory chosen by index (subPathExpr): an Indexed Job
    # cannot pick a different claim per pod, and mounting every claim in every pod would break ReadWriteOnce.
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"{name}-journals"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": journal_storage}}},
    }
    args = [
        "sign",
        "/plan/plan.json",
        # The same ConfigMap carries the inventory the plan was made from: every job is checked against it.
        "--inventory",
        "/plan/inventory.json",
        "--shard",
        f"$(JOB_COMPLETION_INDEX)/{shards}",
        "--journal",
        "/journal/journal.sqlite",
        "--concurrency",
        str(concurrency),
    ]
    if key:
        args += ["--key", key]
    args += list(extra_args or [])
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completionMode": "Indexed",
            "completions": shards,
            "parallelism": shards,
            "backoffLimitPerIndex": 3,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "sign",
                            "image": image,
                            "command": ["dct2notation"],
                            "args": args,
                            "volumeMounts": [
                                {"name": "plan", "mountPath": "/plan", "readOnly": True},
                                {
                                    "name": "journals",
                                    "mountPath": "/journal",
                                    "subPathExpr": "shard-$(JOB_COMPLETION_INDEX)",
                                },
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "plan", "configMap": {"name": plan_config_map}},
                        {"name": "journals", "persistentVolumeClaim": {"claimName": f"{name}-journals"}},
                    ],
                }
            },
        },
    }
    return [claim, job]


def dump_manifests(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


@dataclass(frozen=True)
class JobMounts:
    """What the signing pods mount, by the Secret names the platform team created (docs/k8s.md)."""

    docker_config_secret: str  # type kubernetes.io/dockerconfigjson: registry credentials (.dockerconfigjson)
    notation_secret: str  # signingkeys.json and, for a local key, KEY.key/KEY.crt (or a plugin's config)
    key_files: str | None = None  # KEY: the Secret's KEY.key and KEY.crt go to localkeys/, as notation keeps them
    ca_secret: str | None = None  # ca.crt: the registry's CA
    tsa_root_secret: str | None = None  # root.crt: the TSA's root, with timestamp_url
    timestamp_url: str | None = None


def estate_job(
    *,
    name: str,
    image: str,
    shards: int,
    index: dict[str, Any],
    parts: list[dict[str, Any]],
    mounts: JobMounts,
    key: str | None = None,
    concurrency: int = 16,
    journal_storage: str = "1Gi",
    insecure_registries: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """The index ConfigMap, the part ConfigMaps, the journal claim and the Indexed Job that runs as written.

    Every pod mounts every part (an Indexed Job has one pod template) and ``k8s-run`` joins and checks them into an
    emptyDir, then runs ``sign`` on its own shard with the mounted credentials, keys, CA and TSA settings.
    """
    claim, legacy = indexed_job(name=name, image=image, shards=shards, plan_config_map=f"{name}-parts",
                                key=key, concurrency=concurrency, journal_storage=journal_storage)  # fmt: skip
    if (mounts.timestamp_url is None) != (mounts.tsa_root_secret is None):
        raise UsageError("--timestamp-url and --tsa-root-secret go together")
    for option, value in (("--docker-config-secret", mounts.docker_config_secret),
                          ("--notation-secret", mounts.notation_secret), ("--ca-secret", mounts.ca_secret),
                          ("--tsa-root-secret", mounts.tsa_root_secret)):  # fmt: skip
        if value is not None and (not _NAME.match(value) or len(value) > 63):
            raise UsageError(f"{option} {value!r}: must be a DNS label (a Secret name)")
    index_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-parts"},
        "data": {"index.json": json.dumps(index, indent=1, sort_keys=True) + "\n"},
    }
    sources: list[dict[str, Any]] = [
        {"configMap": {"name": f"{name}-parts", "items": [{"key": "index.json", "path": "index.json"}]}}
    ]
    for part in parts:
        digest = str(part["metadata"]["name"]).rsplit("-part-", 1)[1]
        full = next(d for f in index["files"].values() for d in f["parts"] if d.startswith(digest))
        sources.append(
            {"configMap": {"name": part["metadata"]["name"], "items": [{"key": "part", "path": f"parts/{full}"}]}}
        )
    sign_args = [
        "sign", "/work/plan.json", "--inventory", "/work/inventory.json",
        "--shard", f"$(JOB_COMPLETION_INDEX)/{shards}", "--journal", "/journal/journal.sqlite",
        "--concurrency", str(concurrency), "--config-dir", "/notation",
    ]  # fmt: skip
    if key:
        sign_args += ["--key", key]
    if mounts.ca_secret:
        sign_args += ["--ca-file", "/ca/ca.crt"]
    if mounts.timestamp_url:
        sign_args += ["--timestamp-url", mounts.timestamp_url, "--timestamp-root-cert", "/tsa/root.crt"]
    for host in insecure_registries:
        sign_args += ["--insecure-registry", host]
    notation_items = [{"key": "signingkeys.json", "path": "signingkeys.json"}]
    if mounts.key_files:
        notation_items += [{"key": f"{mounts.key_files}.{ext}", "path": f"localkeys/{mounts.key_files}.{ext}"}
                           for ext in ("key", "crt")]  # fmt: skip
    volumes: list[dict[str, Any]] = [
        {"name": "plan", "projected": {"sources": sources}},
        {"name": "work", "emptyDir": {}},
        {"name": "journals", "persistentVolumeClaim": {"claimName": f"{name}-journals"}},
        {"name": "docker", "secret": {"secretName": mounts.docker_config_secret,
                                      "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}},
        {"name": "notation", "secret": {"secretName": mounts.notation_secret, "items": notation_items,
                                        "defaultMode": 0o400}},
    ]  # fmt: skip
    volume_mounts: list[dict[str, Any]] = [
        {"name": "plan", "mountPath": "/plan", "readOnly": True},
        {"name": "work", "mountPath": "/work"},
        {"name": "journals", "mountPath": "/journal", "subPathExpr": "shard-$(JOB_COMPLETION_INDEX)"},
        {"name": "docker", "mountPath": "/docker", "readOnly": True},
        {"name": "notation", "mountPath": "/notation", "readOnly": True},
    ]
    for secret, path, item in ((mounts.ca_secret, "/ca", "ca.crt"), (mounts.tsa_root_secret, "/tsa", "root.crt")):
        if secret:
            volname = path.strip("/")
            volumes.append({"name": volname, "secret": {"secretName": secret, "items": [{"key": item, "path": item}]}})
            volume_mounts.append({"name": volname, "mountPath": path, "readOnly": True})
    container = legacy["spec"]["template"]["spec"]["containers"][0]
    container["args"] = ["k8s-run", "/plan/index.json", "--parts", "/plan/parts", "--work", "/work", "--", *sign_args]
    container["env"] = [{"name": "DOCKER_CONFIG", "value": "/docker"}, {"name": "HOME", "value": "/work"}]
    container["volumeMounts"] = volume_mounts
    container["securityContext"] = {"runAsNonRoot": True, "readOnlyRootFilesystem": True,
                                    "allowPrivilegeEscalation": False}  # fmt: skip
    legacy["spec"]["template"]["spec"]["volumes"] = volumes
    return [index_map, *parts, claim, legacy]
