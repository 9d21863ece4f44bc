"""The real peer tools (Notation CLI, ORAS CLI, olareg) built by scripts/peers.sh, and servers/runners over them.

Binaries live in ``$DCT2NOTATION_PEERS`` (default ``${XDG_CACHE_HOME:-~/.cache}/dct2notation-peers``) under
``<tool>-<version>/<tool>``, the versions pinned in ``scripts/peers.txt``. A missing binary skips the test with the
reason (no Go on the machine, or the module did not build: its build log's last line is quoted).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import _terminate, _wait_http, free_port

REPO = Path(__file__).resolve().parents[2]
PINS = REPO / "scripts" / "peers.txt"


def peers_root() -> Path:
    explicit = os.environ.get("DCT2NOTATION_PEERS")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "dct2notation-peers"


def pinned() -> dict[str, str]:
    """tool -> pinned version, from scripts/peers.txt (the file scripts/peers.sh builds from)."""
    out: dict[str, str] = {}
    for line in PINS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            tool, version = line.split()[:2]
            out[tool] = version
    return out


def peer_path(tool: str) -> Path | None:
    path = peers_root() / f"{tool}-{pinned()[tool]}" / tool
    return path if os.access(path, os.X_OK) else None


def peer(tool: str) -> Path:
    """The pinned binary of ``tool``, or skip naming why it is absent."""
    path = peer_path(tool)
    if path is not None:
        return path
    version = pinned()[tool]
    log = peers_root() / f"{tool}-{version}.tmp" / "build.log"
    why = "not built: run scripts/peers.sh (needs Go and the Go module proxy)"
    if log.is_file():
        lines = log.read_text(errors="replace").strip().splitlines()
        why = f"did not build: {lines[-1] if lines else 'empty build log'}"
    pytest.skip(f"{tool} {version} {why}")


@dataclass
class Olareg:
    """olareg (a registry with the OCI Referrers API) serving a directory on a loopback port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Olareg:
        binary = peer("olareg")
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / "olareg.log"
        self.proc = subprocess.Popen(
            [
                str(binary),
                "serve",
                "--addr",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.workdir / "data"),
                "--api-delete",
                "--gc-frequency",
                "-1s",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        _wait_http(f"http://{self.host}/v2/", self.proc, log)
        return self

    def stop(self) -> None:
        _terminate(self.proc)
        self.proc = None


@dataclass
class Tool:
    """A peer CLI run with a private HOME/XDG dirs (nothing from the user's config leaks in) and a time limit."""

    binary: Path
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        self.home.mkdir(parents=True, exist_ok=True)
        full = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "XDG_CACHE_HOME": str(self.home / "cache"),
            "DOCKER_CONFIG": str(self.home / "docker"),
            **self.env,
            **(env or {}),
        }
        return subprocess.run(
            [str(self.binary), *args], env=full, capture_output=True, text=True, timeout=timeout, check=False
        )

    def json(self, *args: str, env: dict[str, str] | None = None) -> Any:
        done = self.run(*args, env=env)
        assert done.returncode == 0, f"{self.binary.name} {' '.join(args)}: {done.stderr}{done.stdout}"
        return json.loads(done.stdout)


def notation(home: Path) -> Tool:
    return Tool(peer("notation"), home)


def oras(home: Path) -> Tool:
    return Tool(peer("oras"), home)


PLUGIN_SOURCE = REPO / "tests" / "support" / "notation_plugin"


def _plugin_sources() -> list[Path]:
    # The same files, in the same order, as scripts/peers.sh hashes ("$src"/*.go go.mod go.sum).
    return sorted(PLUGIN_SOURCE.glob("*.go")) + [PLUGIN_SOURCE / "go.mod", PLUGIN_SOURCE / "go.sum"]


def gokms_plugin() -> Path:
    """``notation-gokms`` (tests/support/notation_plugin, on notation-plugin-framework-go), built by
    scripts/peers.sh into the cache; built here when missing and Go is present; else skip with the reason."""
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in _plugin_sources())).hexdigest()[:12]
    directory = peers_root() / f"plugin-{digest}"
    binary = directory / "notation-gokms"
    if os.access(binary, os.X_OK):
        return binary
    go = shutil.which("go")
    if go is None:
        pytest.skip("notation-gokms is not built and go is not on PATH (scripts/peers.sh builds it)")
    staging = peers_root() / f"plugin-{digest}.tmp"
    staging.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [go, "build", "-trimpath", "-o", str(staging / "notation-gokms"), "."],
        cwd=PLUGIN_SOURCE,
        env={**os.environ, "CGO_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        pytest.skip(f"notation-gokms did not build: {lines[-1] if lines else done.returncode}")
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    return binary
