"""The energy-latency trade-off: rows not dominated in two minimised columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.options import check_options

__all__ = ["pareto_front"]


def pareto_front(table: pd.DataFrame, *, x: str = "latency_s", y: str = "energy_j") -> pd.DataFrame:
    """Mark the rows not dominated in (``x``, ``y``), both minimised.

    A row is dominated when another row is no worse in both and strictly better in one;
    exact duplicates of a front point are all on the front. Returns a copy with a boolean
    ``pareto`` column, sorted by ``x``.

    Examples
    --------
    >>> import pandas as pd
    >>> from energylens import pareto_front
    >>> t = pd.DataFrame({"latency_s": [1.0, 2.0, 3.0, 2.0], "energy_j": [9.0, 5.0, 6.0, 5.0]})
    >>> pareto_front(t)["pareto"].tolist()
    [True, True, True, False]
    """
    check_options("pareto_front", {"x": [str], "y": [str]}, {"x": x, "y": y})
    for c in (x, y):
        if c not in table.columns:
            raise ValueError(f"pareto_front needs a column {c!r}; columns are {list(table.columns)}.")
    xs, ys = table[x].to_numpy(dtype=float), table[y].to_numpy(dtype=float)
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ValueError(f"Columns {x!r} and {y!r} must be finite for a Pareto front.")
    le = (xs[None, :] <= xs[:, None]) & (ys[None, :] <= ys[:, None])
    lt = (xs[None, :] < xs[:, None]) | (ys[None, :] < ys[:, None])
    dominated = np.any(le & lt, axis=1)
    out = table.copy()
    out["pareto"] = ~dominated
    return out.sort_values(x, kind="mergesort")
