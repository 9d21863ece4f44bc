"""Referrers-API path, fault injection and concurrent pushes against loopback servers."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dct2notation.config import Limits
from dct2notation.errors import RemoteError
from dct2notation.notation.manifest import referrers_tag
from dct2notation.oci import NOTATION_SIGNATURE, sha256_digest
from dct2notation.registry.client import RegistryClient, next_link, parse_retry_after
from dct2notation.registry.options import RegistryOptions
from dct2notation.registry.store import RegistryStore, fetch_signatures
from tests.support.fault_proxy import FaultProxy
from tests.support.referrers_registry import ReferrersRegistry
from tests.support.servers import Registry
from tests.test_manifest import as_signed, fixture_inputs

_ids = itertools.count()


def plain(host: str, **kw: object) -> RegistryOptions:
    return RegistryOptions(insecure_registries=frozenset({host}), **kw)  # type: ignore[arg-type]


@pytest.fixture
def referrers_registry() -> Iterator[ReferrersRegistry]:
    server = ReferrersRegistry(page_size=2).start()
    yield server
    server.stop()


def test_referrers_api_path(shared_fixtures: Path, referrers_registry: ReferrersRegistry) -> None:
    cose = shared_fixtures / "notation" / "cose"
    envelope = (cose / "ng_internal_cose_signature.sig").read_bytes()
    _, subject, chain, signing_time = fixture_inputs(cose)
    store = RegistryStore(referrers_registry.host, plain(referrers_registry.host))
    pushed = [
        store.push_signature(
            "api/repo", subject, as_signed(envelope, chain, signing_time + dt.timedelta(seconds=i)), form
        )
        for i, form in enumerate(["legacy", "artifact", "legacy", "artifact", "legacy"])
    ]
    # OCI-Subject came back, so no tag index was written (what Notation 2 and oras do).
    assert referrers_registry.tags("api/repo") == []
    listed = store.list_signatures("api/repo", subject.digest)
    assert sorted(d.digest for d in listed) == sorted(d.digest for d in pushed)  # 5 entries over 3 pages
    assert all(d.artifact_type == NOTATION_SIGNATURE for d in listed)
    assert ("GET", f"/v2/api/repo/referrers/{subject.digest}") in referrers_registry.requests
    found = fetch_signatures(store, "api/repo", subject.digest)
    assert [s.envelope for s in found] == [envelope] * 5
    # The manifest bytes are the same whichever referrers path the registry takes.
    assert (
        store.get_manifest("api/repo", pushed[0].digest)
        == (cose / "DERIVED_sigmanifest_legacy-form_ng_internal_cose_signature.json").read_bytes()
    )


def test_forced_tag_schema_on_referrers_registry(shared_fixtures: Path, referrers_registry: ReferrersRegistry) -> None:
    cose = shared_fixtures / "notation" / "cose"
    envelope = (cose / "ng_internal_cose_signature.sig").read_bytes()
    _, subject, chain, signing_time = fixture_inputs(cose)
    store = RegistryStore(referrers_registry.host, plain(referrers_registry.host, referrers="tag"))
    store.push_signature("tag/repo", subject, as_signed(envelope, chain, signing_time))
    assert referrers_registry.tags("tag/repo") == [referrers_tag(subject.digest)]


@pytest.mark.servers
def test_faults_are_retried_without_duplicates(shared_fixtures: Path, registry: Registry) -> None:
    cose = shared_fixtures / "notation" / "cose"
    envelope = (cose / "ng_internal_cose_signature.sig").read_bytes()
    _, subject, chain, signing_time = fixture_inputs(cose)
    proxy = FaultProxy(registry.url, every=4, retry_after=1).start()
    try:
        store = RegistryStore(proxy.host, plain(proxy.host))
        repo = f"faults/r{next(_ids)}"
        pushed = [
            store.push_signature(repo, subject, as_signed(envelope, chain, signing_time + dt.timedelta(seconds=i)))
            for i in range(4)
        ]
        direct = RegistryClient(registry.host, plain(registry.host))
        entries = direct.tag_index(repo, subject.digest)
        assert [e.digest for e in entries] == [d.digest for d in pushed]
        assert set(proxy.faults) == {"503", "429", "drop", "drop-after"}
        assert store.stats.total == sum(proxy.faults.values())
        assert store.stats.by_reason["HTTP 429"] == proxy.faults["429"]
        assert store.stats.to_dict()["total"] == store.stats.total
    finally:
        proxy.stop()


@pytest.mark.servers
def test_retries_are_bounded(registry: Registry) -> None:
    proxy = FaultProxy(registry.url, every=1, kinds=("503",)).start()
    try:
        client = RegistryClient(proxy.host, plain(proxy.host, limits=Limits(retry_attempts=3)))
        with pytest.raises(RemoteError, match=r"HTTP 503 \(gave up after 3 attempts\)"):
            client.ping()
        assert proxy.request_count == 3
        assert client.stats.total == 2
    finally:
        proxy.stop()


@pytest.mark.servers
def test_fifty_concurrent_async_signatures(shared_fixtures: Path, registry: Registry) -> None:
    cose = shared_fixtures / "notation" / "cose"
    envelope = (cose / "ng_internal_cose_signature.sig").read_bytes()
    _, subject, chain, signing_time = fixture_inputs(cose)
    store = RegistryStore(registry.host, plain(registry.host))
    repo = f"concurrent/r{next(_ids)}"

    async def go() -> list[str]:
        results = await asyncio.gather(
            *[
                store.apush_signature(repo, subject, as_signed(envelope, chain, signing_time + dt.timedelta(seconds=i)))
                for i in range(50)
            ]
        )
        await store.aclose()
        return [d.digest for d in results]

    digests = asyncio.run(go())
    assert len(set(digests)) == 50
    assert sorted(e.digest for e in store.client.tag_index(repo, subject.digest)) == sorted(digests)


@pytest.mark.servers
def test_fifty_concurrent_threaded_signatures(shared_fixtures: Path, registry: Registry) -> None:
    cose = shared_fixtures / "notation" / "cose"
    envelope = (cose / "ng_internal_cose_signature.sig").read_bytes()
    _, subject, chain, signing_time = fixture_inputs(cose)
    repo = f"threads/r{next(_ids)}"
    stores = [RegistryStore(registry.host, plain(registry.host)) for _ in range(5)]
    with ThreadPoolExecutor(10) as pool:
        digests = list(
            pool.map(
                lambda i: (
                    stores[i % 5]
                    .push_signature(repo, subject, as_signed(envelope, chain, signing_time + dt.timedelta(minutes=i)))
                    .digest
                ),
                range(50),
            )
        )
    assert sorted(e.digest for e in stores[0].client.tag_index(repo, subject.digest)) == sorted(digests)


def test_retry_after_and_link_parsing() -> None:
    import httpx

    assert parse_retry_after("3") == 3.0
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:05 GMT", now) == 5.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    base = httpx.URL("http://r/v2/a/tags/list?n=2")
    headers = httpx.Headers({"Link": '</v2/a/tags/list?n=2&last=b>; rel="next"'})
    assert next_link(headers, base) == httpx.URL("http://r/v2/a/tags/list?n=2&last=b")
    assert next_link(httpx.Headers({}), base) is None
    assert sha256_digest(b"") != ""


@pytest.mark.servers
def test_custom_ca_and_tls_errors(registry: Registry, tmp_path: Path) -> None:
    from dct2notation.errors import UsageError
    from tests.support.servers import make_tls

    tls = make_tls(tmp_path / "tls")
    proxy = FaultProxy(registry.url, every=0, tls=tls).start()
    try:
        with RegistryClient(proxy.host, RegistryOptions(ca_file=tls.ca_cert)) as client:
            client.ping()
            assert client.push_blob("tls/repo", b"hello").digest == sha256_digest(b"hello")
        with RegistryClient(proxy.host) as client, pytest.raises(UsageError, match=r"not trusted \(use --ca-file\)"):
            client.ping()
    finally:
        proxy.stop()
    with RegistryClient(registry.host) as client, pytest.raises(UsageError, match="needs --insecure-registry HOST"):
        client.ping()


@pytest.mark.servers
def test_reread_catches_an_entry_lost_to_another_writer(shared_fixtures: Path, registry: Registry) -> None:
    """Another process (no shared lock) overwrites the index between our write and our re-read: we add it back.

    The two writers' steps are interleaved by hand so the race happens every time.
    """
    cose = shared_fixtures / "notation" / "cose"
    envelope = (cose / "ng_internal_cose_signature.sig").read_bytes()
    _, subject, chain, signing_time = fixture_inputs(cose)
    repo = f"race/r{next(_ids)}"
    # Manifests only (referrers="api" skips the index): the index is then written by hand below.
    store = RegistryStore(registry.host, plain(registry.host, referrers="api"))
    entry_a = store.push_signature(repo, subject, as_signed(envelope, chain, signing_time))
    entry_b = store.push_signature(repo, subject, as_signed(envelope, chain, signing_time + dt.timedelta(hours=1)))
    client, core = store.client, store.client.core
    send = client._send  # one HTTP exchange, no retry: the steps below must stay in this exact order

    writer_a = core.op_add_to_tag_index(repo, subject.digest, entry_a)
    stale_read = send(next(writer_a))  # A reads the (still absent) index ...
    writer_b = core.op_add_to_tag_index(repo, subject.digest, entry_b)
    call = writer_b.send(send(next(writer_b)))  # B reads it too and gets its PUT
    b_reread = writer_b.send(send(call))  # B writes [b]; its next step is the re-read
    call = writer_a.send(stale_read)  # ... A writes [a] from its stale read, dropping b
    with pytest.raises(StopIteration) as a_done:
        writer_a.send(send(writer_a.send(send(call))))
    assert a_done.value.value is True
    with pytest.raises(StopIteration) as b_done:
        writer_b.send(send(b_reread))  # B's re-read finds its entry gone
    assert b_done.value.value is False

    client.add_referrer_by_tag(repo, subject.digest, entry_b)  # the retry loop callers run
    assert [e.digest for e in client.tag_index(repo, subject.digest)] == [entry_a.digest, entry_b.digest]
