"""REPORT.html in headless Chromium (Debian's `chromium`): a screenshot at 1280x900 is taken and the rendered page
is read back (``--dump-dom``) for the verdict banner, the per-GUN coverage bars, the not-covered rows first and the
offline re-check command; a probe script, added to a copy only, reports the page's width (no sideways scroll), the
banner's colour and that nothing was fetched. Before (issue #16): unstyled HTML whose coverage table scrolled
sideways, no banner, no bars, covered and uncovered rows mixed.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dct2notation.cli import main
from tests.test_signoff import BASE, EXPECTED, migrate_demo

CHROMIUM = shutil.which("chromium")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package chromium)")

# Test-only: appended to a copy of the report, it writes what the layout engine measured into the DOM.
PROBE = """<script>
const banner = document.getElementById("verdict");
const probe = document.createElement("pre");
probe.id = "probe";
probe.textContent = JSON.stringify({
  scrollWidth: document.documentElement.scrollWidth,
  clientWidth: document.documentElement.clientWidth,
  banner: getComputedStyle(banner).backgroundColor,
  external: performance.getEntriesByType("resource").map(r => r.name),
  bars: [...document.querySelectorAll("#per-gun .bar .covered")].map(s => s.getBoundingClientRect().width),
});
document.body.appendChild(probe);
</script>"""


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


class _Rows(HTMLParser):
    """The text of each <tr> of a table (by id) in the dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[str]] = {}
        self._table: str | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(" ".join("".join(self._row).split()))
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._row is not None:
            self._row.append(data + " ")


def rendered(report: Path, tmp_path: Path) -> tuple[str, dict[str, object], Path]:
    """The DOM after layout (with the probe's measurements) and a screenshot, both of the report as shipped."""
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    dumped = chromium("--dump-dom", probed.as_uri())
    assert dumped.returncode == 0, dumped.stderr
    match = re.search(r'<pre id="probe">(.*?)</pre>', dumped.stdout)
    assert match is not None, dumped.stdout[-2000:]
    shot = tmp_path / "report.png"
    done = chromium(f"--screenshot={shot}", report.as_uri())
    assert done.returncode == 0, done.stderr
    assert png_size(shot) == (1280, 900)
    assert shot.stat().st_size > 20_000  # a page with content, not a blank frame
    return dumped.stdout, json.loads(match.group(1).replace("&quot;", '"')), shot


def test_not_ready_report_renders_gaps_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = EXPECTED["tags"][BASE]["3.19"]
    estate = migrate_demo(tmp_path, leave_unsigned=missing)
    bundle = tmp_path / "bundle"
    assert main(estate.signoff_args(bundle)) == 1
    capsys.readouterr()
    record = json.loads((bundle / "SIGNOFF.json").read_text())
    dom, probe, _ = rendered(bundle / "REPORT.html", tmp_path)
    assert probe["scrollWidth"] == probe["clientWidth"]  # readable at 1280 px: nothing scrolls sideways
    assert probe["banner"] == "rgb(207, 34, 46)"  # the not-ready red
    assert probe["external"] == []  # self-contained: nothing fetched
    assert "<strong>Verdict: not ready</strong>" in dom
    total = len(record["coverage"])
    summary = f"{total - 1} of {total} DCT-trusted digest(s) covered by a verified Notation signature; 1 NOT covered"
    assert summary in dom
    assert '<code>dct2notation signoff verify bundle/</code>' in dom
    tables = _Rows()
    tables.feed(dom)
    # Not covered first: its own table, before the covered ones, naming the digest and its tag.
    assert dom.index('id="not-covered"') < dom.index('id="covered"')
    assert tables.tables["not-covered"][1:] == [
        f"{BASE} {missing} 3.19 NOT covered {next(c['reason'] for c in record['coverage'] if not c['covered'])}"
    ]
    assert len(tables.tables["covered"]) - 1 == total - 1
    # One bar per GUN, the GUN with the gap first; its bar is shorter than a fully covered GUN's.
    gun_rows = tables.tables["per-gun"][1:]
    assert len(gun_rows) == len(record["repositories"]) == len(probe["bars"])  # type: ignore[arg-type]
    assert gun_rows[0].startswith(BASE + " ")
    bars: list[float] = probe["bars"]  # type: ignore[assignment]
    assert 0 < bars[0] < max(bars[1:])
    for reason in record["reasons"]:
        assert reason.replace("&", "&amp;") in dom

    # The same gap under a reviewed waiver: listed as waived (after any unwaived gap), with who and until when.
    from dct2notation.migrate.signoff_report import render_html

    waiver = {"reason": "EOL image, removed 2027-01", "by": "alice@example.com", "until": "2027-01-31"}
    for c in record["coverage"]:
        if not c["covered"]:
            c["waiver"] = waiver
    record["waived"] = [f"{BASE}@{missing}: EOL image, removed 2027-01 (alice@example.com, until 2027-01-31)"]
    (tmp_path / "waived.html").write_text(render_html(record, "bundle"))
    dom, probe, _ = rendered(tmp_path / "waived.html", tmp_path)
    assert "; 1 waived" in dom and "NOT covered</td>" not in dom
    tables = _Rows()
    tables.feed(dom)
    assert tables.tables["not-covered"][1].startswith(f"{BASE} {missing} 3.19 waived ")
    assert "waiver: EOL image, removed 2027-01 (alice@example.com, until 2027-01-31)" in tables.tables["not-covered"][1]
    assert 'id="waivers"' in dom


def test_ready_report_banner_and_print(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    estate = migrate_demo(tmp_path)
    bundle = tmp_path / "bundle"
    assert main(estate.signoff_args(bundle)) == 0
    capsys.readouterr()
    dom, probe, _ = rendered(bundle / "REPORT.html", tmp_path)
    assert probe["banner"] == "rgb(26, 127, 55)"  # the ready green
    assert probe["scrollWidth"] == probe["clientWidth"]
    assert "<strong>Verdict: ready</strong>" in dom
    assert "None: every DCT-trusted digest is covered." in dom
    # Printable: Chromium prints it to PDF (a page or more), colours kept by the print stylesheet.
    pdf = tmp_path / "report.pdf"
    done = chromium(f"--print-to-pdf={pdf}", "--no-pdf-header-footer", (bundle / "REPORT.html").as_uri())
    assert done.returncode == 0, done.stderr
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 10_000
    assert "print-color-adjust: exact" in (bundle / "REPORT.html").read_text()


def test_attack_report_html_injection_from_remote_names(tmp_path: Path) -> None:
    """A tag, a repository, a reason and a waiver text are remote or reviewer-written: markup in them stays text in
    the rendered page (no element, no script run, nothing fetched), and the page still has one banner."""
    from dct2notation.migrate.signoff_report import render_html

    hostile = '<img src="http://198.51.100.1/x.png" onerror="document.title=\'pwned\'"><script>x=1</script>'
    digest = "sha256:" + "d" * 64
    record = {
        "verdict": "not ready", "reasons": [f"reason {hostile}"], "created_at": "2026-12-01T00:00:00Z",
        "dct_evaluated_at": "2026-12-01T00:00:00Z", "notation_verified_at": "2026-12-01T00:00:00Z",
        "repositories": {f"dct.example/{hostile}": {"digests": 1, "tags": 1, "covered": 0, "uncovered": 1}},
        "coverage": [{"gun": f"dct.example/{hostile}", "repository": f"r.example/{hostile}", "digest": digest,
                      "size": 1, "tags": [hostile], "covered": False, "reason": hostile}],
        "waived": [hostile], "gaps": [{"what": hostile, "repositories": [hostile], "todo": hostile}],
    }  # fmt: skip
    report = tmp_path / "REPORT.html"
    report.write_text(render_html(record, hostile))
    dom, probe, _ = rendered(report, tmp_path)
    assert probe["external"] == []
    assert "<img" not in dom.split('<pre id="probe">')[0] and "pwned" not in dom.split("<body>")[0]
    assert dom.count('class="banner') == 1
    assert "&lt;script&gt;x=1&lt;/script&gt;" in dom
