"""The fixture envelope pushed through our push path lands byte-for-byte as Notation 1.x would store it."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest

from dct2notation.errors import NotFoundError
from dct2notation.notation.manifest import parse_signature_manifest, referrers_tag
from dct2notation.oci import COSE_MEDIA_TYPE, NOTATION_SIGNATURE, OCI_INDEX, Descriptor, sha256_digest
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.layout import OCILayoutStore
from dct2notation.registry.options import RegistryOptions
from dct2notation.registry.reference import parse_reference
from dct2notation.registry.store import RegistryStore, fetch_signatures
from tests.support.servers import Registry
from tests.test_manifest import SUBJECT_HEX, as_signed, fixture_inputs

_repo_ids = itertools.count()

LEGACY = "DERIVED_sigmanifest_legacy-form_ng_internal_cose_signature.json"
ARTIFACT = "DERIVED_sigmanifest_artifactType-form_ng_internal_cose_signature.json"
INDEX = f"DERIVED_referrers-tag-index_sha256-{SUBJECT_HEX}.json"


def unique_repo(prefix: str) -> str:
    return f"{prefix}/r{next(_repo_ids)}"


@pytest.fixture
def store(registry: Registry) -> RegistryStore:
    return RegistryStore(registry.host, RegistryOptions(insecure_registries=frozenset({registry.host})))


@pytest.mark.servers
@pytest.mark.parametrize(("form", "derived"), [("legacy", LEGACY), ("artifact", ARTIFACT)])
def test_registry_push_matches_notation(shared_fixtures: Path, store: RegistryStore, form: str, derived: str) -> None:
    cose = shared_fixtures / "notation" / "cose"
    envelope = (cose / "ng_internal_cose_signature.sig").read_bytes()
    _, subject, chain, signing_time = fixture_inputs(cose)
    repo = unique_repo("bytes")

    desc = store.push_signature(repo, subject, as_signed(envelope, chain, signing_time), form)  # type: ignore[arg-type]

    expected_manifest = (cose / derived).read_bytes()
    assert desc.digest == sha256_digest(expected_manifest)
    assert store.get_manifest(repo, desc.digest) == expected_manifest
    raw_index, media_type = store.client.get_manifest(repo, referrers_tag(subject.digest))
    assert media_type == OCI_INDEX
    if form == "legacy":
        assert raw_index == (cose / INDEX).read_bytes()
    assert [d.digest for d in store.list_signatures(repo, subject.digest)] == [desc.digest]
    found = fetch_signatures(store, repo, subject.digest)
    assert [s.envelope for s in found] == [envelope]
    assert found[0].manifest.envelope.media_type == COSE_MEDIA_TYPE
    store.close()


@pytest.mark.servers
def test_second_signature_appends_and_old_index_is_deleted(shared_fixtures: Path, store: RegistryStore) -> None:
    cose = shared_fixtures / "notation" / "cose"
    envelope = (cose / "ng_internal_cose_signature.sig").read_bytes()
    _, subject, chain, signing_time = fixture_inputs(cose)
    repo = unique_repo("append")
    first = store.push_signature(repo, subject, as_signed(envelope, chain, signing_time), "legacy")
    first_index = sha256_digest((cose / INDEX).read_bytes())
    second = store.push_signature(repo, subject, as_signed(envelope, chain, signing_time), "artifact")
    # Pushing the same signature again must not duplicate the entry.
    store.push_signature(repo, subject, as_signed(envelope, chain, signing_time), "artifact")
    assert [d.digest for d in store.list_signatures(repo, subject.digest)] == [first.digest, second.digest]
    assert store.client.head_manifest(repo, first_index) is None  # orphan index cleaned up
    assert store.client.list_tags(repo) == [referrers_tag(subject.digest)]


@pytest.mark.servers
def test_resolve_and_errors(registry: Registry, store: RegistryStore) -> None:
    repo = unique_repo("resolve")
    image = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                "size": 2,
            },
            "layers": [],
        }
    ).encode()
    store.client.push_blob(repo, b"{}")
    store.client.put_manifest(repo, "v1", image, "application/vnd.oci.image.manifest.v1+json")
    ref = parse_reference(f"{registry.host}/{repo}:v1")
    desc = store.resolve(ref)
    assert desc == Descriptor("application/vnd.oci.image.manifest.v1+json", sha256_digest(image), len(image))
    assert store.resolve(ref.with_digest(desc.digest)) == desc
    with pytest.raises(NotFoundError, match="manifest not found"):
        store.resolve(parse_reference(f"{registry.host}/{repo}:missing"))
    assert store.list_signatures(repo, desc.digest) == []
    with pytest.raises(NotFoundError, match="not found"):
        store.get_blob(repo, "sha256:" + "0" * 64)


@pytest.mark.servers
def test_async_push_matches_sync(shared_fixtures: Path, store: RegistryStore) -> None:
    cose = shared_fixtures / "notation" / "cose"
    envelope = (cose / "ng_internal_cose_signature.sig").read_bytes()
    _, subject, chain, signing_time = fixture_inputs(cose)
    repo = unique_repo("async")

    async def go() -> list[str]:
        desc = await store.apush_signature(repo, subject, as_signed(envelope, chain, signing_time))
        listed = await store.alist_signatures(repo, subject.digest)
        await store.aclose()
        return [desc.digest, *[d.digest for d in listed]]

    digest = sha256_digest((cose / LEGACY).read_bytes())
    assert asyncio.run(go()) == [digest, digest]
    assert store.client.get_manifest(repo, referrers_tag(subject.digest))[0] == (cose / INDEX).read_bytes()


@pytest.mark.servers
def test_tag_list_pagination(registry: Registry) -> None:
    repo = unique_repo("tags")
    with RegistryClient(registry.host, RegistryOptions(insecure_registries=frozenset({registry.host}))) as client:
        client.push_blob(repo, b"{}")
        names = [f"t{i:02d}" for i in range(7)]
        for name in names:
            doc = {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                    "size": 2,
                },
                "layers": [],
                "annotations": {"n": name},
            }
            client.put_manifest(repo, name, json.dumps(doc).encode(), "application/vnd.oci.image.manifest.v1+json")
        assert sorted(client.list_tags(repo, page_size=3)) == names


# --- OCI layout -----------------------------------------------------------------------------------------


def test_layout_push_matches_notation(shared_fixtures: Path, tmp_path: Path) -> None:
    cose = shared_fixtures / "notation" / "cose"
    envelope = (cose / "ng_internal_cose_signature.sig").read_bytes()
    _, subject, chain, signing_time = fixture_inputs(cose)
    root = tmp_path / "layout"
    store = OCILayoutStore(root, create=True)
    desc = store.push_signature("ignored", subject, as_signed(envelope, chain, signing_time))
    legacy = (cose / LEGACY).read_bytes()
    assert desc.digest == sha256_digest(legacy)
    assert (root / "blobs" / "sha256" / desc.digest.split(":")[1]).read_bytes() == legacy
    index_bytes = (cose / INDEX).read_bytes()
    assert (root / "blobs" / "sha256" / sha256_digest(index_bytes).split(":")[1]).read_bytes() == index_bytes
    index = json.loads((root / "index.json").read_bytes())
    assert index["manifests"] == [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": desc.digest, "size": len(legacy)},
        {
            "mediaType": OCI_INDEX,
            "digest": sha256_digest(index_bytes),
            "size": len(index_bytes),
            "annotations": {"org.opencontainers.image.ref.name": "sha256-" + SUBJECT_HEX},
        },
    ]
    assert [s.envelope for s in fetch_signatures(store, "x", subject.digest)] == [envelope]
    second = store.push_signature("ignored", subject, as_signed(envelope, chain, signing_time), "artifact")
    assert [d.digest for d in store.list_signatures("x", subject.digest)] == [desc.digest, second.digest]
    assert not (root / "blobs" / "sha256" / sha256_digest(index_bytes).split(":")[1]).exists()


def test_layout_async_methods_answer_as_the_sync_ones(shared_fixtures: Path, tmp_path: Path) -> None:
    """The protocol's async push and reads run the layout's sync ones in a worker thread: the same bytes land."""
    cose = shared_fixtures / "notation" / "cose"
    envelope = (cose / "ng_internal_cose_signature.sig").read_bytes()
    _, subject, chain, signing_time = fixture_inputs(cose)
    store = OCILayoutStore(tmp_path / "layout", create=True)

    async def go() -> tuple[Descriptor, list[Descriptor], bytes, bytes]:
        desc = await store.apush_signature("ignored", subject, as_signed(envelope, chain, signing_time))
        listed = await store.alist_signatures("x", subject.digest)
        manifest = await store.aget_manifest("x", desc.digest)
        blob = await store.aget_blob("x", parse_signature_manifest(manifest, limits=store.limits).envelope.digest)
        return desc, listed, manifest, blob

    desc, listed, manifest, blob = asyncio.run(go())
    legacy = (cose / LEGACY).read_bytes()
    assert desc.digest == sha256_digest(legacy)
    assert [d.digest for d in listed] == [desc.digest]
    assert (manifest, blob) == (legacy, envelope)


def test_layout_reads_real_notation_layout(shared_fixtures: Path) -> None:
    root = shared_fixtures / "notation" / "oci-layout-e2e-valid-signature"
    store = OCILayoutStore(root)
    subject = store.resolve(parse_reference("layout:v1", default_registry="local"))
    assert subject.digest == "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9"
    listed = store.list_signatures("x", subject.digest)
    assert [d.digest for d in listed] == ["sha256:90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f"]
    assert listed[0].artifact_type == NOTATION_SIGNATURE
    found = fetch_signatures(store, "x", subject.digest)
    assert parse_signature_manifest(store.get_manifest("x", listed[0].digest)).form == "legacy"
    assert found[0].manifest.envelope.media_type == "application/jose+json"


def test_layout_errors(tmp_path: Path) -> None:
    from dct2notation.errors import InputError

    with pytest.raises(NotFoundError, match="not an OCI image layout"):
        OCILayoutStore(tmp_path / "nothing")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        OCILayoutStore(tmp_path / "full", create=True)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "oci-layout").write_text('{"imageLayoutVersion":"2.0.0"}')
    with pytest.raises(InputError, match="2.0.0' is not supported"):
        OCILayoutStore(bad)
    store = OCILayoutStore(tmp_path / "ok", create=True)
    with pytest.raises(NotFoundError, match="not found in index.json"):
        store.resolve(parse_reference("x:v1", default_registry="local"))
    with pytest.raises(NotFoundError, match="blob sha256:0000"):
        store.get_blob("x", "sha256:" + "0" * 64)
    (tmp_path / "ok" / "index.json").write_text("{")
    with pytest.raises(InputError, match="index.json: not JSON"):
        store.list_signatures("x", "sha256:" + "0" * 64)


@pytest.mark.servers
def test_async_store_survives_a_second_event_loop(shared_fixtures: Path, store: RegistryStore) -> None:
    cose = shared_fixtures / "notation" / "cose"
    envelope = (cose / "ng_internal_cose_signature.sig").read_bytes()
    _, subject, chain, signing_time = fixture_inputs(cose)
    repo = unique_repo("loops")
    first = asyncio.run(store.apush_signature(repo, subject, as_signed(envelope, chain, signing_time)))
    second = asyncio.run(store.apush_signature(repo, subject, as_signed(envelope, chain, signing_time), "artifact"))
    assert [d.digest for d in asyncio.run(store.alist_signatures(repo, subject.digest))] == [
        first.digest,
        second.digest,
    ]
