"""Print the distributions pyproject.toml requires that this interpreter lacks, one a line (nothing: all present).

scripts/demo.sh runs it before the demo: `import dct2notation` succeeds from the repo root on a machine with none of
the dependencies (the source folder is on sys.path), so the import proves nothing; the installed distributions do.
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def missing(pyproject: Path) -> list[str]:
    requirements: list[str] = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    absent = []
    for requirement in requirements:
        found = NAME.match(requirement)
        if found is None:
            continue
        name = found.group(1)
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            absent.append(requirement)
            continue
        if not _satisfies(requirement, installed):
            absent.append(f"{requirement} (installed: {installed})")
    return absent


def _satisfies(requirement: str, installed: str) -> bool:
    # packaging ships with pip and setuptools; without it only presence is checked (pip then settles versions).
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return True
    return Requirement(requirement).specifier.contains(installed, prereleases=True)


if __name__ == "__main__":
    for line in missing(Path(sys.argv[1])):
        print(line)
