"""Real Notary and registry servers on loopback for tests, benches and the fixture generator.

Each server runs as a child process with its own temp dir and a free port, and is stopped by ``stop()``
(or the context manager). Nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.plugin_pki import ca_extensions, certificate, pem_private_key

PASSPHRASES = {
    "NOTARY_ROOT_PASSPHRASE": "rootpass",
    "NOTARY_TARGETS_PASSPHRASE": "targetspass",
    "NOTARY_SNAPSHOT_PASSPHRASE": "snapshotpass",
    "NOTARY_DELEGATION_PASSPHRASE": "delegpass",
}


def have(binary: str) -> bool:
    return shutil.which(binary) is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(
    url: str,
    proc: subprocess.Popen[bytes],
    log: Path,
    *,
    verify: bool | ssl.SSLContext = True,
    ok: Sequence[int] = (200,),
) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(url, timeout=1, verify=verify).status_code in ok:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server at {url} did not become ready: {log.read_text(errors='replace')[-2000:]}")


def _terminate(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a server child: TERM, then KILL if it has not exited within 5 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class TLSFiles:
    ca_cert: Path
    cert: Path
    key: Path


def make_tls(directory: Path, hostname: str = "127.0.0.1") -> TLSFiles:
    """A throwaway CA and a server certificate for ``hostname`` (IP SAN and DNS SAN ``localhost``)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dct2notation test CA")])
    valid = {"not_before": now - dt.timedelta(hours=1), "not_after": now + dt.timedelta(days=30)}
    ca = certificate(ca_name, ca_key, ca_name, ca_key, **valid, extensions=ca_extensions())
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    server_auth = x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH])
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    cert = certificate(subject, key, ca_name, ca_key, **valid, extensions=[(san, False), (server_auth, False)])
    files = TLSFiles(directory / "ca.crt", directory / "server.crt", directory / "server.key")
    files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(pem_private_key(key))
    return files


@dataclass
class NotaryServer:
    """``notary-server`` with memory storage and the local (ed25519) trust service.

    ``tls=True`` serves HTTPS with a throwaway CA (``tls_files.ca_cert``); ``auth`` is the server's
    ``"auth"`` config section, e.g. token auth pointing at a loopback token endpoint.
    """

    workdir: Path
    tls: bool = False
    auth: dict[str, object] | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    tls_files: TLSFiles | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> NotaryServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        server: dict[str, object] = {"http_addr": f"127.0.0.1:{self.port}"}
        if self.tls:
            self.tls_files = self.tls_files or make_tls(self.workdir / "tls")
            server["tls_cert_file"] = str(self.tls_files.cert)
            server["tls_key_file"] = str(self.tls_files.key)
        config: dict[str, object] = {
            "server": server,
            "trust_service": {"type": "local"},
            "storage": {"backend": "memory"},
            "logging": {"level": "error"},
        }
        if self.auth is not None:
            config["auth"] = self.auth
        cfg = self.workdir / "server.json"
        cfg.write_text(json.dumps(config))
        log = self.workdir / "server.log"
        self.proc = subprocess.Popen(
            ["notary-server", "-config", str(cfg)],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        verify: bool | ssl.SSLContext = (
            ssl.create_default_context(cafile=str(self.tls_files.ca_cert)) if self.tls_files else True
        )
        _wait_http(f"{self.url}/_notary_server/health", self.proc, log, verify=verify)
        return self

    def stop(self) -> None:
        _terminate(self.proc)
        self.proc = None

    def client(self, trust_dir: Path) -> NotaryClient:
        return NotaryClient(
            server_url=self.url,
            trust_dir=trust_dir,
            tls_ca=self.tls_files.ca_cert if self.tls_files else None,
        )


@dataclass
class NotaryClient:
    """The real ``notary`` CLI (0.7) bound to one server and one trust dir, with test passphrases."""

    server_url: str
    trust_dir: Path
    tls_ca: Path | None = None
    env: dict[str, str] = field(default_factory=lambda: dict(PASSPHRASES))

    def run(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["notary", "-s", self.server_url, "-d", str(self.trust_dir)]
        if self.tls_ca is not None:
            cmd += ["--tlscacert", str(self.tls_ca)]
        cmd += list(args)
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}{proc.stdout}")
        return proc

    # Convenience wrappers for the operations tests do most.
    def init(self, gun: str, *extra: str) -> None:
        self.run("init", gun, *extra)

    def addhash(self, gun: str, tag: str, size: int, sha256_hex: str, *roles: str) -> None:
        args = ["addhash", gun, tag, str(size), "--sha256", sha256_hex]
        for role in roles:
            args += ["--roles", role]
        self.run(*args)

    def publish(self, gun: str) -> None:
        self.run("publish", gun)

    def list(self, gun: str, *roles: str) -> str:
        args = ["list", gun]
        for role in roles:
            args += ["-r", role]
        return self.run(*args).stdout


@dataclass
class Registry:
    """Debian's ``docker-registry`` (distribution 2.8) with filesystem storage and deletes enabled."""

    workdir: Path
    htpasswd: Path | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    # ``tls=True`` serves HTTPS with a throwaway CA (``tls_files.ca_cert``, or the ``tls_files`` given), as a
    # production registry does.
    tls: bool = False
    tls_files: TLSFiles | None = None
    # Token auth (distribution's ``auth.token``: realm, service, issuer, rootcertbundle), e.g. a TokenEndpoint's
    # ``auth_config()["options"]``, as Docker Hub, Harbor and GHCR do.
    token_auth: dict[str, str] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def start(self) -> Registry:
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [
            "version: 0.1",
            "log:",
            "  level: error",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.workdir / 'data'}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
        ]
        if self.tls:
            # Given tls_files (another server's) make one CA for the estate, as an organisation's internal CA is.
            self.tls_files = self.tls_files or make_tls(self.workdir / "tls")
            lines += ["  tls:", f"    certificate: {self.tls_files.cert}", f"    key: {self.tls_files.key}"]
        if self.htpasswd is not None:
            lines += ["auth:", "  htpasswd:", "    realm: test-realm", f"    path: {self.htpasswd}"]
        if self.token_auth is not None:
            lines += ["auth:", "  token:", *(f"    {k}: {v}" for k, v in sorted(self.token_auth.items()))]
        cfg = self.workdir / "config.yml"
        cfg.write_text("\n".join(lines) + "\n")
        log = self.workdir / "registry.log"
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(cfg)], stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
        verify: bool | ssl.SSLContext = (
            ssl.create_default_context(cafile=str(self.tls_files.ca_cert)) if self.tls_files else True
        )
        _wait_http(f"{self.url}/v2/", self.proc, log, verify=verify, ok=(200, 401))
        return self

    def stop(self) -> None:
        _terminate(self.proc)
        self.proc = None


def write_htpasswd(path: Path, user: str, password: str) -> Path:
    """bcrypt htpasswd file via ``htpasswd`` (apache2-utils), which distribution requires."""
    subprocess.run(["htpasswd", "-Bbc", str(path), user, password], check=True, capture_output=True)
    return path


@contextmanager
def running(server: NotaryServer | Registry) -> Iterator[NotaryServer | Registry]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
