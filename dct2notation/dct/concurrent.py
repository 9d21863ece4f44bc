"""Read many GUNs at once from one source: bounded worker threads, one source each, results in the order asked.

At 10-50 ms of round trip, a GUN costs 4-6 sequential requests (timestamp, snapshot, targets, root, delegations):
an estate read one GUN after another is latency-bound, not CPU-bound. Threads (not asyncio) because the verifier
and the notary reader are synchronous and already bounded (caps, deadline); each thread gets its own source,
since a notary reader holds one keep-alive connection. ``concurrency`` is per notary server: a run reads one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Generic, TypeVar

from ..config import Clock, Limits
from ..errors import AuthError, DCTVerificationError, NotFoundError, RemoteError, UsageError
from .tuf import MetadataSource, TrustedState, VerifiedRepository, verify_repository

S = TypeVar("S", bound=MetadataSource)

# What goes wrong with one GUN and not with the others: it is unknown, does not verify, its server answers 403
# or keeps failing for it. Anything else (a bad --ca, a usage error) is the run's, and stops it.
PER_GUN_ERRORS = (DCTVerificationError, NotFoundError, AuthError, RemoteError)


class SourcePool(Generic[S]):
    """One source per worker thread, made by ``factory`` on first use; ``close`` closes each one made."""

    def __init__(self, factory: Callable[[], S], close: Callable[[S], None] | None = None) -> None:
        self._factory = factory
        self._close = close
        self._local = threading.local()
        self._made: list[S] = []
        self._lock = threading.Lock()

    def get(self) -> S:
        source: S | None = getattr(self._local, "source", None)
        if source is None:
            source = self._factory()
            self._local.source = source
            with self._lock:
                self._made.append(source)
        return source

    def close(self) -> None:
        with self._lock:
            made, self._made = self._made, []
        for source in made:
            if self._close is not None:
                self._close(source)


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

    def one(gun: str) -> Outcome:
        try:
            trusted = (baseline or {}).get(gun)
            return verify_repository(gun, sources.get(), clock, limits, trusted, keep_files=keep_files)
        except PER_GUN_ERRORS as exc:
            return exc
        finally:
            if on_done is not None:
                on_done(gun)

    if concurrency <= 1 or len(gun_list) <= 1:
        return [(gun, one(gun)) for gun in gun_list]
    with workers(concurrency, len(gun_list)) as pool:
        return list(zip(gun_list, pool.map(one, gun_list), strict=True))
