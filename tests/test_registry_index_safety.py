"""Never delete the subject or anything we did not write (issue 14 item 1), against real distribution 2.8 and, for
what distribution cannot do (GitLab's tag resolution, a 405 on DELETE), a small loopback registry front of our own."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from dct2notation.cli import main
from dct2notation.cli.migrate import sign_plan
from dct2notation.config import DEFAULT_LIMITS, SystemClock
from dct2notation.errors import RemoteError
from dct2notation.keys.resolve import load_signing_key
from dct2notation.keys.testcert import generate_test_key
from dct2notation.migrate.plan import Job, Plan
from dct2notation.notation.envelope import sign_envelope
from dct2notation.notation.manifest import referrers_index, referrers_tag
from dct2notation.oci import EMPTY_JSON, OCI_INDEX, OCI_MANIFEST, Descriptor, go_json, sha256_digest
from dct2notation.registry.client import ForeignIndexError, RegistryClient
from dct2notation.registry.layout import OCILayout, OCILayoutStore
from dct2notation.registry.options import RegistryOptions
from dct2notation.registry.store import RegistryStore
from tests.support.images import image_manifest
from tests.support.plans import save_bound
from tests.support.relay import Headers, Relay
from tests.support.servers import Registry

_ids = itertools.count()


@pytest.fixture(scope="module")
def notation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tmp_path_factory.mktemp("notation-index-safety")
    generate_test_key("alpha", config, key_type="ec-p256", make_default=True)
    generate_test_key("beta", config, key_type="ec-p256")
    generate_test_key("gamma", config, key_type="ec-p256")  # someone else's signer
    return config


def _client(host: str) -> RegistryClient:
    return RegistryClient(host, RegistryOptions(insecure_registries=frozenset({host})))


def push_multiarch(host: str, repo: str, tag: str = "v1") -> tuple[str, int, list[str]]:
    """An image index over two platform images (what a multi-arch subject is); returns (digest, size, children)."""
    with _client(host) as client:
        client.push_blob(repo, EMPTY_JSON)
        children = []
        for arch in ("amd64", "arm64"):
            raw = image_manifest(f"{repo}-{arch}")
            client.put_manifest(repo, sha256_digest(raw), raw, OCI_MANIFEST)
            children.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": sha256_digest(raw),
                    "size": len(raw),
                    "platform": {"architecture": arch, "os": "linux"},
                }
            )
        index = go_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
        client.put_manifest(repo, tag, index, OCI_INDEX)
    return sha256_digest(index), len(index), [c["digest"] for c in children]


def manifest_exists(host: str, repo: str, reference: str) -> bool:
    with _client(host) as client:
        return client.head_manifest(repo, reference) is not None


def sign_cli(capsys: pytest.CaptureFixture[str], ref: str, config: Path, host: str) -> tuple[int, str, str]:
    code = main(["sign", ref, "--key", "alpha", "--config-dir", str(config), "--insecure-registry", host])
    out, err = capsys.readouterr()
    return code, out, err


# --- distribution 2.8: anyone may push the sha256-<hex> tag ---------------------------------------------------------
def test_attack_referrers_tag_pointing_at_the_subject_index_never_deletes_the_image(
    registry: Registry, notation_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = f"safety/self{next(_ids)}"
    digest, _, children = push_multiarch(registry.host, repo)
    with _client(registry.host) as client:
        raw, _ = client.get_manifest(repo, digest)
        client.put_manifest(repo, referrers_tag(digest), raw, OCI_INDEX)  # the subject, under its own referrers tag
    code, out, err = sign_cli(capsys, f"{registry.host}/{repo}@{digest}", notation_dir, registry.host)
    assert code == 3
    assert out == ""
    assert err.count("\n") == 1
    assert f"{repo}:{referrers_tag(digest)} is not a referrers index (the tag resolves to the subject itself)" in err
    # Old HEAD rewrote the subject's index as a referrers index and DELETEd it by digest: the image and v1 were gone.
    assert manifest_exists(registry.host, repo, digest)
    with _client(registry.host) as client:
        assert client.head_manifest(repo, "v1") == client.head_manifest(repo, digest)
        assert client.head_manifest(repo, referrers_tag(digest)) == client.head_manifest(repo, digest)
    assert all(manifest_exists(registry.host, repo, child) for child in children)


def test_attack_referrers_tag_holding_someone_elses_image_is_left_alone(
    registry: Registry, notation_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = f"safety/other{next(_ids)}"
    with _client(registry.host) as client:
        client.push_blob(repo, EMPTY_JSON)
        subject = image_manifest(f"{repo}-subject")
        client.put_manifest(repo, "v1", subject, OCI_MANIFEST)
        digest = sha256_digest(subject)
        squatter = image_manifest(f"{repo}-squatter")
        client.put_manifest(repo, referrers_tag(digest), squatter, OCI_MANIFEST)
    code, _, err = sign_cli(capsys, f"{registry.host}/{repo}@{digest}", notation_dir, registry.host)
    assert code == 3
    assert "not an OCI image index (mediaType 'application/vnd.oci.image.manifest.v1+json')" in err
    assert manifest_exists(registry.host, repo, sha256_digest(squatter))
    with _client(registry.host) as client:
        found = client.head_manifest(repo, referrers_tag(digest))
    assert found is not None and found.digest == sha256_digest(squatter)


def test_attack_referrers_tag_index_of_non_referrers_is_refused(registry: Registry) -> None:
    """An image index under the tag whose entries are platform images, not referrer descriptors (no artifactType)."""
    repo = f"safety/mixed{next(_ids)}"
    index_digest, _, _ = push_multiarch(registry.host, repo, tag="other")
    with _client(registry.host) as client:
        subject = image_manifest(f"{repo}-subject")
        client.put_manifest(repo, "v1", subject, OCI_MANIFEST)
        raw, _ = client.get_manifest(repo, index_digest)
        client.put_manifest(repo, referrers_tag(sha256_digest(subject)), raw, OCI_INDEX)
        entry = Descriptor(OCI_MANIFEST, "sha256:" + "1" * 64, 10, artifact_type="application/x-test")
        with pytest.raises(ForeignIndexError, match=r"manifests\[0\] .* is not a referrer descriptor"):
            client.add_referrer_by_tag(repo, sha256_digest(subject), entry)
    assert manifest_exists(registry.host, repo, index_digest)


def test_outdated_index_we_wrote_is_removed_and_one_we_did_not_is_kept(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = f"safety/gc{next(_ids)}"
    with _client(registry.host) as client:
        client.push_blob(repo, EMPTY_JSON)
        subject = image_manifest(repo)
        client.put_manifest(repo, "v1", subject, OCI_MANIFEST)
    digest = sha256_digest(subject)
    # Someone else's pure referrers index (a foreign signature) is already under the tag.
    direct = RegistryOptions(insecure_registries=frozenset({registry.host}))
    foreign_sig = _foreign_signature(registry.host, repo, Descriptor(OCI_MANIFEST, digest, len(subject)), notation_dir)
    theirs = referrers_index([foreign_sig])
    with _client(registry.host) as client:
        client.put_manifest(repo, referrers_tag(digest), theirs, OCI_INDEX)
    jobs = [
        Job(f"{registry.host}/{repo}", digest, len(subject), name, "g", "targets", ("v1",), "m-gc", OCI_MANIFEST)
        for name in ("alpha", "beta")
    ]
    save_bound(Plan("m-gc", jobs), tmp_path / "plan.json")
    code = sign_plan(
        plan=tmp_path / "plan.json",
        inventory=tmp_path / "inventory.json",
        config_dir=notation_dir,
        registry_options=direct,
        progress=False,
        concurrency=1,
    )
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    store = RegistryStore(registry.host, direct)
    try:
        listed = [d.digest for d in store.list_signatures(repo, digest)]
    finally:
        store.close()
    assert listed == [foreign_sig.digest, *(r["signature"] for r in summary["results"])]
    # Not ours: kept (old HEAD deleted it). Ours, replaced by the second signature's index: removed.
    assert manifest_exists(registry.host, repo, sha256_digest(theirs))
    first_ours = referrers_index([foreign_sig, _listed_descriptor(registry.host, repo, listed[1])])
    assert not manifest_exists(registry.host, repo, sha256_digest(first_ours))


def _foreign_signature(host: str, repo: str, subject: Descriptor, config: Path) -> Descriptor:
    # Pushed through the API-only path, so the manifest exists but no index of ours lists it.
    api_only = RegistryStore(host, RegistryOptions(insecure_registries=frozenset({host}), referrers="api"))
    try:
        gamma = load_signing_key("gamma", config, DEFAULT_LIMITS)
        signed = sign_envelope(subject, gamma, clock=SystemClock())
        return api_only.push_signature(repo, subject, signed)
    finally:
        api_only.close()


def _listed_descriptor(host: str, repo: str, digest: str) -> Descriptor:
    from dct2notation.notation.manifest import parse_signature_manifest

    with _client(host) as client:
        raw, _ = client.get_manifest(repo, digest)
    return parse_signature_manifest(raw).descriptor()


# --- a registry front of our own: GitLab's tag resolution and a 405 on DELETE ----------------------------------------
_DIGEST_TAG = re.compile(r"^(?P<head>/v2/.+/manifests/)sha256-(?P<hex>[0-9a-f]{64})$")


class _Front(Relay):
    """Forwards to distribution. ``gitlab``: a ``sha256-<hex>`` tag resolves to the manifest ``sha256:<hex>`` (what
    GitLab's registry does). ``refuse_delete``: every DELETE is answered 405 (GHCR, many registries)."""

    def __init__(self, upstream: str, *, gitlab: bool = False, refuse_delete: bool = False) -> None:
        super().__init__(upstream)
        self.gitlab = gitlab
        self.refuse_delete = refuse_delete
        self.deletes: list[str] = []
        self.puts: list[str] = []

    def handle_call(self, method: str, path: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        if method == "DELETE":
            self.deletes.append(path)
            if self.refuse_delete:
                return 405, [("Content-Type", "application/json")], b'{"errors":[{"code":"UNSUPPORTED"}]}'
        if method == "PUT" and "/manifests/" in path:
            self.puts.append(path)
        match = _DIGEST_TAG.match(path)
        if self.gitlab and match and method in ("GET", "HEAD"):
            path = f"{match['head']}sha256:{match['hex']}"
        return self.forward(method, path, headers, body)


@pytest.fixture
def front(registry: Registry, request: pytest.FixtureRequest) -> Iterator[_Front]:
    server = _Front(registry.url, **request.param)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("front", [{"gitlab": True}], indirect=True)
def test_attack_gitlab_digest_tag_resolution_never_rewrites_or_deletes_the_subject(
    registry: Registry, front: _Front, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = f"safety/gitlab{next(_ids)}"
    digest, size, children = push_multiarch(registry.host, repo)
    # The batch path (a plan job) and the single-sign path both meet the subject under its referrers tag.
    job = Job(f"{front.host}/{repo}", digest, size, "alpha", "g", "targets", ("v1",), "m-gitlab", OCI_INDEX)
    save_bound(Plan("m-gitlab", [job]), tmp_path / "plan.json")
    options = RegistryOptions(insecure_registries=frozenset({front.host}))
    code = sign_plan(
        plan=tmp_path / "plan.json",
        inventory=tmp_path / "inventory.json",
        config_dir=notation_dir,
        registry_options=options,
        progress=False,
    )
    out, err = capsys.readouterr()
    assert code == 1
    (failure,) = json.loads(out)["failures"]
    assert "is not a referrers index (the tag resolves to the subject itself)" in failure["error"]
    code, _, err = sign_cli(capsys, f"{front.host}/{repo}@{digest}", notation_dir, front.host)
    assert code == 3
    assert "the tag resolves to the subject itself" in err and err.count("\n") == 1
    # Deleted: the upload session the batch opened alongside its listing read and never used (cancelled when the
    # batch ended), and the signature manifest `sign` had just pushed (ours, now listed by nothing). Nothing else.
    (upload, deleted) = front.deletes
    assert upload.startswith(f"/v2/{repo}/blobs/uploads/") and "/manifests/" not in upload
    signature_digest = deleted.rpartition("/")[2]
    assert signature_digest not in (digest, *children)
    assert not manifest_exists(registry.host, repo, signature_digest)
    assert not any(referrers_tag(digest) in p for p in front.puts)
    assert manifest_exists(registry.host, repo, digest)
    assert all(manifest_exists(registry.host, repo, child) for child in children)


@pytest.mark.parametrize("front", [{"refuse_delete": True}], indirect=True)
def test_delete_refused_405_prints_notations_warning_and_the_batch_goes_on(
    registry: Registry, front: _Front, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = f"safety/nodelete{next(_ids)}"
    with _client(registry.host) as client:
        client.push_blob(repo, EMPTY_JSON)
        subject = image_manifest(repo)
        client.put_manifest(repo, "v1", subject, OCI_MANIFEST)
    digest = sha256_digest(subject)
    jobs = [
        Job(f"{front.host}/{repo}", digest, len(subject), name, "g", "targets", ("v1",), "m-405", OCI_MANIFEST)
        for name in ("alpha", "beta")
    ]
    save_bound(Plan("m-405", jobs), tmp_path / "plan.json")
    options = RegistryOptions(insecure_registries=frozenset({front.host}))
    code = sign_plan(
        plan=tmp_path / "plan.json",
        inventory=tmp_path / "inventory.json",
        config_dir=notation_dir,
        registry_options=options,
        progress=False,
        concurrency=1,
    )
    out, err = capsys.readouterr()
    assert code == 0
    summary = json.loads(out)
    assert summary["counts"] == {"signed": 2}
    (deleted,) = front.deletes  # the first index, ours, once the second signature replaced it
    old = deleted.rpartition("/")[2]
    assert (
        f"Warning: Removal of outdated referrers index {repo}@{old} failed (405). Garbage collection may be required."
        in err.splitlines()
    )
    store = RegistryStore(registry.host, RegistryOptions(insecure_registries=frozenset({registry.host})))
    try:
        assert [d.digest for d in store.list_signatures(repo, digest)] == [r["signature"] for r in summary["results"]]
    finally:
        store.close()


# --- the OCI layout: the same rule ------------------------------------------------------------------------------------
def test_attack_layout_referrers_tag_naming_the_subject_never_removes_it(tmp_path: Path, notation_dir: Path) -> None:
    layout = OCILayout(tmp_path / "layout")
    layout.init()
    layout.put_blob(EMPTY_JSON)
    child = image_manifest("child")
    layout.put_blob(child)
    index = go_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256_digest(child), "size": len(child)}],
        }
    )
    digest = layout.put_blob(index)
    subject = Descriptor(OCI_INDEX, digest, len(index))
    with layout.locked():
        layout.tag(subject, referrers_tag(digest))
    before = (tmp_path / "layout" / "index.json").read_bytes()
    store = OCILayoutStore(tmp_path / "layout")
    key = load_signing_key("alpha", notation_dir, DEFAULT_LIMITS)
    signed = sign_envelope(subject, key, clock=SystemClock())
    with pytest.raises(RemoteError, match="the tag resolves to the subject itself"):
        store.push_signature("x", subject, signed)
    assert (tmp_path / "layout" / "index.json").read_bytes() == before
    assert layout.blob_path(digest).is_file()
