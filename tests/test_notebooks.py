"""The notebooks run end to end with the public API (executed with nbconvert's preprocessor),
and none of their figures clips a label: everything drawn lies inside the figure, and text
placed in an axes stays inside it."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))

#: Run first: the figures stay open (no inline display closes them) for the check at the end.
SETUP = "import matplotlib\nmatplotlib.use('agg')"
#: Run last: every open figure, drawn at its own size and saved with bbox_inches='tight'.
CHECK = """
import io, json
import matplotlib.pyplot as plt
problems = []
for num in plt.get_fignums():
    fig = plt.figure(num)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    box, tight = fig.bbox, fig.get_tightbbox(r).transformed(fig.dpi_scale_trans)
    if (tight.x0 < box.x0 - 1 or tight.y0 < box.y0 - 1 or tight.x1 > box.x1 + 1
            or tight.y1 > box.y1 + 1):
        problems.append(f"figure {num}: drawn beyond its edges {tight.bounds} vs {box.bounds}")
    for ax in fig.axes:
        a = ax.get_window_extent(r)
        for t in ax.texts:
            b = t.get_window_extent(r)
            if b.x0 < a.x0 - 1 or b.x1 > a.x1 + 1 or b.y0 < a.y0 - 1 or b.y1 > a.y1 + 1:
                problems.append(f"figure {num}: {t.get_text()[:40]!r} runs off its axes")
    fig.savefig(io.BytesIO(), format="png", bbox_inches="tight")
print("FIGURE-CHECK " + json.dumps({"figures": len(plt.get_fignums()), "problems": problems}))
"""


def test_the_three_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == ["01_quickstart", "02_discovery", "03_baselines_real_data"]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_and_no_label_is_clipped(path):
    from nbconvert.preprocessors import ExecutePreprocessor

    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "energylens._" not in code  # only the public API
    nb.cells.insert(0, nbformat.v4.new_code_cell(SETUP))
    nb.cells.append(nbformat.v4.new_code_cell(CHECK))
    ExecutePreprocessor(timeout=600, kernel_name="python3").preprocess(
        nb, {"metadata": {"path": str(path.parent)}})
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    out = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("name") == "stdout")
    report = json.loads(out.split("FIGURE-CHECK ", 1)[1])
    assert report["figures"] >= 1 and not report["problems"], report["problems"]
