"""Reference parsing as docker/Notation read references, and the digest-only rule of ``sign``."""

from __future__ import annotations

from pathlib import Path

import pytest

from dct2notation.errors import UsageError
from dct2notation.registry.reference import Reference, parse_reference, require_digest
from dct2notation.registry.target import parse_layout_reference

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alpine", Reference("docker.io", "library/alpine")),
        ("alpine:3.19", Reference("docker.io", "library/alpine", "3.19")),
        ("me/app@" + D, Reference("docker.io", "me/app", None, D)),
        ("localhost/app:v1", Reference("localhost", "app", "v1")),
        ("127.0.0.1:5000/a/b/c:v1@" + D, Reference("127.0.0.1:5000", "a/b/c", "v1", D)),
        ("registry.example.com/team/app", Reference("registry.example.com", "team/app")),
    ],
)
def test_parse(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


def test_str_and_name() -> None:
    ref = parse_reference("127.0.0.1:5000/a/b:v1")
    assert ref.name == "127.0.0.1:5000/a/b"
    assert str(ref) == "127.0.0.1:5000/a/b:v1"
    assert str(ref.with_digest(D)) == f"127.0.0.1:5000/a/b@{D}"
    assert ref.reference == "v1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("r.example/App:v1", "invalid repository name"),
        ("r.example/app:bad tag", "invalid tag"),
        ("r.example/app@sha256:abc", "is not a digest"),
        ("r.example/app@sha256:" + "AB" * 32, "64 lowercase hex"),
        ("r.example/", "invalid repository name"),
    ],
)
def test_parse_refuses(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_reference(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"r.example/app@{D}\n", "is not a digest"),
        ("r.example/app:v1\n", "invalid tag 'v1\\n'"),
        ("r.example/app\n", "invalid repository name 'app\\n'"),
    ],
)
def test_attack_reference_with_a_trailing_newline(text: str, message: str) -> None:
    """A plan, a layout index or a registry's answer naming ``app:v1\\n``: ``$`` matched before the newline."""
    with pytest.raises(UsageError) as refused:
        parse_reference(text)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    "text", ["alpine", "alpine:3.19", "me/app:v1", "localhost/app", "127.0.0.1:5000/a/b/c:v1", "r.example/team/app"]
)
def test_docker_trust_inspect_names_split_as_references(text: str) -> None:
    """One name grammar (imagename.split_name): what `inventory --format docker` reads as a GUN and a tag is what
    a reference names."""
    from dct2notation.dct.docker import docker_name

    ref, name = parse_reference(text), docker_name(text)
    assert (name.gun, name.tag) == (ref.name, ref.tag)


def test_require_digest() -> None:
    assert require_digest(parse_reference("r.example/app@" + D), command="sign").digest == D
    with pytest.raises(UsageError, match="is a tag reference; sign by digest"):
        require_digest(parse_reference("r.example/app:v1"), command="sign")
    with pytest.raises(UsageError, match="neither a tag nor a digest"):
        _ = parse_reference("r.example/app").reference


def test_layout_references(tmp_path: Path) -> None:
    layout = tmp_path / "My-Layout"
    assert parse_layout_reference(D, layout) == Reference("local", "my-layout", None, D)
    assert parse_layout_reference("x@" + D, layout).digest == D
    assert parse_layout_reference("app:v1", layout).tag == "v1"
    assert parse_layout_reference("v2", layout).tag == "v2"
    with pytest.raises(UsageError, match="give a tag or a digest"):
        parse_layout_reference("app:", layout)
