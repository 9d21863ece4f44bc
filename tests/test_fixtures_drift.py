"""Regenerating the demo estate gives the same OCI layout bytes and the same tag -> digest map (issue #8)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fixtures.generate_demo import generate
from tests.support.servers import have

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"


def tree_digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.skipif(not (have("notary") and have("notary-server")), reason="notary tools are not installed")
def test_regenerated_estate_matches_committed(tmp_path: Path) -> None:
    generate(tmp_path / "demo")
    assert tree_digests(tmp_path / "demo" / "oci-layout") == tree_digests(DEMO / "oci-layout")
    fresh = json.loads((tmp_path / "demo" / "expected.json").read_text())
    committed = json.loads((DEMO / "expected.json").read_text())
    assert fresh["tags"] == committed["tags"]
    assert fresh["guns"] == committed["guns"]
    roles = sorted(
        p.relative_to(tmp_path / "demo" / "trust").as_posix() for p in (tmp_path / "demo" / "trust").rglob("*.json")
    )
    assert roles == sorted(p.relative_to(DEMO / "trust").as_posix() for p in (DEMO / "trust").rglob("*.json"))
    assert not list((tmp_path / "demo").rglob("private"))


def test_every_tag_names_a_manifest_in_the_layout() -> None:
    index = json.loads((DEMO / "oci-layout" / "index.json").read_text())
    named = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}
    expected = json.loads((DEMO / "expected.json").read_text())["tags"]
    assert named == {f"{gun}:{tag}": digest for gun, tags in expected.items() for tag, digest in tags.items()}
    for digest in named.values():
        blob = DEMO / "oci-layout" / "blobs" / "sha256" / digest.removeprefix("sha256:")
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == digest
