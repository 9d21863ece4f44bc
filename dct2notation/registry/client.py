"""OCI distribution client on httpx, in a sync and an async flavour that share every request and decision.

Each registry operation is written once, as a generator that yields :class:`Call` objects and receives
:class:`Reply` objects (the shape of ``httpx.Auth.auth_flow``). :class:`RegistryClient` and
:class:`AsyncRegistryClient` only drive those generators: they send, read the body under a size cap, and retry.
A retry restarts the whole operation, so an interrupted blob upload starts again from its POST and a
read-modify-write of a referrers index re-reads the index.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from ..auth import registry_auth as shared_registry_auth
from ..deadline import Deadline, bounded_client, deadline
from ..errors import (
    AuthError,
    Dct2NotationError,
    DeadlineExceeded,
    DigestMismatchError,
    InputError,
    NotFoundError,
    RemoteError,
    UsageError,
)
from ..jsontext import loads as json_loads
from ..notation.manifest import parse_index, referrers_index, referrers_tag
from ..oci import MANIFEST_ACCEPT, OCI_INDEX, OCI_MANIFEST, Descriptor, sha256_digest
from ..tlstrust import is_tls_listener_answer
from ..tlstrust import tls_context as host_tls_context
from .options import RegistryOptions

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
INITIAL_BACKOFF_SECONDS = 0.2
MAX_PAGES = 1000  # a Link loop on a broken registry must end
MAX_INDEX_WRITE_ATTEMPTS = 10


@dataclass(frozen=True)
class Call:
    request: httpx.Request
    max_bytes: int


@dataclass(frozen=True)
class Reply:
    status: int
    headers: httpx.Headers
    content: bytes
    url: httpx.URL


Op = Generator[Call, Reply, T]


class ForeignIndexError(RemoteError):
    """The ``sha256-<hex>`` tag names something that is not a referrers index we may rewrite (the subject itself, an
    image index, anything not made of referrer descriptors): it is reported and left alone, never overwritten."""


@dataclass(frozen=True)
class TagIndex:
    """What the ``sha256-<hex>`` tag holds: its referrer entries, the index digest (None: no tag), and why it may not
    be rewritten (None: absent, or a pure referrers index)."""

    entries: list[Descriptor]
    digest: str | None
    foreign: str | None = None


def _stderr_warn(message: str) -> None:
    import sys

    sys.stderr.write(message + "\n")


def referrers_index_problem(raw: bytes, subject_digest: str, limits: Any) -> str | None:
    """Why ``raw`` (what the subject's ``sha256-<hex>`` tag resolves to) is not a referrers index, or None.

    A referrers index is an OCI image index that is not the subject and whose every entry is a referrer descriptor:
    a manifest with an ``artifactType`` and no ``platform``. Anything else is someone's content (GitLab resolves the
    tag to the subject itself; on distribution anyone may push that tag)."""
    if sha256_digest(raw) == subject_digest:
        return "the tag resolves to the subject itself"
    try:
        doc = json_loads(raw)
    except ValueError:
        return "not JSON"
    if not isinstance(doc, dict) or doc.get("mediaType") != OCI_INDEX:
        kind = doc.get("mediaType") if isinstance(doc, dict) else None
        return f"not an OCI image index (mediaType {kind!r})"
    try:
        entries = parse_index(raw, where="referrers index", limits=limits)
    except InputError as exc:
        return str(exc)
    for i, entry in enumerate(entries):
        if not entry.artifact_type or entry.media_type not in (OCI_MANIFEST, OCI_INDEX) or "platform" in entry.extra:
            return f"manifests[{i}] ({entry.digest}) is not a referrer descriptor (no artifactType, or a platform)"
    return None


class RetryableError(RemoteError):
    """5xx, 429 or a dropped connection: the operation is started again after a pause."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class RetryStats:
    """Retries taken, by reason; reports print it so operators see a flaky registry."""

    by_reason: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def add(self, reason: str) -> None:
        with self._lock:
            self.by_reason[reason] += 1

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "by_reason": dict(sorted(self.by_reason.items()))}


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def next_link(headers: httpx.Headers, base: httpx.URL) -> httpx.URL | None:
    """The ``rel="next"`` target of a ``Link`` header, resolved against the request URL."""
    for part in headers.get_list("link", split_commas=True):
        target, _, params = part.partition(";")
        target = target.strip()
        if target.startswith("<") and target.endswith(">") and 'rel="next"' in params.replace(" ", ""):
            return base.join(target[1:-1])
    return None


def _error_detail(reply: Reply) -> str:
    """The registry's error code/message (OCI error JSON), else the start of the body."""
    try:
        errors = json_loads(reply.content).get("errors") or []
        if errors and isinstance(errors[0], dict):
            return f"{errors[0].get('code', '')} {errors[0].get('message', '')}".strip()
    except (ValueError, AttributeError):
        pass
    return reply.content[:200].decode("utf-8", "replace").strip()


class RegistryCore:
    """Builds requests and interprets replies for one registry host. No I/O happens here."""

    def __init__(self, host: str, options: RegistryOptions) -> None:
        self.host = host
        self.options = options
        self.limits = options.limits
        self.base = httpx.URL(f"{options.scheme(host)}://{host}")
        self.stats = RetryStats()
        # Digests of the referrers indexes this process wrote: the only ones it ever deletes once outdated.
        self.written_indexes: set[str] = set()
        self.warn: Callable[[str], None] = _stderr_warn
        # Blobs known to be in a repository: concurrent re-uploads of one blob (the shared empty config) make
        # distribution rewrite its link file under a manifest PUT that is checking it.
        self.present: set[tuple[str, str]] = set()

    # --- request building -------------------------------------------------------------------------
    def url(self, path: str) -> httpx.URL:
        if path.startswith("/") and not path.startswith("//"):
            # The same URL as base.join(path) for an absolute path, without urljoin's second parse: a third of the
            # request-building CPU of a manifest HEAD (the check makes one per tag).
            return httpx.URL(f"{self.base}{path}")
        return self.base.join(path)

    def call(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        max_bytes: int | None = None,
    ) -> Call:
        target = url if isinstance(url, httpx.URL) else self.url(url)
        request = httpx.Request(method, target, headers=headers, content=content)
        return Call(request, self.limits.manifest_bytes if max_bytes is None else max_bytes)

    def fail(self, reply: Reply, what: str) -> Dct2NotationError:
        """The one-line error for an unexpected status."""
        detail = _error_detail(reply)
        where = f"{self.host}: {what}"
        if reply.status == 401:
            return AuthError(f"{where}: authentication required or credentials refused (401) {detail}".strip())
        if reply.status == 403:
            return AuthError(f"{where}: access denied (403) {detail}".strip())
        if reply.status == 404:
            return NotFoundError(f"{where}: not found (404) {detail}".strip())
        if reply.status == 400 and self.base.scheme == "http" and _tls_listener_answer(reply):
            return UsageError(
                f"{where}: refused (400): {self.host} speaks TLS; drop --insecure-registry {self.host}"
                " (add --ca-file FILE if its CA is not in the OS trust store)"
            )
        if 400 <= reply.status < 500:
            return InputError(f"{where}: refused ({reply.status}) {detail}".strip())
        return RemoteError(f"{where}: unexpected status {reply.status} {detail}".strip())

    # --- operations (generators; see module docstring) -------------------------------------------------
    def op_ping(self) -> Op[None]:
        reply = yield self.call("GET", "/v2/", max_bytes=64 * 1024)
        if reply.status != 200:
            raise self.fail(reply, "GET /v2/")

    def op_blob_exists(self, repo: str, digest: str) -> Op[bool]:
        reply = yield self.call("HEAD", f"/v2/{repo}/blobs/{digest}", max_bytes=0)
        if reply.status == 200:
            return True
        if reply.status == 404:
            return False
        raise self.fail(reply, f"HEAD blob {repo}@{digest}")

    def op_push_blob(
        self,
        repo: str,
        data: bytes,
        media_type: str = "application/octet-stream",
        *,
        check_exists: bool = True,
        session: httpx.URL | None = None,
    ) -> Op[Descriptor]:
        """``check_exists=False`` for content that cannot be there yet (a fresh signature envelope): re-uploading an
        existing blob is harmless in a content-addressed store, so skipping the HEAD only saves a round trip.
        ``session`` is an upload ``op_start_upload`` opened beforehand (the POST then costs no round trip here)."""
        digest = sha256_digest(data)
        desc = Descriptor(media_type, digest, len(data))
        if check_exists and (yield from self.op_blob_exists(repo, digest)):
            return desc
        if session is None:
            session = yield from self.op_start_upload(repo)
        location = session.copy_merge_params({"digest": digest})
        reply = yield self.call(
            "PUT", location, headers={"Content-Type": "application/octet-stream"}, content=data, max_bytes=65536
        )
        if reply.status not in (201, 204):
            raise self.fail(reply, f"finish blob upload {digest} to {repo}")
        return desc

    def op_start_upload(self, repo: str) -> Op[httpx.URL]:
        """Open a blob upload session: its URL, to which any blob may be PUT once (the content is not named yet)."""
        # A single-request (POST ?digest=) upload is accepted by distribution 2.8 but stores nothing: POST then PUT.
        reply = yield self.call("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"}, max_bytes=65536)
        if reply.status != 202 or "location" not in reply.headers:
            raise self.fail(reply, f"start blob upload to {repo}")
        # httpx's params= would replace the Location's own query (distribution's _state): merge instead, and
        # resolve a relative Location against the URL that answered.
        return reply.url.join(reply.headers["location"])

    def op_cancel_upload(self, session: httpx.URL) -> Op[None]:
        """Cancel an upload session nothing was PUT to (best effort: the registry purges stale ones anyway)."""
        yield self.call("DELETE", session, max_bytes=65536)

    def op_get_blob(self, repo: str, digest: str, max_bytes: int) -> Op[bytes]:
        reply = yield self.call("GET", f"/v2/{repo}/blobs/{digest}", max_bytes=max_bytes)
        if reply.status != 200:
            raise self.fail(reply, f"GET blob {repo}@{digest}")
        if sha256_digest(reply.content) != digest:
            raise DigestMismatchError(f"{self.host}: blob {repo}@{digest}: content does not match its digest")
        return reply.content

    def op_head_manifest(self, repo: str, reference: str) -> Op[Descriptor | None]:
        reply = yield self.call(
            "HEAD", f"/v2/{repo}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}, max_bytes=0
        )
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise self.fail(reply, f"HEAD manifest {repo}:{reference}")
        digest = reply.headers.get("docker-content-digest")
        size = reply.headers.get("content-length")
        media_type = reply.headers.get("content-type", "").split(";")[0].strip()
        if not digest or size is None or not size.isdigit() or not media_type:
            # Some registries omit headers on HEAD: fall back to GET and compute.
            raw, media_type = yield from self.op_get_manifest(repo, reference)
            return Descriptor(media_type, sha256_digest(raw), len(raw))
        if reference.startswith("sha256:") and digest != reference:
            raise RemoteError(f"{self.host}: manifest {repo}@{reference}: registry answered digest {digest}")
        return Descriptor(media_type, digest, int(size))

    def op_get_manifest(self, repo: str, reference: str, max_bytes: int | None = None) -> Op[tuple[bytes, str]]:
        reply = yield self.call(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            headers={"Accept": MANIFEST_ACCEPT},
            max_bytes=max_bytes,
        )
        if reply.status != 200:
            raise self.fail(
                reply,
                f"GET manifest {repo}:{reference}" if ":" not in reference else f"GET manifest {repo}@{reference}",
            )
        if reference.startswith("sha256:") and sha256_digest(reply.content) != reference:
            raise DigestMismatchError(f"{self.host}: manifest {repo}@{reference}: content does not match its digest")
        media_type = reply.headers.get("content-type", "").split(";")[0].strip()
        return reply.content, media_type

    def op_find_manifest(self, repo: str, reference: str, max_bytes: int | None = None) -> Op[bytes | None]:
        """GET a manifest, None when it does not exist."""
        reply = yield self.call(
            "GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}, max_bytes=max_bytes
        )
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise self.fail(reply, f"GET manifest {repo}:{reference}")
        return reply.content

    def op_put_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> Op[httpx.Headers]:
        reply = yield self.call(
            "PUT", f"/v2/{repo}/manifests/{reference}", headers={"Content-Type": media_type}, content=raw
        )
        if reply.status == 400 and b"DIGEST_INVALID" in reply.content and reference == sha256_digest(raw):
            # We computed the digest from these very bytes, so the registry is wrong: distribution 2.8 says this
            # while another request rewrites a referenced blob's link file (non-atomic). It passes on a retry.
            raise RetryableError(f"{self.host}: PUT manifest {repo}@{reference}: transient DIGEST_INVALID")
        if reply.status not in (200, 201):
            raise self.fail(reply, f"PUT manifest {repo}:{reference}")
        return reply.headers

    def op_delete_manifest(self, repo: str, digest: str) -> Op[bool]:
        """Delete by digest; False where the registry does not allow deletes (405/400) or it is already gone."""
        reply = yield self.call("DELETE", f"/v2/{repo}/manifests/{digest}", max_bytes=65536)
        if reply.status in (200, 202):
            return True
        if reply.status in (400, 404, 405):
            return False
        raise self.fail(reply, f"DELETE manifest {repo}@{digest}")

    def op_list_tags(self, repo: str, page_size: int | None = None) -> Op[list[str]]:

        url = self.url(f"/v2/{repo}/tags/list")
        if page_size:
            url = url.copy_merge_params({"n": str(page_size)})
        tags: list[str] = []
        for _ in range(MAX_PAGES):
            reply = yield self.call("GET", url)
            if reply.status != 200:
                raise self.fail(reply, f"list tags of {repo}")
            try:
                page = json_loads(reply.content).get("tags") or []
            except (ValueError, AttributeError) as exc:
                raise RemoteError(f"{self.host}: tags of {repo}: not a tag list") from exc
            tags.extend(t for t in page if isinstance(t, str))
            link = next_link(reply.headers, reply.url)
            if link is None:
                return tags
            url = link
        raise RemoteError(f"{self.host}: tags of {repo}: more than {MAX_PAGES} pages")

    def op_referrers(self, repo: str, digest: str, artifact_type: str | None = None) -> Op[list[Descriptor] | None]:
        """The Referrers API; None when the registry does not have it (404), as Notation and oras detect it."""
        url = self.url(f"/v2/{repo}/referrers/{digest}")
        if artifact_type:
            url = url.copy_merge_params({"artifactType": artifact_type})
        found: list[Descriptor] = []
        for page_no in range(MAX_PAGES):
            reply = yield self.call(
                "GET", url, headers={"Accept": OCI_INDEX}, max_bytes=self.limits.referrers_index_bytes
            )
            if reply.status == 404 and page_no == 0:
                return None
            if reply.status != 200:
                raise self.fail(reply, f"GET referrers of {repo}@{digest}")
            try:
                page = parse_index(
                    reply.content, where=f"{self.host}: referrers of {repo}@{digest}", limits=self.limits
                )
            except InputError:
                if page_no == 0:
                    # A 200 that is not an index (e.g. an HTML page from a proxy) means no API, not corruption.
                    return None
                raise
            if artifact_type and "artifacttype" not in reply.headers.get("oci-filters-applied", "").lower():
                page = [d for d in page if d.artifact_type == artifact_type]
            found.extend(page)
            link = next_link(reply.headers, reply.url)
            if link is None:
                return found
            url = link
        raise RemoteError(f"{self.host}: referrers of {repo}@{digest}: more than {MAX_PAGES} pages")

    def op_tag_index(self, repo: str, subject_digest: str) -> Op[TagIndex]:
        """Referrers from the ``sha256-<hex>`` tag. A tag holding anything but a referrers index lists no referrers
        (distribution-spec) and is marked ``foreign`` so no write replaces it."""
        raw = yield from self.op_find_manifest(repo, referrers_tag(subject_digest), self.limits.referrers_index_bytes)
        if raw is None:
            return TagIndex([], None)
        problem = referrers_index_problem(raw, subject_digest, self.limits)
        if problem is not None:
            return TagIndex([], sha256_digest(raw), problem)
        return TagIndex(parse_index(raw, where="referrers index", limits=self.limits), sha256_digest(raw))

    def refuse_foreign(self, repo: str, subject_digest: str, index: TagIndex) -> ForeignIndexError:
        return ForeignIndexError(
            f"{self.host}: {repo}:{referrers_tag(subject_digest)} is not a referrers index ({index.foreign}); "
            f"left alone and nothing signed: move that tag away from {index.digest}, then sign again"
        )

    def op_write_tag_index(
        self, repo: str, subject_digest: str, entries: list[Descriptor], old: TagIndex
    ) -> Op[None]:
        """Point the tag at an index of ``entries``; remove the index it replaced only when this process wrote it
        (certainly ours, and it was pure, or ``old`` would be foreign). A registry that refuses deletes gets
        Notation's warning and the batch goes on."""
        if old.foreign is not None:
            raise self.refuse_foreign(repo, subject_digest, old)
        tag = referrers_tag(subject_digest)
        raw = referrers_index(entries)
        new_digest = sha256_digest(raw)
        self.written_indexes.add(new_digest)
        try:
            yield from self.op_put_manifest(repo, tag, raw, OCI_INDEX)
        except InputError as exc:
            if "MANIFEST_BLOB_UNKNOWN" not in str(exc):
                raise
            # Distribution refuses an index naming a manifest it no longer has (a signature deleted behind its
            # entry): that entry points at nothing and cannot be carried on. Keep every entry that still exists.
            alive = []
            for entry in entries:
                if (yield from self.op_head_manifest(repo, entry.digest)) is not None:
                    alive.append(entry)
            if len(alive) == len(entries):
                raise
            gone = ", ".join(e.digest for e in entries if e not in alive)
            self.warn(f"Warning: referrers index {repo}:{tag} listed manifests that no longer exist, not kept: {gone}")
            raw = referrers_index(alive)
            new_digest = sha256_digest(raw)
            self.written_indexes.add(new_digest)
            yield from self.op_put_manifest(repo, tag, raw, OCI_INDEX)
        if old.digest is None or old.digest == new_digest or old.digest not in self.written_indexes:
            return
        reply = yield self.call("DELETE", f"/v2/{repo}/manifests/{old.digest}", max_bytes=65536)
        if reply.status in (200, 202, 404):
            return
        self.warn(
            f"Warning: Removal of outdated referrers index {repo}@{old.digest} failed ({reply.status}). "
            "Garbage collection may be required."
        )

    def op_add_to_tag_index(
        self,
        repo: str,
        subject_digest: str,
        entry: Descriptor,
        known: TagIndex | None = None,
    ) -> Op[bool]:
        """Read-modify-write the tag index once; True when our entry is in the index after the write.

        Callers hold the per-subject lock and repeat until True: another process may have written the tag between
        our read and write (the lost update other tools suffer from), which the re-read catches. ``known`` is an
        ``op_tag_index`` result the caller read under that same lock, used instead of reading again.
        """
        index = known if known is not None else (yield from self.op_tag_index(repo, subject_digest))
        if index.foreign is not None:
            raise self.refuse_foreign(repo, subject_digest, index)
        if all(e.digest != entry.digest for e in index.entries):
            yield from self.op_write_tag_index(repo, subject_digest, [*index.entries, entry], index)
        after = yield from self.op_tag_index(repo, subject_digest)
        return any(e.digest == entry.digest for e in after.entries)

    def op_remove_from_tag_index(self, repo: str, subject_digest: str, manifest_digest: str) -> Op[None]:
        index = yield from self.op_tag_index(repo, subject_digest)
        kept = [e for e in index.entries if e.digest != manifest_digest]
        if len(kept) == len(index.entries):
            return
        yield from self.op_write_tag_index(repo, subject_digest, kept, index)

    # --- shared by both drivers ----------------------------------------------------------------------
    def classify(self, call: Call, response: httpx.Response) -> None:
        """Raise RetryableError for statuses worth retrying (after the auth flow has had its turn)."""
        if response.status_code in RETRY_STATUSES:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise RetryableError(
                f"{self.host}: {call.request.method} {call.request.url.path}: HTTP {response.status_code}",
                retry_after,
            )

    def transport_error(self, call: Call, exc: httpx.TransportError) -> Dct2NotationError:
        where = f"{self.host}: {call.request.method} {call.request.url.path}"
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ssl.SSLError):
                # A TLS failure repeats identically on retry: say what to do instead.
                hint = (
                    "the certificate is not trusted (use --ca-file)"
                    if isinstance(cause, ssl.SSLCertVerificationError)
                    else "TLS handshake failed (a plain-HTTP registry needs --insecure-registry HOST)"
                )
                return UsageError(f"{where}: {hint}: {cause.reason or type(cause).__name__}")
            cause = cause.__cause__ or cause.__context__
        # Connection-level failures (reset, refused, timeout, truncated reply) are worth another try.
        return RetryableError(f"{where}: {type(exc).__name__}")

    def too_slow(self, call: Call, limit: Deadline) -> DeadlineExceeded:
        """Not retried: a server that stalls or drips once does it again, and each attempt would take as long."""
        return limit.error(f"{self.host}: {call.request.method} {call.request.url.path}")

    def too_big(self, call: Call) -> RemoteError:
        return RemoteError(
            f"{self.host}: {call.request.method} {call.request.url.path}: reply exceeds the {call.max_bytes}-byte limit"
        )

    def retry_kwargs(self) -> dict[str, Any]:
        backoff = wait_exponential_jitter(
            multiplier=INITIAL_BACKOFF_SECONDS, jitter=INITIAL_BACKOFF_SECONDS, max=self.limits.retry_max_wait_seconds
        )

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, RetryableError) and exc.retry_after is not None:
                return min(exc.retry_after, self.limits.retry_max_wait_seconds)
            return float(backoff(state))

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.stats.add(str(exc).rsplit(": ", 1)[-1] if exc else "unknown")

        return {
            "stop": stop_after_attempt(max(1, self.limits.retry_attempts)),
            "wait": wait,
            "retry": retry_if_exception_type(RetryableError),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def exhausted(self, exc: RetryableError) -> RemoteError:
        return RemoteError(f"{exc} (gave up after {self.limits.retry_attempts} attempts)")


def _tls_listener_answer(reply: Reply) -> bool:
    """Go's TLS listener answering a plain-HTTP request: a bare 400 without a single header (the text is in the body,
    which a HEAD reply does not carry). A registry's own 400s carry headers and a JSON error."""
    return is_tls_listener_answer(reply.content) or not reply.headers


def tls_context(options: RegistryOptions, host: str) -> ssl.SSLContext:
    """The TLS context for a registry host: the OS trust store, ``--ca-file`` and docker's ``certs.d`` for the host
    (``dct2notation.tlstrust``). Cached there: a context loads CA bundles (~20-30 ms of CPU)."""
    return host_tls_context(host, options.ca_file)


def registry_auth(host: str, options: RegistryOptions) -> httpx.Auth | None:
    """The challenge-driven auth for ``host`` from the shared auth module (docs/CONTRACTS.md ``auth.py``)."""
    creds = options.credentials
    return shared_registry_auth(
        host,
        username=creds.username if creds else None,
        password=creds.password if creds else None,
        plain_http_hosts=options.insecure_registries,
    )


# Per-subject locks: concurrent pushes in one process must not interleave read-modify-writes of one index.
_THREAD_LOCKS: dict[tuple[str, str, str], threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def subject_lock(host: str, repo: str, subject_digest: str) -> threading.Lock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault((host, repo, subject_digest), threading.Lock())


_ASYNC_LOCKS: dict[tuple[int, str, str, str], asyncio.Lock] = {}


class _Driver:
    """What both drivers hold alike: the host's :class:`RegistryCore`, the auth flow and the httpx client settings."""

    def __init__(self, host: str, options: RegistryOptions | None, auth: httpx.Auth | None) -> None:
        self.core = RegistryCore(host, options or RegistryOptions())
        # No explicit auth: credentials from the options / docker config, as every registry command does.
        self.auth = auth if auth is not None else registry_auth(host, self.core.options)

    def _http_settings(self, transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None) -> dict[str, Any]:
        opts = self.core.options
        return {
            "verify": tls_context(opts, self.core.host) if transport is None else True,  # a given transport has its own
            "timeout": opts.limits.http_timeout_seconds,
            "transport": transport,
            "follow_redirects": True,
        }

    @property
    def stats(self) -> RetryStats:
        return self.core.stats


class RegistryClient(_Driver):
    """Blocking driver of :class:`RegistryCore` operations."""

    def __init__(
        self,
        host: str,
        options: RegistryOptions | None = None,
        *,
        auth: httpx.Auth | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(host, options, auth)
        self._http = bounded_client(**self._http_settings(transport))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, call: Call) -> Reply:
        with deadline(self.core.limits.http_deadline_seconds) as limit:
            try:
                response = self._http.send(call.request, auth=self.auth or httpx.USE_CLIENT_DEFAULT, stream=True)
                try:
                    self.core.classify(call, response)
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > call.max_bytes and call.request.method != "HEAD":
                            raise self.core.too_big(call)
                finally:
                    response.close()
            except httpx.TransportError as exc:
                if limit.expired:
                    raise self.core.too_slow(call, limit) from exc
                raise self.core.transport_error(call, exc) from exc
        return Reply(response.status_code, response.headers, bytes(body), response.url)

    def run(self, factory: Callable[[], Op[T]]) -> T:
        try:
            for attempt in Retrying(**self.core.retry_kwargs()):
                with attempt:
                    return self._drive(factory())
        except RetryableError as exc:
            raise self.core.exhausted(exc) from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _drive(self, op: Op[T]) -> T:
        try:
            call = next(op)
            while True:
                call = op.send(self._send(call))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            op.close()

    # Convenience wrappers: one line each so the sync API reads like the async one.
    def ping(self) -> None:
        self.run(self.core.op_ping)

    def push_blob(self, repo: str, data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
        desc = Descriptor(media_type, sha256_digest(data), len(data))
        key = (repo, desc.digest)
        if key not in self.core.present:
            with subject_lock(self.core.host, repo, desc.digest):
                if key not in self.core.present:
                    self.run(lambda: self.core.op_push_blob(repo, data, media_type))
                    self.core.present.add(key)
        return desc

    def get_blob(self, repo: str, digest: str, max_bytes: int) -> bytes:
        return self.run(lambda: self.core.op_get_blob(repo, digest, max_bytes))

    def head_manifest(self, repo: str, reference: str) -> Descriptor | None:
        return self.run(lambda: self.core.op_head_manifest(repo, reference))

    def get_manifest(self, repo: str, reference: str, max_bytes: int | None = None) -> tuple[bytes, str]:
        return self.run(lambda: self.core.op_get_manifest(repo, reference, max_bytes))

    def put_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> httpx.Headers:
        return self.run(lambda: self.core.op_put_manifest(repo, reference, raw, media_type))

    def delete_manifest(self, repo: str, digest: str) -> bool:
        return self.run(lambda: self.core.op_delete_manifest(repo, digest))

    def list_tags(self, repo: str, page_size: int | None = None) -> list[str]:
        return self.run(lambda: self.core.op_list_tags(repo, page_size))

    def referrers(self, repo: str, digest: str, artifact_type: str | None = None) -> list[Descriptor] | None:
        return self.run(lambda: self.core.op_referrers(repo, digest, artifact_type))

    def tag_index(self, repo: str, subject_digest: str) -> list[Descriptor]:
        return self.run(lambda: self.core.op_tag_index(repo, subject_digest)).entries

    def add_referrer_by_tag(self, repo: str, subject_digest: str, entry: Descriptor) -> None:
        with subject_lock(self.core.host, repo, subject_digest):
            for _ in range(MAX_INDEX_WRITE_ATTEMPTS):
                if self.run(lambda: self.core.op_add_to_tag_index(repo, subject_digest, entry)):
                    return
        raise RemoteError(
            f"{self.core.host}: referrers index {repo}:{referrers_tag(subject_digest)} kept losing our entry "
            f"{entry.digest} to concurrent writers ({MAX_INDEX_WRITE_ATTEMPTS} attempts)"
        )

    def remove_referrer_by_tag(self, repo: str, subject_digest: str, manifest_digest: str) -> None:
        with subject_lock(self.core.host, repo, subject_digest):
            self.run(lambda: self.core.op_remove_from_tag_index(repo, subject_digest, manifest_digest))


class AsyncRegistryClient(_Driver):
    """Asynchronous driver of the same operations, for the batch signer."""

    def __init__(
        self,
        host: str,
        options: RegistryOptions | None = None,
        *,
        auth: httpx.Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 100,
    ) -> None:
        super().__init__(host, options, auth)
        self._http = httpx.AsyncClient(
            **self._http_settings(transport),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, call: Call) -> Reply:
        limit = Deadline(self.core.limits.http_deadline_seconds)
        try:
            async with asyncio.timeout(limit.seconds):
                response = await self._http.send(call.request, auth=self.auth or httpx.USE_CLIENT_DEFAULT, stream=True)
                try:
                    self.core.classify(call, response)
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > call.max_bytes and call.request.method != "HEAD":
                            raise self.core.too_big(call)
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            raise self.core.too_slow(call, limit) from exc
        except httpx.TransportError as exc:
            raise self.core.transport_error(call, exc) from exc
        return Reply(response.status_code, response.headers, bytes(body), response.url)

    async def run(self, factory: Callable[[], Op[T]]) -> T:
        try:
            async for attempt in AsyncRetrying(**self.core.retry_kwargs()):
                with attempt:
                    return await self._drive(factory())
        except RetryableError as exc:
            raise self.core.exhausted(exc) from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _drive(self, op: Op[T]) -> T:
        try:
            call = next(op)
            while True:
                call = op.send(await self._send(call))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            op.close()

    async def ping(self) -> None:
        await self.run(self.core.op_ping)

    async def push_blob(
        self, repo: str, data: bytes, media_type: str = "application/octet-stream", *, check_exists: bool = True
    ) -> Descriptor:
        desc = Descriptor(media_type, sha256_digest(data), len(data))
        key = (repo, desc.digest)
        if key not in self.core.present:
            async with self._lock(repo, desc.digest):
                if key not in self.core.present:
                    await self.run(lambda: self.core.op_push_blob(repo, data, media_type, check_exists=check_exists))
                    self.core.present.add(key)
        return desc

    async def get_blob(self, repo: str, digest: str, max_bytes: int) -> bytes:
        return await self.run(lambda: self.core.op_get_blob(repo, digest, max_bytes))

    async def head_manifest(self, repo: str, reference: str) -> Descriptor | None:
        return await self.run(lambda: self.core.op_head_manifest(repo, reference))

    async def get_manifest(self, repo: str, reference: str, max_bytes: int | None = None) -> tuple[bytes, str]:
        return await self.run(lambda: self.core.op_get_manifest(repo, reference, max_bytes))

    async def put_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> httpx.Headers:
        return await self.run(lambda: self.core.op_put_manifest(repo, reference, raw, media_type))

    async def delete_manifest(self, repo: str, digest: str) -> bool:
        return await self.run(lambda: self.core.op_delete_manifest(repo, digest))

    async def list_tags(self, repo: str, page_size: int | None = None) -> list[str]:
        return await self.run(lambda: self.core.op_list_tags(repo, page_size))

    async def referrers(self, repo: str, digest: str, artifact_type: str | None = None) -> list[Descriptor] | None:
        return await self.run(lambda: self.core.op_referrers(repo, digest, artifact_type))

    async def tag_index(self, repo: str, subject_digest: str) -> list[Descriptor]:
        return (await self.run(lambda: self.core.op_tag_index(repo, subject_digest))).entries

    def _lock(self, repo: str, subject_digest: str) -> asyncio.Lock:
        # Module-wide per event loop, so two clients for one registry in one process still take turns.
        key = (id(asyncio.get_running_loop()), self.core.host, repo, subject_digest)
        return _ASYNC_LOCKS.setdefault(key, asyncio.Lock())

    def subject_lock(self, repo: str, subject_digest: str) -> asyncio.Lock:
        """The lock ``add_referrer_by_tag`` takes, for a caller that reads the index itself before writing it."""
        return self._lock(repo, subject_digest)

    async def add_referrer_by_tag(self, repo: str, subject_digest: str, entry: Descriptor) -> None:
        async with self._lock(repo, subject_digest):
            for _ in range(MAX_INDEX_WRITE_ATTEMPTS):
                if await self.run(lambda: self.core.op_add_to_tag_index(repo, subject_digest, entry)):
                    return
        raise RemoteError(
            f"{self.core.host}: referrers index {repo}:{referrers_tag(subject_digest)} kept losing our entry "
            f"{entry.digest} to concurrent writers ({MAX_INDEX_WRITE_ATTEMPTS} attempts)"
        )
