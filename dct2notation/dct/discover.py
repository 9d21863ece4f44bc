"""Which GUNs an estate has: the notary server's changefeed, or a registry's catalog probed on the notary server.

Both answers come from a server: every page is capped, parsed strictly and bounded in number; each name is checked
as a GUN before it is written (a GUN becomes a path under an archive). A feed that names nothing is an error, never
an empty estate: a migration that silently covers nothing is the failure we exist to prevent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from ..config import DEFAULT_LIMITS, Limits
from ..errors import AuthError, InputError, NotFoundError, RemoteError, UsageError
from ..imagename import COMPONENT, REPOSITORY
from ..jsontext import loads as json_loads
from ..jsontext import read_text_file
from .concurrent import SourcePool, workers

if TYPE_CHECKING:
    from .source import NotaryServerSource

# docker/distribution's reference grammar: a host (with a port) then lowercase path components.
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]{1,5})?"
_GUN = re.compile(rf"{_HOST}(?:/{COMPONENT})+")
_MAX_GUN_LENGTH = 255  # distribution's NameTotalLengthMax
_CHANGE_ID = re.compile(r"[0-9]{1,19}")


def check_gun(text: str, where: str) -> str:
    """``text`` if it is a GUN (``host[:port]/repo/path``); else one line naming ``where`` and the reason."""
    if len(text) > _MAX_GUN_LENGTH:
        raise InputError(f"{where}: GUN longer than {_MAX_GUN_LENGTH} characters ({text[:60]!r}…)")
    if not _GUN.fullmatch(text):
        raise InputError(f"{where}: {text[:120]!r} is not a GUN (host[:port]/repository, lowercase path)")
    return text


def read_guns_file(path: Path, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    """``--guns-from FILE``: one GUN a line (blank lines and ``#`` comments skipped), each checked, no repeats."""
    text = read_text_file(path, what="", where=f"--guns-from {path}", max_bytes=limits.document_bytes)
    guns: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        check_gun(name, f"--guns-from {path}: line {number}")
        if name in seen:
            raise InputError(f"--guns-from {path}: line {number}: {name} is listed twice")
        seen.add(name)
        guns.append(name)
    if not guns:
        raise InputError(f"--guns-from {path}: names no GUN")
    return guns


def gun_arguments(guns: Iterable[str], guns_from: Path | None, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    """GUN arguments and ``--guns-from``: one or the other (both would leave unclear which list is the estate)."""
    given = list(guns)
    if guns_from is None:
        return given
    if given:
        raise UsageError("--guns-from: give GUNs as arguments or in the file, not both")
    return read_guns_file(guns_from, limits)


def _json_object(raw: bytes, cap: int, where: str) -> dict[str, Any]:
    if len(raw) > cap:
        raise RemoteError(f"{where}: page larger than {cap} bytes")
    try:
        doc = json_loads(raw)
    except ValueError as exc:
        raise RemoteError(f"{where}: not JSON ({str(exc)[:80]})") from exc
    if not isinstance(doc, dict):
        raise RemoteError(f"{where}: expected a JSON object")
    return doc


def changefeed_guns(source: NotaryServerSource, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    """Every GUN whose latest change is not a deletion, from ``GET /v2/_trust/changefeed`` (catalog scope), paged.

    notary's feed answers the records after ``change_id`` in ID order (``server/storage``); a page shorter than
    asked is the last. IDs must grow, or a server answering the same page again would have us page forever.
    """
    alive: dict[str, bool] = {}
    after = 0
    page_size = limits.discover_page_records
    for _ in range(limits.discover_max_pages):
        where = f"{source.url}: changefeed after change {after}"
        raw = source.get_api(
            f"/v2/_trust/changefeed?change_id={after}&records={page_size}", "changefeed", limits.discover_page_bytes
        )
        doc = _json_object(raw, limits.discover_page_bytes, where)
        # notary-server writes an empty page as ``"records":null`` (a nil Go slice).
        records = [] if doc.get("records", []) is None else doc.get("records")
        if not isinstance(records, list):
            raise RemoteError(f"{where}: records: expected a list")
        count = doc.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count != len(records):
            raise RemoteError(f"{where}: count: expected the number of records ({len(records)})")
        if len(records) > page_size:
            raise RemoteError(f"{where}: {len(records)} records on a page of {page_size}")
        for n, record in enumerate(records):
            after = _apply_change(record, after, alive, f"{where}: records[{n}]")
            if len(alive) > limits.discover_max_guns:
                raise RemoteError(f"{where}: more than {limits.discover_max_guns} GUNs (limit)")
        if len(records) < page_size:
            break
    else:
        raise RemoteError(f"{source.url}: changefeed: still paging after {limits.discover_max_pages} pages (limit)")
    guns = sorted(gun for gun, present in alive.items() if present)
    if not guns:
        what = "only deletions" if alive else "no record"
        raise RemoteError(f"{source.url}: changefeed has {what}: no GUN with trust data (not an empty estate)")
    return guns


def _apply_change(record: Any, after: int, alive: dict[str, bool], where: str) -> int:
    if not isinstance(record, dict):
        raise RemoteError(f"{where}: expected an object")
    ident, gun, category = record.get("ID"), record.get("GUN"), record.get("Category")
    if not isinstance(ident, str) or not _CHANGE_ID.fullmatch(ident):
        raise RemoteError(f"{where}.ID: expected a decimal change id")
    if int(ident) <= after:
        raise RemoteError(f"{where}.ID: change {ident} does not follow change {after} (the feed does not advance)")
    if not isinstance(gun, str):
        raise RemoteError(f"{where}.GUN: expected a string")
    try:
        check_gun(gun, f"{where}.GUN")
    except InputError as exc:
        raise RemoteError(str(exc)) from exc
    if category not in ("update", "deletion"):
        raise RemoteError(f"{where}.Category: expected update or deletion")
    alive[gun] = category == "update"
    return int(ident)


def catalog_repositories(
    registry_url: str, get: Callable[[str], tuple[bytes, str | None]], limits: Limits = DEFAULT_LIMITS
) -> list[str]:
    """Every repository of ``GET /v2/_catalog``, following its ``Link: <…>; rel="next"`` pages (bounded)."""
    names: list[str] = []
    seen: set[str] = set()
    path = f"/v2/_catalog?n={limits.discover_page_records}"
    for _ in range(limits.discover_max_pages):
        where = f"{registry_url}: catalog {path}"
        raw, link = get(path)
        doc = _json_object(raw, limits.discover_page_bytes, where)
        repos = doc.get("repositories")
        if not isinstance(repos, list):
            raise RemoteError(f"{where}: repositories: expected a list")
        for n, name in enumerate(repos):
            if not isinstance(name, str) or len(name) > _MAX_GUN_LENGTH or not REPOSITORY.fullmatch(name):
                raise RemoteError(f"{where}: repositories[{n}]: {str(name)[:120]!r} is not a repository name")
            if name not in seen:
                seen.add(name)
                names.append(name)
        if len(names) > limits.discover_max_guns:
            raise RemoteError(f"{where}: more than {limits.discover_max_guns} repositories (limit)")
        following = _next_page(link, where)
        if following is None:
            return names
        path = following
    raise RemoteError(f"{registry_url}: catalog: still paging after {limits.discover_max_pages} pages (limit)")


_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


def _next_page(link: str | None, where: str) -> str | None:
    """The next page's path and query; only the catalog on the same server (a Link elsewhere is refused)."""
    if not link:
        return None
    match = _LINK.search(link)
    if match is None:
        return None
    target = urlsplit(match.group(1))
    if target.scheme or target.netloc or target.path != "/v2/_catalog":
        raise RemoteError(f"{where}: Link: next page {match.group(1)[:120]!r} is not this registry's catalog")
    query = parse_qs(target.query)
    last, count = query.get("last", [""])[0], query.get("n", [""])[0]
    if not REPOSITORY.fullmatch(last) or not count.isdigit():
        raise RemoteError(f"{where}: Link: next page {match.group(1)[:120]!r} has no valid last=/n=")
    return f"/v2/_catalog?last={last}&n={count}"


def probe_guns(
    candidates: list[str], sources: SourcePool[NotaryServerSource], concurrency: int, limits: Limits = DEFAULT_LIMITS
) -> list[str]:
    """The candidates the notary server holds trust data for (its ``timestamp.json`` answers 200; 404: none)."""

    def has_trust(gun: str) -> bool:
        try:
            sources.get().fetch(gun, "timestamp", max_bytes=limits.timestamp_bytes)
        except NotFoundError:
            return False
        return True

    with workers(concurrency, len(candidates)) as pool:
        return [gun for gun, present in zip(candidates, pool.map(has_trust, candidates), strict=True) if present]


def registry_guns(
    registry_url: str,
    gun_prefix: str,
    get: Callable[[str], tuple[bytes, str | None]],
    sources: SourcePool[NotaryServerSource],
    concurrency: int,
    limits: Limits = DEFAULT_LIMITS,
) -> list[str]:
    """The catalog's repositories, as GUNs under ``gun_prefix``, that have trust data on the notary server."""
    repos = catalog_repositories(registry_url, get, limits)
    if not repos:
        raise RemoteError(f"{registry_url}: catalog lists no repository (not an empty estate)")
    candidates = [check_gun(f"{gun_prefix}/{name}", f"--gun-prefix {gun_prefix}") for name in repos]
    guns = probe_guns(candidates, sources, concurrency, limits)
    if not guns:
        raise RemoteError(
            f"{registry_url}: none of the catalog's {len(repos)} repositories has trust data on the notary server"
            f" as {gun_prefix}/…; check --gun-prefix"
        )
    return sorted(guns)


@contextmanager
def catalog_reader(
    registry_url: str, ca: Path | None, username: str | None, password: str | None, limits: Limits = DEFAULT_LIMITS
) -> Iterator[Callable[[str], tuple[bytes, str | None]]]:
    """GET one catalog page (body capped, overall deadline, docker's credentials or the given ones, any challenge)."""
    from ._httpx import httpx  # isort: skip  # before ..auth, which imports httpx too
    from ..auth import ChallengeAuth, resolve_credentials
    from ..deadline import bounded_client, deadline
    from ..safetext import has_userinfo, redact_url
    from ..tlstrust import tls_context

    if has_userinfo(registry_url):
        raise UsageError(f"--registry {redact_url(registry_url)}: credentials in the URL are refused")
    parts = urlsplit(registry_url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise UsageError(f"--registry {registry_url[:120]!r}: expected http(s)://HOST[:PORT]")
    base = f"{parts.scheme}://{parts.netloc}"
    verify: Any = tls_context(parts.netloc, ca, "--ca-file") if parts.scheme == "https" else False
    credentials = resolve_credentials(parts.netloc, username=username, password=password)
    plain = frozenset({parts.hostname or ""}) if parts.scheme == "http" else frozenset()
    auth = ChallengeAuth(credentials, where=base, plain_http_hosts=plain)
    client = bounded_client(auth=auth, verify=verify, timeout=limits.http_timeout_seconds)

    def get(path: str) -> tuple[bytes, str | None]:
        where = f"{base}{path}"
        with deadline(limits.http_deadline_seconds) as limit:
            try:
                with client.stream("GET", base + path) as response:
                    if response.status_code in (401, 403):
                        raise AuthError(f"{where}: catalog access refused ({response.status_code}); docker login or -u")
                    if response.status_code != 200:
                        raise RemoteError(f"{where}: catalog answered {response.status_code}")
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > limits.discover_page_bytes:
                            break
                    return bytes(body), response.headers.get("Link")
            except httpx.TransportError as exc:
                if limit.expired:
                    raise limit.error(where) from exc
                raise RemoteError(f"{where}: connection failed ({exc.__class__.__name__})") from exc

    try:
        yield get
    finally:
        client.close()
