"""HTML pieces of the report: the page, tables that say when they are cut, figures as
embedded PNG drawn on :class:`matplotlib.figure.Figure` objects (pyplot and the caller's
backend are never touched)."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd

from ..tables.values import MISSING_TEXT

__all__ = ["CSS", "esc", "table", "figure", "img", "page", "number", "sentence"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1100px;padding:0 1rem;color:#222;line-height:1.45}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.86rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
tr.grey td{color:#999;background:#fafafa}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.4rem 0}
.note{color:#555;font-size:.9rem}.warn{color:#8a4b00}
figure{margin:0}figcaption{font-size:.85rem;color:#555}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1rem}
code{background:#f6f6f6;padding:0 .2rem}
pre{white-space:pre-wrap;font-size:.8rem;background:#fafafa;padding:.5rem}
section.headline{border:2px solid #2b6cb0;border-radius:6px;padding:.4rem 1.2rem 1rem;
background:#f5f9ff;margin-top:1.2rem}
section.headline h2{border:none;margin-top:.6rem}
"""


def esc(text) -> str:
    return html.escape(str(text))


def sentence(text) -> str:
    """``text`` ending with one full stop: none is added after one already there (a
    message quoted from an error usually has its own).

    >>> sentence("got n_samples = 1."), sentence("no suggestion")
    ('got n_samples = 1.', 'no suggestion.')
    """
    text = str(text).rstrip()
    return text if text.endswith((".", "!", "?")) else text + "."


def number(v, fmt: str = "{:.4g}") -> str:
    """A cell's text: numbers to four significant digits; a missing value is a dash (the
    table or its caption says why), infinity is written out."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return MISSING_TEXT
        if np.isinf(v):
            return "unbounded" if v > 0 else "-unbounded"
        return fmt.format(v)
    if v is None or (isinstance(v, str) and v.lower() == "nan"):
        return MISSING_TEXT
    return str(v)


def table(df: pd.DataFrame, *, max_rows: int = 40, csv: str | None = None,
          greyed: pd.Series | np.ndarray | None = None, what: str = "rows") -> str:
    """An HTML table; when cut to ``max_rows``, a line says how many of how many are shown
    (and which CSV holds them all). ``greyed`` marks rows to grey out."""
    if df is None or df.empty:
        return ""
    n = len(df)
    shown = df.head(max_rows)
    grey = (np.zeros(len(shown), dtype=bool) if greyed is None
            else np.asarray(greyed, dtype=bool)[: len(shown)])
    left = {c for c in shown.columns if shown[c].dtype == object or
            pd.api.types.is_string_dtype(shown[c])}
    head = "".join(f'<th class="l">{esc(c)}</th>' if c in left else f"<th>{esc(c)}</th>"
                   for c in shown.columns)
    rows = []
    for g, (_, r) in zip(grey, shown.iterrows()):
        cells = "".join(f'<td class="l">{esc(number(r[c]))}</td>' if c in left
                        else f"<td>{esc(number(r[c]))}</td>" for c in shown.columns)
        rows.append(f'<tr class="grey">{cells}</tr>' if g else f"<tr>{cells}</tr>")
    note = ""
    if n > max_rows:
        where = f"; all {n} are in <code>{esc(csv)}</code>" if csv else ""
        note = f'<p class="note">Showing the first {max_rows} of {n} {esc(what)}{where}.</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{note}"


def figure(figsize=(6.0, 4.0)):
    """A new :class:`~matplotlib.figure.Figure` (constrained layout) and its axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots()


def img(fig, caption: str, dpi: int = 100) -> str:
    """A figure embedded as PNG with its caption."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def page(title: str, subtitle: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f'<h1>{esc(title)}</h1><p class="note">{subtitle}</p>{body}</body></html>\n')
