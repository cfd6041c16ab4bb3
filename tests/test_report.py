"""The HTML report: a headline first, self-contained, every image decodes, every missing value
and failed fit explained, and it renders in headless Chromium."""

from __future__ import annotations

import base64
import html.parser
import io
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import energylens
from energylens.cli import main

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo_profiles.csv"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    df = energylens.read_profiles(DEMO)
    return df[df.model.isin(["Llama-3.2-1B", "Llama-3.1-8B"]) & df.gpu.isin(["H100-SXM", "L4"])]


@pytest.fixture(scope="module")
def report(small, tmp_path_factory):
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
        self.grey_rows, self.rows = 0, []
        self._h = False
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag == "table":
            self.tables += 1
        if tag == "tr":
            self._row = []
            self.grey_rows += a.get("class") == "grey"
        if tag in ("script", "link") and (a.get("src") or a.get("href")):
            self.external.append(a)
        self._h = tag in ("h2", "h3")

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._h:
            self.headings.append(data.strip())
            self._h = False
        if self._row is not None and data.strip():
            self._row.append(data.strip())


def _text(page: str) -> str:
    body = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def check_no_unexplained_gaps(page: str) -> None:
    """No 'nan' anywhere in the text; every failed fit has its reason in its row."""
    text = _text(page)
    assert not re.search(r"\bnan\b", text, flags=re.I), re.findall(r".{40}\bnan\b.{40}", text, re.I)
    assert "fit_failed" not in text
    p = _Collector()
    p.feed(page)
    header = next((r for r in p.rows if "why it failed" in r), None)
    if header is not None:
        col = header.index("share of draws failed")
        for row in p.rows[p.rows.index(header) + 1:]:
            if len(row) <= col or not re.fullmatch(r"[0-9.]+", row[col]):
                break
            if float(row[col]) > 0:
                assert len(row) == len(header) and row[-1], row  # the reason is there


def check_headline(page: str) -> None:
    """The first section is the headline: a configuration with an interval, a held-out
    accuracy, and what to measure next."""
    first = page.index("<section")
    assert page.index('<section class="headline">') == first
    assert first < page.index("<h2>1.")
    box = _text(page[first:page.index("</section>")])
    assert "recommended" in box
    assert re.search(r"\d[\d.e+]* to \d", box), box[:500]  # a 90% interval
    assert re.search(r"MAPE of \d+(\.\d)?%", box), box[:800]
    assert "What to measure next" in box


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
    assert p.headings[0] == "Headline"
    for part in ("profiling table", "fitted model", "Discovered structure", "baselines",
                 "Best configurations", "sweet spots"):
        assert any(part.lower() in h.lower() for h in p.headings), p.headings
    assert "J/token" in text and "prefill energy per prompt token" in text  # units and meanings
    assert "synthetic" in text
    assert "generated in" not in text[:2000]  # the page opens with what a reader wants
    csvs = {f.name for f in report.parent.glob("*.csv")}
    assert {"headline.csv", "parameters.csv", "comparison.csv", "best_configurations.csv"} <= csvs
    assert (report.parent / ".energylens-report").is_file()


def test_headline_and_gaps(report):
    page = report.read_text()
    check_headline(page)
    check_no_unexplained_gaps(page)


def test_discovered_formulas_are_rounded(report):
    text = report.read_text()
    section = text[text.index("<h2>3. Discovered structure"):text.index("<h2>4.")]
    shown = section.split("<img")[0] + section.split("<table>")[-1]
    constants = re.findall(r"\d+\.\d+", shown)
    assert constants and all(len(c.replace(".", "").lstrip("0")) <= 4 for c in constants), constants


def test_parameter_table_greys_what_the_data_cannot_identify(report):
    text = report.read_text()
    section = text[text.index("<h3>Parameters of"):text.index("<pre>")]
    flagged = re.findall(r"^\s+(c\d+)\s+=.*(?:AT BOUND|fixed)", text, flags=re.M)
    rows = re.findall(r"<tr( class=\"grey\")?><td[^>]*>(c\d+)</td>(.*?)</tr>", section)
    assert rows
    grey = {name for g, name, _ in rows if g}
    for name in flagged:  # every parameter the fit report flags is greyed, with a note
        assert name in grey
    for g, name, rest in rows:
        if g:
            assert re.search(r'<td class="l">[^<]+</td>$', rest), name  # its note says why
    assert "best-identified" in section


def test_failed_comparison_fits_keep_their_reason(report):
    cmp = pd.read_csv(report.parent / "comparison.csv", keep_default_na=False)
    failed = cmp[pd.to_numeric(cmp["fit_failed"]) > 0]
    assert (failed["failure_reason"] != "").all()


def test_sweet_spot_table_and_plot_agree(small, monkeypatch):
    """The table's optimal output is the closed form at the input shown, and the plot draws
    that input's curve with its optimum at the same length."""
    from energylens.report import figures, lengths

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fit warnings are the report's to show, not this test's
        fits, table, n = lengths.sweet_spots(small, show_progress=False)
    assert n >= 2 and len(table) == len(fits)
    drawn = []
    real = figures.elp.sweetspot_curves

    def spy(model, input_tokens=None, **kw):
        ax = real(model, input_tokens=input_tokens, **kw)
        drawn.append((list(input_tokens), ax))
        return ax

    monkeypatch.setattr(figures.elp, "sweetspot_curves", spy)
    warnings.simplefilter("ignore")
    for s, (_, row) in zip(fits, table.iterrows()):
        with np.errstate(all="ignore"):
            assert row["optimal output (tokens)"] == pytest.approx(
                float(s.model.optimal_output_tokens(s.input_tokens)))
        assert s.input_tokens in set(s.rows["input_tokens"])  # a measured input
        if np.isfinite(s.optimum):
            figures.sweet_spot(s)
            inputs, ax = drawn[-1]
            assert s.input_tokens in inputs
            marks = [ln.get_xdata()[0] for ln in ax.get_lines() if ln.get_marker() == "o"]
            assert any(x == pytest.approx(s.optimum) for x in marks)
            assert ("outside the output lengths fitted" in row["optimum"]) == s.extrapolated
        assert row["status"] in ("optimum", "not determined") or not np.isfinite(s.optimum)
        assert not row["optimal output (tokens)"] < 1  # never an optimum below one token


def test_long_tables_say_how_many_rows_they_show():
    from energylens.report.html import table

    out = table(pd.DataFrame({"a": range(50)}), max_rows=40, csv="x.csv", what="scenarios")
    assert out.count("<tr>") == 41 and "Showing the first 40 of 50 scenarios" in out
    assert "x.csv" in out
    cells = table(pd.DataFrame({"v": [np.nan, np.inf, 1.5]}))
    assert "nan" not in cells.lower() and "unbounded" in cells


def test_report_leaves_matplotlib_backend_and_pyplot_alone():
    """The report draws on Figure objects: nothing in it calls matplotlib.use or pyplot."""
    root = Path(energylens.__file__).parent / "report"
    for path in root.glob("*.py"):
        src = path.read_text()
        for pattern in ("matplotlib.use(", "import matplotlib.pyplot", "from matplotlib import pyplot",
                        "plt."):
            assert pattern not in src, (path.name, pattern)


def test_marker_names_agree():
    from energylens.cli.files import REPORT_MARKER as cli_marker
    from energylens.report import REPORT_FILES, REPORT_MARKER

    assert cli_marker == REPORT_MARKER and REPORT_MARKER in REPORT_FILES


def test_write_report_never_writes_into_a_folder_it_did_not_write(small, tmp_path,
                                                                  monkeypatch):
    """As the command line, the library writes a report only into a folder that is absent,
    empty or an earlier report's (unless forced); the refusal names the folder and its
    files and comes before the analysis."""
    from energylens import report

    def never(*args, **kwargs):
        raise AssertionError("analysed before the folder was checked")

    monkeypatch.setattr(report, "analyse", never)
    mine = tmp_path / "site"
    mine.mkdir()
    (mine / "index.html").write_text("my page")
    with pytest.raises(FileExistsError, match=r"'.*site' is a folder that energylens did not "
                                              r"write: it holds 'index.html'.*force=True"):
        report.write_report(small, mine)
    with pytest.raises(FileExistsError, match="'index.html'"):
        report.write_analysis(None, mine)  # refused before the analysis is read
    assert (mine / "index.html").read_text() == "my page"
    assert sorted(p.name for p in mine.iterdir()) == ["index.html"]
    with pytest.raises(NotADirectoryError, match="is a file"):
        report.write_report(small, mine / "index.html", force=True)
    assert report.check_report_folder(mine, force=True) == mine
    assert report.check_report_folder(tmp_path / "new") == tmp_path / "new"


def test_headline_csv_holds_unrounded_numbers(report):
    """headline.csv holds numbers, not the page's text: the interval's ends in their own
    columns, unrounded, as the page shows them rounded."""
    h = pd.read_csv(report.parent / "headline.csv")
    numbers = ["input_tokens", "output_tokens", "predicted J/request", "90% interval lower (J)",
               "90% interval upper (J)", "predicted J/output token", "measured J/request",
               "next best costs more (%)"]
    for c in numbers:
        assert h[c].dtype.kind == "f", (c, h[c].dtype)
    assert "90% interval (J)" not in h.columns and h["input_tokens_assumed"].dtype == bool
    ok = h["90% interval lower (J)"].notna()
    assert ok.any()
    assert (h.loc[ok, "90% interval lower (J)"] <= h.loc[ok, "predicted J/request"]).all()
    assert (h.loc[ok, "predicted J/request"] <= h.loc[ok, "90% interval upper (J)"]).all()
    # more digits than the page's four: the CSV is what the page was rounded from
    assert any(float(f"{v:.4g}") != v for v in h["90% interval upper (J)"].dropna())
    page = _text(report.read_text())
    first = h.iloc[0]
    shown = f"{first['90% interval lower (J)']:.4g} to {first['90% interval upper (J)']:.4g}"
    assert shown in page


def test_blank_workload_labels_are_shown_as_missing(small):
    """A table whose workload is blank in some rows (valid: the label is optional) gets its
    report: the blank rows are a scenario of their own, shown with the dash the report
    uses for every missing value, and what to measure next is proposed for them too."""
    from energylens.report import analysis, render

    part = small[(small.model == "Llama-3.2-1B") & (small.gpu == "L4")
                 & (small.workload == "chat")].head(30).copy()
    part.loc[part.index[:10], "workload"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = analysis.analyse(part, seeds=1, quick=True, show_progress=False)
    assert isinstance(a.next, pd.DataFrame) and len(a.next), a.next_note
    assert a.headline["workload"].isna().any() and (a.headline["workload"] == "chat").any()
    page = render(a)
    check_no_unexplained_gaps(page)
    head = _text(page[page.index('<section class="headline">'):page.index("</section>")])
    assert "Llama-3.2-1B L4 \u2013 " in head and "Llama-3.2-1B L4 chat " in head


def test_a_small_design_splits_its_designed_lengths(tmp_path):
    """Eight rows, TP 1 and 2 each at four designed output lengths: every output length is
    its own scenario (TP 1 against TP 2), however few the rows; realised lengths that vary
    from run to run are never scenarios."""
    from energylens import EnergyLensModel
    from energylens.models import GroupedModel
    from energylens.report import choices

    rows = [{"model": "Llama-3.1-8B", "gpu": "H100-SXM", "tp": tp, "batch_size": 32.0,
             "input_tokens": 512.0, "output_tokens": float(out),
             "energy_j": scale * (20 + 0.25 * out)}
            for tp, scale in ((1, 1.0), (2, 1.15)) for out in (64, 128, 256, 512)]
    df = energylens.read_profiles(pd.DataFrame(rows))
    assert choices.designed_lengths(df) == ["input_tokens", "output_tokens"]
    assert choices.scenario_columns(df)[-2:] == ["input_tokens", "output_tokens"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GroupedModel(EnergyLensModel(), by=["model", "gpu"]).fit(df)
        rec = choices.recommendations(model, df)
    assert sorted(rec["output_tokens"]) == [64, 128, 256, 512]
    assert (rec["candidates"] == 2).all() and rec["recommended"].str.startswith("TP 1").all()
    realised = df.assign(output_tokens=df["output_tokens"] + np.linspace(0.3, 7.1, len(df)))
    assert choices.designed_lengths(realised) == ["input_tokens"]
    repeats = df.assign(tp=1, output_tokens=[391.2, 394.6, 402.0, 388.8] * 2)
    assert choices.designed_lengths(repeats) == ["input_tokens"]  # one setting run twice


def test_report_sentences_end_once_and_read_as_sentences(small):
    """An error quoted in the report keeps its own full stop (no '..'), and why the model
    was chosen reads as a sentence whether or not the comparison ranked the forms."""
    from types import SimpleNamespace

    from energylens.report import fitting, sections

    reason = ("the main model failed on every draw: FitError: EnergyLensModel needs at least 2 "
              "rows to fit; got n_samples = 1.")
    a = SimpleNamespace(comparison=SimpleNamespace(accuracy={"main": "EnergyLens",
                                                             "reason": reason}))
    text = sections._accuracy_text(a)
    assert "n_samples = 1.</p>" in text and ".." not in text
    assert "Held-out accuracy was not measured: too few rows.</p>" in sections._accuracy_text(
        SimpleNamespace(comparison="too few rows"))
    why = fitting.choose_main(small, None)[2]
    assert why.startswith("Chosen as the default") and "Chosen for the comparison" not in why


def test_headline_model_is_one_argument(small):
    """The estimator behind the headline and the parameter table is one argument: another
    one switches both."""
    from energylens import WilkinsModel
    from energylens.models import GroupedModel
    from energylens.report import analysis, parameter_view

    part = small[small.model == "Llama-3.2-1B"]
    calls = []

    class Spy(GroupedModel):
        def fit(self, X, y=None):
            calls.append(len(X))
            return super().fit(X, y)

    a = analysis.analyse(part, estimator=Spy(WilkinsModel(), by=["model", "gpu"]), seeds=1,
                         quick=True, show_progress=False)
    assert calls == [len(part)] and isinstance(a.model, Spy)
    assert a.parameters.table["parameter"].tolist() == \
        parameter_view(a.model).table["parameter"].tolist()
    assert len(a.parameters.table) == len(WilkinsModel().parameter_names)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def render_in_chromium(page: Path, tmp_path: Path) -> tuple[int, int, int, str]:
    """Open ``page`` in headless Chromium: ``(images loaded, images, tables, text)``."""
    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian package 'chromium'; .ci/run installs "
                    "it where apt-get is available)")
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace(
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
    console_errors = [ln for ln in r.stderr.splitlines()
                      if "CONSOLE" in ln and ("Uncaught" in ln or "ERROR" in ln or "error" in ln.lower())]
    assert not console_errors, console_errors
    loaded, total, tables = map(int, m.groups())
    return loaded, total, tables, r.stdout


def test_report_renders_in_headless_chromium(report, tmp_path):
    loaded, total, tables, dom = render_in_chromium(report, tmp_path)
    assert total >= 5 and loaded == total and tables >= 5
    check_headline(dom)


def test_energy_latency_choice_respects_the_stated_limit(small):
    from energylens.report.choices import energy_latency_front

    f = energy_latency_front(small, max_latency_s=5.0)
    t = f["table"]
    ok = t[t[f["x"]] <= 5.0]
    assert f["limit"] == 5.0 and f["limit_given"] and f["chosen"] == ok[f["y"]].idxmin()
    default = energy_latency_front(small)
    assert default["limit"] == pytest.approx(2 * default["table"][default["x"]].min())
    assert not default["limit_given"]


def test_captions_are_words_without_nan():
    from energylens.report.lengths import caption

    key = {"model": "Llama-3.1-70B", "gpu": "A100-80GB", "tp": 4, "pp": 1, "dp": 1,
           "batch_size": 32.0, "workload": "sweep", "precision": "bf16", "batch_kind": "cap",
           "n_requests": float("nan")}
    assert caption(key) == ("Llama-3.1-70B on A100-80GB, TP 4, batch 32 (cap), sweep workload, "
                            "bf16")


def test_a_length_sweep_has_nothing_to_choose(small):
    """One configuration swept over lengths serves different requests at each length: no
    scenario has two candidates, so no section ranks them (Top-1 used to be 1.0, the
    shortest request always 'best')."""
    from energylens.models import EnergyLensModel, GroupedModel
    from energylens.report import choices, comparison

    sweep = small[(small.workload == "sweep") & (small.gpu == "H100-SXM")].reset_index(drop=True)
    assert {"input_tokens", "output_tokens", "gpu"} <= set(choices.scenario_columns(sweep))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = comparison.compare(sweep, ["model", "gpu"], seeds=1, quick=True, source="t",
                                 n_jobs=1, show_progress=False)
        model = GroupedModel(EnergyLensModel(), by=["model", "gpu"]).fit(sweep)
    assert not isinstance(cmp, str) and "top1" not in set(cmp.long["metric"])
    assert choices.best_per_scenario(model, sweep).empty
    assert choices.recommendations(model, sweep).empty


def test_every_section_shares_one_scenario_definition(small, monkeypatch):
    """The comparison's Top-1, the headline, the in-sample check, the energy-latency front
    and what to measure next all group by the same columns."""
    import energylens.evaluation as ev
    from energylens.report import analysis, choices

    part = small[small.model == "Llama-3.2-1B"]
    seen = {}
    real = ev.sample_efficiency

    def spy(*args, **kw):
        seen["comparison"] = list(kw["scenario"])
        return real(*args, **kw)

    monkeypatch.setattr(ev, "sample_efficiency", spy)
    a = analysis.analyse(part, seeds=1, quick=True, show_progress=False)
    scen = choices.scenario_columns(part.reset_index(drop=True))
    assert scen == ["model", "gpu", "workload", "input_tokens", "output_tokens"]
    assert seen["comparison"] == scen == a.scenario
    for t in (a.headline, a.best):
        assert set(scen) <= set(t.columns)
        assert not t.duplicated(subset=scen).any()  # one row per scenario
    assert set(a.front["scenario"]) == set(scen)
    # every headline row is a measured configuration of its scenario
    assert np.isfinite(a.headline["measured energy (J/request)"].to_numpy(float)).all()


def test_the_gpu_is_the_choice_only_where_it_is_all_that_varies(small):
    """One setting per GPU for the same requests (Wilkins et al.'s hosts): the GPUs are the
    candidates; several settings per GPU: the GPU is part of the scenario."""
    from energylens.report import choices

    hosts = small[small.workload == "sweep"]
    assert choices.gpu_is_choice(hosts)
    assert choices.scenario_columns(hosts) == ["model", "workload", "input_tokens", "output_tokens"]
    assert not choices.gpu_is_choice(small)
    assert "gpu" in choices.scenario_columns(small)


def test_a_new_report_removes_the_files_the_old_one_wrote_and_nothing_else(small, tmp_path):
    """Rerun into a report folder, a table the new report lacks (sweet spots, warnings of
    another table) is removed; files energylens did not write stay."""
    import os

    from energylens.report import REPORT_MARKER, analysis, write_analysis, written_before

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = analysis.analyse(small[small.model == "Llama-3.2-1B"], seeds=1, quick=True,
                             show_progress=False)
    a.warnings = a.warnings or [("UserWarning", "a warning", None)]
    out = tmp_path / "rep"
    write_analysis(a, out)
    assert (out / "sweet_spots.csv").is_file() and (out / "warnings.csv").is_file()
    assert {"sweet_spots.csv", "warnings.csv", "index.html"} <= written_before(out)
    (out / "notes.txt").write_text("mine")
    a.sweet_table, a.warnings = pd.DataFrame(), []
    write_analysis(a, out)
    assert not (out / "sweet_spots.csv").exists() and not (out / "warnings.csv").exists()
    assert (out / "notes.txt").read_text() == "mine" and (out / "headline.csv").is_file()
    assert "sweet_spots.csv" not in (out / REPORT_MARKER).read_text()

    # A marker that lists no files (older energylens): the report's files written before it
    # go, one put there after it stays.
    old = tmp_path / "old"
    old.mkdir()
    (old / "sweet_spots.csv").write_text("stale")
    (old / REPORT_MARKER).write_text("energylens report\n")
    (old / "warnings.csv").write_text("the user's own")
    t = (old / REPORT_MARKER).stat().st_mtime
    os.utime(old / "sweet_spots.csv", (t - 10, t - 10))
    os.utime(old / "warnings.csv", (t + 10, t + 10))
    write_analysis(a, old)
    assert not (old / "sweet_spots.csv").exists()
    assert (old / "warnings.csv").read_text() == "the user's own"

    # A folder without a marker (written into with --force): nothing is removed.
    other = tmp_path / "other"
    other.mkdir()
    (other / "sweet_spots.csv").write_text("someone else's")
    write_analysis(a, other, force=True)
    assert (other / "sweet_spots.csv").read_text() == "someone else's"


def _drawn_figures(monkeypatch) -> list:
    """The figures the report's sections draw, appended as they are drawn."""
    from energylens.report import figures

    drawn = []
    real = figures.img

    def spy(fig, caption, **kw):
        drawn.append(fig)
        return real(fig, caption, **kw)

    monkeypatch.setattr(figures, "img", spy)
    return drawn


def test_a_front_on_time_per_output_token_says_so(small, monkeypatch):
    """Without a request latency (ML.ENERGY), the front uses the time per output token: the
    caption, the legend and the section name TPOT, never a request 'latency limit'."""
    from types import SimpleNamespace

    from energylens.report import choices, sections

    tpot_only = small.drop(columns=["latency_s"])
    f = choices.energy_latency_front(tpot_only)
    drawn = _drawn_figures(monkeypatch)
    html = sections.front_section(SimpleNamespace(front=f))
    text = _text(html)
    assert "latency limit" not in text
    assert "time per output token (TPOT)" in text and f"TPOT limit {f['limit']:.3g} s" in text
    assert f["x"] == "tpot_s" and f["short"] == "TPOT"
    legend = [t.get_text() for t in drawn[-1].axes[0].get_legend().get_texts()]
    assert any(t.startswith("TPOT limit") for t in legend)
    assert not any(t.startswith("latency limit") for t in legend)
    with_latency = choices.energy_latency_front(small)
    assert with_latency["x"] == "latency_s" and with_latency["quantity"] == "request latency"


def test_what_to_measure_next_is_unmeasured_and_can_run(small):
    """Every suggestion is a combination the table lacks that energylens grid calls feasible
    (Llama-3.1-70B at TP 1 does not fit one H100), and the note counts exactly those."""
    from energylens import candidate_grid
    from energylens.models import EnergyLensModel, GroupedModel
    from energylens.report import choices

    demo = energylens.read_profiles(DEMO)
    part = demo[(demo.model == "Llama-3.1-70B") & (demo.gpu == "H100-SXM")
                & (demo.workload == "chat")].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GroupedModel(EnergyLensModel(), by=["model", "gpu"]).fit(part)
        nxt, note = choices.next_measurements(model, part, ["model", "gpu"], k=10_000)
    assert 1 in set(part["tp"]) and 256 in set(part["batch_size"])  # the combination exists
    n = int(re.search(r"among (\d+) unmeasured", note).group(1))
    alike = re.search(r"(\d+) of them run exactly as a smaller cap does", note)  # scored once
    assert n - (int(alike.group(1)) if alike else 0) == len(nxt)
    assert "cannot run" in note and "already measured" in note
    knobs = ["tp", "pp", "dp", "batch_size", "input_tokens", "output_tokens"]
    measured = set(map(tuple, part[knobs].to_numpy(dtype=float)))
    assert not measured & set(map(tuple, nxt[knobs].to_numpy(dtype=float)))
    for _, r in nxt.iterrows():
        grid = candidate_grid(model=r["model"], gpu=r["gpu"], tp=[r["tp"]], pp=[r["pp"]],
                              dp=[r["dp"]], batch_size=[r["batch_size"]],
                              input_tokens=r["input_tokens"], output_tokens=r["output_tokens"])
        assert grid["feasible"].all(), grid["reason"].iloc[0]
    assert not ((nxt["tp"] == 1) & (nxt["pp"] == 1) & (nxt["batch_size"] == 256)).any()


def test_warnings_raised_reading_the_table_are_in_the_report(small, tmp_path):
    """A table in Wh warns while it is read: that warning is in the report's warnings
    section and warnings.csv, not only on standard error."""
    rows = small[(small.model == "Llama-3.2-1B") & (small.gpu == "H100-SXM")
                 & (small.workload == "chat")].head(24)
    table = tmp_path / "wh.csv"
    rows[["model", "gpu", "tp", "pp", "batch_size", "input_tokens", "output_tokens"]].assign(
        energy=rows["energy_j"] / 3600).to_csv(table, index=False)
    out = tmp_path / "rep"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["report", str(table), "-o", str(out), "--quick", "--seeds", "1",
                     "--quiet"]) == 0
    listed = pd.read_csv(out / "warnings.csv")
    assert "ImplausibleValueWarning" in set(listed["warning"])
    assert listed["message"].str.contains("looks like Wh").any()
    page = (out / "index.html").read_text()
    section = _text(page[page.index("<h2>8. Warnings"):])
    assert "ImplausibleValueWarning" in section and "looks like Wh" in section


def test_headline_accuracy_shows_the_rule_of_thumb_and_the_noise_ceiling(report):
    """The headline reads the model's held-out accuracy against the best ensemble, the rule
    of thumb and the 2%-noise ceiling, at the same training size as comparison.csv."""
    from energylens.evaluation import COMPARISON_MODELS

    RULE_OF_THUMB, CEILING = "RuleOfThumb", "NoiseCeiling2%"
    assert {RULE_OF_THUMB, CEILING} <= set(COMPARISON_MODELS)
    page = report.read_text()
    box = _text(page[page.index('<section class="headline">'):page.index("</section>")])
    cmp = pd.read_csv(report.parent / "comparison.csv")
    n = int(re.search(r"trained on up to (\d+) rows per group", box).group(1))
    at = cmp[cmp["n_train"] == n].set_index("model")
    assert "rule of thumb: fewest GPUs per request in flight" in box
    assert "ceiling: the measured energy with 2% noise" in box
    rule, ceiling = at.loc[RULE_OF_THUMB], at.loc[CEILING]
    for value in (rule["top1"], 100 * rule["regret"], ceiling["mape"], ceiling["top1"]):
        assert f"{value:.4g}" in box, (value, box)


def test_headline_accuracy_without_scenarios_to_choose_from():
    """Where no held-out scenario has two configurations (length sweeps), the table keeps
    MAPE and leaves out Top-1 and regret, and the text says why."""
    from energylens.report.sections import accuracy_table

    acc = {"lines": [("the model", "EnergyLens", {"mape": 5.0}),
                     ("rule of thumb", "RuleOfThumb", {}),
                     ("noise ceiling", "NoiseCeiling2%", {"mape": 1.6})]}
    t = accuracy_table(acc)
    assert list(t.columns) == ["compared", "MAPE (%)"] and len(t) == 3
    assert t["MAPE (%)"].tolist()[2] == 1.6


def test_assumed_input_lengths_are_marked_wherever_shown(small):
    """A reader's nominal prompt length (input_tokens_assumed, as for ML.ENERGY) is marked
    in the headline, what to measure next, the per-scenario check, the table summary and the
    CSV behind each, never shown as a measurement."""
    from energylens.report import analysis, render, tables

    ASSUMED = "(assumed)"
    part = small[(small.model == "Llama-3.2-1B") & (small.gpu == "H100-SXM")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = analysis.analyse(part.assign(input_tokens_assumed=True), seeds=1, quick=True,
                             show_progress=False)
    page = _text(render(a))
    out = tables(a)
    for name in ("headline", "next_measurements", "best_configurations"):
        assert out[name]["input_tokens_assumed"].all(), name
        assert out[name]["input_tokens"].dtype.kind == "f"  # the CSV keeps the number
    headline = page[:page.index("1. The profiling table")]
    for v in a.next["input_tokens"]:
        assert f"{v:g} {ASSUMED}" in headline
    section = page[page.index("1. The profiling table"):page.index("2. The fitted model")]
    assert ASSUMED in section and "input_tokens_assumed" in section
    best = page[page.index("5. Best configurations"):page.index("6. Energy")]
    assert f"{a.best['input_tokens'].iloc[0]:g} {ASSUMED}" in best
    assert "input_tokens_assumed" in best  # the note says what the mark means
    measured = analysis.analyse(part, seeds=1, quick=True, show_progress=False)
    assert ASSUMED not in _text(render(measured))


def test_a_latency_limit_no_configuration_meets_marks_no_choice(small, monkeypatch):
    """With --max-latency below every configuration, the section and the caption say that
    none meets it, and no star is drawn or claimed."""
    from types import SimpleNamespace

    from energylens.report import choices, sections

    f = choices.energy_latency_front(small, max_latency_s=1e-6)
    assert f["chosen"] is None and f["n_within"] == 0
    drawn = _drawn_figures(monkeypatch)
    text = _text(sections.front_section(SimpleNamespace(front=f)))
    assert "the star is" not in text
    assert f"None of the {len(f['table'])} configurations meets the latency limit" in text
    assert "no configuration meets it" in text
    legend = [t.get_text() for t in drawn[-1].axes[0].get_legend().get_texts()]
    assert not any("least energy" in t for t in legend)


def test_accuracy_figures_draw_the_mean_the_tables_show(monkeypatch):
    """The sample-efficiency lines are the mean over seeds, as in comparison.csv and the
    headline, and the caption says so."""
    from energylens.report import figures
    from energylens.report.comparison import Comparison, summarise

    long = pd.DataFrame({"model": "EnergyLens", "dataset": "t", "protocol": "p", "n_train": 10,
                         "seed": [0, 1, 2], "metric": "mape", "value": [1.0, 2.0, 12.0],
                         "error": ""})
    cmp = Comparison(long, summarise(long), 3, [10])
    drawn = []
    real = figures.img

    def spy(fig, caption, **kw):
        drawn.append((fig, caption))
        return real(fig, caption, **kw)

    monkeypatch.setattr(figures, "img", spy)
    figures.efficiency(cmp, "mape")
    fig, caption = drawn[-1]
    line = fig.axes[0].get_lines()[0]
    assert line.get_ydata()[0] == pytest.approx(cmp.summary["mape"].iloc[0]) == pytest.approx(5.0)
    assert "means over 3 seeds" in caption and "median" not in caption


def test_a_grouped_fit_lists_each_groups_warnings_once():
    """The report reads the groups' warnings from groups_; GroupedModel's summary of the same
    warnings was recorded beside them, so each was listed twice."""
    from energylens import EnergyLensModel, GroupedModel, simulate_profiles
    from energylens.report.analysis import _fit, _Steps

    df = simulate_profiles(models=["Llama-3.1-8B", "Qwen2.5-14B"], gpus=["H100-SXM"], seed=3)
    small = pd.concat([df[df.model == "Llama-3.1-8B"], df[df.model == "Qwen2.5-14B"].head(4)])
    steps = _Steps()
    steps.run("fit", _fit, GroupedModel(EnergyLensModel(), by=["model"]), small, steps)
    assert any(g == "Qwen2.5-14B" and c == "IdentifiabilityWarning" for c, _, g in steps.warnings)
    assert not any("fit(s):" in m for _, m, _ in steps.warnings)
