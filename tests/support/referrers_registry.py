"""A small in-memory OCI registry on loopback that implements the Referrers API.

No registry installable here has ``GET /v2/<name>/referrers/<digest>`` (distribution 2.8 answers 404), so the
referrers-API path is tested against this one. It does what distribution-spec v1.1 asks of that path: it answers a
manifest push that carries a ``subject`` with ``OCI-Subject``, filters by ``artifactType`` (and says so in
``OCI-Filters-Applied``), and pages results with ``Link``. Upload ``Location`` values are *relative* and carry a
``_state`` query, so clients must resolve and merge them correctly.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.support.loopback import QuietHTTPServer

MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
}
_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>blobs/uploads|blobs|manifests|referrers|tags)/?(?P<ref>[^/]*)$")


@dataclass
class _State:
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)  # (repo, digest)
    tags: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, tag) -> digest
    uploads: dict[str, str] = field(default_factory=dict)  # upload id -> state token
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[tuple[str, str]] = field(default_factory=list)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return None

    # --- plumbing ---------------------------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str) -> None:
        body = json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()
        self._reply(status, body, {"Content-Type": "application/json"})

    def _dispatch(self) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        with state.lock:
            state.requests.append((self.command, url.path))
        if url.path == "/v2/":
            self._reply(200, b"{}", {"Content-Type": "application/json"})
            return
        match = _PATH.match(url.path)
        if not match:
            self._reply(404, b"404 page not found", {"Content-Type": "text/plain"})
            return
        name, kind, ref = match["name"], match["kind"], match["ref"]
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        handler = getattr(self, f"_{kind.replace('/', '_')}")
        handler(name, ref, query)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _dispatch  # noqa: N815 - http.server naming

    # --- blobs --------------------------------------------------------------------------------------------
    def _blobs(self, name: str, ref: str, query: dict[str, str]) -> None:
        data = self.server.state.blobs.get(ref)
        if data is None:
            self._error(404, "BLOB_UNKNOWN")
        elif self.command in ("GET", "HEAD"):
            self._reply(200, data, {"Docker-Content-Digest": ref, "Content-Type": "application/octet-stream"})
        else:
            self._error(405, "UNSUPPORTED")

    def _blobs_uploads(self, name: str, ref: str, query: dict[str, str]) -> None:
        state = self.server.state
        body = self._body()
        if self.command == "POST":
            upload = uuid.uuid4().hex
            token = uuid.uuid4().hex
            with state.lock:
                state.uploads[upload] = token
            # Relative on purpose: clients must resolve it against the request URL.
            location = f"/v2/{name}/blobs/uploads/{upload}?{urlencode({'_state': token})}"
            self._reply(202, b"", {"Location": location, "Docker-Upload-UUID": upload})
            return
        if self.command == "PUT":
            if state.uploads.get(ref) != query.get("_state"):
                self._error(404, "BLOB_UPLOAD_INVALID")
                return
            digest = query.get("digest", "")
            if _digest(body) != digest:
                self._error(400, "DIGEST_INVALID")
                return
            with state.lock:
                state.blobs[digest] = body
                del state.uploads[ref]
            self._reply(201, b"", {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})
            return
        self._error(405, "UNSUPPORTED")

    # --- manifests ------------------------------------------------------------------------------------------
    def _manifests(self, name: str, ref: str, query: dict[str, str]) -> None:
        state = self.server.state
        if self.command == "PUT":
            body = self._body()
            media_type = self.headers.get("Content-Type", "")
            if media_type not in MANIFEST_TYPES:
                self._error(400, "MANIFEST_INVALID")
                return
            digest = _digest(body)
            if ref.startswith("sha256:") and ref != digest:
                self._error(400, "DIGEST_INVALID")
                return
            doc = json.loads(body)
            with state.lock:
                state.manifests[(name, digest)] = (body, media_type)
                if not ref.startswith("sha256:"):
                    state.tags[(name, ref)] = digest
            headers = {"Docker-Content-Digest": digest, "Location": f"/v2/{name}/manifests/{digest}"}
            if isinstance(doc.get("subject"), dict):
                headers["OCI-Subject"] = doc["subject"]["digest"]
            self._reply(201, b"", headers)
            return
        digest = ref if ref.startswith("sha256:") else state.tags.get((name, ref), "")
        stored = state.manifests.get((name, digest))
        if stored is None:
            self._error(404, "MANIFEST_UNKNOWN")
            return
        if self.command == "DELETE":
            with state.lock:
                del state.manifests[(name, digest)]
                for key in [k for k, v in state.tags.items() if k[0] == name and v == digest]:
                    del state.tags[key]
            self._reply(202)
            return
        body, media_type = stored
        self._reply(200, body, {"Content-Type": media_type, "Docker-Content-Digest": digest})

    # --- tags and referrers --------------------------------------------------------------------------------
    def _page(self, items: list[Any], query: dict[str, str], path: str, key: str) -> tuple[list[Any], dict[str, str]]:
        size = int(query.get("n") or self.server.page_size)
        start = int(query.get("_page") or 0)
        page = items[start : start + size]
        headers = {"Content-Type": "application/json"}
        if start + size < len(items):
            extra = {k: v for k, v in query.items() if k != "_page"}
            extra["_page"] = str(start + size)
            headers["Link"] = f'<{path}?{urlencode(extra)}>; rel="next"'
        return page, headers

    def _tags(self, name: str, ref: str, query: dict[str, str]) -> None:
        tags = sorted(t for (repo, t) in self.server.state.tags if repo == name)
        page, headers = self._page(tags, query, f"/v2/{name}/tags/list", "tags")
        self._reply(200, json.dumps({"name": name, "tags": page}).encode(), headers)

    def _referrers(self, name: str, ref: str, query: dict[str, str]) -> None:
        state = self.server.state
        found: list[dict[str, Any]] = []
        for (repo, digest), (body, media_type) in sorted(state.manifests.items()):
            if repo != name:
                continue
            doc = json.loads(body)
            if (doc.get("subject") or {}).get("digest") != ref:
                continue
            artifact_type = doc.get("artifactType") or doc.get("config", {}).get("mediaType")
            entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(body)}
            if doc.get("annotations"):
                entry["annotations"] = doc["annotations"]
            entry["artifactType"] = artifact_type
            found.append(entry)
        wanted = query.get("artifactType")
        if wanted:
            found = [e for e in found if e["artifactType"] == wanted]
        page, headers = self._page(found, query, f"/v2/{name}/referrers/{ref}", "manifests")
        headers["Content-Type"] = "application/vnd.oci.image.index.v1+json"
        if wanted:
            headers["OCI-Filters-Applied"] = "artifactType"
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": page}
        self._reply(200, json.dumps(index).encode(), headers)


class _Server(QuietHTTPServer):
    def __init__(self, page_size: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = _State()
        self.page_size = page_size


class ReferrersRegistry:
    """Start with ``start()``, stop with ``stop()``; ``host`` is ``127.0.0.1:PORT`` (plain HTTP)."""

    def __init__(self, page_size: int = 2) -> None:
        self._server = _Server(page_size)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[tuple[str, str]]:
        return list(self._server.state.requests)

    def tags(self, repo: str) -> list[str]:
        return sorted(t for (r, t) in self._server.state.tags if r == repo)

    def start(self) -> ReferrersRegistry:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
