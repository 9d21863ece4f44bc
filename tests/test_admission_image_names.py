"""The patterns each controller gets for a migrated repository cover every spelling the runtime pulls it by.

Kyverno's own matching is run for real in tests/test_admission_kyverno.py (`kyverno apply`). Connaisseur is not built
here: its matching is gobwas/glob over the pattern with ``*`` put before and after it, against go-containerregistry's
qualified name (Docker Hub as ``index.docker.io/library/…``, host case kept, ``:latest`` for a tag-less name, tag and
digest both kept). For our patterns (``*`` and ``[xX]`` classes only, no separators) Python's ``fnmatchcase`` has the
same semantics, so that is what these tests match with.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import pytest

from dct2notation.migrate.admission.base import AdmissionInput
from dct2notation.migrate.admission.image_names import (
    clusterpolicy_globs,
    connaisseur_globs,
    ivp_globs,
    pull_names,
)

D = "sha256:" + "a" * 64
HUB = "[dD][oO][cC][kK][eE][rR].[iI][oO]"


def test_pull_names_of_a_docker_hub_official_image_and_of_a_private_registry() -> None:
    assert pull_names("docker.io/library/alpine") == [
        "docker.io/library/alpine", "docker.io/alpine", "index.docker.io/library/alpine", "index.docker.io/alpine",
        "registry-1.docker.io/library/alpine", "registry-1.docker.io/alpine", "library/alpine", "alpine",
    ]  # fmt: skip
    assert pull_names("DOCKER.IO/team/app") == [
        "docker.io/team/app", "index.docker.io/team/app", "registry-1.docker.io/team/app", "team/app",
    ]  # fmt: skip
    assert pull_names("REG.Example:5000/team/app") == ["reg.example:5000/team/app"]
    assert pull_names("127.0.0.1:5000/app") == ["127.0.0.1:5000/app"]


def test_each_controller_gets_the_glob_dialect_it_matches_with() -> None:
    assert ivp_globs("reg.example:5000/app") == [
        "[rR][eE][gG].[eE][xX][aA][mM][pP][lL][eE]:5000/app",
        "[rR][eE][gG].[eE][xX][aA][mM][pP][lL][eE]:5000/app:*",
        "[rR][eE][gG].[eE][xX][aA][mM][pP][lL][eE]:5000/app@*",
    ]
    assert clusterpolicy_globs("reg.example:5000/app") == ["???.???????:5000/app:*", "???.???????:5000/app@*"]
    assert clusterpolicy_globs("docker.io/library/alpine")[:4] == [
        "??????.??/library/alpine:*", "??????.??/library/alpine@*", "??????.??/alpine:*", "??????.??/alpine@*",
    ]  # fmt: skip
    assert connaisseur_globs("docker.io/library/alpine") == [
        f"{HUB}/library/alpine:*", f"{HUB}/library/alpine@*", f"{HUB}/alpine:*", f"{HUB}/alpine@*",
    ]  # fmt: skip


def connaisseur_matches(patterns: list[str], name: str) -> bool:
    return any(fnmatchcase(name, f"*{p}*") for p in patterns)


@pytest.mark.parametrize(
    ("spelling", "qualified"),
    [  # what go-containerregistry (and so Connaisseur) makes of each spelling
        ("alpine:3.20", "index.docker.io/library/alpine:3.20"),
        ("alpine", "index.docker.io/library/alpine:latest"),
        ("docker.io/library/alpine", "index.docker.io/library/alpine:latest"),
        ("registry-1.docker.io/library/alpine:3.20", "registry-1.docker.io/library/alpine:3.20"),
        ("registry-1.docker.io/alpine:3.20", "registry-1.docker.io/alpine:3.20"),
        ("DOCKER.IO/library/alpine:3.20", "DOCKER.IO/library/alpine:3.20"),
        (f"alpine@{D}", f"index.docker.io/library/alpine@{D}"),
        (f"alpine:3.20@{D}", f"index.docker.io/library/alpine:3.20@{D}"),
        ("REG.EXAMPLE:5000/team/app:v1", "REG.EXAMPLE:5000/team/app:v1"),
        (f"Reg.Example:5000/team/app@{D}", f"Reg.Example:5000/team/app@{D}"),
    ],
)
def test_attack_image_spelling_slips_past_connaisseur_rules(spelling: str, qualified: str) -> None:
    """Old HEAD's ``reg.example:5000/team/app:*`` never matched ``REG.EXAMPLE:5000/…``: with an operator's catch-all
    rule beside ours, the image went to that rule's validator instead of the migrated repository's."""
    patterns = connaisseur_globs("docker.io/library/alpine") + connaisseur_globs("reg.example:5000/team/app")
    assert connaisseur_matches(patterns, qualified), (spelling, qualified)


def test_connaisseur_patterns_leave_other_repositories_alone() -> None:
    patterns = connaisseur_globs("docker.io/library/alpine") + connaisseur_globs("reg.example:5000/team/app")
    for other in ("index.docker.io/library/busybox:1", "reg.example:5000/team/other:v1", "quay.io/alpine/x:1"):
        assert not connaisseur_matches(patterns, other), other


def test_canonical_trust_policy_adds_each_qualified_scope_once_and_leaves_the_written_one() -> None:
    statements = [
        {"name": "a", "registryScopes": ["REG.EXAMPLE/app", "docker.io/nginx"]},
        {"name": "b", "registryScopes": ["docker.io/library/nginx", "reg.example/app"]},
        {"name": "c", "registryScopes": ["*"]},
    ]
    inp = AdmissionInput({"version": "1.0", "trustPolicies": statements}, {}, "strict")
    out = inp.canonical_trust_policy()["trustPolicies"]
    # b already names both qualified forms: a scope belongs to one statement only, so a gets nothing added.
    assert [s["registryScopes"] for s in out] == [
        ["REG.EXAMPLE/app", "docker.io/nginx"], ["docker.io/library/nginx", "reg.example/app"], ["*"],
    ]  # fmt: skip
    assert inp.canonical_repositories() == ["docker.io/library/nginx", "reg.example/app"]
    statements[1]["registryScopes"] = ["quay.io/x"]
    out = AdmissionInput({"version": "1.0", "trustPolicies": statements}, {}, "strict").canonical_trust_policy()
    assert out["trustPolicies"][0]["registryScopes"] == [
        "REG.EXAMPLE/app", "docker.io/nginx", "reg.example/app", "docker.io/library/nginx",
    ]  # fmt: skip
    assert statements[0]["registryScopes"] == ["REG.EXAMPLE/app", "docker.io/nginx"]  # the input is not changed
