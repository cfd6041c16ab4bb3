"""Markdown tables for the benchmark scripts' result pages."""

from __future__ import annotations

import numpy as np
import pandas as pd


def md_table(df: pd.DataFrame, fmt: dict | None = None, *, missing: str = "") -> str:
    """A Markdown table of ``df``: floats through ``fmt`` (column -> format, default
    ``{:.3g}``; magnitudes of a million and more in scientific notation), non-finite
    values as ``missing``."""
    fmt = fmt or {}
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "|".join(["---"] * len(cols)) + "|"]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if isinstance(v, (float, np.floating)):
                if not np.isfinite(v):
                    cells.append(missing)
                else:
                    cells.append(("{:.2g}" if abs(v) >= 1e6 else fmt.get(c, "{:.3g}")).format(v))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
