"""Read many GUNs at once from one source: bounded worker threads, one source each, results in the order asked.

At 10-50 ms of round trip, a GUN costs 4-6 requests (root, timestamp, snapshot, targets, delegations): an estate
read one request after another is latency-bound, not CPU-bound. Threads (not asyncio) because the verifier and the
notary reader are synchronous and already bounded (caps, deadline). A notary reader holds one keep-alive
connection, so requests run on ``concurrency`` request threads with one reader each (``concurrency`` connections
per notary server: a run reads one), and each GUN's verification hands its requests to them: the four files every
GUN needs go out at once (``MetadataSource.fetch_many``), then its delegations level by level.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Generic, TypeVar

from ..config import Clock, Limits
from ..errors import AuthError, Dct2NotationError, DCTVerificationError, NotFoundError, RemoteError, UsageError
from .tuf import MetadataSource, TrustedState, VerifiedRepository, verify_repository

S = TypeVar("S", bound=MetadataSource)

# What goes wrong with one GUN and not with the others: it is unknown, does not verify, its server answers 403
# or keeps failing for it. Anything else (a bad --ca, a usage error) is the run's, and stops it.
PER_GUN_ERRORS = (DCTVerificationError, NotFoundError, AuthError, RemoteError)


class SourcePool(Generic[S]):
    """One source per worker thread, made by ``factory`` on first use; ``close`` closes each one made.

    ``shared``: the factory answers one source for every thread (files on disk), so there are no connections to
    spread requests over. ``one_by_one`` (called by a source once its server asks for credentials) makes each
    GUN's files be read on one connection again: with token auth each connection fetches its own token per GUN,
    and four connections per GUN would ask the token service four times as often.
    """

    def __init__(
        self, factory: Callable[[], S], close: Callable[[S], None] | None = None, *, shared: bool = False
    ) -> None:
        self._factory = factory
        self._close = close
        self._local = threading.local()
        self._made: list[S] = []
        self._lock = threading.Lock()
        self.spread = not shared

    def one_by_one(self) -> None:
        self.spread = False

    def get(self) -> S:
        source: S | None = getattr(self._local, "source", None)
        if source is None:
            source = self._factory()
            self._local.source = source
            with self._lock:
                self._made.append(source)
        return source

    @contextmanager
    def separate(self) -> Iterator[S]:
        """A source of its own for one step before the reads (the changefeed), closed after it, so the reads
        still hold at most ``concurrency`` connections."""
        source = self._factory()
        try:
            yield source
        finally:
            if self._close is not None:
                self._close(source)

    def close(self) -> None:
        with self._lock:
            made, self._made = self._made, []
        for source in made:
            if self._close is not None:
                self._close(source)


class _Spread:
    """A ``MetadataSource`` whose reads run on the request threads, each on that thread's own source."""

    def __init__(self, requests: ThreadPoolExecutor, sources: SourcePool[S]) -> None:
        self._requests = requests
        self._sources = sources

    def _read(self, gun: str, name: str, max_bytes: int | None) -> bytes:
        return self._sources.get().fetch(gun, name, max_bytes=max_bytes)

    def fetch(self, gun: str, name: str, *, max_bytes: int | None = None) -> bytes:
        if not self._sources.spread:
            # One GUN, one connection (the verifying thread's own): one token per GUN, as before spreading. The
            # request threads' connections sit idle from then on: at most 2 x concurrency open, as many in use.
            return self._read(gun, name, max_bytes)
        return self._requests.submit(self._read, gun, name, max_bytes).result()

    def fetch_many(self, gun: str, wanted: Sequence[tuple[str, int]]) -> list[bytes | Dct2NotationError]:
        if not self._sources.spread:
            return []
        futures: list[Future[bytes]] = [self._requests.submit(self._read, gun, name, cap) for name, cap in wanted]
        answers: list[bytes | Dct2NotationError] = []
        for future in futures:
            error = future.exception()
            if error is None:
                answers.append(future.result())
            elif isinstance(error, Dct2NotationError):
                answers.append(error)
            else:
                raise error  # not a refusal of one file: a defect or an interrupt, the run's
        return answers


def check_concurrency(value: int, limits: Limits) -> int:
    if not 1 <= value <= limits.max_concurrency:
        raise UsageError(f"--concurrency: {value} is not between 1 and {limits.max_concurrency}")
    return value


@contextmanager
def workers(concurrency: int, jobs: int) -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, jobs)), thread_name_prefix="dct2notation") as pool:
        yield pool


Outcome = VerifiedRepository | Exception


def verify_all(
    guns: Iterable[str],
    sources: SourcePool[S],
    clock: Clock,
    limits: Limits,
    *,
    concurrency: int,
    keep_files: bool = False,
    baseline: Mapping[str, TrustedState] | None = None,
    on_done: Callable[[str], None] | None = None,
) -> list[tuple[str, Outcome]]:
    """Verify each GUN; a per-GUN error is returned in its place (``PER_GUN_ERRORS``), any other is raised."""
    gun_list = list(guns)

    def one(gun: str, source: MetadataSource) -> Outcome:
        try:
            trusted = (baseline or {}).get(gun)
            return verify_repository(gun, source, clock, limits, trusted, keep_files=keep_files)
        except PER_GUN_ERRORS as exc:
            return exc
        finally:
            if on_done is not None:
                on_done(gun)

    if not sources.spread:
        # Files on disk: no connection to wait on, so no threads (nor their hand-offs) either.
        local = sources.get()
        return [(gun, one(gun, local)) for gun in gun_list]
    # At most ``concurrency`` requests (and connections) at once, whatever the number of GUNs being verified.
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="dct2notation-read") as requests:
        spread = _Spread(requests, sources)
        if len(gun_list) <= 1:
            return [(gun, one(gun, spread)) for gun in gun_list]
        with workers(concurrency, len(gun_list)) as pool:
            return list(zip(gun_list, pool.map(lambda gun: one(gun, spread), gun_list), strict=True))
