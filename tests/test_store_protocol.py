"""One signature-store protocol: the registry and the OCI layout answer the same methods, so the batch, the check and
the sign-off each have one code path (issue 14 item 9)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dct2notation.errors import UsageError
from dct2notation.keys.testcert import generate_test_key
from dct2notation.migrate.plan import Job, Plan
from dct2notation.oci import EMPTY_JSON, OCI_MANIFEST, THUMBPRINT_ANNOTATION, Descriptor, sha256_digest
from dct2notation.registry.layout import OCILayout, OCILayoutStore
from dct2notation.registry.options import RegistryOptions
from dct2notation.registry.reference import Reference
from dct2notation.registry.store import RegistryStore, SignatureStore
from tests.support.images import image_manifest
from tests.support.plans import save_bound
from tests.support.servers import Registry

ROOT = Path(__file__).resolve().parents[1]
_STORE_TYPE_CHECK = re.compile(r"isinstance\([^)]*(RegistryStore|OCILayoutStore)\)|getattr\([\w.]*store\b[^)]*\)")


def test_registry_and_layout_stores_answer_the_whole_protocol(registry: Registry, tmp_path: Path) -> None:
    layout = OCILayoutStore(tmp_path / "layout", create=True)
    remote = RegistryStore(registry.host, RegistryOptions(insecure_registries=frozenset({registry.host})))
    try:
        assert isinstance(layout, SignatureStore)
        assert isinstance(remote, SignatureStore)
        assert layout.retry_stats() is None
        stats = remote.retry_stats()
        assert stats is not None and stats.total == 0
        assert layout.index_tag_required is False
    finally:
        remote.close()


def test_each_store_names_a_plan_jobs_subject(registry: Registry, tmp_path: Path) -> None:
    """The pre-flight and the batch ask the store how it names a job's subject (no `layout` flag at the caller)."""
    digest = "sha256:" + "ab" * 32
    layout = OCILayoutStore(tmp_path / "layout", create=True)
    remote = RegistryStore(registry.host, RegistryOptions(insecure_registries=frozenset({registry.host})))
    try:
        assert remote.subject_reference(f"{registry.host}/team/app", digest) == Reference(
            registry.host, "team/app", None, digest
        )
        with pytest.raises(UsageError, match="invalid repository name 'Team/App'"):
            remote.subject_reference(f"{registry.host}/Team/App", digest)
        # A layout finds a subject by its digest alone, whatever the plan's repository is called.
        assert layout.subject_reference(f"{registry.host}/team/app", digest) == Reference("local", "app", None, digest)
        assert layout.subject_reference("Team/App", digest) == Reference("local", "App", None, digest)
    finally:
        remote.close()


def test_no_store_type_checks_outside_the_stores() -> None:
    # The rule the protocol exists for: callers never ask which store they hold.
    offenders = []
    for path in (ROOT / "dct2notation").rglob("*.py"):
        if path.parent.name == "registry" and path.name in ("store.py", "layout.py", "target.py"):
            continue
        text = path.read_text()
        offenders += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in _STORE_TYPE_CHECK.finditer(text)]
    assert offenders == []


def _layout_subjects(root: Path, count: int) -> list[tuple[str, int, str]]:
    layout = OCILayout(root)
    layout.init()
    layout.put_blob(EMPTY_JSON)
    out = []
    with layout.locked():
        for n in range(count):
            raw = image_manifest(f"proto-{n}")
            layout.put_blob(raw)
            layout.tag(Descriptor(OCI_MANIFEST, sha256_digest(raw), len(raw)), f"v{n}")
            out.append((f"v{n}", len(raw), sha256_digest(raw)))
    return out


def test_two_layout_batches_at_once_sign_each_subject_once(tmp_path: Path) -> None:
    """The layout batch goes through the same push-once as the registry: listing and write under one lock, so two
    processes with their own journals never both sign a subject (the old layout branch listed, then pushed)."""
    config = tmp_path / "notation"
    generate_test_key("alpha", config, key_type="ec-p256", make_default=True)
    root = tmp_path / "layout"
    subjects = _layout_subjects(root, 40)
    jobs = [
        Job("local/layout", digest, size, "alpha", "dct.example/layout", "targets", (tag,), "m-proto", OCI_MANIFEST)
        for tag, size, digest in subjects
    ]
    save_bound(Plan("m-proto", jobs), tmp_path / "plan.json")
    env = {**os.environ, "PYTHONPATH": os.environ.get("DCT2NOTATION_TEST_ROOT", str(ROOT)), "TERM": "dumb"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dct2notation",
                "sign",
                str(tmp_path / "plan.json"),
                "--config-dir",
                str(config),
                "--inventory",
                str(tmp_path / "inventory.json"),
                "--oci-layout",
                str(root),
                "--journal",
                str(tmp_path / f"j{i}.sqlite"),
                "--concurrency",
                "8",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
        )  # fmt: skip
        for i in range(2)
    ]
    try:
        outs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0]
    counts = [json.loads(out)["counts"] for out in outs]
    assert sum(c.get("signed", 0) for c in counts) == 40
    assert sum(c.get("reused", 0) for c in counts) == 40
    store = OCILayoutStore(root)
    per_subject = {d: store.list_signatures("x", d) for _, _, d in subjects}
    assert {d: len(listed) for d, listed in per_subject.items()} == {d: 1 for _, _, d in subjects}
    thumbs = {(listed[0].annotations or {})[THUMBPRINT_ANNOTATION] for listed in per_subject.values()}
    assert len(thumbs) == 1


@pytest.mark.parametrize("repo", ["app", "team/app"])
def test_layout_list_tags_names_the_repository_and_bare_tags(tmp_path: Path, repo: str) -> None:
    layout = OCILayout(tmp_path / "l")
    layout.init()
    raw = image_manifest("t")
    layout.put_blob(raw)
    desc = Descriptor(OCI_MANIFEST, sha256_digest(raw), len(raw))
    with layout.locked():
        layout.tag(desc, "bare")
        layout.tag(desc, f"registry.example/{repo}:v1")
        layout.tag(desc, "registry.example/other:v2")
    assert OCILayoutStore(tmp_path / "l").list_tags(repo) == ["bare", "v1"]
