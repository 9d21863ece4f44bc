"""A production-shaped estate on loopback: notary-server with TLS and token auth (the token service on TLS too),
docker-registry with TLS and htpasswd, all under one internal CA that no trust store holds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.notary_builders import TokenEndpoint
from tests.support.servers import NotaryServer, Registry, have, make_tls, write_htpasswd


@dataclass
class TLSEstate:
    notary: NotaryServer
    registry: Registry
    token: TokenEndpoint
    ca: Path  # the internal CA: the operator's --ca-file


@contextmanager
def tls_estate(work: Path, user: str, password: str) -> Iterator[TLSEstate]:
    """Start the three servers (skipping the test when a binary is missing); stop them on exit."""
    for binary in ("notary-server", "notary", "docker-registry", "htpasswd"):
        if not have(binary):
            pytest.skip(f"{binary} is not installed")
    tls = make_tls(work / "tls")
    token = TokenEndpoint(work / "token", user, password, tls=(tls.cert, tls.key))
    notary = NotaryServer(work / "notary", tls=True, auth=token.auth_config(), tls_files=tls).start()
    try:
        registry = Registry(work / "registry", htpasswd=write_htpasswd(work / "htpasswd", user, password), tls=True,
                            tls_files=tls).start()  # fmt: skip
        try:
            yield TLSEstate(notary, registry, token, tls.ca_cert)
        finally:
            registry.stop()
    finally:
        notary.stop()
        token.close()
