"""How formulas are shown: four significant digits, one selected equation, a legend, LaTeX."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import sympy

from energylens.cli import main
from energylens.discovery import DiscoveryResult, TermSearch, discover
from energylens.discovery.presentation import format_equation, latex_equation, legend_text

from .test_discovery import planted

_LONG_FLOAT = re.compile(r"\d\.\d{5,}")


@pytest.fixture(scope="module")
def result() -> DiscoveryResult:
    return discover(planted("tp_overhead"), engine=TermSearch(max_terms=5))


def _digits(text: str) -> list[int]:
    """Significant digits of each decimal constant in a formula."""
    out = []
    for m in re.finditer(r"(\d+\.\d+)(?:e[+-]?\d+)?", text):
        out.append(len(m.group(1).replace(".", "").lstrip("0")))
    return out


def test_constants_to_four_significant_digits(result):
    shown = result.table()
    assert all(n <= 4 for e in shown["equation"] for n in _digits(e))
    assert all(n <= 4 for n in _digits(result.summary()))
    # Full precision stays in equations_ and in table(digits=None).
    assert any(_LONG_FLOAT.search(e) for e in result.equations_["equation"])
    assert list(result.table(digits=None)["equation"]) == list(result.equations_["equation"])
    assert format_equation(sympy.Float(0.0123456789) * sympy.Symbol("si")) == "0.01235*si"


def test_exactly_one_selected_and_consistent(result):
    shown = result.table()
    assert shown["selected"].sum() == 1
    i = int(np.flatnonzero(shown["selected"])[0])
    assert i == result.best_index_
    line = result.summary().splitlines()[1]
    assert line.strip() == f"energy_j = {shown['equation'].iloc[i]}"
    assert f"complexity {int(shown['complexity'].iloc[i])}" in result.summary()
    for rule in ("accuracy", "score", "criterion"):
        other = DiscoveryResult(result.equations_, engine="terms", selection=rule)
        assert int(np.flatnonzero(other.table()["selected"])[0]) == other.best_index_


def test_legend_names_every_symbol(result):
    text = str(result)
    for name in {str(s) for s in result.sympy().free_symbols}:
        assert re.search(rf"\b{name} = ", text), name
    assert "si = input tokens per request" in text
    assert legend_text(["x0"]) == "x0 = column x0"
    html = result._repr_html_()
    assert "<table" in html and "input tokens per request" in html


def test_latex_export(result):
    tex = result.to_latex()
    assert tex.startswith(r"\begin{tabular}") and r"\end{tabular}" in tex
    rows = [r for r in tex.splitlines() if r.endswith(r"\\") and not r.startswith("complexity")]
    assert len(rows) == len(result.equations_)
    starred = [i for i, r in enumerate(rows) if r"\star" in r]
    assert starred == [result.best_index_]
    assert "$s_i$ = input tokens per request" in tex
    assert latex_equation(0.0123456 * sympy.Symbol("si")) == "0.01235 s_i"
    assert result.latex() == latex_equation(result.sympy())


def test_cli_table_and_printed_line_agree(tmp_path, capsys):
    df = planted("inverse_batch", n=120).assign(model="m", gpu="g")
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "front.csv"
    # The selected formula is the command's summary on standard error (--quiet would hide it).
    assert main(["discover", str(path), "--engine", "terms", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    table = pd.read_csv(out)
    assert "sympy" not in table.columns and list(table.columns[:5]) == [
        "complexity", "loss", "score", "equation", "selected"]
    assert table["selected"].sum() == 1
    chosen = table.loc[table["selected"], "equation"].iloc[0]
    assert any(_LONG_FLOAT.search(e) for e in table["equation"])  # full precision in the file
    expr = sympy.sympify(chosen)
    assert f"energy_j = {format_equation(expr)}" in err
    assert f"complexity {int(table.loc[table['selected'], 'complexity'].iloc[0])}" in err
    assert "where B = effective running batch per replica" in err
    tex = tmp_path / "front.tex"
    assert main(["discover", str(path), "--engine", "terms", "--format", "latex", "-o", str(tex),
                 "--quiet"]) == 0
    assert r"\star" in tex.read_text() and "Symbols:" in tex.read_text()
