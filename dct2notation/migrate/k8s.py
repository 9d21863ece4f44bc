"""A Kubernetes Indexed Job running a plan's shards: ``JOB_COMPLETION_INDEX`` → ``--shard``, a journal per shard."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, UsageError

# Every pattern here is matched with fullmatch: ``$`` also matches before a final newline, which let "mig\n" be an
# object name in the emitted YAML.
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


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
    if not _NAME.fullmatch(name) or len(name) > 52:
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
    import yaml  # here, not at import: the CLI imports this module for PodResources' defaults

    class Plain(yaml.SafeDumper):
        # A dict used twice (the labels) would be written as &id001/*id001: valid YAML that reviewers and some
        # manifest tools misread. Each place gets its own copy.
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return yaml.dump_all(docs, Dumper=Plain, sort_keys=False)


# The image's user (Containerfile USER): the pod runs as it, and fsGroup makes the claim and the Secrets readable.
IMAGE_UID = 10001
CONTAINER = "sign"
PLUGIN_CONTAINER = "plugin"
CONFIG_DIR = "/notation"
_PLUGIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# Kubernetes resource quantities (resource.Quantity): 500m, 1, 1.5, 512Mi, 2G.
_QUANTITY = re.compile(r"(?:\d+(?:\.\d+)?|\.\d+)(?:m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])(?::[0-9]{{1,5}})?")  # an image's registry
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# Exit 2 is bad input (errors.py): the same pod would fail the same way, so the index fails at once instead of
# burning its retries; exits 1 (jobs failed, rerun resumes) and 3 (remote kept failing) are retried.
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class JobMounts:
    """What the signing pods mount, by the Secret names the platform team created (docs/k8s.md)."""

    docker_config_secret: str  # type kubernetes.io/dockerconfigjson: registry credentials (.dockerconfigjson)
    notation_secret: str  # signingkeys.json and, for a local key, KEY.key/KEY.crt
    key_files: tuple[str, ...] = ()  # KEY: the Secret's KEY.key and KEY.crt go to localkeys/, as notation keeps them
    ca_secret: str | None = None  # ca.crt: the registry's CA
    tsa_root_secret: str | None = None  # root.crt: the TSA's root, with timestamp_url
    timestamp_url: str | None = None
    plugin_config_secret: str | None = None  # files a plugin reads (KMS credentials), at /plugin-config
    plugin_env_secret: str | None = None  # environment a plugin reads (VAULT_ADDR, AWS_REGION …): envFrom
    image_pull_secrets: tuple[str, ...] = ()  # the registry login the kubelet pulls the images with
    service_account: str | None = None  # workload identity (IRSA, GKE/Azure) for a KMS plugin


@dataclass(frozen=True)
class PluginImage:
    """A Notation plugin delivered as an image: an init container copies ``binary`` to the plugin directory."""

    name: str  # the signingkeys.json entry's pluginName: installed as plugins/NAME/notation-NAME
    image: str
    binary: str | None = None  # its path in the image; /notation-NAME by default

    @property
    def path(self) -> str:
        return self.binary or f"/notation-{self.name}"


@dataclass(frozen=True)
class PodResources:
    """Requests and limits of the signing container, the Job's retry and clean-up settings."""

    cpu: str = "1"
    memory: str = "1Gi"
    journal_storage: str = "1Gi"
    storage_class: str | None = None
    backoff_limit_per_index: int = 3
    ttl_seconds_after_finished: int = 7 * 24 * 3600


def _check_image(option: str, ref: str) -> str:
    from ..registry.reference import parse_reference

    if not ref or any(c.isspace() or not c.isprintable() for c in ref):
        raise UsageError(f"{option} {ref!r}: not an image reference (empty, or a space or control character)")
    try:
        registry = parse_reference(ref).registry
    except UsageError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if not _HOST.fullmatch(registry):
        raise UsageError(f"{option} {ref!r}: registry {registry!r} is not a host[:port]")
    return ref


def _check_options(mounts: JobMounts, plugin: PluginImage | None, resources: PodResources) -> None:
    if (mounts.timestamp_url is None) != (mounts.tsa_root_secret is None):
        raise UsageError("--timestamp-url and --tsa-root-secret go together")
    for option, value in (("--docker-config-secret", mounts.docker_config_secret),
                          ("--notation-secret", mounts.notation_secret), ("--ca-secret", mounts.ca_secret),
                          ("--tsa-root-secret", mounts.tsa_root_secret),
                          ("--plugin-config-secret", mounts.plugin_config_secret),
                          ("--plugin-env-secret", mounts.plugin_env_secret),
                          *(("--image-pull-secret", n) for n in mounts.image_pull_secrets)):  # fmt: skip
        if value is not None and (not _NAME.fullmatch(value) or len(value) > 63):
            raise UsageError(f"{option} {value!r}: must be a DNS label (a Secret name)")
    account = mounts.service_account
    if account is not None and (not _SUBDOMAIN.fullmatch(account) or len(account) > 253):
        raise UsageError(f"--service-account {account!r}: must be a DNS subdomain (a ServiceAccount name)")
    for stem in mounts.key_files:
        if not _PLUGIN_NAME.fullmatch(stem):
            raise UsageError(f"--key-files {stem!r}: must be a file stem (letters, digits, '.', '_', '-')")
    if len(set(mounts.key_files)) != len(mounts.key_files):
        raise UsageError("--key-files: each KEY once")
    if plugin is not None:
        if not _PLUGIN_NAME.fullmatch(plugin.name):
            raise UsageError(f"--plugin {plugin.name!r}: a plugin name is letters, digits, '.', '_' and '-'")
        _check_image("--plugin-image", plugin.image)
        steps = plugin.path.split("/")[1:]
        if not plugin.path.startswith("/") or any(s in ("", ".", "..") for s in steps) or not plugin.path.isprintable():
            raise UsageError(f"--plugin-binary {plugin.path!r}: must be an absolute path in the plugin image")
    for option, quantity in (("--cpu", resources.cpu), ("--memory", resources.memory),
                             ("--journal-storage", resources.journal_storage)):  # fmt: skip
        if not _QUANTITY.fullmatch(quantity):
            raise UsageError(f"{option} {quantity!r}: not a Kubernetes quantity (e.g. 500m, 1, 512Mi, 2Gi)")
    if resources.storage_class is not None and (
        not _SUBDOMAIN.fullmatch(resources.storage_class) or len(resources.storage_class) > 253
    ):
        raise UsageError(f"--storage-class {resources.storage_class!r}: must be a DNS subdomain (a StorageClass name)")
    if resources.backoff_limit_per_index < 0:
        raise UsageError("--backoff-limit-per-index: must be at least 0")
    if resources.ttl_seconds_after_finished < 0:
        raise UsageError("--ttl-seconds-after-finished: must be at least 0")


def _restricted() -> dict[str, Any]:
    # The "restricted" Pod Security Standard, so the Job is admitted in a namespace that enforces it.
    return {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]}}  # fmt: skip


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
    insecure_registries: tuple[str, ...] = (),
    plugin: PluginImage | None = None,
    resources: PodResources | None = None,
) -> list[dict[str, Any]]:
    """The index ConfigMap, the part ConfigMaps, the journal claim and the Indexed Job that runs as written.

    Every pod mounts every part (an Indexed Job has one pod template) and ``k8s-run`` joins and checks them into an
    emptyDir, then runs ``sign`` on its own shard with the mounted credentials, keys, CA and TSA settings.
    """
    resources = resources or PodResources()
    if not _NAME.fullmatch(name) or len(name) > 52:
        raise UsageError(f"--name {name!r}: must be a DNS label of at most 52 characters")
    if shards < 1:
        raise UsageError("--shards: must be at least 1")
    if concurrency < 1:
        raise UsageError("--concurrency: must be at least 1")
    _check_image("--image", image)
    _check_options(mounts, plugin, resources)
    labels = {"app.kubernetes.io/name": "dct2notation", "app.kubernetes.io/instance": name}
    # One ReadWriteMany claim, each shard on its own sub-directory chosen by index (subPathExpr): an Indexed Job
    # cannot pick a different claim per pod, and mounting every claim in every pod would break ReadWriteOnce. The
    # claim outlives the Job (ttlSecondsAfterFinished deletes only the Job and its pods): the journals are the record.
    claim_spec: dict[str, Any] = {"accessModes": ["ReadWriteMany"],
                                  "resources": {"requests": {"storage": resources.journal_storage}}}  # fmt: skip
    if resources.storage_class:
        claim_spec["storageClassName"] = resources.storage_class
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": f"{name}-journals", "labels": labels}, "spec": claim_spec}  # fmt: skip
    index_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-parts", "labels": labels},
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
        "--concurrency", str(concurrency), "--config-dir", CONFIG_DIR,
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
    for stem in mounts.key_files:
        notation_items += [{"key": f"{stem}.{ext}", "path": f"localkeys/{stem}.{ext}"}
                           for ext in ("key", "crt")]  # fmt: skip
    # 0440 with fsGroup: the image's user reads its keys through the group (0400 would leave them root's alone).
    private = 0o440
    volumes: list[dict[str, Any]] = [
        {"name": "plan", "projected": {"sources": sources}},
        {"name": "work", "emptyDir": {"sizeLimit": "2Gi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "journals", "persistentVolumeClaim": {"claimName": f"{name}-journals"}},
        {"name": "docker", "secret": {"secretName": mounts.docker_config_secret,
                                      "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                                      "defaultMode": private}},
        # The config directory is an emptyDir holding only mount points: a Secret volume is read-only, so nothing
        # (the plugin directory) could be mounted inside it.
        {"name": "notation", "emptyDir": {"sizeLimit": "1Mi"}},
        {"name": "notation-keys", "secret": {"secretName": mounts.notation_secret, "items": notation_items,
                                             "defaultMode": private}},
    ]  # fmt: skip
    volume_mounts: list[dict[str, Any]] = [
        {"name": "plan", "mountPath": "/plan", "readOnly": True},
        {"name": "work", "mountPath": "/work"},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "journals", "mountPath": "/journal", "subPathExpr": "shard-$(JOB_COMPLETION_INDEX)"},
        {"name": "docker", "mountPath": "/docker", "readOnly": True},
        {"name": "notation", "mountPath": CONFIG_DIR},
        {"name": "notation-keys", "mountPath": f"{CONFIG_DIR}/signingkeys.json", "subPath": "signingkeys.json",
         "readOnly": True},
    ]  # fmt: skip
    if mounts.key_files:
        volume_mounts.append({"name": "notation-keys", "mountPath": f"{CONFIG_DIR}/localkeys", "subPath": "localkeys",
                              "readOnly": True})  # fmt: skip
    init_containers: list[dict[str, Any]] = []
    if plugin is not None:
        # An emptyDir the init container fills from the plugin's image: the binary arrives as a regular file (the
        # plugin runner refuses symlinks, which is what a Secret or ConfigMap item is), mounted read-only for sign.
        volumes.append({"name": "plugin", "emptyDir": {"sizeLimit": "512Mi"}})
        volume_mounts.append({"name": "plugin", "mountPath": f"{CONFIG_DIR}/plugins/{plugin.name}", "readOnly": True})
        init_containers.append({
            "name": PLUGIN_CONTAINER,
            "image": plugin.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["cp", plugin.path, f"/plugin/notation-{plugin.name}"],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
            "securityContext": _restricted(),
            "volumeMounts": [{"name": "plugin", "mountPath": "/plugin"}],
        })  # fmt: skip
    for secret, path, item in ((mounts.ca_secret, "/ca", "ca.crt"), (mounts.tsa_root_secret, "/tsa", "root.crt")):
        if secret:
            volname = path.strip("/")
            volumes.append({"name": volname, "secret": {"secretName": secret, "items": [{"key": item, "path": item}]}})
            volume_mounts.append({"name": volname, "mountPath": path, "readOnly": True})
    if mounts.plugin_config_secret:
        volumes.append({"name": "plugin-config", "secret": {"secretName": mounts.plugin_config_secret,
                                                            "defaultMode": private}})  # fmt: skip
        volume_mounts.append({"name": "plugin-config", "mountPath": "/plugin-config", "readOnly": True})
    container = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["dct2notation"],
        "args": ["k8s-run", "/plan/index.json", "--parts", "/plan/parts", "--work", "/work", "--", *sign_args],
        # The root filesystem is read-only: HOME, TMPDIR (tempfile, plugins) and the config dir are the volumes.
        "env": [{"name": "DOCKER_CONFIG", "value": "/docker"}, {"name": "HOME", "value": "/work"},
                {"name": "TMPDIR", "value": "/tmp"}, {"name": "NOTATION_CONFIG", "value": CONFIG_DIR}],
        "resources": {"requests": {"cpu": resources.cpu, "memory": resources.memory},
                      "limits": {"memory": resources.memory}},
        "securityContext": _restricted(),
        "volumeMounts": volume_mounts,
    }  # fmt: skip
    if mounts.plugin_env_secret:
        container["envFrom"] = [{"secretRef": {"name": mounts.plugin_env_secret}}]
    rules: list[dict[str, Any]] = [
        {"action": "FailIndex",
         "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [EXIT_BAD_INPUT]}},
    ]  # fmt: skip
    if plugin is not None:
        # A plugin image without the binary (or without cp) fails the same way every time.
        on_exit = {"containerName": PLUGIN_CONTAINER, "operator": "NotIn", "values": [0]}
        rules.append({"action": "FailIndex", "onExitCodes": on_exit})
    # A drained node or a preempted pod is not the index's fault: its retries are kept for real failures.
    rules.append({"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]})
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": IMAGE_UID, "runAsGroup": IMAGE_UID,
                            "fsGroup": IMAGE_UID, "fsGroupChangePolicy": "OnRootMismatch",
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }  # fmt: skip
    if mounts.service_account:
        # Workload identity webhooks (EKS, AKS) project their own token; the API token stays unmounted.
        pod_spec["serviceAccountName"] = mounts.service_account
    if mounts.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in mounts.image_pull_secrets]
    if init_containers:
        pod_spec["initContainers"] = init_containers
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = volumes
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": shards,
            "parallelism": shards,
            "backoffLimitPerIndex": resources.backoff_limit_per_index,
            # A replacement pod starts only once the failed one is gone: never two pods on one shard's journal.
            "podReplacementPolicy": "Failed",
            "podFailurePolicy": {"rules": rules},
            "ttlSecondsAfterFinished": resources.ttl_seconds_after_finished,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
    return [index_map, *parts, claim, job]


def check_pod_keys(
    identities: set[str],
    *,
    key_files: tuple[str, ...],
    plugin: PluginImage | None,
    signing_keys: Path | None = None,
) -> None:
    """Refuse a Job whose every pod would fail to load a plan identity's key: a plugin the Job does not install, key
    files it does not mount, or (with ``--signing-keys``, the file the notation Secret will hold) a missing entry."""
    from ..keys.signingkeys import SigningKeys

    mounted = {(f"{CONFIG_DIR}/localkeys/{stem}.key", f"{CONFIG_DIR}/localkeys/{stem}.crt") for stem in key_files}
    keys = None
    if signing_keys is not None:
        if not signing_keys.is_file():
            raise InputError(f"--signing-keys {signing_keys}: no such file (the signingkeys.json of --notation-secret)")
        keys = SigningKeys.load(signing_keys)
    for identity in sorted(identities):
        where = f"plan identity {identity!r}"
        if identity.startswith("plugin:"):
            _need_plugin(where, identity.split(":", 2)[1], plugin)
            continue
        if ":" in identity:
            if tuple(identity.split(":", 1)) not in mounted:
                raise UsageError(f"{where}: its key files are not mounted in the pod; {_LOCALKEYS}")
            continue
        if keys is None:
            continue
        found = next((e for e in keys.keys if e.name == identity), None)
        if found is None:
            raise UsageError(f"--signing-keys {signing_keys}: no key named {identity!r} ({where})")
        if found.is_plugin:
            _need_plugin(f"--signing-keys {signing_keys}: key {identity!r}", str(found.plugin_name), plugin)
        elif (found.key_path, found.cert_path) not in mounted:
            raise UsageError(f"--signing-keys {signing_keys}: key {identity!r} reads {found.key_path}; {_LOCALKEYS}")


_LOCALKEYS = f"the pod mounts {CONFIG_DIR}/localkeys/KEY.key and KEY.crt (--key-files KEY)"


def _need_plugin(where: str, name: str, plugin: PluginImage | None) -> None:
    if plugin is None or plugin.name != name:
        raise UsageError(f"{where}: plugin {name!r} is not installed by this Job (--plugin {name} --plugin-image REF)")
