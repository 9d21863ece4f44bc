"""Memory in aggregate: a hostile notary server (tests/support/hostile_notary.py) serving a long chain of validly
signed root versions, each just under the 2 MiB per-file cap.

The attacker owns the whole GUN (trust on first use), so every root verifies: only a cap on the total bytes read for
one GUN stops it, and verification must not keep each root's bytes once the next one is checked.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from dct2notation.config import DEFAULT_LIMITS, MiB, SystemClock
from dct2notation.dct.source import NotaryServerSource
from dct2notation.dct.tuf import verify_repository
from dct2notation.errors import DCTVerificationError, NotFoundError
from tests.support.hostile_notary import HostileNotary
from tests.support.notary_builders import canonical, key_id, sign_raw, write_key_and_cert

GUN = "example.com/limits/app"
ROOT_FILE = DEFAULT_LIMITS.root_bytes - 64  # under the per-file cap, so only the total can stop the chain
LATEST = 24


def _root_chain(directory: Path) -> dict[str, bytes]:
    """``root`` and ``1.root`` … ``LATEST.root``, one self-signed key for every role, each padded to ROOT_FILE."""
    key_path = write_key_and_cert(directory, "root", cn=GUN)
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    public = base64.b64encode((directory / "root.crt").read_bytes()).decode()
    kid = key_id("ecdsa-x509", public)
    files: dict[str, bytes] = {}
    for version in range(1, LATEST + 1):
        signed = {
            "_type": "Root",
            "consistent_snapshot": False,
            "expires": "2099-01-01T00:00:00Z",
            "keys": {kid: {"keytype": "ecdsa-x509", "keyval": {"private": None, "public": public}}},
            "roles": {role: {"keyids": [kid], "threshold": 1} for role in ("root", "targets", "snapshot", "timestamp")},
            "version": version,
        }
        method, sig = sign_raw(key, canonical(signed))
        signature = {"keyid": kid, "method": method, "sig": base64.b64encode(sig).decode()}
        raw = b'{"signed":' + canonical(signed) + b',"signatures":[' + canonical(signature) + b"]}"
        # Whitespace after the document: still valid JSON, outside what the signature covers.
        files[f"{version}.root"] = raw + b" " * (ROOT_FILE - len(raw))
    files["root"] = files[f"{LATEST}.root"]
    return files


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return _root_chain(tmp_path_factory.mktemp("chain"))


@pytest.fixture
def hostile(chain: dict[str, bytes]) -> Iterator[HostileNotary]:
    server = HostileNotary(GUN, chain)  # no timestamp: verification would end there
    yield server
    server.close()


def test_attack_root_chain_past_the_total_limit_for_one_gun(hostile: HostileNotary) -> None:
    limits = dataclasses.replace(DEFAULT_LIMITS, gun_bytes=16 * MiB)
    source = NotaryServerSource(hostile.url, limits=limits)
    try:
        with pytest.raises(DCTVerificationError) as caught:
            verify_repository(GUN, source, SystemClock(), limits)
    finally:
        source.close()
    # Eight files fit in 16 MiB; the ninth is refused after reading what is left of the budget, plus one byte.
    assert str(caught.value) == f"{GUN}: 8.root: the GUN's metadata is larger than the 16777216-byte total limit"
    assert hostile.requested == ["root", *(f"{n}.root" for n in range(1, 9))]


def test_verification_keeps_no_root_bytes_it_has_checked(hostile: HostileNotary) -> None:
    source = NotaryServerSource(hostile.url)
    tracemalloc.start()
    try:
        with pytest.raises(NotFoundError, match=re.escape(f"{GUN}: timestamp.json not found (404)")):
            verify_repository(GUN, source, SystemClock(), DEFAULT_LIMITS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        source.close()
    assert hostile.requested[-1] == "timestamp"  # the whole chain of 24 roots, 48 MiB, was read and verified
    # A root in hand, the previous one being checked, and the reader's buffers: not the 48 MiB of the chain.
    assert peak < 20 * MiB, f"peak {peak / MiB:.1f} MiB"
