"""Renderers for a coexistence check (JUnit XML, Markdown, rich table) and the ``--since`` diff between two runs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from rich.console import Console

from ..config import DEFAULT_LIMITS
from ..errors import InputError
from ..jsontext import load_json_file
from ..report import SHORT_DIGEST, natural_key, short_digest
from ..safetext import printable
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


# The legend of the table's status codes (the decision table of migrate/coexist.py, in a line each).
LEGEND: dict[str, str] = {
    "ok": "DCT digest = registry digest, and a Notation signature on it verifies",
    "notation-missing": "no Notation signature on the registry digest",
    "notation-invalid": "Notation signatures exist but none verifies (CHECK: the failed check)",
    "notation-unenforced": "a signature passes only under an audit/skip policy: it proves no trusted signer",
    "drift": "the DCT digest differs from the registry's",
    "dct-missing": "the registry has the tag but DCT does not trust it",
    "dct-invalid": "the GUN's DCT metadata did not verify",
    "manifest-missing": "DCT trusts the tag but the registry serves no manifest for it",
}
def render_table(result: CheckResult, console: Console, *, only_unmet: bool = False) -> None:
    """The human view on stderr, readable in an 80-column CI log: one line per tag, the tags that fail the gate
    first, the full ``REPOSITORY:TAG`` last on the line (never cut; a long one runs past the edge instead of
    hiding the tag), status codes with a legend, digests shortened (full in --json). Then the counts."""
    unmet = {row.key for row in result.unmet}
    rows = sorted(result.rows, key=lambda r: (r.key not in unmet, r.repository, natural_key(r.tag)))
    if only_unmet:
        rows = [row for row in rows if row.key in unmet]

    def write(line: str) -> None:
        console.print(line, soft_wrap=True, markup=False, highlight=False)

    shown_rows = f"{len(rows)} not meeting --require" if only_unmet else f"{len(rows)} tags"
    write(f"Coexistence (require {result.require}): {shown_rows}, failing first")
    if rows:
        status_width = max(len("STATUS"), *(len(r.status) for r in rows))
        check_width = max(len("CHECK"), *(len(r.notation.failed_check or "-") for r in rows))
        write(f"{'GATE':<6} {'STATUS':<{status_width}} {'CHECK':<{check_width}} {'DIGEST':<{SHORT_DIGEST}} "
              "REPOSITORY:TAG")  # fmt: skip
        for row in rows:
            gate = "FAIL" if row.key in unmet else "waived" if row.key in result.waived else "ok"
            digest = short_digest(row.registry_digest or row.dct_digest)
            check = row.notation.failed_check or "-"
            write(
                f"{gate:<6} {row.status:<{status_width}} {printable(check):<{check_width}} {digest:<{SHORT_DIGEST}} "
                f"{printable(row.repository)}:{printable(row.tag)}"
            )
        write("Legend (full reasons in --json and --markdown):")
        for status in STATUSES:
            if any(row.status == status for row in rows):
                write(f"  {status}: {LEGEND[status]}")
    counts = ", ".join(f"{status} {n}" for status, n in result.counts.items() if n)
    # One unwrapped line, so CI logs can grep the summary whatever the terminal width.
    summary = f"{len(result.rows)} tags: {counts or 'none'}; {len(result.unmet)} not meeting --require"
    write(summary)


def load_previous(path: Path) -> dict[str, dict[str, Any]]:
    """A previous ``--json`` document, keyed by ``repository:tag``."""
    doc = load_json_file(path, what="previous check", max_bytes=DEFAULT_LIMITS.document_bytes)
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
