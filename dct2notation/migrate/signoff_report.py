"""REPORT.md and REPORT.html of a sign-off bundle, rendered from the SIGNOFF.json record only.

Both renderings come from the same record so the human-readable report can never say more than the evidence does.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(record: dict[str, Any]) -> str:
    lines = [
        "# DCT decommission sign-off",
        "",
        f"**Verdict: {record['verdict']}**",
        "",
        f"- Bundle created: {record['created_at']}",
        f"- DCT metadata evaluated at: {record['dct_evaluated_at']}",
        f"- Notation signatures verified at: {record['notation_verified_at']}",
        "- Re-check offline with: `dct2notation signoff verify BUNDLE/`",
        "",
    ]
    if record["reasons"]:
        lines += ["## Why not ready", ""] + [f"- {_md_cell(r)}" for r in record["reasons"]] + [""]
    waived = record.get("waived") or []
    if waived:
        lines += ["## Waived (waivers.toml: accepted uncovered, with who and until when)", ""]
        lines += [f"- {_md_cell(w)}" for w in waived] + [""]
    gaps = record.get("gaps") or []
    if gaps:
        lines += ["## What the Notation policy does not enforce (policy/GAPS.md)", ""]
        lines += [f"- {_md_cell(g['what'])} ({_md_cell(', '.join(g['repositories']))}): {_md_cell(g['todo'])}"
                  for g in gaps] + [""]  # fmt: skip
    lines += [
        "## Repositories",
        "",
        "| GUN | trusted digests | tags | covered | uncovered |",
        "|---|---:|---:|---:|---:|",
    ]
    for gun, row in record["repositories"].items():
        lines.append(f"| {_md_cell(gun)} | {row['digests']} | {row['tags']} | {row['covered']} | {row['uncovered']} |")
    lines += ["", "## Coverage", "", "| repository | digest | tags | covered | reason |", "|---|---|---|---|---|"]
    for c in record["coverage"]:
        lines.append(
            f"| {_md_cell(c['repository'])} | `{c['digest']}` | {_md_cell(', '.join(c['tags']))} | "
            f"{'yes' if c['covered'] else 'NO'} | {_md_cell(c['reason'])} |"
        )
    return "\n".join(lines) + "\n"


def render_html(record: dict[str, Any]) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(gun)}</td><td>{r['digests']}</td><td>{r['tags']}</td><td>{r['covered']}</td>"
        f"<td>{r['uncovered']}</td></tr>"
        for gun, r in record["repositories"].items()
    )
    coverage = "".join(
        f"<tr><td>{e(c['repository'])}</td><td><code>{e(c['digest'])}</code></td><td>{e(', '.join(c['tags']))}</td>"
        f"<td>{'yes' if c['covered'] else 'NO'}</td><td>{e(c['reason'])}</td></tr>"
        for c in record["coverage"]
    )
    reasons = "".join(f"<li>{e(r)}</li>" for r in record["reasons"])
    waived = "".join(f"<li>{e(w)}</li>" for w in record.get("waived") or [])
    gaps = "".join(
        f"<li>{e(g['what'])} ({e(', '.join(g['repositories']))}): {e(g['todo'])}</li>" for g in record.get("gaps") or []
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>DCT decommission sign-off</title></head><body>\n'
        f"<h1>DCT decommission sign-off</h1>\n<p><strong>Verdict: {e(record['verdict'])}</strong></p>\n"
        f"<ul><li>Bundle created: {e(record['created_at'])}</li>"
        f"<li>DCT metadata evaluated at: {e(record['dct_evaluated_at'])}</li>"
        f"<li>Notation signatures verified at: {e(record['notation_verified_at'])}</li></ul>\n"
        + (f"<h2>Why not ready</h2><ul>{reasons}</ul>\n" if reasons else "")
        + (f"<h2>Waived (waivers.toml)</h2><ul>{waived}</ul>\n" if waived else "")
        + (f"<h2>What the Notation policy does not enforce (policy/GAPS.md)</h2><ul>{gaps}</ul>\n" if gaps else "")
        + "<h2>Repositories</h2><table><tr><th>GUN</th><th>trusted digests</th><th>tags</th><th>covered</th>"
        f"<th>uncovered</th></tr>{rows}</table>\n"
        "<h2>Coverage</h2><table><tr><th>repository</th><th>digest</th><th>tags</th><th>covered</th><th>reason</th>"
        f"</tr>{coverage}</table>\n</body></html>\n"
    )


def write_reports(bundle: Path, record: dict[str, Any]) -> None:
    (bundle / "REPORT.md").write_text(render_markdown(record), encoding="utf-8")
    (bundle / "REPORT.html").write_text(render_html(record), encoding="utf-8")
