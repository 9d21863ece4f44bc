"""A Kubernetes Indexed Job running a plan's shards: ``JOB_COMPLETION_INDEX`` → ``--shard``, a journal per shard."""

from __future__ import annotations

import re
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
