"""Credentials for registries and notary servers: docker ``config.json``, credential helpers, challenge auth.

``ChallengeAuth`` is a generator ``auth_flow`` so one object serves both sync and async httpx clients.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .config import DEFAULT_LIMITS
from .errors import AuthError, InputError
from .jsontext import load_json_file
from .jsontext import loads as json_loads

# One docker credential helper call is a local process; a hung helper must not hang a migration.
_HELPER_TIMEOUT_SECONDS = 30.0
_TOKEN_BODY_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class Credentials:
    """A username and a secret. ``identity_token`` is docker's OAuth refresh token (``identitytoken``)."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        # The secret must never reach a log or a traceback, even by accident.
        hidden = "***" if self.password or self.identity_token else None
        return f"Credentials(username={self.username!r}, password={hidden!r})"

    __str__ = __repr__

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token)


def docker_config_dir() -> Path:
    explicit = os.environ.get("DOCKER_CONFIG")
    if explicit:
        return Path(explicit)
    return Path.home() / ".docker"


def _host_of(server: str) -> str:
    """``https://host:port/v1/`` → ``host:port``; docker keys ``auths`` by URL or by bare host."""
    text = server.strip()
    text = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", text)
    return text.split("/", 1)[0].lower()


def _load_config(path: Path) -> dict[str, object]:
    # No docker config is anonymous access, as docker's.
    data = load_json_file(path, what="docker config", max_bytes=DEFAULT_LIMITS.config_file_bytes, missing={})
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def run_credential_helper(name: str, server: str) -> Credentials:
    """``docker-credential-<name> get`` with the server on stdin; a helper that does not know it → no creds."""
    program = f"docker-credential-{name}"
    try:
        done = subprocess.run(  # noqa: S603 - the helper name comes from the user's own docker config
            [program, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=_HELPER_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError as exc:
        raise AuthError(f"credential helper {program} not found on PATH (named in docker config for {server})") from exc
    except subprocess.TimeoutExpired as exc:
        raise AuthError(f"credential helper {program} did not answer within {_HELPER_TIMEOUT_SECONDS:.0f}s") from exc
    if done.returncode != 0:
        message = done.stdout.decode("utf-8", "replace").strip() + done.stderr.decode("utf-8", "replace").strip()
        if "credentials not found" in message.lower():
            return Credentials()
        raise AuthError(f"credential helper {program} failed for {server}: {message[:200] or done.returncode}")
    try:
        answer = json_loads(done.stdout)
        username = answer.get("Username") or None
        secret = answer.get("Secret") or None
    except (ValueError, AttributeError) as exc:
        raise AuthError(f"credential helper {program} returned malformed JSON for {server}") from exc
    if not isinstance(username, str | None) or not isinstance(secret, str | None):
        raise AuthError(f"credential helper {program} returned non-string Username/Secret for {server}")
    # Docker's convention: username "<token>" means the secret is an identity token.
    if username == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username=username, password=secret)


def _from_auths(entry: object, path: Path, key: str) -> Credentials:
    if not isinstance(entry, dict):
        raise InputError(f"{path}: auths[{key!r}]: expected an object")
    username = entry.get("username")
    password = entry.get("password")
    encoded = entry.get("auth")
    if encoded:
        if not isinstance(encoded, str):
            raise InputError(f"{path}: auths[{key!r}].auth: expected a base64 string")
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: auths[{key!r}].auth: not base64 of user:password") from exc
        if ":" not in decoded:
            raise InputError(f"{path}: auths[{key!r}].auth: decoded value has no ':' between user and password")
        username, _, password = decoded.partition(":")
    token = entry.get("identitytoken")
    for name, value in (("username", username), ("password", password), ("identitytoken", token)):
        if value is not None and not isinstance(value, str):
            raise InputError(f"{path}: auths[{key!r}].{name}: expected a string")
    return Credentials(username=username or None, password=password or None, identity_token=token or None)


def docker_credentials(server: str, config_dir: Path | None = None) -> Credentials:
    """Credentials docker would use for ``server``: credHelpers[host], then credsStore, then auths."""
    path = (config_dir or docker_config_dir()) / "config.json"
    config = _load_config(path)
    host = _host_of(server)
    helpers = config.get("credHelpers", {})
    if not isinstance(helpers, dict):
        raise InputError(f"{path}: credHelpers: expected an object")
    for key, helper in helpers.items():
        if _host_of(key) == host:
            if not isinstance(helper, str):
                raise InputError(f"{path}: credHelpers[{key!r}]: expected a helper name")
            return run_credential_helper(helper, key)
    auths = config.get("auths", {})
    if not isinstance(auths, dict):
        raise InputError(f"{path}: auths: expected an object")
    store = config.get("credsStore")
    if store:
        if not isinstance(store, str):
            raise InputError(f"{path}: credsStore: expected a helper name")
        creds = run_credential_helper(store, server)
        if creds.empty and server != host:
            creds = run_credential_helper(store, host)
        if not creds.empty:
            return creds
    for key, entry in auths.items():
        if _host_of(key) == host:
            creds = _from_auths(entry, path, key)
            if not creds.empty:
                return creds
    return Credentials()


def resolve_credentials(
    server: str, *, username: str | None = None, password: str | None = None, config_dir: Path | None = None
) -> Credentials:
    """Explicit ``--username``/``--password-stdin`` win; otherwise docker config; otherwise anonymous."""
    if username is not None or password is not None:
        if not username:
            raise AuthError(f"{server}: a password was given without --username")
        return Credentials(username=username, password=password or "")
    return docker_credentials(server, config_dir)


_PARAM = re.compile(r'([a-zA-Z_][a-zA-Z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…",scope="…"`` → ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(rest):
        quoted, bare = match.group(2), match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
    return scheme.lower(), params


def _basic_header(creds: Credentials) -> str:
    raw = f"{creds.username or ''}:{creds.password or ''}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


ScopeOverride = Callable[[httpx.Request, str | None], str | None]

# The API segments that follow a repository name in a /v2/ path (distribution-spec; notary's /_trust/).
_AFTER_NAME = ("/manifests/", "/blobs/", "/tags/", "/referrers/", "/_trust/")


def _repository(path: str) -> str | None:
    """The repository a /v2/ request is about (what its token is scoped to); None for /v2/ itself, the catalog, a
    token realm. A name may itself contain a segment word (``a/blobs/b``): the last segment marker is the API's."""
    if not path.startswith("/v2/"):
        return None
    cut = max(path.rfind(marker) for marker in _AFTER_NAME)
    return path[4:cut] if cut > 3 else None


def _access(method: str) -> str:
    """What a token must grant for the request: a read (pull), a write (push, as ``push_scope`` asks), else the
    method's own (a DELETE is challenged for ``delete`` or ``*``)."""
    if method in ("GET", "HEAD"):
        return "pull"
    if method in ("PUT", "POST", "PATCH"):
        return "push"
    return method.lower()


class ChallengeAuth(httpx.Auth):
    """Answer registry / notary-server challenges: Basic directly, Bearer through the token realm.

    ``scope_override(request, challenged_scope)`` lets a caller ask for a wider scope (``pull,push``) than the
    challenge named, so one token serves a whole push.
    """

    # httpx would otherwise read every response in full before the caller's own size cap streams it (an endless
    # body from a hostile server fills memory). Only the bodies the flow itself consumes are read, under a cap:
    # a 401 that httpx drains before retrying, and the token service's answer.
    requires_response_body = False

    def __init__(
        self,
        credentials: Credentials | None = None,
        *,
        scope_override: ScopeOverride | None = None,
        where: str = "",
        plain_http_hosts: frozenset[str] = frozenset(),
    ) -> None:
        self.credentials = credentials or Credentials()
        self.scope_override = scope_override
        self.where = where
        # Token realms that may be reached over plain HTTP besides the challenging host itself when the user
        # reached that over plain HTTP: the hosts the user named as plain HTTP (``--insecure-registry``).
        self.plain_http_hosts = plain_http_hosts
        self._tokens: dict[tuple[str, str, str], str] = {}
        # The last header that worked, sent up front so each request does not pay a 401 round trip: Basic is one
        # header for the host; a Bearer token is scoped to one repository and to reading or writing it, so one is
        # kept per (repository, access). A single shared one would carry another repository's token whenever
        # requests for several repositories interleave (a batch's workers): a 401 and a retry on most requests.
        self._last_header: str | None = None
        self._bearer: dict[tuple[str | None, str], str] = {}
        self._token_request: httpx.Request | None = None

    def __repr__(self) -> str:
        return f"ChallengeAuth({self.credentials!r})"

    def _place(self, request: httpx.Request) -> str:
        return self.where or request.url.netloc.decode("ascii")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        repository, access = _repository(request.url.path), _access(request.method)
        if "Authorization" not in request.headers:
            known = self._bearer.get((repository, access))
            if known is None and access == "pull":
                known = self._bearer.get((repository, "push"))  # a push token reads too
            if known is None:
                known = self._last_header
            if known is not None:
                request.headers["Authorization"] = known
        response = yield request
        if response.status_code != 401:
            return
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self.credentials.username:
                return  # nothing to offer: the caller turns the 401 into a one-line AuthError
            header = _basic_header(self.credentials)
        elif scheme == "bearer":
            scope = params.get("scope")
            if self.scope_override is not None:
                scope = self.scope_override(request, scope) or scope
            key = (params.get("realm", ""), params.get("service", ""), scope or "")
            token = self._tokens.get(key)
            if token is None:
                token = yield from self._fetch_token(request, params, scope)
                self._tokens[key] = token
            header = f"Bearer {token}"
        else:
            return
        request.headers["Authorization"] = header
        retried = yield request
        if retried.status_code == 401:
            if scheme == "basic":
                self._last_header = None
            else:
                self._bearer.pop((repository, access), None)
            raise AuthError(f"{self._place(request)}: credentials refused (401 after authenticating)")
        if scheme == "basic":
            self._last_header = header
        else:
            self._bearer[(repository, access)] = header

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        flow = self.auth_flow(request)
        request = next(flow)
        while True:
            response = yield request
            if self._consumes_body(request, response):
                response.stream = _CappedStream(response.stream, self._cap_message(request))
                response.read()
            try:
                request = flow.send(response)
            except StopIteration:
                return

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow = self.auth_flow(request)
        request = next(flow)
        while True:
            response = yield request
            if self._consumes_body(request, response):
                response.stream = _CappedStream(response.stream, self._cap_message(request))
                await response.aread()
            try:
                request = flow.send(response)
            except StopIteration:
                return

    def _consumes_body(self, request: httpx.Request, response: httpx.Response) -> bool:
        return response.status_code == 401 or request is self._token_request

    def _cap_message(self, request: httpx.Request) -> str:
        what = "token service answer" if request is self._token_request else "401 answer"
        return f"{self._place(request)}: {what} is larger than {_TOKEN_BODY_LIMIT} bytes"

    def _check_realm(self, request: httpx.Request, realm: str) -> None:
        """Refuse, before anything is sent, a token realm that would carry credentials (or a token) in clear.

        The realm comes from the server's challenge: a hostile or spoofed registry names ``http://`` on a host it
        controls, and the user's Basic credentials would cross the network unencrypted. Plain HTTP is only for a
        host the user chose plain HTTP for: the challenging host when it was reached over ``http://`` (an ``http://``
        notary server URL, an ``--insecure-registry``), or a host named in ``plain_http_hosts``.
        """
        try:
            url = httpx.URL(realm)
        except httpx.InvalidURL as exc:
            raise AuthError(f"{self._place(request)}: Bearer challenge realm {realm!r} is not a URL") from exc
        if url.scheme == "https" and url.host:
            return
        if url.scheme == "http" and url.host:
            netloc = url.netloc.decode("ascii", "replace")
            if netloc in self.plain_http_hosts or url.host in self.plain_http_hosts:
                return
            if request.url.scheme == "http" and request.url.netloc == url.netloc:
                return
            raise AuthError(
                f"{self._place(request)}: token service {realm} is plain HTTP: refusing to send credentials or ask "
                "for a token in clear (plain HTTP only to a host named as such: --insecure-registry HOST[:PORT], "
                "or an http:// --server URL)"
            )
        raise AuthError(f"{self._place(request)}: Bearer challenge realm {realm!r} is not an http(s) URL")

    def _fetch_token(
        self, request: httpx.Request, params: dict[str, str], scope: str | None
    ) -> Generator[httpx.Request, httpx.Response, str]:
        realm = params.get("realm")
        if not realm:
            raise AuthError(f"{self._place(request)}: Bearer challenge without a realm")
        self._check_realm(request, realm)
        query: dict[str, str] = {}
        if params.get("service"):
            query["service"] = params["service"]
        if scope:
            query["scope"] = scope
        creds = self.credentials
        headers: dict[str, str] = {}
        if creds.identity_token:
            # docker's identity token is an OAuth2 refresh token: exchange it with a form POST.
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token, "client_id": "dct2notation"}
            form.update(query)
            token_request = httpx.Request("POST", realm, data=form)
        else:
            if creds.username:
                headers["Authorization"] = _basic_header(creds)
            token_request = httpx.Request("GET", realm, params=query, headers=headers)
        self._token_request = token_request
        reply = yield token_request
        self._token_request = None
        if reply.status_code in (401, 403):
            raise AuthError(
                f"{self._place(request)}: token service {realm} refused the credentials ({reply.status_code})"
            )
        if reply.status_code != 200:
            raise AuthError(f"{self._place(request)}: token service {realm} answered {reply.status_code}")
        body = reply.content  # read under the cap by the sync/async flow
        try:
            data = json_loads(body)
        except ValueError as exc:
            raise AuthError(f"{self._place(request)}: token service {realm} answer is not JSON") from exc
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError(f"{self._place(request)}: token service {realm} answer has no token/access_token")
        return token


class _CappedStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that raises ``AuthError`` once it passes the token-body cap, however the server frames it."""

    def __init__(self, inner: httpx.SyncByteStream | httpx.AsyncByteStream, message: str) -> None:
        self._inner = inner
        self._message = message
        self._seen = 0

    def _count(self, chunk: bytes) -> bytes:
        self._seen += len(chunk)
        if self._seen > _TOKEN_BODY_LIMIT:
            raise AuthError(self._message)
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        assert isinstance(self._inner, httpx.SyncByteStream)
        for chunk in self._inner:
            yield self._count(chunk)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        assert isinstance(self._inner, httpx.AsyncByteStream)
        async for chunk in self._inner:
            yield self._count(chunk)

    def close(self) -> None:
        assert isinstance(self._inner, httpx.SyncByteStream)
        self._inner.close()

    async def aclose(self) -> None:
        assert isinstance(self._inner, httpx.AsyncByteStream)
        await self._inner.aclose()


def registry_auth(
    host: str, *, username: str | None, password: str | None, plain_http_hosts: frozenset[str] = frozenset()
) -> httpx.Auth:
    """The one entry point the registry client calls (docs/CONTRACTS.md); ``plain_http_hosts`` are the
    ``--insecure-registry`` hosts, the only ones a token realm may name over plain HTTP."""

    def push_scope(request: httpx.Request, scope: str | None) -> str | None:
        # A push needs pull,push on the repository; asking once avoids a second token per repository.
        if scope and scope.startswith("repository:") and request.method in ("PUT", "POST", "PATCH"):
            name = scope.split(":")[1]
            return f"repository:{name}:pull,push"
        return scope

    creds = resolve_credentials(host, username=username, password=password)
    return ChallengeAuth(creds, scope_override=push_scope, where=host, plain_http_hosts=plain_http_hosts)
