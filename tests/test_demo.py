"""README's first command: the demo estate's whole migration on a fresh clone ends with `ready` (#8, must show 1)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dct2notation.migrate.signoff import verify_bundle

ROOT = Path(__file__).resolve().parent.parent


def _missing_pieces() -> list[str]:
    from dct2notation.cli import app

    names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    missing = [f"`{name}` command" for name in ("archive", "inventory", "plan", "sign", "policy", "check", "signoff")
               if name not in names]  # fmt: skip
    if importlib.util.find_spec("dct2notation.migrate.signers") is None:
        missing.append("signers.toml loader (dct2notation.migrate.signers)")
    return missing


def test_demo_on_a_fresh_clone_prints_ready(tmp_path: Path) -> None:
    missing = _missing_pieces()
    if missing:
        pytest.skip("the demo needs " + ", ".join(missing) + " (other areas, not landed yet)")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    work = tmp_path / "work"
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(clone)}
    env.pop("NOTATION_CONFIG", None)
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(clone / "scripts" / "demo.sh"), str(work)], capture_output=True, text=True, env=env, timeout=300
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "ready"
    assert elapsed < 60
    checked = verify_bundle(work / "bundle")
    assert checked.verdict.ready
    assert len(checked.verdict.coverage) == 6  # every trusted digest of the three demo GUNs
    # The fixtures the clone ran from are untouched.
    assert subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout == ""


def test_demo_in_a_bare_virtualenv_tests_the_dependencies_not_the_source_folder(tmp_path: Path) -> None:
    """From the repo root `import dct2notation` finds the source folder: the old check skipped the install and died
    with `ModuleNotFoundError: typer` (a traceback). The installed distributions are what is tested now."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "NOTATION_CONFIG")}
    env["PYTHON"] = str(python)
    done = subprocess.run(["bash", "scripts/demo.sh", str(tmp_path / "work")], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith(f"installing dct2notation (pip install -e {ROOT}): missing tuf>=7,<8,")
    assert "typer>=0.15,<1" in lines[0]
    hint = "run it in a virtualenv (python3 -m venv .venv && . .venv/bin/activate)"
    assert lines[1] == f"demo.sh: {python} has no pip; {hint}"
    assert not (tmp_path / "work" / "archive").exists()
