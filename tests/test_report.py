"""The HTML report: self-contained, every image decodes, and it renders in headless Chromium."""

from __future__ import annotations

import base64
import html.parser
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import energylens
from energylens.cli import main

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo_profiles.csv"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    df = energylens.read_profiles(DEMO)
    small = df[df.model.isin(["Llama-3.2-1B", "Llama-3.1-8B"]) & df.gpu.isin(["H100-SXM", "L4"])]
    d = tmp_path_factory.mktemp("report")
    table = d / "small.csv"
    small.to_csv(table, index=False)
    out = d / "out"
    assert main(["report", str(table), "-o", str(out), "--quick", "--seeds", "2", "--quiet"]) == 0
    return out / "index.html"


class _Collector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tables, self.headings, self.external = [], 0, [], []
        self._h = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag == "table":
            self.tables += 1
        if tag in ("script", "link") and (a.get("src") or a.get("href")):
            self.external.append(a)
        self._h = tag == "h2"

    def handle_data(self, data):
        if self._h:
            self.headings.append(data.strip())
            self._h = False


def test_report_is_self_contained_and_images_decode(report):
    text = report.read_text()
    p = _Collector()
    p.feed(text)
    assert not p.external  # no external scripts or stylesheets
    assert len(p.images) >= 5 and p.tables >= 5
    from PIL import Image

    for src in p.images:
        assert src.startswith("data:image/png;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        img.verify()
        assert img.size[0] > 100 and img.size[1] > 100
    for part in ("profiling table", "fitted model", "Discovered structure", "baselines",
                 "Best configurations", "sweet spots"):
        assert any(part.lower() in h.lower() for h in p.headings), p.headings
    assert "J/token" in text and "prefill energy per prompt token" in text  # units and meanings
    assert "synthetic" in text
    # discovered formulas are shown with rounded constants (full precision in discovery.csv)
    section = text[text.index("<h2>3. Discovered structure"):text.index("<h2>4.")]
    shown = section.split("<img")[0] + section.split("<table>")[-1]
    constants = re.findall(r"\d+\.\d+", shown)
    assert constants and all(len(c.replace(".", "").lstrip("0")) <= 4 for c in constants), constants
    # a parameter the fit report flags at its bound is flagged in the parameter table too
    flagged = re.findall(r"^\s+(c\d+)\s+=.*AT BOUND", text, flags=re.M)
    assert flagged  # on this table the fixed-energy term c12 ends at zero
    for name in flagged:
        row = re.search(rf"<tr><td[^>]*>{name}</td>.*?</tr>", text)
        assert row and "at its bound</td></tr>" in row.group(0)
    csvs = {f.name for f in report.parent.glob("*.csv")}
    assert {"parameters.csv", "comparison.csv", "best_configurations.csv"} <= csvs


def test_sweet_spots_are_fitted_on_length_sweeps_only(report):
    """Groups hold every setting but the lengths fixed (the demo's sweeps), so the fits are
    close; mixing running batches or workloads in one group would cost tens of percent."""
    import pandas as pd

    ss = pd.read_csv(report.parent / "sweet_spots.csv")
    assert len(ss) >= 2 and set(ss["workload"]) == {"sweep"}
    assert (ss["rows"] == 16).all() and (ss["MAPE (%)"] < 5).all()
    assert (ss["best output"] > 16).all()  # an interior or upper optimum, not the shortest answer


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_report_renders_in_headless_chromium(report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian package 'chromium'; .ci/run installs "
                    "it where apt-get is available)")
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace(
        "</body>",
        "<script>window.addEventListener('load', () => {"
        "const imgs = [...document.images];"
        "document.title = 'IMAGES ' + imgs.filter(i => i.complete && i.naturalWidth > 0).length"
        " + '/' + imgs.length + ' TABLES ' + document.querySelectorAll('table').length;});"
        "</script></body>"))
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r"<title>IMAGES (\d+)/(\d+) TABLES (\d+)</title>", r.stdout)
    assert m, r.stdout[:500]
    loaded, total, tables = map(int, m.groups())
    assert total >= 5 and loaded == total and tables >= 5
    console_errors = [ln for ln in r.stderr.splitlines()
                      if "CONSOLE" in ln and ("Uncaught" in ln or "ERROR" in ln or "error" in ln.lower())]
    assert not console_errors, console_errors
