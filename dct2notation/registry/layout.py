"""OCI image layout on disk (``oci-layout``, ``index.json``, ``blobs/sha256``) holding Notation signatures.

Signatures are stored the way Notation's own OCI-layout test data holds them: the signature manifest is listed
untagged in ``index.json`` (Notation 1.x finds it as a predecessor of the subject) and the referrers index is
tagged ``sha256-<hex>`` through ``org.opencontainers.image.ref.name``.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..config import DEFAULT_LIMITS, Limits
from ..errors import InputError, NotFoundError
from ..files import read_capped, read_regular, remove_beneath, write_beneath
from ..jsontext import loads as json_loads
from ..notation.envelope import SignedEnvelope
from ..notation.manifest import (
    ManifestForm,
    envelope_signature_manifest,
    parse_index,
    parse_signature_manifest,
    referrers_index,
    referrers_tag,
)
from ..oci import EMPTY_JSON, OCI_INDEX, OCI_MANIFEST, Descriptor, go_json, sha256_digest
from .client import ForeignIndexError, RetryStats, TagIndex, referrers_index_problem
from .reference import Reference, validate_digest
from .store import Find, Make, SignatureStore, unique_signatures

T = TypeVar("T")

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_FILE = b'{"imageLayoutVersion":"1.0.0"}'

_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


class OCILayout:
    """Read and write one layout directory. Writes are atomic (temp file + rename) and serialised."""

    def __init__(self, root: Path, limits: Limits = DEFAULT_LIMITS) -> None:
        self.root = root
        self.limits = limits

    # --- structure ----------------------------------------------------------------------------------
    def init(self) -> None:
        """Create the layout if absent; refuse a directory that holds something else."""
        marker = self.root / "oci-layout"
        if marker.exists():
            self._check_marker()
            return
        if self.root.exists() and any(self.root.iterdir()):
            raise InputError(f"{self.root}: not an OCI image layout (no oci-layout file) and not empty")
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_atomic("oci-layout", LAYOUT_FILE)
        self._write_index({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})

    def _check_marker(self) -> None:
        marker = self.root / "oci-layout"
        try:
            version = json_loads(read_capped(self.root, "oci-layout", self.limits.manifest_bytes)).get(
                "imageLayoutVersion"
            )
        except (OSError, ValueError, AttributeError) as exc:
            raise InputError(f"{marker}: not a readable oci-layout file ({exc})") from exc
        if version != "1.0.0":
            raise InputError(f"{marker}: imageLayoutVersion {version!r} is not supported (expected 1.0.0)")

    def require(self) -> None:
        if not (self.root / "oci-layout").is_file():
            raise NotFoundError(f"{self.root}: not an OCI image layout (no oci-layout file)")
        self._check_marker()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One writer at a time: a thread lock within the process, flock on the directory across processes."""
        held = self.lock()
        try:
            yield
        finally:
            self.unlock(held)

    def lock(self) -> tuple[threading.Lock, int]:
        """Take what ``locked`` holds and return it, for a holder that releases it from another thread (an asyncio
        task whose blocking calls each run in a worker thread)."""
        with _LOCKS_GUARD:
            lock = _LOCKS.setdefault(self.root.resolve(), threading.Lock())
        lock.acquire()
        try:
            fd = os.open(self.root, os.O_RDONLY)
        except OSError:
            lock.release()
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            os.close(fd)
            lock.release()
            raise
        return lock, fd

    def unlock(self, held: tuple[threading.Lock, int]) -> None:
        lock, fd = held
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
            lock.release()

    # --- index.json -----------------------------------------------------------------------------------
    def read_index(self) -> dict[str, Any]:
        # One reader and one cap (layout_index_bytes) for every command: a layout holds a whole migration's tags.
        path = self.root / "index.json"
        cap = self.limits.layout_index_bytes
        try:
            raw = read_regular(self.root, "index.json", cap)
        except FileNotFoundError as exc:
            raise InputError(f"{path}: cannot read (No such file or directory)") from exc
        if len(raw) > cap:
            raise InputError(f"{path}: exceeds the {cap}-byte limit (layout_index_bytes)")
        try:
            doc = json_loads(raw)
        except ValueError as exc:
            raise InputError(f"{path}: not JSON ({exc})") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
            raise InputError(f"{path}: manifests: missing or not a list")
        return doc

    def manifests(self) -> list[Descriptor]:
        doc = self.read_index()
        return [
            Descriptor.from_dict(m, where=f"{self.root}/index.json: manifests[{i}]")
            for i, m in enumerate(doc["manifests"])
        ]

    def _write_index(self, doc: dict[str, Any]) -> None:
        # Keep the document's own fields and order; oras writes compact JSON.
        self._write_atomic("index.json", go_json(doc))

    def _write_atomic(self, relative: str, data: bytes) -> None:
        # Never through a symlinked blobs/ or blobs/sha256: that would write outside the layout.
        write_beneath(self.root, relative, data)

    # --- blobs ----------------------------------------------------------------------------------------
    @staticmethod
    def _blob_name(digest: str) -> str:
        validate_digest(digest)
        alg, _, hexpart = digest.partition(":")
        return f"blobs/{alg}/{hexpart}"

    def blob_path(self, digest: str) -> Path:
        return self.root / self._blob_name(digest)

    def put_blob(self, data: bytes) -> str:
        digest = sha256_digest(data)
        if not self.blob_path(digest).exists():
            self._write_atomic(self._blob_name(digest), data)
        return digest

    def get_blob(self, digest: str, max_bytes: int) -> bytes:
        path = self.blob_path(digest)
        try:
            # A regular file under plain directories only, and never more than max_bytes + 1 read: /dev/zero
            # or a FIFO planted as a blob is refused, not read until memory or patience runs out.
            data = read_regular(self.root, self._blob_name(digest), max_bytes, what="blob")
        except FileNotFoundError as exc:
            raise NotFoundError(f"{self.root}: blob {digest} not found") from exc
        if len(data) > max_bytes:
            raise InputError(f"{path}: exceeds the {max_bytes}-byte limit")
        if sha256_digest(data) != digest:
            raise InputError(f"{path}: content does not match its digest")
        return data

    def remove_blob(self, digest: str) -> None:
        remove_beneath(self.root, self._blob_name(digest))

    # --- references -----------------------------------------------------------------------------------
    def resolve(self, ref: str) -> Descriptor:
        """A tag (``ref.name`` annotation) or a digest, as a plain descriptor."""
        for desc in self.manifests():
            if (desc.annotations or {}).get(REF_NAME) == ref or desc.digest == ref:
                return Descriptor(desc.media_type, desc.digest, desc.size)
        if ref.startswith("sha256:") and self.blob_path(ref).is_file():
            raw = self.get_blob(ref, self.limits.manifest_bytes)
            try:
                media_type = json_loads(raw).get("mediaType") or OCI_MANIFEST
            except (ValueError, AttributeError) as exc:
                raise InputError(f"{self.root}: blob {ref} is not a manifest") from exc
            return Descriptor(media_type, ref, len(raw))
        raise NotFoundError(f"{self.root}: {ref} not found in index.json")

    def add_manifest(self, desc: Descriptor) -> None:
        """List a manifest untagged (call under ``locked``)."""
        doc = self.read_index()
        if not any(m.get("digest") == desc.digest for m in doc["manifests"]):
            doc["manifests"].append(desc.to_dict())
            self._write_index(doc)

    def remove_manifest(self, digest: str) -> None:
        """Stop listing an untagged manifest (call under ``locked``); tagged entries are never touched."""
        doc = self.read_index()
        kept = [
            m
            for m in doc["manifests"]
            if not (isinstance(m, dict) and m.get("digest") == digest and REF_NAME not in (m.get("annotations") or {}))
        ]
        if len(kept) != len(doc["manifests"]):
            doc["manifests"] = kept
            self._write_index(doc)

    def tagged(self, tag: str) -> Descriptor | None:
        for desc in self.manifests():
            if (desc.annotations or {}).get(REF_NAME) == tag:
                return desc
        return None

    def tag(self, desc: Descriptor, tag: str) -> str | None:
        """Point ``tag`` at ``desc``; returns the digest the tag pointed at before (call under ``locked``)."""
        doc = self.read_index()
        entry = Descriptor(desc.media_type, desc.digest, desc.size, annotations={REF_NAME: tag}).to_dict()
        previous: str | None = None
        for i, m in enumerate(doc["manifests"]):
            if isinstance(m, dict) and (m.get("annotations") or {}).get(REF_NAME) == tag:
                previous = m.get("digest")
                doc["manifests"][i] = entry
                break
        else:
            doc["manifests"].append(entry)
        self._write_index(doc)
        return previous

    def tag_index(self, subject_digest: str) -> TagIndex:
        """What the subject's ``sha256-<hex>`` ref.name holds (see ``client.TagIndex``)."""
        desc = self.tagged(referrers_tag(subject_digest))
        if desc is None:
            return TagIndex([], None)
        raw = self.get_blob(desc.digest, self.limits.referrers_index_bytes)
        problem = referrers_index_problem(raw, subject_digest, self.limits)
        if problem is not None:
            return TagIndex([], desc.digest, problem)  # distribution-spec: not an index means no referrers
        return TagIndex(parse_index(raw, where=f"{self.root}: referrers index", limits=self.limits), desc.digest)

    def referrers_from_tag(self, subject_digest: str) -> list[Descriptor]:
        return self.tag_index(subject_digest).entries

    def referrers_from_graph(self, subject_digest: str) -> list[Descriptor]:
        """Signature manifests listed in index.json whose subject is the digest (how Notation 1.x finds them)."""
        found: list[Descriptor] = []
        for desc in self.manifests():
            if desc.media_type != OCI_MANIFEST or desc.size > self.limits.signature_manifest_bytes:
                continue
            try:
                raw = self.get_blob(desc.digest, self.limits.signature_manifest_bytes)
                manifest = parse_signature_manifest(raw, limits=self.limits)
            except (InputError, NotFoundError):
                continue  # ordinary images and foreign artifacts
            if manifest.subject.digest == subject_digest:
                found.append(manifest.descriptor())
        return found


class OCILayoutStore(SignatureStore):
    """:class:`SignatureStore` over an OCI layout directory; ``repo`` arguments are ignored (one layout, one repo).
    Local files: the protocol's async methods that run their sync twin in a worker thread serve as they are."""

    def __init__(self, root: Path, limits: Limits = DEFAULT_LIMITS, *, create: bool = False) -> None:
        self.layout = OCILayout(root, limits)
        self.limits = limits
        self._alock: tuple[int, asyncio.Lock] | None = None
        self._written_indexes: set[str] = set()  # the only outdated indexes this store ever removes
        if create:
            self.layout.init()
        else:
            self.layout.require()

    @property
    def index_tag_required(self) -> bool:
        return False  # Notation 1.x finds a layout's signatures through index.json's graph, tagged or not

    def retry_stats(self) -> RetryStats | None:
        return None  # local files: nothing is retried

    @property
    def lists_on_write(self) -> bool:
        return True  # every writer takes the layout's flock, and the push lists the signature under it

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def list_tags(self, repo: str) -> list[str]:
        """Tags (``ref.name``) of ``repo``: a ``REPOSITORY:TAG`` name where REPOSITORY is or ends with ``/repo``
        (a layout holding several repositories), and every bare TAG."""
        out = []
        for desc in self.layout.manifests():
            name = (desc.annotations or {}).get(REF_NAME)
            if name is None:
                continue
            owner, sep, tag = name.rpartition(":")
            if sep and "/" in owner and "/" not in tag:
                if owner == repo or owner.endswith("/" + repo):
                    out.append(tag)
            else:
                out.append(name)
        return out

    def subject_reference(self, repository: str, digest: str) -> Reference:
        # The digest alone finds it (one layout, one repository); the name's last component is kept for messages.
        return Reference("local", repository.rpartition("/")[2] or "layout", None, digest)

    def resolve(self, reference: Reference) -> Descriptor:
        return self.layout.resolve(reference.reference)

    def get_manifest(self, repo: str, digest: str) -> bytes:
        return self.layout.get_blob(digest, self.limits.signature_manifest_bytes)

    def get_blob(self, repo: str, digest: str) -> bytes:
        return self.layout.get_blob(digest, self.limits.envelope_bytes)

    def list_signatures(self, repo: str, subject_digest: str) -> list[Descriptor]:
        return unique_signatures(
            self.layout.referrers_from_tag(subject_digest) + self.layout.referrers_from_graph(subject_digest)
        )

    def push_signature(
        self, repo: str, subject: Descriptor, signed: SignedEnvelope, form: ManifestForm = "legacy"
    ) -> Descriptor:
        with self.layout.locked():
            return self._push_locked(subject, signed, form)

    def _push_locked(self, subject: Descriptor, signed: SignedEnvelope, form: ManifestForm) -> Descriptor:
        layout = self.layout
        envelope_desc = Descriptor(signed.media_type, layout.put_blob(signed.raw), len(signed.raw))
        layout.put_blob(EMPTY_JSON)
        manifest = envelope_signature_manifest(envelope_desc, subject, signed, form)
        entry = manifest.descriptor()
        tag = referrers_tag(subject.digest)
        index = layout.tag_index(subject.digest)
        if index.foreign is not None:
            # Before anything is written: the tag's content is someone else's (it may be the subject itself).
            raise ForeignIndexError(
                f"{layout.root}: {tag} is not a referrers index ({index.foreign}); left alone and nothing signed"
            )
        layout.put_blob(manifest.raw)
        self._list_locked(subject.digest, entry, index)
        return entry

    def _list_locked(self, subject_digest: str, entry: Descriptor, index: TagIndex) -> None:
        layout = self.layout
        layout.add_manifest(Descriptor(OCI_MANIFEST, entry.digest, entry.size))
        if all(e.digest != entry.digest for e in index.entries):
            self._write_tag_index_locked(subject_digest, [*index.entries, entry])

    def _write_tag_index_locked(self, subject_digest: str, entries: list[Descriptor]) -> None:
        layout = self.layout
        index_raw = referrers_index(entries)
        index_digest = layout.put_blob(index_raw)
        self._written_indexes.add(index_digest)
        previous = layout.tag(Descriptor(OCI_INDEX, index_digest, len(index_raw)), referrers_tag(subject_digest))
        still_listed = {m.digest for m in layout.manifests()}
        if previous and previous in self._written_indexes and previous not in still_listed:
            # Ours, pure and unreachable now; leaving it would be the orphan users complain about.
            layout.remove_blob(previous)

    def _relist(self, subject_digest: str, entry: Descriptor) -> bool:
        index = self.layout.tag_index(subject_digest)
        if index.foreign is not None:
            return False
        self._list_locked(subject_digest, entry, index)
        return True

    def _unlist(self, subject_digest: str, digest: str) -> None:
        self.layout.remove_manifest(digest)
        index = self.layout.tag_index(subject_digest)
        kept = [e for e in index.entries if e.digest != digest]
        if index.foreign is None and len(kept) != len(index.entries):
            self._write_tag_index_locked(subject_digest, kept)

    @asynccontextmanager
    async def _alocked(self) -> AsyncIterator[None]:
        """``OCILayout.locked`` for a task. Tasks take turns on an asyncio lock first: tasks blocked in worker threads
        on the thread lock would starve the holder of the threads it needs to finish (the default pool has a
        handful)."""
        async with self._task_lock():
            held = await asyncio.to_thread(self.layout.lock)
            try:
                yield
            finally:
                await asyncio.to_thread(self.layout.unlock, held)

    async def _under_lock(self, fn: Callable[[], T]) -> T:
        async with self._alocked():
            return await asyncio.to_thread(fn)

    async def amanifest_exists(self, repo: str, digest: str) -> bool:
        return await asyncio.to_thread(lambda: self.layout.blob_path(digest).is_file())

    async def arelist_signature(self, repo: str, subject_digest: str, entry: Descriptor) -> bool:
        return await self._under_lock(lambda: self._relist(subject_digest, entry))

    async def aunlist_signature(self, repo: str, subject_digest: str, digest: str) -> None:
        await self._under_lock(lambda: self._unlist(subject_digest, digest))

    async def acheck_writable(self, repo: str) -> None:
        blobs = self.layout.root / "blobs" / "sha256"
        for path in (self.layout.root, blobs):
            if not os.access(path, os.W_OK | os.X_OK):
                raise InputError(f"{path}: not writable (a signature could not be stored in this OCI layout)")

    async def apush_signature_once(
        self, repo: str, subject: Descriptor, find: Find, make: Make, form: ManifestForm = "legacy",
        *, eager: bool = False
    ) -> tuple[Descriptor, bool]:
        """The listing ``find`` reads and the write are under the layout's lock, so no other writer (thread or
        process) lands between them: two runs never sign one subject twice with one certificate. ``eager`` is
        ignored: a layout has no round trips to save."""
        async with self._alocked():
            listed = await asyncio.to_thread(self.list_signatures, repo, subject.digest)
            found = await find(listed)
            if found is not None:
                return found, True
            signed = await make()
            return await asyncio.to_thread(self._push_locked, subject, signed, form), False

    def _task_lock(self) -> asyncio.Lock:
        loop = id(asyncio.get_running_loop())
        if self._alock is None or self._alock[0] != loop:
            self._alock = (loop, asyncio.Lock())
        return self._alock[1]
