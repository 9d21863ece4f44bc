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


# Inline and self-contained (no font, script or image from anywhere): an auditor may open it offline, years later.
# Readable at 1280 px without sideways scrolling (digests break anywhere), and printable (colours kept, rows whole).
_CSS = """
:root { --ok: #1a7f37; --bad: #cf222e; --waived: #9a6700; --line: #d0d7de; --muted: #57606a; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; margin: 0; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 32px; }
h1 { font-size: 24px; margin: 0 0 16px; } h2 { font-size: 18px; margin: 28px 0 8px; }
.banner { border-radius: 8px; padding: 16px 20px; color: #fff; margin-bottom: 16px; }
.banner.ready { background: var(--ok); } .banner.not-ready { background: var(--bad); }
.banner .verdict { font-size: 28px; font-weight: 700; letter-spacing: .02em; }
.banner p { margin: 4px 0 0; }
.facts { color: var(--muted); margin: 0; padding-left: 18px; }
pre { background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
      white-space: pre-wrap; overflow-wrap: anywhere; }
table { width: 100%; border-collapse: collapse; table-layout: fixed; }
th, td { text-align: left; vertical-align: top; border-bottom: 1px solid var(--line); padding: 6px 8px;
         overflow-wrap: anywhere; }
th { background: #f6f8fa; font-weight: 600; }
code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap: anywhere; }
.num { text-align: right; width: 9%; }
.bar { display: flex; height: 14px; border-radius: 7px; overflow: hidden; background: #eaeef2; min-width: 120px; }
.bar span { display: block; height: 100%; }
.bar .covered { background: var(--ok); } .bar .waived { background: var(--waived); }
.bar .gap { background: var(--bad); }
.status-no { color: var(--bad); font-weight: 700; } .status-waived { color: var(--waived); font-weight: 700; }
.status-yes { color: var(--ok); font-weight: 700; }
.legend span { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin: 0 4px 0 12px; }
@media print {
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  main { max-width: none; padding: 0; } tr, .banner, pre { page-break-inside: avoid; }
  body { font-size: 11pt; }
}
"""


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "0%"


def render_html(record: dict[str, Any], bundle_name: str = "BUNDLE") -> str:
    """The auditor's page: the verdict banner, per-GUN coverage bars, what is not covered first (waived or not), the
    gaps, the offline re-check command, then every covered digest. Everything shown comes from ``record``."""
    e = html.escape
    coverage = record["coverage"]
    ready = record["verdict"] == "ready"
    uncovered = [c for c in coverage if not c["covered"]]
    waived_digests = {(c["repository"], c["digest"]) for c in uncovered if c.get("waiver")}
    total, covered = len(coverage), len(coverage) - len(uncovered)
    waived_n = len(waived_digests)
    gap_n = len(uncovered) - waived_n

    def tags(c: dict[str, Any]) -> str:
        return e(", ".join(c["tags"])) or "&ndash;"

    per_gun = []
    for gun, counts in record["repositories"].items():
        gun_waived = sum(1 for c in uncovered if c["gun"] == gun and c.get("waiver"))
        gun_gap = counts["uncovered"] - gun_waived
        bar = (
            f'<div class="bar" role="img" aria-label="{counts["covered"]} of {counts["digests"]} covered">'
            f'<span class="covered" style="width:{_percent(counts["covered"], counts["digests"])}"></span>'
            f'<span class="waived" style="width:{_percent(gun_waived, counts["digests"])}"></span>'
            f'<span class="gap" style="width:{_percent(gun_gap, counts["digests"])}"></span></div>'
        )
        per_gun.append(
            (gun_gap, gun_waived, gun,
             f'<tr class="gun"><td><code>{e(gun)}</code></td><td>{bar}</td><td class="num">{counts["covered"]}</td>'
             f'<td class="num">{gun_waived}</td><td class="num">{gun_gap}</td><td class="num">{counts["digests"]}</td>'
             f'<td class="num">{counts["tags"]}</td></tr>')
        )  # fmt: skip
    # GUNs with gaps first, then those with waivers, then the fully covered; by name within each.
    gun_rows = "".join(row for *_, row in sorted(per_gun, key=lambda item: (-item[0], -item[1], item[2])))
    not_covered = "".join(
        f'<tr class="uncovered"><td><code>{e(c["repository"])}</code></td><td><code>{e(c["digest"])}</code></td>'
        f"<td>{tags(c)}</td>"
        + (f'<td class="status-waived">waived</td><td>{e(c["reason"])}<br><em>waiver: {e(c["waiver"]["reason"])} '
           f'({e(c["waiver"]["by"])}, until {e(c["waiver"]["until"])})</em></td>'
           if c.get("waiver") else f'<td class="status-no">NOT covered</td><td>{e(c["reason"])}</td>')
        + "</tr>"
        for c in sorted(uncovered, key=lambda c: (bool(c.get("waiver")), c["repository"], c["digest"]))
    )  # fmt: skip
    covered_rows = "".join(
        f'<tr class="covered"><td><code>{e(c["repository"])}</code></td><td><code>{e(c["digest"])}</code></td>'
        f'<td>{tags(c)}</td><td class="status-yes">covered</td><td>{e(c["reason"])}</td></tr>'
        for c in coverage
        if c["covered"]
    )
    reasons = "".join(f"<li>{e(r)}</li>" for r in record["reasons"])
    waived = "".join(f"<li>{e(w)}</li>" for w in record.get("waived") or [])
    gaps = "".join(
        f"<li>{e(g['what'])} ({e(', '.join(g['repositories']))}): {e(g['todo'])}</li>" for g in record.get("gaps") or []
    )
    verdict = e(record["verdict"])
    head = "<tr><th>repository</th><th>digest</th><th>tags</th><th style='width:10%'>status</th><th>reason</th></tr>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>DCT decommission sign-off: {verdict}</title><style>{_CSS}</style></head><body><main>\n"
        "<h1>DCT decommission sign-off</h1>\n"
        f'<section id="verdict" class="banner {"ready" if ready else "not-ready"}">'
        f'<div class="verdict"><strong>Verdict: {verdict}</strong></div>'
        f"<p>{covered} of {total} DCT-trusted digest(s) covered by a verified Notation signature"
        f"{f'; {waived_n} waived' if waived_n else ''}{f'; {gap_n} NOT covered' if gap_n else ''}"
        f" &middot; {len(record['repositories'])} GUN(s)</p></section>\n"
        f'<ul class="facts"><li>Bundle created: {e(record["created_at"])}</li>'
        f'<li>DCT metadata evaluated at: {e(record["dct_evaluated_at"])}</li>'
        f'<li>Notation signatures verified at: {e(record["notation_verified_at"])}</li></ul>\n'
        "<h2>Re-check offline</h2><p>The bundle alone re-derives every line of this page, without network:</p>"
        f'<pre id="recheck"><code>dct2notation signoff verify {e(bundle_name)}/</code></pre>\n'
        + (f'<h2>Why not ready</h2><ul id="reasons">{reasons}</ul>\n' if reasons else "")
        + '<h2>Coverage per GUN</h2><p class="legend"><span style="background:var(--ok)"></span>covered'
        '<span style="background:var(--waived)"></span>waived<span style="background:var(--bad)"></span>not covered</p>'
        '<table id="per-gun"><tr><th style="width:34%">GUN</th><th>coverage</th><th class="num">covered</th>'
        '<th class="num">waived</th><th class="num">not covered</th><th class="num">digests</th>'
        f'<th class="num">tags</th></tr>{gun_rows}</table>\n'
        + (f'<h2>Not covered ({len(uncovered)})</h2><table id="not-covered">{head}{not_covered}</table>\n'
           if uncovered else '<h2>Not covered</h2><p id="not-covered">None: every DCT-trusted digest is covered.</p>\n')
        + (f'<h2>Waivers (waivers.toml)</h2><ul id="waivers">{waived}</ul>\n' if waived else "")
        + (f'<h2>What the Notation policy does not enforce (policy/GAPS.md)</h2><ul id="gaps">{gaps}</ul>\n'
           if gaps else "")
        + f'<h2>Covered ({covered})</h2><table id="covered">{head}{covered_rows}</table>\n'
        "</main></body></html>\n"
    )  # fmt: skip


def write_reports(bundle: Path, record: dict[str, Any], bundle_name: str = "BUNDLE") -> None:
    """``bundle_name``: the bundle as the re-check command names it (the ``-o`` path the bundle is renamed to)."""
    (bundle / "REPORT.md").write_text(render_markdown(record), encoding="utf-8")
    (bundle / "REPORT.html").write_text(render_html(record, bundle_name), encoding="utf-8")
