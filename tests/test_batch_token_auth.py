"""A batch against a token-auth registry (distribution 2.8 with ``auth.token``, as Docker Hub, Harbor and GHCR
run): a Bearer token is scoped to one repository, so per-repository costs (the 401 challenge, the token fetch) are
paid once per repository and access, not on every request once workers interleave repositories (issue 19: an
estate is hundreds of repositories)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from dct2notation.migrate.plan import Plan
from dct2notation.oci import EMPTY_JSON, OCI_MANIFEST, sha256_digest
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.options import Basic, RegistryOptions
from tests.support.notary_builders import TokenEndpoint
from tests.support.plans import save_bound
from tests.support.relay import Headers, Relay
from tests.support.servers import Registry, have
from tests.test_batch import image_manifest, make_plan, sign

USER, PASSWORD = "alice", "s3cret-pw"
REPOS = ["tok/app0", "tok/app1", "tok/app2"]


class _Challenges(Relay):
    """Forwards to the registry and counts its 401 answers per repository."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.challenged: Counter[str] = Counter()
        self.requests = 0

    def handle_call(self, method: str, path: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        reply = self.forward(method, path, headers, body)
        with self.lock:
            self.requests += 1
            if reply[0] == 401:
                self.challenged[next(r for r in REPOS if path.startswith(f"/v2/{r}/"))] += 1
        return reply


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, TokenEndpoint]]:
    if not have("docker-registry"):
        pytest.skip("docker-registry is not installed")
    work = tmp_path_factory.mktemp("token-registry")
    endpoint = TokenEndpoint(work / "token", USER, PASSWORD, service="registry-test")
    options = endpoint.auth_config()["options"]
    assert isinstance(options, dict)
    registry = Registry(work / "registry", token_auth={k: str(v) for k, v in options.items()}).start()
    yield registry, endpoint
    registry.stop()
    endpoint.close()


@pytest.fixture(scope="module")
def notation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dct2notation.keys.testcert import generate_test_key

    config = tmp_path_factory.mktemp("notation-token")
    generate_test_key("alpha", config, key_type="ec-p256", make_default=True)
    return config


def test_a_batch_over_three_repositories_pays_each_repositorys_token_once_not_a_401_per_request(
    token_registry: tuple[Registry, TokenEndpoint],
    notation_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Six jobs over three repositories, taken in turn (app0, app1, app2, app0, …): every 401 is on a repository's
    first requests (a pull and a push token each), none after. Old HEAD sent the one token it had last used with
    every request, another repository's whenever the repository changed: a 401 and a retry for most requests."""
    registry, endpoint = token_registry
    relay = _Challenges(registry.url).start()
    token_host = f"127.0.0.1:{endpoint.port}"
    options = RegistryOptions(
        insecure_registries=frozenset({relay.host, token_host}), credentials=Basic(USER, PASSWORD)
    )
    try:
        images: dict[str, list[tuple[str, int, str]]] = {}
        with RegistryClient(relay.host, options) as client:
            for repo in REPOS:
                client.push_blob(repo, EMPTY_JSON)
                images[repo] = []
                for n in range(2):
                    raw = image_manifest(f"{repo}-token-{n}")
                    client.put_manifest(repo, f"v{n}", raw, OCI_MANIFEST)
                    images[repo].append((f"v{n}", len(raw), sha256_digest(raw)))
        per_repo = [make_plan(relay.host, repo, images[repo], ["alpha"], "m-token").jobs for repo in REPOS]
        interleaved = [job for round_ in zip(*per_repo, strict=True) for job in round_]
        save_bound(Plan("m-token", interleaved), tmp_path / "plan.json")
        relay.challenged.clear()
        relay.requests = 0
        before = len(endpoint.requests)
        code = sign(tmp_path, notation_dir, options, concurrency=1)
        issued = endpoint.requests[before:]
    finally:
        relay.stop()
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["counts"] == {"signed": 6}
    # app0: the pre-flight's subject HEAD (pull) and its first job's upload POST (push). app1 and app2: their first
    # job's listing GET and empty-config HEAD (pull, asked at once: both are challenged) and upload POST (push).
    # Each repository: one 401 for reading (its first subject HEAD) and one for writing (its first upload POST), one
    # token of each scope; nothing after.
    assert relay.challenged == Counter(dict.fromkeys(REPOS, 2))
    assert sorted(scope for _, scope in issued) == sorted(
        f"repository:{repo}:{access}" for repo in REPOS for access in ("pull", "pull,push")
    )
    # 1 pre-flight HEAD + the 7 requests per signature, + the referrers probe, + the 401s: no retry besides them.
    # Pre-flight: subject HEAD, empty-config HEAD. Per job (a plan without media types): subject HEAD + the 7 requests
    # of a signature. Once: the referrers probe; the empty-config HEAD of app1 and app2. And the six 401s: no other
    # request was sent twice.
    assert relay.requests == 2 + 6 * (1 + 7) + 1 + 2 + 6


@pytest.mark.parametrize(
    ("path", "repository"),
    [
        ("/v2/tok/app0/manifests/sha256-ab", "tok/app0"),
        ("/v2/tok/app0/blobs/uploads/", "tok/app0"),
        ("/v2/tok/app0/blobs/uploads/0f3c?_state=x", "tok/app0"),
        ("/v2/a/blobs/b/manifests/v1", "a/blobs/b"),  # a name may hold an API word: the last marker is the API's
        ("/v2/a/manifests/b/blobs/sha256:00", "a/manifests/b"),
        ("/v2/library/app/tags/list", "library/app"),
        ("/v2/library/app/referrers/sha256:00", "library/app"),
        ("/v2/example.com/org/app/_trust/tuf/root.json", "example.com/org/app"),
        ("/v2/", None),
        ("/v2/_catalog", None),
        ("/token", None),
    ],
)
def test_a_bearer_token_is_kept_per_repository_named_by_the_request_path(path: str, repository: str | None) -> None:
    from dct2notation.auth import _repository

    assert _repository(path) == repository
