"""The check's shortcut for unsigned digests on a registry without the referrers API, against docker-registry 2.8.

Once a store knows the registry has no referrers API, signatures are listed only by the ``sha256-<hex>`` tag index;
the tag listing the check makes anyway then says which subjects have an index at all. The shortcut must give the
same verdict as reading the (absent) index, and must not be taken before the store knows the API is absent.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import httpx
import pytest

from dct2notation.config import DEFAULT_LIMITS, SystemClock
from dct2notation.keys.resolve import load_signing_key
from dct2notation.keys.testcert import generate_test_key
from dct2notation.migrate.coexist import NotationResult, StoreView, verify_digest
from dct2notation.notation.policy import TrustPolicyDocument
from dct2notation.notation.truststore import TrustStore
from dct2notation.oci import EMPTY_JSON, OCI_MANIFEST, Descriptor, sha256_digest
from dct2notation.registry.options import RegistryOptions
from dct2notation.registry.signing import sign_artifact
from dct2notation.registry.store import RegistryStore
from dct2notation.registry.target import open_target
from tests.support.servers import Registry
from tests.test_batch import image_manifest
from tests.test_coexist_scenario import write_policy

_ids = itertools.count()


class CountingTransport(httpx.HTTPTransport):
    """A real loopback transport that records each request's method and path."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        return super().handle_request(request)


class Estate:
    """One repository holding a signed image and an unsigned one."""

    def __init__(self, registry: Registry, tmp_path: Path) -> None:
        self.host = registry.host
        self.repo = f"skip{next(_ids)}/app"
        self.repository = f"{self.host}/{self.repo}"
        self.options = RegistryOptions(insecure_registries=frozenset({self.host}))
        config = tmp_path / "notation"
        generate_test_key("trusted", config, key_type="ec-p256", make_default=True)
        policy, truststore = write_policy(tmp_path, config, "trusted")
        self.policy = TrustPolicyDocument.load(policy)
        self.truststore = TrustStore(truststore)
        pusher = RegistryStore(self.host, self.options)
        try:
            pusher.client.push_blob(self.repo, EMPTY_JSON)  # the images' config
            self.signed = self._push(pusher, "signed")
            self.unsigned = self._push(pusher, "unsigned")
        finally:
            pusher.close()
        target = open_target(f"{self.repository}@{self.signed.digest}", options=self.options)
        try:
            sign_artifact(target, load_signing_key("trusted", config), clock=SystemClock())
        finally:
            target.close()

    def _push(self, store: RegistryStore, tag: str) -> Descriptor:
        raw = image_manifest(f"{self.repo} {tag}")
        store.client.put_manifest(self.repo, tag, raw, OCI_MANIFEST)
        return Descriptor(OCI_MANIFEST, sha256_digest(raw), len(raw))

    def view(self, *, listed: bool) -> tuple[StoreView, CountingTransport]:
        """A view over a fresh counting store; ``listed``: the run's tag listing has been made."""
        transport = CountingTransport()
        store = RegistryStore(self.host, self.options, transport=transport)
        view = StoreView(lambda _: store, lambda _: store.client.list_tags(self.repo))
        if listed:
            view.list_tags(self.repository)
        transport.requests.clear()
        return view, transport

    def verify(self, view: StoreView, subject: Descriptor) -> NotationResult:
        return verify_digest(
            view,
            self.repository,
            subject,
            policy=self.policy,
            truststore=self.truststore,
            clock=SystemClock(),
            limits=DEFAULT_LIMITS,
        )


@pytest.fixture
def estate(registry: Registry, tmp_path: Path) -> Estate:
    return Estate(registry, tmp_path)


def test_unsigned_digest_same_verdict_without_a_request(estate: Estate) -> None:
    slow, slow_requests = estate.view(listed=False)
    fast, fast_requests = estate.view(listed=True)
    # The first subject teaches each store that the registry has no referrers API (the 404 probe).
    signed_slow, signed_fast = estate.verify(slow, estate.signed), estate.verify(fast, estate.signed)
    assert signed_slow == signed_fast
    assert signed_fast.verdict == "valid"
    assert fast_requests.requests == slow_requests.requests
    assert fast_requests.requests[0] == f"GET /v2/{estate.repo}/referrers/{estate.signed.digest}"
    slow_requests.requests.clear()
    fast_requests.requests.clear()

    missing = NotationResult("missing", None, "no signature is associated with the artifact")
    assert estate.verify(slow, estate.unsigned) == missing
    assert estate.verify(fast, estate.unsigned) == missing
    hex_ = estate.unsigned.digest.removeprefix("sha256:")
    assert slow_requests.requests == [f"GET /v2/{estate.repo}/manifests/sha256-{hex_}"]
    assert fast_requests.requests == []


def test_no_shortcut_before_the_store_knows_the_referrers_api_is_absent(estate: Estate) -> None:
    fast, requests = estate.view(listed=True)
    # A registry with the referrers API lists signatures without any sha256-<hex> tag, so the listing alone proves
    # nothing: the store must ask first.
    assert estate.verify(fast, estate.unsigned).verdict == "missing"
    hex_ = estate.unsigned.digest.removeprefix("sha256:")
    assert requests.requests == [
        f"GET /v2/{estate.repo}/referrers/{estate.unsigned.digest}",
        f"GET /v2/{estate.repo}/manifests/sha256-{hex_}",
    ]


def test_signed_digest_is_still_read_with_the_listing(estate: Estate) -> None:
    fast, requests = estate.view(listed=True)
    estate.verify(fast, estate.unsigned)  # learn that the referrers API is absent
    requests.requests.clear()
    result = estate.verify(fast, estate.signed)
    assert result.verdict == "valid"
    hex_ = estate.signed.digest.removeprefix("sha256:")
    assert requests.requests[0] == f"GET /v2/{estate.repo}/manifests/sha256-{hex_}"
    assert len(requests.requests) == 3  # the index, the signature manifest, the envelope
