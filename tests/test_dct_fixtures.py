"""Every public Notary fixture set verifies at a pinned time and gives its expected Docker semantics (must show 3).

The fixtures are read in place from ../shared/fixtures/dct; a symlinked trust-dir layout points at them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dct2notation.cli import main

# (set directory, metadata dir inside it, GUN, an instant inside every role's and root certificate's validity)
SETS = [
    ("notary-compat-0.1-samplerepo", "metadata", "docker.com/notary0.1/samplerepo", "2016-07-01T00:00:00Z"),
    ("notary-compat-0.3-tst", "metadata", "docker.com/notary0.3/tst", "2018-06-01T00:00:00Z"),
    ("dockerhub-library-alpine-2018", "metadata", "docker.io/library/alpine", "2018-07-25T00:00:00Z"),
    (
        "aepifanov-moby-dockertrusttest-busybox/good",
        "metadata",
        "dockertrusttest.docker.io/library/busybox",
        "2018-09-20T00:00:00Z",
    ),
    (
        "aepifanov-moby-dockertrusttest-busybox/bad",
        "metadata",
        "dockertrusttest.docker.io/library/busybox",
        "2018-09-01T00:00:00Z",
    ),
    ("connaisseur-alice-image", "metadata-compact", "docker.io/phbelitz/alice-image", "2019-10-20T00:00:00Z"),
    ("connaisseur-sample-image", "metadata-compact", "docker.io/phbelitz/sample-image", "2019-11-05T00:00:00Z"),
    (
        "generated-notary070-registry.example.com-team-simple",
        "server",
        "registry.example.com/team/simple",
        "2026-11-30T00:00:00Z",
    ),
]


def trust_dir_for(tmp_path: Path, metadata: Path, gun: str) -> Path:
    link = tmp_path / "trust" / "tuf" / gun / "metadata"
    link.parent.mkdir(parents=True)
    link.symlink_to(metadata, target_is_directory=True)
    return tmp_path / "trust"


def run_inventory(capsys: pytest.CaptureFixture[str], gun: str, trust: Path, at: str) -> tuple[int, str, str]:
    code = main(["inventory", gun, "--trust-dir", str(trust), "--json", "--at", at])
    out, err = capsys.readouterr()
    return code, out, err


def as_docker(repo: dict[str, Any], name: str) -> dict[str, Any]:
    """Our document in ``docker trust inspect`` shape (bare hex digests, docker's field names)."""
    return {
        "Name": name,
        "SignedTags": [
            {"SignedTag": r["tag"], "Digest": r["digest"].removeprefix("sha256:"), "Signers": r["signers"]}
            for r in repo["signed_tags"]
        ],
        "Signers": [{"Name": s["name"], "Keys": [{"ID": k["id"]} for k in s["keys"]]} for s in repo["signers"]],
        "AdministrativeKeys": [
            {"Name": a["name"], "Keys": [{"ID": k["id"]} for k in a["keys"]]} for a in repo["administrative_keys"]
        ],
    }


@pytest.mark.parametrize(("set_dir", "meta", "gun", "at"), SETS, ids=[s[0] for s in SETS])
def test_fixture_set_verifies_with_expected_docker_semantics(
    capsys: pytest.CaptureFixture[str],
    shared_fixtures: Path,
    tmp_path: Path,
    set_dir: str,
    meta: str,
    gun: str,
    at: str,
) -> None:
    base = shared_fixtures / "dct" / set_dir
    code, out, err = run_inventory(capsys, gun, trust_dir_for(tmp_path, base / meta, gun), at)
    assert code == 0, err
    repo = json.loads(out)["repositories"][0]
    expected = json.loads((base / "expected-docker-semantics.json").read_text())
    assert {t["tag"]: {"role": t["role"], "digest": t["digest"], "size": t["size"]} for t in repo["trusted_tags"]} == (
        expected["pull_trusted_tags"]
    )
    inspect = expected["trust_inspect"][0]
    # docker prints the name as typed (``alpine``); the rest must match exactly.
    assert as_docker(repo, inspect["Name"]) == inspect


def test_generated_set_matches_recorded_notary_list(
    capsys: pytest.CaptureFixture[str], shared_fixtures: Path, tmp_path: Path
) -> None:
    base = shared_fixtures / "dct" / "generated-notary070-registry.example.com-team-simple"
    gun = "registry.example.com/team/simple"
    code, out, err = run_inventory(capsys, gun, trust_dir_for(tmp_path, base / "server", gun), "2026-11-30T00:00:00Z")
    assert code == 0, err
    listed = (base / "generation" / "notary-list-roles-releases-targets.txt").read_text()
    rows = sorted(
        (p[0], "sha256:" + p[1], int(p[2]), p[3])
        for p in (line.split() for line in listed.splitlines())
        if len(p) == 4 and len(p[1]) == 64
    )
    repo = json.loads(out)["repositories"][0]
    assert sorted((t["tag"], t["digest"], t["size"], t["role"]) for t in repo["trusted_tags"]) == rows
    assert repo["root_version"] == json.loads((base / "server" / "root.json").read_bytes())["signed"]["version"]


def test_expired_fixture_is_refused_without_at(
    capsys: pytest.CaptureFixture[str], shared_fixtures: Path, tmp_path: Path
) -> None:
    base = shared_fixtures / "dct" / "connaisseur-alice-image" / "metadata-compact"
    gun = "docker.io/phbelitz/alice-image"
    code = main(["inventory", gun, "--trust-dir", str(trust_dir_for(tmp_path, base, gun)), "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err.startswith(f"dct2notation: error: {gun}: timestamp: expired at 2019-10-24T09:43:18.580935226Z")


SYNTHETIC = sorted(
    [
        "connaisseur-edge-case-image",
        "connaisseur-never-expire-image",
        "connaisseur-never-expire-with-conflicting-delegations-image",
        "connaisseur-never-expire-with-delegations-image",
    ]
)


@pytest.mark.parametrize("name", SYNTHETIC)
@pytest.mark.parametrize("meta", ["metadata", "metadata-compact"])
def test_synthetic_sets_are_refused(
    capsys: pytest.CaptureFixture[str], shared_fixtures: Path, tmp_path: Path, name: str, meta: str
) -> None:
    base = shared_fixtures / "dct" / "synthetic" / name
    gun = json.loads((base / "expected-docker-semantics.json").read_text())["trust_inspect"][0]["Name"]
    code, out, err = run_inventory(capsys, gun, trust_dir_for(tmp_path, base / meta, gun), "2025-01-01T00:00:00Z")
    assert code == 1
    assert out == ""
    # Hand-made roots: the root "certificate" is a CA certificate whose CN is not the GUN.
    assert err.startswith(f"dct2notation: error: {gun}: root: root certificate "), err
    assert err.count("\n") == 1


def test_pretty_printed_copy_fails_the_hash_chain(
    capsys: pytest.CaptureFixture[str], shared_fixtures: Path, tmp_path: Path
) -> None:
    base = shared_fixtures / "dct" / "connaisseur-alice-image" / "metadata"
    gun = "docker.io/phbelitz/alice-image"
    code, _, err = run_inventory(capsys, gun, trust_dir_for(tmp_path, base, gun), "2019-10-20T00:00:00Z")
    assert code == 1
    assert err == f"dct2notation: error: {gun}: snapshot: length 2039 does not match timestamp's 1286\n"


@pytest.mark.parametrize(("set_dir", "meta", "gun", "at"), SETS, ids=[s[0] for s in SETS])
def test_format_docker_is_the_recorded_trust_inspect(
    capsys: pytest.CaptureFixture[str],
    shared_fixtures: Path,
    tmp_path: Path,
    set_dir: str,
    meta: str,
    gun: str,
    at: str,
) -> None:
    """`inventory --format docker NAME` prints the recorded `docker trust inspect` document for the name as docker
    users type it (`alpine` for docker.io/library/alpine), four-space indented as docker prints it (issue #16)."""
    base = shared_fixtures / "dct" / set_dir
    expected = json.loads((base / "expected-docker-semantics.json").read_text())["trust_inspect"]
    name = expected[0]["Name"]
    trust = trust_dir_for(tmp_path, base / meta, gun)
    code = main(["inventory", name, "--format", "docker", "--trust-dir", str(trust), "--at", at])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == json.dumps(expected, indent=4, ensure_ascii=False) + "\n"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Alpine", "'Alpine': invalid repository name (docker's: lowercase components separated by /)"),
        ("alpine@sha256:" + "0" * 64, "docker trust inspect takes NAME or NAME:TAG, not a digest"),
        ("alpine:-x", "'alpine:-x': invalid tag '-x'"),
    ],
)
def test_format_docker_refuses_what_docker_refuses(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, message: str
) -> None:
    code = main(["inventory", name, "--format", "docker", "--trust-dir", str(tmp_path)])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize(
    ("name", "gun", "tag"),
    [
        ("alpine", "docker.io/library/alpine", None),
        ("alpine:3.18", "docker.io/library/alpine", "3.18"),
        ("acme/web", "docker.io/acme/web", None),
        ("docker.io/acme/web:v1", "docker.io/acme/web", "v1"),
        ("localhost/app", "localhost/app", None),
        ("127.0.0.1:5000/team/app:1.0", "127.0.0.1:5000/team/app", "1.0"),
        ("registry.example.com/a/b/c", "registry.example.com/a/b/c", None),
    ],
)
def test_docker_short_names(name: str, gun: str, tag: str | None) -> None:
    from dct2notation.dct.docker import docker_name

    assert docker_name(name) == docker_name(name).__class__(name, gun, tag)
