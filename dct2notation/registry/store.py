"""Where signatures live: a registry (Referrers API or tag schema) or an OCI image layout, behind one protocol."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import httpx

from ..config import Limits
from ..errors import Dct2NotationError, NotFoundError
from ..notation.envelope import SignedEnvelope
from ..notation.manifest import (
    ManifestForm,
    SignatureManifest,
    envelope_signature_manifest,
    is_signature,
    parse_signature_manifest,
)
from ..oci import EMPTY_JSON, EMPTY_JSON_DIGEST, NOTATION_SIGNATURE, OCI_MANIFEST, Descriptor
from .client import (
    AsyncRegistryClient,
    ForeignIndexError,
    RegistryClient,
    RetryStats,
    tls_context,
)
from .options import RegistryOptions
from .reference import Reference, parse_reference

# Which of a store's async clients the current task uses. httpcore's pool scans every connection it holds on each
# request (quadratic in idle ones), which costs more CPU than the request itself at 16 connections; a batch worker
# that sets its own lane gets a client whose pool holds just its one connection. Tasks that set nothing share lane 0.
registry_lane: contextvars.ContextVar[int] = contextvars.ContextVar("registry_lane", default=0)
# Requests one task has in flight at once (beside a listing read: the envelope upload and the next upload session;
# beside the reconciliation pass's listing: its HEAD) each go on their own slot of the lane, so every pool still holds
# one connection: on one client they grow its pool to three, each scanned on every later request (CPU, not wire).
registry_slot: contextvars.ContextVar[int] = contextvars.ContextVar("registry_slot", default=0)
_ENVELOPE_SLOT = 1
_UPLOAD_SLOT = 2


Find = Callable[[list[Descriptor]], Awaitable[Descriptor | None]]
"""Picks, among the signatures listed for a subject, one that may be reused instead of signing again."""

Make = Callable[[], Awaitable[SignedEnvelope]]
"""Signs the subject (called only when nothing listed may be reused)."""


@runtime_checkable
class SignatureStore(Protocol):
    """What signing, listing, the batch, the check and the sign-off need from storage (docs/CONTRACTS.md).

    A registry and an OCI layout both answer it, so each caller has one code path: no caller asks which it has.
    Both stores subclass it, so mypy checks each against it and the contract is written here once. An async method
    with a body runs its sync twin in a worker thread: right for local files; a store with its own async I/O
    overrides it.
    """

    limits: Limits

    @property
    def index_tag_required(self) -> bool:
        """True when this store finds signatures only through the ``sha256-<hex>`` tag index, so a subject whose tag
        a tag listing lacks has none (the check skips the request)."""
        ...

    @property
    def lists_on_write(self) -> bool:
        """True when a signature ``apush_signature_once`` wrote is listed by that write itself (one writer at a time
        holds the listing), so the batch journals it done at once; else the reconciliation pass confirms it."""
        ...

    def subject_reference(self, repository: str, digest: str) -> Reference:
        """The manifest ``digest`` of a plan's ``repository`` (``host/path``) as this store names it: what
        ``aresolve`` takes, and whose ``repository`` the other methods take."""
        ...

    def resolve(self, reference: Reference) -> Descriptor: ...

    def get_manifest(self, repo: str, digest: str) -> bytes: ...

    def get_blob(self, repo: str, digest: str) -> bytes: ...

    def list_tags(self, repo: str) -> list[str]: ...

    def list_signatures(self, repo: str, subject_digest: str) -> list[Descriptor]: ...

    def push_signature(
        self, repo: str, subject: Descriptor, signed: SignedEnvelope, form: ManifestForm = "legacy"
    ) -> Descriptor:
        """Write ``signed`` as a signature of ``subject`` and list it: the signature manifest's descriptor."""
        ...

    def retry_stats(self) -> RetryStats | None:
        """Retries taken so far (None where the store never retries)."""
        ...

    async def aresolve(self, reference: Reference) -> Descriptor:
        return await asyncio.to_thread(self.resolve, reference)

    async def aget_manifest(self, repo: str, digest: str) -> bytes:
        return await asyncio.to_thread(self.get_manifest, repo, digest)

    async def aget_blob(self, repo: str, digest: str) -> bytes:
        return await asyncio.to_thread(self.get_blob, repo, digest)

    async def alist_signatures(self, repo: str, subject_digest: str) -> list[Descriptor]:
        return await asyncio.to_thread(self.list_signatures, repo, subject_digest)

    async def acheck_writable(self, repo: str) -> None:
        """Raise unless a signature could be written to ``repo`` (the batch's pre-flight)."""
        ...

    async def apush_signature(
        self, repo: str, subject: Descriptor, signed: SignedEnvelope, form: ManifestForm = "legacy"
    ) -> Descriptor:
        # Nothing on the batch's path pushes this way (it checks and pushes with apush_signature_once), so a worker
        # thread serves every store: one push procedure per store, the sync one.
        return await asyncio.to_thread(self.push_signature, repo, subject, signed, form)

    async def apush_signature_once(
        self, repo: str, subject: Descriptor, find: Find, make: Make, form: ManifestForm = "legacy",
        *, eager: bool = False
    ) -> tuple[Descriptor, bool]:
        """Push the signature ``make()`` returns unless ``find`` picks one among those listed: (descriptor, reused).
        A reused descriptor was listed when read; a pushed one was written to the listing once, and a concurrent
        writer may still drop it: the batch's reconciliation pass confirms it (``alist_signatures``,
        ``amanifest_exists``) and repairs it (``arelist_signature``) before journaling the job done.

        ``eager``: ``make()`` and the envelope's upload may start while the listing is read (a round trip fewer per
        signature where a round trip costs); the signature manifest and the listing are still written only when
        ``find`` picked nothing. Should it pick one, that envelope is never referenced (a blob the registry's garbage
        collection drops). The batch asks for it only where a reuse is unlikely. A store without round trips to
        save may ignore it."""
        ...

    async def amanifest_exists(self, repo: str, digest: str) -> bool: ...

    async def arelist_signature(self, repo: str, subject_digest: str, entry: Descriptor) -> bool:
        """List ``entry`` (a signature manifest that exists) for the subject again, after a foreign writer dropped it;
        False where the store cannot list by hand (a Referrers API lists a manifest by its subject alone)."""
        ...

    async def aunlist_signature(self, repo: str, subject_digest: str, digest: str) -> None:
        """Stop listing OUR signature ``digest`` for the subject (a duplicate another real one supersedes); the
        caller guarantees it is ours (its journal says this run wrote it)."""
        ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class StoredSignature:
    """One signature found for a subject: its manifest and the envelope bytes."""

    manifest: SignatureManifest
    envelope: bytes


def unique_signatures(descriptors: Sequence[Descriptor]) -> list[Descriptor]:
    """Notation signatures only, first occurrence of each digest (an index written by two tools may repeat one)."""
    seen: set[str] = set()
    out: list[Descriptor] = []
    for desc in descriptors:
        if is_signature(desc) and desc.digest not in seen:
            seen.add(desc.digest)
            out.append(desc)
    return out


@dataclass(frozen=True)
class UnreadableSignature:
    """A listed signature whose manifest or envelope could not be read (gone, tampered, malformed, refused)."""

    digest: str
    reason: str


def fetch_signatures(
    store: SignatureStore, repo: str, subject_digest: str, unreadable: list[UnreadableSignature] | None = None
) -> list[StoredSignature]:
    """Every signature of the subject with its envelope, bounded by ``Limits.max_signature_attempts``.

    With ``unreadable`` given, a signature that cannot be read is recorded there and the others are still read: one
    dangling index entry (its manifest deleted) must not hide the subject's other signatures. Without it, it raises.
    """
    found: list[StoredSignature] = []
    for desc in store.list_signatures(repo, subject_digest)[: store.limits.max_signature_attempts]:
        try:
            raw = store.get_manifest(repo, desc.digest)
            manifest = parse_signature_manifest(raw, where=f"signature manifest {desc.digest}", limits=store.limits)
            if manifest.subject.digest != subject_digest:
                continue  # a referrer listed under the wrong subject proves nothing about this one
            envelope = store.get_blob(repo, manifest.envelope.digest)
        except Dct2NotationError as exc:
            if unreadable is None:
                raise
            unreadable.append(UnreadableSignature(desc.digest, str(exc)))
            continue
        found.append(StoredSignature(manifest, envelope))
    return found


def _collect(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _alist_by_tag(client: AsyncRegistryClient, repo: str, subject_digest: str, entry: Descriptor) -> None:
    """List ``entry`` in the subject's ``sha256-<hex>`` index; refused (a foreign tag), the signature manifest just
    pushed is taken back (best effort, as in ``push_signature``) and the refusal raised."""
    try:
        await client.add_referrer_by_tag(repo, subject_digest, entry)
    except ForeignIndexError:
        with contextlib.suppress(Dct2NotationError):
            await client.delete_manifest(repo, entry.digest)
        raise


class _Upload:
    """A blob upload session opened while the caller reads the subject's listing: its POST then costs no round trip
    of its own. One the store kept (opened for a signature that was then reused) is taken first. Not taken, the
    session goes back to the store for the next push to the repository, once its POST has answered; the store
    cancels those still unused when it closes."""

    def __init__(self, store: RegistryStore, client: AsyncRegistryClient, repo: str, *, fresh: bool = False) -> None:
        """``fresh``: open a new session even if the store keeps one (one to keep for a later push)."""
        self._kept = store._uploads.setdefault(repo, [])
        self._task: asyncio.Future[httpx.URL]
        if self._kept and not fresh:
            self._task = asyncio.get_running_loop().create_future()
            self._task.set_result(self._kept.pop())
        else:
            self._task = asyncio.ensure_future(client.run(functools.partial(client.core.op_start_upload, repo)))
            store._opening.add(self._task)
            self._task.add_done_callback(store._opening.discard)
        self._taken = False

    async def take(self) -> httpx.URL:
        self._taken = True
        return await self._task

    def release(self) -> None:
        if self._taken:
            return
        if self._task.done():
            self._keep(self._task)  # now, not at the loop's next turn: the caller's next push may come first
        else:
            self._task.add_done_callback(self._keep)

    def _keep(self, task: asyncio.Future[httpx.URL]) -> None:
        # A failed or cancelled POST is dropped here (and its exception retrieved): the next push opens its own.
        if not task.cancelled() and task.exception() is None:
            self._kept.append(task.result())


class RegistryStore(SignatureStore):
    """Signatures in a registry. ``a*`` methods are the async variants used by the batch signer, on async clients
    (one per task lane)."""

    def __init__(
        self,
        host: str,
        options: RegistryOptions | None = None,
        *,
        auth: httpx.Auth | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.host = host
        self.options = options or RegistryOptions()
        self.limits = self.options.limits
        self.client = RegistryClient(host, self.options, auth=auth, transport=transport)
        self._async_transport = async_transport
        self._lanes: dict[tuple[int, int], AsyncRegistryClient] = {}
        self._tls: ssl.SSLContext | None = None
        self._async_loop: int | None = None
        # A registry without the referrers API answers 404 every time; asking once per store saves a round trip
        # per subject. The tag index stays the listing source either way, so nothing written is missed.
        self._referrers_absent = False
        # Blob upload sessions opened for a signature that was then reused: the next push takes one (see _Upload).
        self._uploads: dict[str, list[httpx.URL]] = {}
        self._opening: set[asyncio.Future[httpx.URL]] = set()  # upload POSTs still unanswered

    @property
    def index_tag_required(self) -> bool:
        """True once this store has seen the registry answer without the referrers API: every signature it lists
        then comes from the ``sha256-<hex>`` tag index, so a subject whose tag is not listed has none."""
        return self._referrers_absent

    @property
    def stats(self) -> RetryStats:
        """Retries of both flavours (they share one counter)."""
        return self.client.stats

    def retry_stats(self) -> RetryStats | None:
        return self.client.stats

    @property
    def lists_on_write(self) -> bool:
        return False  # no compare-and-swap on a registry: another writer may drop the entry right after our write

    def _aclient(self, slot: int | None = None) -> AsyncRegistryClient:
        """The current task's client: its lane, on ``slot`` (default: the task's ``registry_slot``)."""
        # An httpx.AsyncClient belongs to the loop that first used it; a new asyncio.run() needs a new one.
        loop = id(asyncio.get_running_loop())
        if self._async_loop != loop:
            self._lanes = {}
        self._async_loop = loop
        lane = (registry_lane.get(), registry_slot.get() if slot is None else slot)
        client = self._lanes.get(lane)
        if client is None:
            transport = self._async_transport
            if transport is None:
                # One TLS context for all lanes: building one loads the CA bundle (~20 ms each).
                if self._tls is None:
                    self._tls = tls_context(self.options, self.host)
                transport = httpx.AsyncHTTPTransport(verify=self._tls)
            client = AsyncRegistryClient(self.host, self.options, auth=self.client.auth, transport=transport)
            client.core.stats = self.client.core.stats
            client.core.present = self.client.core.present
            client.core.written_indexes = self.client.core.written_indexes
            client.core.warn = self.client.core.warn
            self._lanes[lane] = client
        return client

    def close(self) -> None:
        self.client.close()

    async def aclose(self) -> None:
        if self._opening:
            await asyncio.gather(*self._opening, return_exceptions=True)  # each lands in _uploads (see _Upload)
        uploads, self._uploads = self._uploads, {}
        if self._lanes and any(uploads.values()):
            client = self._aclient()
            # Best effort, all at once (the registry purges stale sessions anyway).
            await asyncio.gather(
                *(
                    client.run(functools.partial(client.core.op_cancel_upload, s))
                    for urls in uploads.values()
                    for s in urls
                ),
                return_exceptions=True,
            )
        lanes, self._lanes = self._lanes, {}
        for client in lanes.values():
            await client.aclose()

    # --- sync ----------------------------------------------------------------------------------------
    def subject_reference(self, repository: str, digest: str) -> Reference:
        return parse_reference(f"{repository}@{digest}")

    def resolve(self, reference: Reference) -> Descriptor:
        desc = self.client.head_manifest(reference.repository, reference.reference)
        if desc is None:
            raise NotFoundError(f"{reference}: manifest not found")
        return desc

    def get_manifest(self, repo: str, digest: str) -> bytes:
        return self.client.get_manifest(repo, digest, self.limits.signature_manifest_bytes)[0]

    def get_blob(self, repo: str, digest: str) -> bytes:
        return self.client.get_blob(repo, digest, self.limits.envelope_bytes)

    def list_tags(self, repo: str) -> list[str]:
        return self.client.list_tags(repo)

    def list_signatures(self, repo: str, subject_digest: str) -> list[Descriptor]:
        listed = None if self._referrers_absent else self.client.referrers(repo, subject_digest, NOTATION_SIGNATURE)
        if listed is None:
            self._referrers_absent = True
            listed = self.client.tag_index(repo, subject_digest)
        return unique_signatures(listed)

    def push_signature(
        self, repo: str, subject: Descriptor, signed: SignedEnvelope, form: ManifestForm = "legacy"
    ) -> Descriptor:
        envelope_desc = self.client.push_blob(repo, signed.raw, signed.media_type)
        self.client.push_blob(repo, EMPTY_JSON)
        manifest = envelope_signature_manifest(envelope_desc, subject, signed, form)
        headers = self.client.put_manifest(repo, manifest.digest, manifest.raw, OCI_MANIFEST)
        if self._needs_tag_index(headers):
            try:
                self.client.add_referrer_by_tag(repo, subject.digest, manifest.descriptor())
            except ForeignIndexError:
                # The tag is someone else's and stays as it is; the signature manifest we just pushed is ours and
                # would be listed by nothing: take it back (best effort) so the refusal leaves no trace.
                with contextlib.suppress(Dct2NotationError):
                    self.client.delete_manifest(repo, manifest.digest)
                raise
        return manifest.descriptor()

    def _needs_tag_index(self, headers: httpx.Headers) -> bool:
        # A registry that processed the subject says so with OCI-Subject; otherwise the client keeps the index.
        mode = self.options.referrers
        return mode == "tag" or (mode == "auto" and "oci-subject" not in headers)

    # --- async ---------------------------------------------------------------------------------------
    async def aresolve(self, reference: Reference) -> Descriptor:
        desc = await self._aclient().head_manifest(reference.repository, reference.reference)
        if desc is None:
            raise NotFoundError(f"{reference}: manifest not found")
        return desc

    async def aget_manifest(self, repo: str, digest: str) -> bytes:
        return (await self._aclient().get_manifest(repo, digest, self.limits.signature_manifest_bytes))[0]

    async def aget_blob(self, repo: str, digest: str) -> bytes:
        return await self._aclient().get_blob(repo, digest, self.limits.envelope_bytes)

    async def acheck_writable(self, repo: str) -> None:
        # The one blob every signature needs: a registry that refuses it refuses the whole batch.
        await self._aclient().push_blob(repo, EMPTY_JSON)

    async def alist_signatures(self, repo: str, subject_digest: str) -> list[Descriptor]:
        client = self._aclient()
        listed = None
        if not self._referrers_absent:
            listed = await client.referrers(repo, subject_digest, NOTATION_SIGNATURE)
        if listed is None:
            self._referrers_absent = True
            listed = await client.tag_index(repo, subject_digest)
        return unique_signatures(listed)

    async def apush_signature_once(
        self, repo: str, subject: Descriptor, find: Find, make: Make, form: ManifestForm = "legacy",
        *, eager: bool = False
    ) -> tuple[Descriptor, bool]:
        """Without the Referrers API the ``sha256-<hex>`` index read for ``find`` is also the base of the index write,
        both under the per-subject lock, so no other writer in this process lands between them. A writer in another
        process (a second plan on this repository, Notation in CI) can still drop our entry or add a twin: no re-read
        here can see a writer that read before us and writes after us, so the batch's reconciliation pass, after
        every job, is what confirms and repairs the listing.

        The envelope's upload session is opened while the listing is read (it names no content, so opening it
        decides nothing): over a network that is one round trip fewer per signature. Unused (a reuse, a refusal),
        it serves the next signature pushed to this repository. ``eager`` (see the protocol) also signs and uploads
        the envelope meanwhile, into a session kept from an earlier push, and opens the next one: one round trip
        more saved; an envelope ``find`` made useless is cancelled if it is not up yet.
        """
        client = self._aclient()
        upload = _Upload(self, self._aclient(_UPLOAD_SLOT), repo)
        # The empty config every signature manifest names: once per repository (the client remembers it), and
        # alongside the listing too when this is the repository's first signature.
        config: asyncio.Future[Descriptor] | None = None
        if (repo, EMPTY_JSON_DIGEST) not in client.core.present:
            config = asyncio.ensure_future(client.push_blob(repo, EMPTY_JSON))
        early: asyncio.Future[tuple[SignedEnvelope, Descriptor]] | None = None
        if eager:
            early = asyncio.ensure_future(
                self._envelope(self._aclient(_ENVELOPE_SLOT), repo, make, upload, refill=True)
            )

        async def envelope() -> tuple[SignedEnvelope, Descriptor]:
            return await (early if early is not None else self._envelope(client, repo, make, upload, refill=False))

        try:
            if not self._referrers_absent:
                listed = await client.referrers(repo, subject.digest, NOTATION_SIGNATURE)
                if listed is not None:
                    found = await find(unique_signatures(listed))
                    if found is not None:
                        return found, True
                    desc, headers = await self._put_signature(client, repo, subject, *await envelope(), form, config)
                    if self._needs_tag_index(headers):
                        await _alist_by_tag(client, repo, subject.digest, desc)
                    return desc, False
                self._referrers_absent = True
            async with client.subject_lock(repo, subject.digest):
                known = await client.run(lambda: client.core.op_tag_index(repo, subject.digest))
                if known.foreign is not None:
                    # Checked before the signature is written: nothing is listed for a subject whose tag someone
                    # else owns (and, unless eager, nothing signed).
                    raise client.core.refuse_foreign(repo, subject.digest, known)
                found = await find(unique_signatures(known.entries))
                if found is not None:
                    return found, True
                desc, headers = await self._put_signature(client, repo, subject, *await envelope(), form, config)
                if self._needs_tag_index(headers):
                    entries = [*known.entries, desc]
                    await client.run(lambda: client.core.op_write_tag_index(repo, subject.digest, entries, known))
                return desc, False
        finally:
            if early is None:
                upload.release()
            else:
                if not early.done():
                    early.cancel()  # not needed after all (a reuse, a refusal, a failure): stop it
                early.add_done_callback(_collect)
            if config is not None:
                # Its outcome is the manifest PUT's business (which waits for it); a job that stopped earlier
                # only collects it, so a failure is not logged as never retrieved.
                config.add_done_callback(_collect)

    async def _envelope(
        self, client: AsyncRegistryClient, repo: str, make: Make, upload: _Upload, *, refill: bool
    ) -> tuple[SignedEnvelope, Descriptor]:
        """Sign (``make``) and upload the envelope into ``upload``'s session; ``refill`` opens one for a later push."""
        try:
            signed = await make()
        except BaseException:
            upload.release()
            raise
        session = await upload.take()
        if refill:
            _Upload(self, self._aclient(_UPLOAD_SLOT), repo, fresh=True).release()
        # A fresh envelope (new signing time and signature) cannot already be in the registry: no HEAD first, and no
        # entry in the client's per-blob lock and presence cache, which only repeated blobs need. A retry starts
        # from a new session: the failed PUT may have used this one up.
        sessions = [session]
        envelope_desc = await client.run(
            lambda: client.core.op_push_blob(
                repo, signed.raw, signed.media_type, check_exists=False, session=sessions.pop() if sessions else None
            )
        )
        return signed, envelope_desc

    async def _put_signature(
        self,
        client: AsyncRegistryClient,
        repo: str,
        subject: Descriptor,
        signed: SignedEnvelope,
        envelope_desc: Descriptor,
        form: ManifestForm,
        config: Awaitable[Descriptor] | None,
    ) -> tuple[Descriptor, httpx.Headers]:
        """The signature manifest over the uploaded envelope: its descriptor and the PUT's headers (which say
        whether the registry processed the subject)."""
        await (config if config is not None else client.push_blob(repo, EMPTY_JSON))
        manifest = envelope_signature_manifest(envelope_desc, subject, signed, form)
        headers = await client.put_manifest(repo, manifest.digest, manifest.raw, OCI_MANIFEST)
        return manifest.descriptor(), headers

    async def amanifest_exists(self, repo: str, digest: str) -> bool:
        return await self._aclient().head_manifest(repo, digest) is not None

    def _lists_by_tag(self) -> bool:
        return self.options.referrers == "tag" or (self.options.referrers == "auto" and self._referrers_absent)

    async def arelist_signature(self, repo: str, subject_digest: str, entry: Descriptor) -> bool:
        if not self._lists_by_tag():
            return False
        await self._aclient().add_referrer_by_tag(repo, subject_digest, entry)
        return True

    async def aunlist_signature(self, repo: str, subject_digest: str, digest: str) -> None:
        client = self._aclient()
        if self._lists_by_tag():
            async with client.subject_lock(repo, subject_digest):
                await client.run(lambda: client.core.op_remove_from_tag_index(repo, subject_digest, digest))
        else:
            # The Referrers API lists every manifest that names the subject: unlisting ours is deleting it.
            await client.delete_manifest(repo, digest)
