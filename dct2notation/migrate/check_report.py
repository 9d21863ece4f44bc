"""Renderers for a coexistence check (JUnit XML, Markdown, rich table) and the ``--since`` diff between two runs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..config import DEFAULT_LIMITS
from ..errors import InputError
from ..files import read_document
from ..jsontext import loads as json_loads
from ..report import shown
from .coexist import CHECK_FORMAT, STATUSES, CheckResult

# Fields that define a tag's state; a change in any of them is a change worth reporting.
_STATE_FIELDS = ("status", "dct_digest", "registry_digest", "notation", "failed_check", "requirement_met")


def render_junit(result: CheckResult) -> bytes:
    """One test case per tag (classname = repository); a tag failing ``--require`` is a failure with its reason."""
    doc = result.to_dict()
    suite = ET.Element(
        "testsuite",
        {
            "name": f"dct2notation check (require {result.require})",
            "tests": str(len(doc["tags"])),
            "failures": str(doc["summary"]["unmet"]),
            "errors": "0",
            "skipped": "0",
            "timestamp": result.evaluated_at,
        },
    )
    for line in result.failures:
        # A GUN that gave no tag is a failing case of its own: the CI report must not be an empty green suite.
        case = ET.SubElement(suite, "testcase", {"classname": "dct2notation.check", "name": line.split(": ")[0]})
        ET.SubElement(case, "failure", {"type": "nothing-checked", "message": line})
    suite.set("tests", str(len(doc["tags"]) + len(result.failures)))
    for row in doc["tags"]:
        case = ET.SubElement(suite, "testcase", {"classname": row["repository"], "name": row["tag"]})
        if not row["requirement_met"]:
            failure = ET.SubElement(case, "failure", {"type": row["status"], "message": row["reason"]})
            failure.text = json.dumps(row, sort_keys=True)
        ET.SubElement(case, "system-out").text = f"status={row['status']}"
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"


def _md_cell(text: object) -> str:
    # A pipe or newline inside a reason would break the table row.
    return str("" if text is None else text).replace("|", "\\|").replace("\n", " ")


def render_markdown(result: CheckResult) -> str:
    """For a change ticket: verdict first, counts, then only the tags that block the gate."""
    unmet = result.unmet
    verdict = "PASS" if not result.unmet_count else "FAIL"
    lines = [
        f"## Coexistence check: {verdict} (require `{result.require}`)",
        "",
        f"Evaluated at {result.evaluated_at}; {len(result.rows)} tags, {len(unmet)} not meeting the requirement.",
        "",
        "| Status | Tags |",
        "|---|---:|",
    ]
    lines += [f"| `{status}` | {count} |" for status, count in result.counts.items()]
    if result.failures:
        lines += ["", "### Nothing checked", ""] + [f"- {_md_cell(line)}" for line in result.failures]
    if unmet:
        lines += ["", "### Tags blocking the gate", "", "| Repository | Tag | Status | Registry digest | Reason |"]
        lines.append("|---|---|---|---|---|")
        for row in unmet:
            cells = (row.repository, row.tag, f"`{row.status}`", row.registry_digest or "-", row.reason)
            lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def render_table(result: CheckResult, console: Console) -> None:
    """The human view on stderr: one row per tag, then the counts."""
    table = Table(title=f"Coexistence (require {result.require})")
    for column in ("Repository", "Tag", "Status", "DCT", "Notation", "Reason"):
        table.add_column(column)
    for row in result.rows:
        style = "green" if row.status == "ok" else "red"
        table.add_row(
            shown(row.repository),
            shown(row.tag),
            f"[{style}]{row.status}[/{style}]",
            shown(row.dct),
            shown(row.notation.verdict),
            shown(row.reason),
        )
    console.print(table)
    counts = ", ".join(f"{status} {n}" for status, n in result.counts.items() if n)
    # One unwrapped line, so CI logs can grep the summary whatever the terminal width.
    summary = f"{len(result.rows)} tags: {counts or 'none'}; {len(result.unmet)} not meeting --require"
    console.print(summary, soft_wrap=True, markup=False, highlight=False)


def load_previous(path: Path) -> dict[str, dict[str, Any]]:
    """A previous ``--json`` document, keyed by ``repository:tag``."""
    try:
        doc = json_loads(read_document(path, DEFAULT_LIMITS.document_bytes))
    except OSError as exc:
        raise InputError(f"{path}: cannot read previous check ({exc.strerror})") from exc
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != CHECK_FORMAT:
        raise InputError(f"{path}: format: expected {CHECK_FORMAT!r}")
    tags = doc.get("tags")
    if not isinstance(tags, list) or not all(
        isinstance(t, dict) and isinstance(t.get("repository"), str) and isinstance(t.get("tag"), str) for t in tags
    ):
        raise InputError(f"{path}: tags: expected a list of objects with repository and tag")
    return {f"{t['repository']}:{t['tag']}": t for t in tags}


def rows_by_key(result: CheckResult) -> dict[str, dict[str, Any]]:
    """The ``--json`` rows keyed by ``repository:tag`` (what ``load_previous`` reads back)."""
    return {f"{t['repository']}:{t['tag']}": t for t in result.to_dict()["tags"]}


def diff_since(previous: dict[str, dict[str, Any]], current: CheckResult) -> dict[str, Any]:
    """What changed since the previous run: tags added, removed, or whose state changed (old and new state)."""
    unmet = {r.key for r in current.unmet}
    now = rows_by_key(current)
    changes: list[dict[str, Any]] = []
    for key in sorted(set(previous) | set(now)):
        old, new = previous.get(key), now.get(key)
        if old is None:
            changes.append({"key": key, "change": "added", "after": new})
        elif new is None:
            changes.append({"key": key, "change": "removed", "before": old})
        elif any(old.get(f) != new.get(f) for f in _STATE_FIELDS):
            before = {f: old.get(f) for f in _STATE_FIELDS}
            after = {f: new.get(f) for f in _STATE_FIELDS}
            changes.append({"key": key, "change": "changed", "before": before, "after": after})
    return {
        "format": CHECK_FORMAT + "+diff",
        "evaluated_at": current.evaluated_at,
        "require": current.require,
        "summary": {
            "total": len(current.rows),
            "unmet": len(unmet) + len(current.failures),
            "counts": current.counts,
            "failures": current.failures,
        },
        "changes": changes,
    }


__all__ = ["STATUSES", "diff_since", "load_previous", "render_junit", "render_markdown", "render_table", "rows_by_key"]
