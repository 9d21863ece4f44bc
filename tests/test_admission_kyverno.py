"""Kyverno v1.19.0's own admission checks accept what `policy` emits, for every --level and both Kyverno forms.

``kyverno-check`` (tests/support/kyverno_check, built by scripts/peers.sh inside the kyverno module) runs the
ClusterPolicy through ``pkg/validation/policy.Validate`` (the webhook's and ``kyverno apply``'s validation, which
holds the "mutateDigest must be set to false for 'Audit' failure action" rule) and compiles each
ImageValidatingPolicy (CEL validations, attestors, image references) with Kyverno's image-verification compiler.
The old HEAD form, Audit with mutateDigest at its CRD default (true), is refused by the same code.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.admission_estate import LEVELS, emit, make_keys
from tests.support.peers import peers_root

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "tests" / "support" / "kyverno_check" / "main.go"
VERSION = "v1.19.0"


@pytest.fixture(scope="module")
def kyverno_check() -> Path:
    folder = peers_root() / f"kyverno-check-{VERSION}-{hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]}"
    binary = folder / "kyverno-check"
    if binary.is_file():
        return binary
    log = folder.with_name(folder.name + ".tmp") / "build.log"
    why = "not built: run scripts/peers.sh (needs Go and the Go module proxy)"
    if log.is_file():
        lines = log.read_text(errors="replace").strip().splitlines()
        why = f"did not build: {lines[-1] if lines else 'empty build log'}"
    pytest.skip(f"kyverno-check {VERSION} {why}")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_keys(tmp_path_factory.mktemp("kyverno-keys"))


def run(binary: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *map(str, files)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("level", LEVELS)
def test_kyverno_accepts_both_forms_at_every_level(kyverno_check: Path, keys: Path, tmp_path: Path, level: str) -> None:
    ivp = emit(keys, tmp_path / "ivp", level) / "kyverno" / "imagevalidatingpolicies.yaml"
    cp = emit(keys, tmp_path / "cp", level, kyverno="clusterpolicy") / "kyverno" / "clusterpolicy.yaml"
    done = run(kyverno_check, ivp, cp)
    assert done.returncode == 0, done.stdout + done.stderr
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(ivp.read_text())]
    expected = [f"OK ImageValidatingPolicy {n}" for n in names] + ["OK ClusterPolicy dct2notation-verify-images"]
    assert done.stdout.splitlines() == expected


def test_kyverno_refuses_the_audit_form_head_emitted(kyverno_check: Path, keys: Path, tmp_path: Path) -> None:
    cp = emit(keys, tmp_path / "cp", "audit", kyverno="clusterpolicy") / "kyverno" / "clusterpolicy.yaml"
    (policy,) = yaml.safe_load_all(cp.read_text())
    policy["spec"]["validationFailureAction"] = "Audit"
    for rule in policy["spec"]["rules"]:
        (verify,) = rule["verifyImages"]
        del verify["failureAction"]
        verify["mutateDigest"] = True  # the CRD default the API server fills in when the field is left out
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump(policy))
    done = run(kyverno_check, old)
    assert done.returncode == 1
    assert "mutateDigest must be set to false for ‘Audit’ failure action" in done.stdout
    # And a CEL validation that does not type-check is caught by the same compiler Kyverno admits with.
    ivp = emit(keys, tmp_path / "ivp", "strict") / "kyverno" / "imagevalidatingpolicies.yaml"
    first = next(yaml.safe_load_all(ivp.read_text()))
    first["spec"]["validations"][0]["expression"] += " && 1"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(first))
    done = run(kyverno_check, broken)
    assert done.returncode == 1 and "expected type 'bool'" in done.stdout
