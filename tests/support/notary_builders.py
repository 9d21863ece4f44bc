"""Build Notary v1 GUNs with the real ``notary`` client, and re-sign its bytes for refusal tests.

``build_rich_gun`` makes the repository the DCT tests need: targets, targets/releases, two more delegations
(``alice`` from an ecdsa-x509 certificate, ``bob`` from a bare ecdsa public key limited to prefix ``v``),
a tag whose digest differs between targets and targets/releases, a tag only in ``bob``, and a rotated root.

``Resigner`` loads notary's own private keys from the client's trust dir (passphrases in servers.PASSPHRASES)
plus the delegation keys the test generated, swaps the server-held timestamp key for one the test owns
(re-signing root with notary's root key), and can then mutate any role and re-sign it and the hash chain.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.support.loopback import QuietHTTPServer
from tests.support.plugin_pki import certificate, pem_private_key
from tests.support.servers import PASSPHRASES, NotaryClient, NotaryServer


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def write_key_and_cert(directory: Path, name: str, *, cn: str | None = None, ca: bool = False) -> Path:
    """An EC P-256 key (PKCS8 PEM ``name.key``), its cert (``name.crt``) and public key (``name.pub``)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn or name)])
    now = dt.datetime.now(dt.UTC)
    cert = certificate(
        subject, key, subject, key, not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=365),
        extensions=[(x509.BasicConstraints(ca=ca, path_length=None), True)],
    )  # fmt: skip
    (directory / f"{name}.key").write_bytes(pem_private_key(key))
    (directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.pub").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return directory / f"{name}.key"


@dataclass
class RichGun:
    gun: str
    keys_dir: Path
    client: NotaryClient
    digests: dict[str, str] = field(default_factory=dict)


def build_rich_gun(client: NotaryClient, gun: str, keys_dir: Path) -> RichGun:
    """The repository described in the module docstring, published and with root rotated once."""
    client.init(gun)
    for name in ("releases", "alice", "bob"):
        write_key_and_cert(keys_dir, name)
    client.run("delegation", "add", gun, "targets/releases", str(keys_dir / "releases.crt"), "--all-paths")
    client.run("delegation", "add", gun, "targets/alice", str(keys_dir / "alice.crt"), "--all-paths")
    client.run("delegation", "add", gun, "targets/bob", str(keys_dir / "bob.pub"), "--paths", "v")
    for name in ("releases", "alice", "bob"):
        client.run("key", "import", str(keys_dir / f"{name}.key"), "--role", f"targets/{name}", "--gun", gun)
    built = RichGun(gun, keys_dir, client)
    plan = [
        ("v1", 100, "v1-in-targets", ()),
        ("v1", 101, "v1-in-releases", ("targets/releases",)),  # same tag, other digest: a conflict
        ("v2", 102, "v2", ("targets/releases", "targets/alice")),  # released and co-signed by alice
        ("v3", 103, "v3", ("targets/bob",)),  # only in a non-release delegation: not pull-trusted
        ("latest", 104, "latest", ()),
        ("v10", 105, "v10", ("targets/releases",)),
    ]
    for tag, size, content, roles in plan:
        digest = sha256_hex(content)
        built.digests[content] = digest
        client.addhash(gun, tag, size, digest, *roles)
    client.publish(gun)
    client.run("key", "rotate", gun, "root", input="yes\n")
    return built


def published_rich_gun(server: NotaryServer, work: Path, gun: str) -> RichGun:
    """``build_rich_gun`` in ``work`` (trust dir and keys), the client's cache then holding every published role."""
    rich = build_rich_gun(server.client(work / "trust"), gun, work / "keys")
    rich.client.list(gun)
    return rich


def resigner_for(rich: RichGun) -> Resigner:
    """A fresh ``Resigner`` over the client's cached metadata of ``rich``."""
    return Resigner(rich.client.trust_dir / "tuf" / rich.gun / "metadata", rich.client.trust_dir, rich.keys_dir)


def parse_notary_list(text: str) -> list[dict[str, Any]]:
    """Rows of ``notary list`` (NAME DIGEST SIZE ROLE) as inventory-shaped dicts."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and re.fullmatch(r"[0-9a-f]{64}", parts[1]):
            rows.append({"tag": parts[0], "digest": "sha256:" + parts[1], "size": int(parts[2]), "role": parts[3]})
    return rows


# --- re-signing -------------------------------------------------------------------------------------------


def _load_notary_private_key(path: Path) -> tuple[str, Any]:
    """Notary's ``ENCRYPTED PRIVATE KEY`` PEM has ``role:``/``gun:`` headers; strip them and decrypt."""
    text = path.read_text()
    role = re.search(r"^role: (\S+)$", text, re.M)
    body = "".join(line for line in text.splitlines() if line and not line.startswith("-----") and ":" not in line)
    name = role.group(1) if role else ""
    passphrase = PASSPHRASES[
        {
            "root": "NOTARY_ROOT_PASSPHRASE",
            "targets": "NOTARY_TARGETS_PASSPHRASE",
            "snapshot": "NOTARY_SNAPSHOT_PASSPHRASE",
        }.get(name, "NOTARY_DELEGATION_PASSPHRASE")
    ]
    # cryptography 48 refuses notary's PBES2 parameters; openssl decrypts them.
    pem = "-----BEGIN ENCRYPTED PRIVATE KEY-----\n" + body + "\n-----END ENCRYPTED PRIVATE KEY-----\n"
    done = subprocess.run(
        ["openssl", "pkcs8", "-passin", f"pass:{passphrase}"],
        input=pem.encode(),
        capture_output=True,
        check=True,
        timeout=30,
    )
    key = serialization.load_pem_private_key(done.stdout, None)
    return name, key


def sign_raw(key: Any, payload: bytes) -> tuple[str, bytes]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(payload, ec.ECDSA(hashes.SHA256())))
        half = (key.curve.key_size + 7) // 8
        return "ecdsa", r.to_bytes(half, "big") + s.to_bytes(half, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsapss", key.sign(payload, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return "eddsa", key.sign(payload)


def key_id(keytype: str, public_b64: str) -> str:
    return hashlib.sha256(
        canonical({"keytype": keytype, "keyval": {"private": None, "public": public_b64}})
    ).hexdigest()


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


class Resigner:
    """Mutable copy of a GUN's metadata with every signing key in the test's hands."""

    def __init__(self, metadata_dir: Path, trust_dir: Path, keys_dir: Path) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        for path in sorted(metadata_dir.rglob("*.json")):
            name = path.relative_to(metadata_dir).as_posix()[: -len(".json")]
            self.docs[name] = json.loads(path.read_bytes())
        self.raw: dict[str, bytes] = {}
        # Private keys by canonical ID (notary's file names) and by the role they sign.
        self.by_role: dict[str, list[Any]] = {}
        for path in (trust_dir / "private").glob("*.key"):
            role, key = _load_notary_private_key(path)
            self.by_role.setdefault(role, []).append(key)
        for name in ("releases", "alice", "bob"):
            if not (keys_dir / f"{name}.key").exists():
                continue  # a GUN without that delegation (not one build_rich_gun made)
            pem = (keys_dir / f"{name}.key").read_bytes()
            self.by_role[f"targets/{name}"] = [serialization.load_pem_private_key(pem, None)]
        root = self.docs["root"]["signed"]
        # The old root key after a rotation is still in the trust dir; keep only the one root.json names.
        root_ids = set(root["roles"]["root"]["keyids"])
        self.by_role["root"] = [k for k in self.by_role["root"] if self._root_key_matches(k, root, root_ids)]
        # The timestamp key lives in the server: replace it with one the test owns.
        ts_key = ed25519.Ed25519PrivateKey.generate()
        public = base64.b64encode(
            ts_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        ).decode()
        ts_id = key_id("ed25519", public)
        for old in root["roles"]["timestamp"]["keyids"]:
            root["keys"].pop(old, None)
        root["keys"][ts_id] = {"keytype": "ed25519", "keyval": {"private": None, "public": public}}
        root["roles"]["timestamp"]["keyids"] = [ts_id]
        self.by_role["timestamp"] = [ts_key]
        for name in self.docs:
            self.raw[name] = self.encode(name)
        self.resign("root")
        self.rechain()

    @staticmethod
    def _root_key_matches(key: Any, root: dict[str, Any], ids: set[str]) -> bool:
        for kid in ids:
            pem = base64.b64decode(root["keys"][kid]["keyval"]["public"])
            cert = x509.load_pem_x509_certificate(pem)
            if _spki(key) == cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ):
                return True
        return False

    def encode(self, name: str) -> bytes:
        doc = self.docs[name]
        sigs = ",".join(canonical(s).decode() for s in doc["signatures"])
        return b'{"signed":' + canonical(doc["signed"]) + b',"signatures":[' + sigs.encode() + b"]}"

    def signing_keys(self, name: str) -> list[Any]:
        return self.by_role.get(name, [])

    def resign(self, name: str, keys: list[Any] | None = None) -> None:
        """Replace ``name``'s signatures with fresh ones by ``keys`` (default: the role's own keys)."""
        doc = self.docs[name]
        payload = canonical(doc["signed"])
        sigs = []
        for key in keys if keys is not None else self.signing_keys(name):
            method, raw = sign_raw(key, payload)
            sigs.append({"keyid": self.key_id_for(name, key), "method": method, "sig": base64.b64encode(raw).decode()})
        doc["signatures"] = sigs
        self.raw[name] = self.encode(name)

    def key_id_for(self, name: str, key: Any) -> str:
        """The key ID the verifier looks up: the ID listed for this role whose public key matches."""
        if name in ("root", "targets", "snapshot", "timestamp"):
            keys = self.docs["root"]["signed"]["keys"]
            ids = self.docs["root"]["signed"]["roles"][name]["keyids"]
        else:
            parent = name.rsplit("/", 1)[0]
            block = self.docs[parent]["signed"]["delegations"]
            keys = block["keys"]
            ids = next(r["keyids"] for r in block["roles"] if r["name"] == name)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            mine = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        else:
            mine = _spki(key)
        for kid in ids:
            entry = keys[kid]
            pub = base64.b64decode(entry["keyval"]["public"])
            if entry["keytype"].endswith("-x509"):
                pub = (
                    x509.load_pem_x509_certificate(pub)
                    .public_key()
                    .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
                )
            if pub == mine:
                return str(kid)
        return "0" * 64  # a key the role does not list: its signature cannot count

    @staticmethod
    def meta(raw: bytes) -> dict[str, Any]:
        return {
            "length": len(raw),
            "hashes": {
                "sha256": base64.b64encode(hashlib.sha256(raw).digest()).decode(),
                "sha512": base64.b64encode(hashlib.sha512(raw).digest()).decode(),
            },
        }

    def rechain(self) -> None:
        """Snapshot records every role's current bytes, timestamp records the snapshot; both re-signed."""
        snap = self.docs["snapshot"]["signed"]
        for name in list(snap["meta"]):
            if name in self.raw:
                snap["meta"][name] = self.meta(self.raw[name])
        self.resign("snapshot")
        self.docs["timestamp"]["signed"]["meta"]["snapshot"] = self.meta(self.raw["snapshot"])
        self.resign("timestamp")

    def write_archive(self, directory: Path, gun: str, extra: dict[str, bytes] | None = None) -> Path:
        """Write the current bytes as a dct2notation archive (files + ARCHIVE.json with their sha256)."""
        files = {**self.raw, **(extra or {})}
        entries = []
        for name, raw in sorted(files.items()):
            path = directory / gun / f"{name}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(raw)
            entries.append(
                {"path": f"{gun}/{name}.json", "sha256": hashlib.sha256(raw).hexdigest(), "length": len(raw)}
            )
        manifest = {"format": "dct2notation-archive/1", "guns": [gun], "files": entries}
        (directory / "ARCHIVE.json").write_text(json.dumps(manifest))
        return directory


# --- docker/distribution token endpoint ---------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenEndpoint:
    """A loopback token service issuing real ES256 JWTs in docker/distribution's format.

    ``rootcertbundle`` (for the notary-server ``auth.options``) holds the signing certificate, which each token
    carries in its ``x5c`` header. Basic credentials ``user``/``password`` get the actions asked for; anonymous
    requests get 401 unless ``allow_anonymous`` is set. ``requests`` records (user, scope) per token issued.
    """

    def __init__(
        self,
        directory: Path,
        user: str,
        password: str,
        *,
        service: str = "notary-test",
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """``tls`` (certificate, key) serves the token service over HTTPS, as a production one is."""
        import http.server
        import threading
        import urllib.parse

        self.user = user
        self.password = password
        self.service = service
        self.issuer = "dct2notation-test-issuer"
        self.allow_anonymous = False
        self.requests: list[tuple[str | None, str]] = []
        self.token_field = "token"
        self.grant_nothing = False
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dct2notation token signer")])
        now = dt.datetime.now(dt.UTC)
        ca = [(x509.BasicConstraints(ca=True, path_length=None), True)]
        self._cert = certificate(
            name, self._key, name, self._key, not_before=now - dt.timedelta(days=1),
            not_after=now + dt.timedelta(days=30), extensions=ca,
        )  # fmt: skip
        directory.mkdir(parents=True, exist_ok=True)
        self.rootcertbundle = directory / "token-root.pem"
        self.rootcertbundle.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
                return

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                scope = query.get("scope", [""])[0]
                user = endpoint._basic_user(self.headers.get("Authorization"))
                if user is None and not endpoint.allow_anonymous:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                endpoint.requests.append((user, scope))
                body = json.dumps({endpoint.token_field: endpoint.issue(user or "", scope)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        scheme = "http"
        if tls is not None:
            import ssl

            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.realm = f"{scheme}://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _basic_user(self, header: str | None) -> str | None:
        if not header or not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user if (user, password) == (self.user, self.password) else None

    def auth_config(self) -> dict[str, object]:
        """The notary-server ``auth`` section pointing at this endpoint."""
        return {
            "type": "token",
            "options": {
                "realm": self.realm,
                "service": self.service,
                "issuer": self.issuer,
                "rootcertbundle": str(self.rootcertbundle),
            },
        }

    def issue(self, subject: str, scope: str) -> str:
        access = []
        for item in [] if self.grant_nothing else scope.split():
            parts = item.split(":")
            if len(parts) >= 3:
                access.append({"type": parts[0], "name": ":".join(parts[1:-1]), "actions": parts[-1].split(",")})
        now = int(dt.datetime.now(dt.UTC).timestamp())
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": hashlib.sha256(f"{now}{scope}{subject}".encode()).hexdigest()[:16] + str(len(self.requests)),
            "access": access,
        }
        signing_input = f"{_b64url(canonical(header))}.{_b64url(canonical(claims))}"
        _, raw = sign_raw(self._key, signing_input.encode())
        return f"{signing_input}.{_b64url(raw)}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
