"""Shared pytest fixtures: the ../shared fixtures directory and real servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.peers import Olareg
from tests.support.servers import NotaryServer, Registry, have
from tests.support.tsa import TestTSA

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """``../shared/fixtures`` beside the checkout (public data we must not copy into the project)."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(
            f"../shared/fixtures is absent ({SHARED_FIXTURES}): public fixtures are read from there, never copied"
        )
    return SHARED_FIXTURES


def _need(binary: str) -> None:
    if not have(binary):
        pytest.skip(f"{binary} is not installed: run the README test command, which installs Debian's packages")


@pytest.fixture(scope="session")
def notary_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotaryServer]:
    """One plain-HTTP notary-server for the session. Use a unique GUN per test."""
    _need("notary-server")
    server = NotaryServer(tmp_path_factory.mktemp("notary-server")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One docker-registry for the session. Use a unique repository per test."""
    _need("docker-registry")
    server = Registry(tmp_path_factory.mktemp("registry")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def olareg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Olareg]:
    """olareg, a real registry with the OCI Referrers API (built by scripts/peers.sh; skips when absent)."""
    server = Olareg(tmp_path_factory.mktemp("olareg")).start()
    yield server
    server.stop()


@pytest.fixture
def notary_binary() -> None:
    _need("notary")


@pytest.fixture(scope="module")
def tsa_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestTSA]:
    server = TestTSA(tmp_path_factory.mktemp("tsa")).start()
    yield server
    server.stop()


@pytest.fixture
def tsa(tsa_server: TestTSA) -> TestTSA:
    """The loopback RFC 3161 TSA (real ``openssl ts``), answering normally again for each test."""
    tsa_server.reset()
    return tsa_server
