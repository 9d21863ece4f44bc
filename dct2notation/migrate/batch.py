"""Run a plan's jobs: asyncio, bounded concurrency, a token bucket per registry, the journal, progress on stderr."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from ..config import Clock, SystemClock
from ..errors import Dct2NotationError, DigestMismatchError, InputError, NotFoundError, RemoteError
from ..jsontext import loads as json_loads
from ..keys.base import SigningKey
from ..notation.envelope import SignedEnvelope, Timestamper
from ..notation.formats import SignatureFormat, parse_signature_envelope, sign_in_format, signature_valid
from ..notation.manifest import ManifestForm, parse_signature_manifest, thumbprints
from ..oci import OCI_MANIFEST, THUMBPRINT_ANNOTATION, Descriptor
from ..registry.store import SignatureStore, registry_lane, registry_slot
from .journal import DONE, Journal
from .plan import Job

DEFAULT_CONCURRENCY = 16


class TokenBucket:
    """``rate`` requests/s with a burst of one second's worth; None = unlimited."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate or 1.0)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self, n: int = 1) -> None:
        if self.rate is None:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                # A request dearer than the burst (a signature costs 5) goes once the bucket is full, into debt:
                # waiting for tokens >= n would wait forever under --rate-limit below 5.
                if self.tokens >= min(n, self.capacity):
                    self.tokens -= n
                    return
                await asyncio.sleep((min(n, self.capacity) - self.tokens) / self.rate)


class TimedTimestamper:
    """Counts TSA latency apart from registry time, so a slow TSA is visible in the summary.

    ``seconds`` is wall time with at least one TSA request in flight, not the sum of each request's time: jobs
    timestamp from worker threads at once, and a sum counted overlapping waits twice (more TSA seconds than the run's
    elapsed seconds). The counters are shared by those threads, hence the lock."""

    def __init__(self, inner: Timestamper) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.calls = 0
        self._lock = threading.Lock()
        self._in_flight = 0
        self._since = 0.0  # when the in-flight count last rose from 0

    def timestamp(self, signature: bytes, *, hash_algorithm: str, signing_chain: list[x509.Certificate]) -> bytes:
        with self._lock:
            if self._in_flight == 0:
                self._since = time.monotonic()
            self._in_flight += 1
        try:
            return self.inner.timestamp(signature, hash_algorithm=hash_algorithm, signing_chain=signing_chain)
        finally:
            with self._lock:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self.seconds += time.monotonic() - self._since
                self.calls += 1


@dataclass
class Reconciliation:
    """What the reconciliation pass checked and repaired (summary JSON ``reconciliation`` and stderr)."""

    checked: int = 0
    seconds: float = 0.0
    repairs: list[dict[str, Any]] = field(default_factory=list)

    def add(self, action: str, job: Job, signature: str, now: str | None) -> None:
        self.repairs.append(
            {
                "action": action,
                "repository": job.repository,
                "digest": job.digest,
                "identity": job.identity,
                "signature": signature,
                "now": now,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for repair in self.repairs:
            counts[repair["action"]] = counts.get(repair["action"], 0) + 1
        return {
            "checked": self.checked,
            "seconds": round(self.seconds, 3),
            "repaired": len(self.repairs),
            "counts": dict(sorted(counts.items())),
            "repairs": self.repairs,
        }

    def lines(self) -> list[str]:
        """For stderr: one summary line, then one per repair."""
        counts = self.to_dict()["counts"]
        what = ", ".join(f"{action} {n}" for action, n in counts.items()) or "nothing to repair"
        head = f"reconciliation: {self.checked} job(s) checked in {self.seconds:.2f} s"
        out = [f"{head}; {len(self.repairs)} repaired ({what})"]
        for r in self.repairs:
            out.append(
                f"  {r['action']}: {r['repository']}@{r['digest']} [{r['identity']}] {r['signature']}"
                + (f" -> {r['now']}" if r["now"] and r["now"] != r["signature"] else "")
            )
        return out


@dataclass
class BatchResult:
    jobs: list[Job]
    journal: Journal
    elapsed: float
    timestamp_seconds: float = 0.0
    retries: dict[str, Any] = field(default_factory=dict)
    # What this run did per job (signed, reused, failed, already-done): a resumed run that signs nothing must not
    # report the journal's earlier signatures as its own ("signed: 307 at 13,835/s").
    this_run: dict[str, int] = field(default_factory=dict)
    reconciliation: Reconciliation = field(default_factory=Reconciliation)

    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.results() if r["state"] not in DONE]

    def results(self) -> list[dict[str, Any]]:
        out = []
        for job in self.jobs:
            entry = self.journal.get(job.key)
            out.append(
                {
                    "repository": job.repository,
                    "digest": job.digest,
                    "identity": job.identity,
                    "tags": list(job.tags),
                    "state": entry.state if entry else "pending",
                    "signature": entry.signature if entry else None,
                    "attempts": entry.attempts if entry else 0,
                    "error": entry.error if entry else None,
                }
            )
        return out

    def summary(self) -> dict[str, Any]:
        results = self.results()
        counts: dict[str, int] = {}
        for r in results:
            counts[r["state"]] = counts.get(r["state"], 0) + 1
        signed = self.this_run.get("signed", 0)
        return {
            "jobs": len(results),
            "counts": counts,
            "this_run": dict(self.this_run),
            "elapsed_seconds": round(self.elapsed, 3),
            "signatures_per_second": round(signed / self.elapsed, 2) if self.elapsed > 0 and signed else None,
            "timestamp_seconds": round(self.timestamp_seconds, 3),
            "retries": self.retries,
            "reconciliation": self.reconciliation.to_dict(),
            "results": results,
            "failures": [r for r in results if r["state"] not in DONE],
        }


def _registry_of(job: Job) -> str:
    return job.repository.partition("/")[0]


def same_signer(descriptors: Sequence[Descriptor], thumbs: list[str]) -> list[Descriptor]:
    """The listed signatures whose thumbprint annotation names this certificate chain: candidates only, since an
    annotation is whatever the index says (the manifest may be gone, or name another subject)."""
    out = []
    for desc in descriptors:
        raw = (desc.annotations or {}).get(THUMBPRINT_ANNOTATION)
        if raw is None:
            continue
        try:
            listed = json_loads(raw)
        except ValueError:
            continue
        if listed == thumbs:
            out.append(desc)
    return out


async def real_signature(
    store: SignatureStore, repo: str, subject: Descriptor, desc: Descriptor, thumbs: list[str]
) -> str | None:
    """None when ``desc`` is a signature this certificate chain really made over ``subject``, else why not.

    Its manifest exists and names the subject, its envelope exists, signs the subject's digest, carries this chain
    and verifies under the chain's leaf key. Trust (policy, trust store) is the check's business, not reuse's."""
    limits = store.limits
    try:
        manifest = parse_signature_manifest(
            await store.aget_manifest(repo, desc.digest), where=f"signature manifest {desc.digest}", limits=limits
        )
        if manifest.subject.digest != subject.digest:
            return f"signature manifest {desc.digest} names subject {manifest.subject.digest}"
        raw = await store.aget_blob(repo, manifest.envelope.digest)
        envelope = parse_signature_envelope(raw, manifest.envelope.media_type, limits)
    except (NotFoundError, InputError, DigestMismatchError) as exc:
        # Gone or not a signature. A registry that keeps failing (RemoteError) or refuses us (AuthError) fails
        # the job instead: signing again because a read failed would make a duplicate.
        return exc.message
    if envelope.target_artifact.digest != subject.digest:
        return f"signature {desc.digest} signs {envelope.target_artifact.digest}"
    if thumbprints(envelope.cert_chain) != thumbs:
        return f"signature {desc.digest} carries another certificate chain than its annotation says"
    try:
        valid = signature_valid(envelope, limits)
    except (Dct2NotationError, ValueError) as exc:
        return f"signature {desc.digest}: {exc}"
    if not valid:
        return f"signature {desc.digest} does not verify under its signing certificate"
    return None


async def reusable_signature(
    store: SignatureStore, repo: str, subject: Descriptor, listed: Sequence[Descriptor], thumbs: list[str]
) -> Descriptor | None:
    """The first listed signature by this chain that is real (``real_signature``): what makes a rerun idempotent
    without ever calling a dangling or forged index entry a signature."""
    for desc in same_signer(listed, thumbs):
        if await real_signature(store, repo, subject, desc, thumbs) is None:
            return desc
    return None


async def listing_and_existence(
    store: SignatureStore, repo: str, subject_digest: str, signatures: Sequence[str]
) -> tuple[list[Descriptor], dict[str, bool]]:
    """The subject's listing and whether each of ``signatures`` exists, all asked at once: the reconciliation
    pass's one round trip per subject (neither answer is older than the other by more than a round trip, as when
    they were asked one after the other). The first failure is raised once every request has ended."""

    async def exists(slot: int, digest: str) -> bool:
        registry_slot.set(slot)  # this request's own task: beside the listing, on its own connection
        return await store.amanifest_exists(repo, digest)

    outcomes = await asyncio.gather(
        store.alist_signatures(repo, subject_digest),
        *(exists(slot, digest) for slot, digest in enumerate(signatures, start=1)),
        return_exceptions=True,
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    listed, *found = outcomes
    assert isinstance(listed, list)
    return listed, {digest: bool(present) for digest, present in zip(signatures, found, strict=True)}


class BatchSigner:
    def __init__(
        self,
        jobs: Sequence[Job],
        *,
        stores: Callable[[str], SignatureStore],
        keys: Mapping[str, SigningKey],
        journal: Journal,
        form: ManifestForm = "legacy",
        concurrency: int = DEFAULT_CONCURRENCY,
        rate_limit: float | None = None,
        timestamper: Timestamper | None = None,
        clock: Clock | None = None,
        progress: bool = True,
        signature_format: SignatureFormat = "cose",
    ) -> None:
        self.jobs = list(jobs)
        self.signature_format: SignatureFormat = signature_format
        self.stores = stores
        self.keys = keys
        self.journal = journal
        self.form = form
        self.concurrency = max(1, concurrency)
        self.rate_limit = rate_limit
        self.timestamper = TimedTimestamper(timestamper) if timestamper is not None else None
        self.clock = clock or SystemClock()
        self.progress = progress
        self._thumbs = {name: thumbprints(key.certificate_chain()) for name, key in keys.items()}
        self._pushed: dict[str, Descriptor] = {}  # job key -> signature written this run, not yet confirmed listed
        self._reused_seen = False  # a reuse this run: no more eager signing (see _one)

    async def preflight(self) -> None:
        """Before a long batch: every registry answers and lets us write (one empty-JSON blob per repository host)."""
        first: dict[str, Job] = {}
        for job in self.jobs:
            first.setdefault(_registry_of(job), job)
        for registry, job in first.items():
            store = self.stores(registry)
            try:
                ref = store.subject_reference(job.repository, job.digest)
                await store.aresolve(ref)
                await store.acheck_writable(ref.repository)
            except Dct2NotationError as exc:
                # The same exit code as the error itself: refused credentials are exit 2 in every command, a
                # registry that keeps failing exit 3.
                kind = type(exc) if type(exc).__init__ is Dct2NotationError.__init__ else RemoteError
                raise kind(f"pre-flight {registry}: cannot read and write {job.repository}: {exc}") from exc

    async def _one(self, job: Job, bucket: TokenBucket, *, more: bool = False) -> str:
        """Run one job; what this run did with it: signed, reused, failed or already-done (by an earlier run).

        ``more``: other jobs of its repository wait in the queue. Then a job never tried before (journaled
        pending, 0 attempts) is signed and its envelope uploaded while the listing is read (``eager``), as long as
        this run has reused nothing: over a network a round trip fewer. A reuse turns it off for the rest of the run
        (the estate is signed already, or partly), so at most the jobs then in flight made an envelope for nothing
        (never listed, never referenced); a TSA (a third party's request per envelope) keeps it off."""
        entry = self.journal.get(job.key)
        if entry is not None and entry.state in DONE:
            return "already-done"
        eager = (
            more
            and self.timestamper is None
            and not self._reused_seen
            and entry is not None
            and (entry.state, entry.attempts) == ("pending", 0)
        )
        key = self.keys[job.identity]
        store = self.stores(_registry_of(job))
        ref = store.subject_reference(job.repository, job.digest)
        thumbs = self._thumbs[job.identity]
        try:
            if job.media_type is not None:
                # The plan's pre-flight HEADed this digest and its size matched: content-addressed, so the
                # descriptor it saw is still the one to sign.
                subject = Descriptor(job.media_type, job.digest, job.size)
            else:
                await bucket.take(1)
                subject = await store.aresolve(ref)
            await bucket.take(1)

            async def find(listed: list[Descriptor]) -> Descriptor | None:
                return await reusable_signature(store, ref.repository, subject, listed, thumbs)

            async def make() -> SignedEnvelope:
                self.journal.intent(job.key)
                await bucket.take(5)
                return await self._asign(job, subject, key)

            # Checked on every run, not only after a crash: a signature made outside this journal (an earlier
            # shard layout, a manual sign) is reused too, never duplicated.
            desc, reused = await store.apush_signature_once(ref.repository, subject, find, make, self.form, eager=eager)
            self._reused_seen |= reused
            if reused or store.lists_on_write:
                # ``find`` saw it listed (and it is real), or the write listed it under the store's lock.
                self.journal.done(job.key, "reused" if reused else "signed", desc.digest)
            else:
                # Written, not yet seen listed: journaled done by the reconciliation pass once it is.
                self._pushed[job.key] = desc
            return "reused" if reused else "signed"
        except Dct2NotationError as exc:
            self.journal.fail(job.key, exc.message)
        except Exception as exc:  # noqa: BLE001 - one bad job must not stop thousands; its reason is journaled
            self.journal.fail(job.key, f"{type(exc).__name__}: {exc}")
        return "failed"

    # --- reconciliation ------------------------------------------------------------------------------------
    async def reconcile(self, buckets: dict[str, TokenBucket]) -> Reconciliation:
        """After every job: each job journaled signed/reused (or written this run) must be listed for its subject
        and its manifest must exist. What a concurrent writer broke is repaired and reported: an entry it dropped is
        listed again (``relisted``), or, when a real signature by the same certificate is listed instead, that one is
        adopted (``adopted``); a twin this run wrote after another writer's is unlisted (``deduplicated``: the first
        listed real one wins, which every run following this rule agrees on); a signature whose manifest is gone is
        made again (``resigned``). Only then is a job journaled done."""
        report = Reconciliation()
        start = time.monotonic()
        groups: dict[tuple[str, str], list[Job]] = {}
        for job in self.jobs:
            groups.setdefault((job.repository, job.digest), []).append(job)
        queue: asyncio.Queue[list[Job]] = asyncio.Queue()
        for group in groups.values():
            queue.put_nowait(group)

        async def worker(lane: int) -> None:
            registry_lane.set(lane)
            while True:
                try:
                    group = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                bucket = buckets.setdefault(_registry_of(group[0]), TokenBucket(self.rate_limit))
                try:
                    await self._reconcile_subject(group, bucket, report)
                except Dct2NotationError as exc:
                    self._unconfirmed(group, f"reconciliation: {exc.message}")
                except Exception as exc:  # noqa: BLE001 - as in _one: journaled, the others go on
                    self._unconfirmed(group, f"reconciliation: {type(exc).__name__}: {exc}")

        await asyncio.gather(*(worker(lane) for lane in range(min(self.concurrency, len(groups) or 1))))
        report.seconds = time.monotonic() - start
        return report

    def _this_run(self, outcomes: dict[str, str], reconciliation: Reconciliation) -> dict[str, int]:
        """What this run did per job, after the pass: a job it touched counts as the journal now has it (a pushed
        twin the pass unlisted is ``reused``); one an earlier run finished and the pass left alone is already-done."""
        repaired = {r["repository"] + "@" + r["digest"] + "#" + r["identity"] for r in reconciliation.repairs}
        out: dict[str, int] = {}
        for job in self.jobs:
            outcome = outcomes.get(job.key, "already-done")
            if outcome != "already-done" or job.key in repaired:
                entry = self.journal.get(job.key)
                outcome = entry.state if entry is not None else "pending"
            out[outcome] = out.get(outcome, 0) + 1
        return out

    def _unconfirmed(self, jobs: list[Job], error: str) -> None:
        for job in jobs:
            if self._pushed.pop(job.key, None) is not None:
                self.journal.fail(job.key, error)

    def _expected(self, job: Job) -> tuple[str, str] | None:
        """(signature digest, state to journal) this job stands for, or None (failed or never run)."""
        pushed = self._pushed.get(job.key)
        if pushed is not None:
            return pushed.digest, "signed"
        entry = self.journal.get(job.key)
        if entry is not None and entry.state in DONE and entry.signature:
            return entry.signature, entry.state
        return None

    def _confirm(self, job: Job, state: str, signature: str) -> None:
        self._pushed.pop(job.key, None)
        self.journal.done(job.key, state, signature)

    async def _reconcile_subject(self, jobs: list[Job], bucket: TokenBucket, report: Reconciliation) -> None:
        store = self.stores(_registry_of(jobs[0]))
        repo = store.subject_reference(jobs[0].repository, jobs[0].digest).repository
        subject = Descriptor(jobs[0].media_type or OCI_MANIFEST, jobs[0].digest, jobs[0].size)
        active = [job for job in jobs if self._expected(job) is not None]
        report.checked += len(active)
        rounds = store.limits.reconcile_rounds
        for _ in range(rounds):
            expected = {e[0] for e in map(self._expected, active) if e is not None}
            await bucket.take(1 + len(expected))
            listed, exists = await listing_and_existence(store, repo, subject.digest, sorted(expected))
            changed = False
            for job in active:
                changed |= await self._reconcile_job(job, store, repo, subject, listed, exists, bucket, report)
            if not changed:
                return
        self._unconfirmed(
            active, f"reconciliation: the listing kept changing under concurrent writers ({rounds} rounds)"
        )

    async def _reconcile_job(
        self,
        job: Job,
        store: SignatureStore,
        repo: str,
        subject: Descriptor,
        listed: list[Descriptor],
        exists: Mapping[str, bool],
        bucket: TokenBucket,
        report: Reconciliation,
    ) -> bool:
        """One job against one listing (and whether each expected signature's manifest existed when it was read);
        True when it changed something (the subject is then listed again)."""
        expected = self._expected(job)
        if expected is None:
            return False
        signature, state = expected
        thumbs = self._thumbs[job.identity]
        order = [d.digest for d in listed]
        if signature in order:
            if state == "signed":
                # Ours. A real signature by the same certificate listed before it makes ours the twin.
                for earlier in same_signer(listed[: order.index(signature)], thumbs):
                    if await real_signature(store, repo, subject, earlier, thumbs) is None:
                        await bucket.take(1)
                        await store.aunlist_signature(repo, subject.digest, signature)
                        self._confirm(job, "reused", earlier.digest)
                        report.add("deduplicated", job, signature, earlier.digest)
                        return True
            present = exists.get(signature)
            if present is None:  # not asked with the listing (nothing this job expected then)
                await bucket.take(1)
                present = await store.amanifest_exists(repo, signature)
            if present:
                self._confirm(job, state, signature)
                return False
            return await self._resign(job, bucket, report, signature, "is listed but its manifest is gone")
        other = await reusable_signature(store, repo, subject, listed, thumbs)
        if other is not None:
            self._confirm(job, "reused", other.digest)
            report.add("adopted", job, signature, other.digest)
            return True
        await bucket.take(2)
        why = await real_signature(store, repo, subject, Descriptor(OCI_MANIFEST, signature, 0), thumbs)
        if why is not None:
            return await self._resign(job, bucket, report, signature, f"is not listed and not usable ({why})")
        entry = (
            self._pushed.get(job.key)
            or parse_signature_manifest(
                await store.aget_manifest(repo, signature), where=f"signature manifest {signature}", limits=store.limits
            ).descriptor()
        )
        if not await store.arelist_signature(repo, subject.digest, entry):
            self._unconfirmed([job], f"reconciliation: signature {signature} exists but the registry does not list it")
            return False
        report.add("relisted", job, signature, signature)
        return True

    async def _resign(self, job: Job, bucket: TokenBucket, report: Reconciliation, signature: str, why: str) -> bool:
        self._pushed.pop(job.key, None)
        self.journal.fail(job.key, f"reconciliation: signature {signature} {why}")
        await self._one(job, bucket)
        after = self._expected(job)
        report.add("resigned", job, signature, after[0] if after else None)
        return True

    async def _asign(self, job: Job, subject: Descriptor, key: SigningKey) -> SignedEnvelope:
        # A TSA round trip would block the loop; local signing takes ~1 ms and stays on it.
        if self.timestamper is not None:
            return await asyncio.to_thread(self._sign, job, subject, key)
        return self._sign(job, subject, key)

    def _sign(self, job: Job, subject: Descriptor, key: SigningKey) -> SignedEnvelope:
        return sign_in_format(
            self.signature_format,
            subject,
            key,
            clock=self.clock,
            user_metadata=job.annotations(),
            timestamper=self.timestamper,
        )

    async def run(self) -> BatchResult:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from ..report import stderr_console

        self.journal.add(j.key for j in self.jobs)
        start = time.monotonic()
        buckets: dict[str, TokenBucket] = {}
        queue: asyncio.Queue[Job] = asyncio.Queue()
        for job in self.jobs:
            queue.put_nowait(job)
        progress = Progress(
            TextColumn("signing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.1f}/s errors {task.fields[errors]}"),
            TimeRemainingColumn(),
            console=stderr_console,
            disable=not self.progress,
            transient=False,
        )
        errors = 0
        outcomes: dict[str, str] = {}
        waiting = Counter(job.repository for job in self.jobs)  # jobs still queued per repository

        async def worker(task_id: Any, lane: int) -> None:
            nonlocal errors
            registry_lane.set(lane)  # this task's own connection (see registry_lane)
            while True:
                try:
                    job = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                registry = _registry_of(job)
                bucket = buckets.setdefault(registry, TokenBucket(self.rate_limit))
                waiting[job.repository] -= 1
                outcome = await self._one(job, bucket, more=waiting[job.repository] > 0)
                outcomes[job.key] = outcome
                if outcome == "failed":
                    errors += 1
                elapsed = max(time.monotonic() - start, 1e-6)
                progress.update(task_id, advance=1, rate=progress.tasks[0].completed / elapsed, errors=errors)

        with progress:
            task_id = progress.add_task("sign", total=len(self.jobs), rate=0.0, errors=0)
            try:
                workers = min(self.concurrency, len(self.jobs) or 1)
                await asyncio.gather(*(worker(task_id, lane) for lane in range(workers)))
                reconciliation = await self.reconcile(buckets)
                this_run = self._this_run(outcomes, reconciliation)
            finally:
                seen: set[int] = set()
                retries: dict[str, Any] = {}
                for registry in buckets:
                    store = self.stores(registry)
                    if id(store) in seen:
                        continue
                    seen.add(id(store))
                    stats = store.retry_stats()
                    if stats is not None:
                        retries[registry] = stats.to_dict()
                    await store.aclose()
        return BatchResult(
            self.jobs,
            self.journal,
            time.monotonic() - start,
            self.timestamper.seconds if self.timestamper else 0.0,
            retries,
            this_run,
            reconciliation,
        )
