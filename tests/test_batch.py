"""Batch signing from a plan against the real docker-registry: signatures, reuse, journal, failures, faults."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from dct2notation.cli import main
from dct2notation.cli.migrate import sign_plan
from dct2notation.config import DEFAULT_LIMITS, SystemClock
from dct2notation.errors import InputError, UsageError
from dct2notation.keys.resolve import load_signing_key
from dct2notation.keys.testcert import generate_test_key
from dct2notation.migrate.journal import Journal
from dct2notation.migrate.plan import Job, Plan, load_plan, preflight, shard_of
from dct2notation.notation.envelope import parse_envelope, sign_envelope
from dct2notation.notation.manifest import referrers_index, referrers_tag
from dct2notation.oci import (
    EMPTY_JSON,
    OCI_INDEX,
    OCI_MANIFEST,
    THUMBPRINT_ANNOTATION,
    Descriptor,
    go_json,
    sha256_digest,
)
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.options import RegistryOptions
from dct2notation.registry.store import RegistryStore, fetch_signatures
from tests.support.fault_proxy import FaultProxy
from tests.support.loopback import QuietHTTPServer
from tests.support.plans import save_bound
from tests.support.servers import Registry

_ids = itertools.count()
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"


def unique_repo(prefix: str) -> str:
    return f"batch/{prefix}{next(_ids)}"


def repo_over_shards(host: str, prefix: str, count: int, shards: int) -> str:
    """A fresh repository whose ``count`` images (as push_images makes them) land in every one of ``shards``: the split
    hashes the registry's random port, so a test that runs each shard must not leave one empty by chance."""
    while True:
        repo = unique_repo(prefix)
        digests = [sha256_digest(image_manifest(f"{repo}-{n}")) for n in range(count)]
        if len({shard_of(f"{host}/{repo}", d, shards) for d in digests}) == shards:
            return repo


def image_manifest(label: str) -> bytes:
    return go_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": IMAGE_CONFIG, "digest": sha256_digest(EMPTY_JSON), "size": 2},
            "layers": [],
            "annotations": {"label": label},
        }
    )


def push_images(host: str, repo: str, count: int, tag_prefix: str = "v") -> list[tuple[str, int, str]]:
    """``count`` distinct small image manifests, tagged; returns (tag, size, digest)."""
    pushed = []
    with RegistryClient(host, RegistryOptions(insecure_registries=frozenset({host}))) as client:
        client.push_blob(repo, EMPTY_JSON)
        for n in range(count):
            raw = image_manifest(f"{repo}-{n}")
            tag = f"{tag_prefix}{n}"
            client.put_manifest(repo, tag, raw, OCI_MANIFEST)
            pushed.append((tag, len(raw), sha256_digest(raw)))
    return pushed


def make_plan(host: str, repo: str, images: list[tuple[str, int, str]], identities: list[str], mid: str) -> Plan:
    jobs = [
        Job(f"{host}/{repo}", digest, size, identity, f"dct.example/{repo}", "targets/releases", (tag,), mid)
        for tag, size, digest in images
        for identity in identities
    ]
    return Plan(mid, jobs)


def leaf_thumbprint(config: Path, name: str) -> str:
    cert = x509.load_pem_x509_certificate((config / "localkeys" / f"{name}.crt").read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex()


def signatures_by_subject(host: str, repo: str, digests: list[str]) -> dict[str, list[str]]:
    """Every listed signature's leaf thumbprint, per subject, read back independently of the journal."""
    store = RegistryStore(host, RegistryOptions(insecure_registries=frozenset({host})))
    try:
        out: dict[str, list[str]] = {}
        for digest in digests:
            out[digest] = [
                json.loads((d.annotations or {})[THUMBPRINT_ANNOTATION])[0] for d in store.list_signatures(repo, digest)
            ]
        return out
    finally:
        store.close()


def sign(directory: Path, config: Path, options: RegistryOptions, **extra: object) -> int:
    """``sign_plan`` on ``directory/plan.json`` without a progress bar (pytest captures stderr)."""
    return sign_plan(
        plan=directory / "plan.json",
        inventory=directory / "inventory.json",
        config_dir=config,
        registry_options=options,
        progress=False,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def notation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tmp_path_factory.mktemp("notation")
    generate_test_key("alpha", config, key_type="ec-p256", make_default=True)
    generate_test_key("beta", config, key_type="ec-p256")
    return config


def test_batch_signs_each_job_once_then_reuses(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = unique_repo("once")
    images = push_images(registry.host, repo, 6)
    plan = make_plan(registry.host, repo, images, ["alpha", "beta"], "m-once")
    save_bound(plan, tmp_path / "plan.json")
    options = RegistryOptions(insecure_registries=frozenset({registry.host}))

    code = sign_plan(
        plan=tmp_path / "plan.json",
        inventory=tmp_path / "inventory.json",
        config_dir=notation_dir,
        registry_options=options,
        concurrency=4,
        progress=False,
    )
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["counts"] == {"signed": 12}
    assert summary["failures"] == []
    listed = signatures_by_subject(registry.host, repo, [d for _, _, d in images])
    want = sorted([leaf_thumbprint(notation_dir, "alpha"), leaf_thumbprint(notation_dir, "beta")])
    assert {d: sorted(t) for d, t in listed.items()} == {d: want for _, _, d in images}

    # Each job's reported signature digest is the one stored for its subject, and its envelope carries provenance.
    store = RegistryStore(registry.host, options)
    by_key = {(r["digest"], r["identity"]): r["signature"] for r in summary["results"]}
    tag, _, digest = images[0]
    stored = {s.manifest.digest: s for s in fetch_signatures(store, repo, digest)}
    store.close()
    assert set(stored) == {by_key[(digest, "alpha")], by_key[(digest, "beta")]}

    # A fresh journal (lost volume): the registry's own signatures are found and reused, none is duplicated.
    code = sign_plan(
        plan=tmp_path / "plan.json",
        inventory=tmp_path / "inventory.json",
        config_dir=notation_dir,
        registry_options=options,
        journal=tmp_path / "other.sqlite",
        progress=False,
    )
    again = json.loads(capsys.readouterr().out)
    assert code == 0
    assert again["counts"] == {"reused": 12}
    assert {(r["digest"], r["identity"]): r["signature"] for r in again["results"]} == by_key
    assert signatures_by_subject(registry.host, repo, [d for _, _, d in images]) == listed


def test_rerun_with_the_same_journal_skips_done_jobs(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = unique_repo("resume")
    images = push_images(registry.host, repo, 3)
    save_bound(make_plan(registry.host, repo, images, ["alpha"], "m-resume"), tmp_path / "plan.json")
    options = RegistryOptions(insecure_registries=frozenset({registry.host}))
    assert sign(tmp_path, notation_dir, options) == 0
    capsys.readouterr()
    journal = Journal(tmp_path / "plan.json.journal.sqlite")
    assert journal.counts()["signed"] == 3
    assert {e.attempts for e in journal.entries()} == {1}
    journal.close()
    assert sign(tmp_path, notation_dir, options) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["counts"] == {"signed": 3}
    assert [r["attempts"] for r in summary["results"]] == [1, 1, 1]


def test_missing_subject_fails_that_job_with_exit_1_and_lists_it(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = unique_repo("missing")
    images = push_images(registry.host, repo, 2)
    ghost = ("gone", 100, "sha256:" + "ab" * 32)
    save_bound(make_plan(registry.host, repo, [*images, ghost], ["alpha"], "m-missing"), tmp_path / "plan.json")
    options = RegistryOptions(insecure_registries=frozenset({registry.host}))
    code = sign(tmp_path, notation_dir, options)
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert code == 1
    assert summary["counts"] == {"signed": 2, "failed": 1}
    assert [(f["digest"], f["state"]) for f in summary["failures"]] == [(ghost[2], "failed")]
    assert "manifest not found" in summary["failures"][0]["error"]
    assert f"{registry.host}/{repo}@{ghost[2]}" in err


def test_journal_of_another_migration_is_refused(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = unique_repo("foreign")
    images = push_images(registry.host, repo, 1)
    save_bound(make_plan(registry.host, repo, images, ["alpha"], "m-one"), tmp_path / "plan.json")
    journal = Journal(tmp_path / "j.sqlite")
    journal.bind_plan("m-other")
    journal.close()
    code = main(
        [
            "sign",
            str(tmp_path / "plan.json"),
            "--inventory",
            str(tmp_path / "inventory.json"),
            "--config-dir",
            str(notation_dir),
            "--insecure-registry",
            registry.host,
            "--journal",
            str(tmp_path / "j.sqlite"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 2
    assert "journal belongs to migration 'm-other', not 'm-one'" in err
    assert "Traceback" not in err


def test_unreachable_registry_fails_preflight_before_any_job(
    notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.servers import free_port

    host = f"127.0.0.1:{free_port()}"
    save_bound(
        make_plan(host, "nobody", [("v1", 10, "sha256:" + "cd" * 32)], ["alpha"], "m-down"), tmp_path / "plan.json"
    )
    argv = ["sign", str(tmp_path / "plan.json"), "--inventory", str(tmp_path / "inventory.json")]
    code = main([*argv, "--config-dir", str(notation_dir), "--insecure-registry", host])
    out, err = capsys.readouterr()
    assert code == 3
    assert f"pre-flight {host}: cannot read and write {host}/nobody" in err
    journal = Journal(tmp_path / "plan.json.journal.sqlite")
    assert journal.entries() == []
    journal.close()


def test_fault_proxy_batch_completes_and_rerun_finishes_the_rest(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = unique_repo("faults")
    images = push_images(registry.host, repo, 30)
    proxy = FaultProxy(registry.url, every=4, kinds=("503", "429", "drop", "drop-after"), retry_after=0).start()
    try:
        save_bound(make_plan(proxy.host, repo, images, ["alpha"], "m-faults"), tmp_path / "plan.json")
        options = RegistryOptions(insecure_registries=frozenset({proxy.host}))
        code = sign_plan(
            plan=tmp_path / "plan.json",
            inventory=tmp_path / "inventory.json",
            config_dir=notation_dir,
            registry_options=options,
            concurrency=8,
            progress=False,
        )
        first = json.loads(capsys.readouterr().out)
        assert sum(proxy.faults.values()) > 0
        # Whatever outlived the retry budget is listed per job; a rerun finishes exactly those.
        failed = {f["digest"] for f in first["failures"]}
        assert code == (1 if failed else 0)
        assert all(f["error"] for f in first["failures"])
        for _ in range(3):
            if code == 0:
                break
            code = sign_plan(
                plan=tmp_path / "plan.json",
                inventory=tmp_path / "inventory.json",
                config_dir=notation_dir,
                registry_options=options,
                progress=False,
            )
            capsys.readouterr()
        assert code == 0
    finally:
        proxy.stop()
    listed = signatures_by_subject(registry.host, repo, [d for _, _, d in images])
    alpha = leaf_thumbprint(notation_dir, "alpha")
    assert listed == {d: [alpha] for _, _, d in images}


def test_dry_run_lists_the_shard_and_signs_nothing(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = repo_over_shards(registry.host, "dry", 4, 2)  # shard 1 is never empty: the listing proves something
    images = push_images(registry.host, repo, 4)
    plan = make_plan(registry.host, repo, images, ["alpha"], "m-dry")
    save_bound(plan, tmp_path / "plan.json")
    options = RegistryOptions(insecure_registries=frozenset({registry.host}))
    assert sign(tmp_path, notation_dir, options, dry_run=True, shard="1/2") == 0
    out = json.loads(capsys.readouterr().out)
    want = [j.digest for j in plan.jobs if shard_of(j.repository, j.digest, 2) == 1]
    assert [j["digest"] for j in out["jobs"]] == want
    assert not (tmp_path / "plan.json.shard-1-of-2.journal.sqlite").exists()
    assert signatures_by_subject(registry.host, repo, [d for _, _, d in images]) == {d: [] for _, _, d in images}


def test_rate_limit_bounds_requests_per_registry(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = unique_repo("rate")
    images = push_images(registry.host, repo, 6)
    save_bound(make_plan(registry.host, repo, images, ["alpha"], "m-rate"), tmp_path / "plan.json")
    options = RegistryOptions(insecure_registries=frozenset({registry.host}))
    started = time.monotonic()
    assert sign(tmp_path, notation_dir, options, rate_limit=12.0, concurrency=6) == 0
    elapsed = time.monotonic() - started
    summary = json.loads(capsys.readouterr().out)
    assert summary["counts"] == {"signed": 6}
    # 6 jobs x 6 tokens = 36 requests at 12/s with a one-second burst of 12: at least 2 s.
    assert elapsed >= 2.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"concurrency": 0}, "--concurrency: must be at least 1"),
        ({"rate_limit": 0.0}, "--rate-limit: must be greater than 0"),
        ({"shard": "2/2"}, "--shard '2/2': index must be in 0..N-1 and N at least 1"),
    ],
)
def test_bad_batch_options(tmp_path: Path, notation_dir: Path, extra: dict[str, object], message: str) -> None:
    save_bound(
        make_plan("r.invalid", "x", [("v1", 1, "sha256:" + "ef" * 32)], ["alpha"], "m-bad"), tmp_path / "plan.json"
    )
    with pytest.raises(UsageError) as caught:
        sign(tmp_path, notation_dir, RegistryOptions(), **extra)
    assert caught.value.message == message


def _signed_subjects(store: RegistryStore, repo: str, digest: str) -> list[tuple[str, str, int]]:
    """(mediaType, digest, size) of the subject in each stored signature's manifest and in its signed payload."""
    out = []
    for found in fetch_signatures(store, repo, digest):
        payload = parse_envelope(found.envelope, DEFAULT_LIMITS).target_artifact
        assert (payload.media_type, payload.digest, payload.size) == (
            found.manifest.subject.media_type,
            found.manifest.subject.digest,
            found.manifest.subject.size,
        )
        out.append((payload.media_type, payload.digest, payload.size))
    return out


def test_preflight_media_type_saves_a_head_per_job_and_signs_the_same_subject(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = unique_repo("mediatype")
    images = push_images(registry.host, repo, 5)
    options = RegistryOptions(insecure_registries=frozenset({registry.host}))
    plan = make_plan(registry.host, repo, images, ["alpha"], "m-mediatype")
    # The last job's TUF length disagrees with the registry: reported, and no mediaType is recorded for it.
    plan.jobs[-1] = dataclasses.replace(plan.jobs[-1], size=plan.jobs[-1].size + 1)
    store = RegistryStore(registry.host, options)

    async def check() -> None:
        try:
            await preflight(plan, lambda _: store)
        finally:
            await store.aclose()

    asyncio.run(check())
    assert [j.media_type for j in plan.jobs] == [OCI_MANIFEST] * 4 + [None]
    assert plan.preflight == {"subjects": 5, "jobs": 5, "findings": {"size-mismatch": 1}}
    # A plan made without pre-flight (or an older one) carries no mediaType: that job is HEADed at signing time.
    plan.jobs[3] = dataclasses.replace(plan.jobs[3], media_type=None)
    save_bound(plan, tmp_path / "plan.json")
    assert [j.media_type for j in load_plan(tmp_path / "plan.json").jobs] == [OCI_MANIFEST] * 3 + [None, None]

    proxy = FaultProxy(registry.url, every=0).start()  # no faults: it counts the requests
    try:
        proxied = dataclasses.replace(
            plan, jobs=[dataclasses.replace(j, repository=f"{proxy.host}/{repo}") for j in plan.jobs]
        )
        save_bound(proxied, tmp_path / "plan.json")
        code = sign(tmp_path, notation_dir, RegistryOptions(insecure_registries=frozenset({proxy.host})), concurrency=1)
        requests = proxy.request_count
    finally:
        proxy.stop()
    assert code == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"signed": 5}
    # Pre-flight of sign: HEAD subject + HEAD empty config. The first job probes the referrers API once. Each job:
    # GET tag index, POST + PUT envelope, PUT signature manifest, PUT tag index; + HEAD without mediaType. Then the
    # reconciliation pass, per job: GET tag index (the listing) and HEAD of the signature manifest.
    assert requests == 2 + 1 + 5 * 5 + 2 + 2 * 5
    try:
        assert [_signed_subjects(store, repo, digest) for _, _, digest in images] == [
            [(OCI_MANIFEST, digest, size)] for _, size, digest in images
        ]
    finally:
        store.close()


def test_plan_media_type_must_be_a_non_empty_string(tmp_path: Path) -> None:
    doc = make_plan("h", "r", [("v1", 10, "sha256:" + "ab" * 32)], ["alpha"], "m").to_dict()
    doc["jobs"][0]["mediaType"] = ""
    (tmp_path / "plan.json").write_text(json.dumps(doc))
    with pytest.raises(InputError) as caught:
        load_plan(tmp_path / "plan.json")
    assert caught.value.message == f"{tmp_path / 'plan.json'}: jobs[0]: field 'mediaType' must be a non-empty string"


class _Clobberer(QuietHTTPServer):
    """Forwards to the registry; right after the first tag-index PUT it writes ``index`` over that tag, as a foreign
    writer that read the index before our write and wrote after it would."""

    def __init__(self, upstream: str, index: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _ClobberHandler)
        self.upstream = httpx.Client(base_url=upstream, timeout=30)
        self.index = index
        self.clobbered: list[str] = []
        self.lock = threading.Lock()


class _ClobberHandler(BaseHTTPRequestHandler):
    server: _Clobberer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        return None

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")]
        reply = self.server.upstream.request(self.command, self.path, headers=headers, content=body)
        with self.server.lock:
            clobber = self.command == "PUT" and "/manifests/sha256-" in self.path and not self.server.clobbered
            if clobber:
                self.server.clobbered.append(self.path)
                again = self.server.upstream.put(
                    self.path, content=self.server.index, headers={"Content-Type": OCI_INDEX}
                )
                assert again.status_code == 201
        self.send_response(reply.status_code)
        for key, value in reply.headers.multi_items():
            if key.lower() not in ("connection", "content-length", "transfer-encoding"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.content)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward  # noqa: N815 - http.server naming


def test_an_entry_lost_after_the_index_write_is_written_again_and_the_foreign_one_kept(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = unique_repo("clobber")
    (_, size, digest) = push_images(registry.host, repo, 1)[0]
    direct = RegistryOptions(insecure_registries=frozenset({registry.host}))
    # A foreign signature (beta) whose manifest exists but which only the racing writer puts in the index.
    api_only = RegistryStore(registry.host, dataclasses.replace(direct, referrers="api"))
    beta = load_signing_key("beta", notation_dir, DEFAULT_LIMITS)
    subject = Descriptor(OCI_MANIFEST, digest, size)
    signed = sign_envelope(subject, beta, clock=SystemClock())
    foreign = api_only.push_signature(repo, subject, signed)
    api_only.close()
    server = _Clobberer(registry.url, referrers_index([foreign]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host = f"127.0.0.1:{server.server_address[1]}"
    try:
        save_bound(make_plan(host, repo, [("v0", size, digest)], ["alpha"], "m-clobber"), tmp_path / "plan.json")
        code = sign(tmp_path, notation_dir, RegistryOptions(insecure_registries=frozenset({host})))
    finally:
        server.shutdown()
        server.server_close()
        server.upstream.close()
        thread.join(5)
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert server.clobbered == [f"/v2/{repo}/manifests/{referrers_tag(digest)}"]
    ours = summary["results"][0]["signature"]
    store = RegistryStore(registry.host, direct)
    try:
        assert [d.digest for d in store.list_signatures(repo, digest)] == [foreign.digest, ours]
    finally:
        store.close()
    alpha, beta_thumb = leaf_thumbprint(notation_dir, "alpha"), leaf_thumbprint(notation_dir, "beta")
    assert signatures_by_subject(registry.host, repo, [digest]) == {digest: [beta_thumb, alpha]}
