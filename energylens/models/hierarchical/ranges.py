"""What each group measured: the ranges of its layout and batch, and the rows beyond them.

The hierarchical model predicts a layout its group never ran (tensor parallelism a model was
measured without, a batch beyond its sweep) through the population's terms, fitted on the
groups that did run it: that is what it is for, but such a row rests on transfer, not on
the group's own measurements, and it is flagged as such (the per-group models flag the
same rows). The table-wide ranges of :class:`~energylens.core.domain.Domain` cannot see
it: another group measured there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .design import SEP

__all__ = ["GROUP_VARIABLES", "group_ranges", "flag_group_ranges"]

#: Variables (of :func:`~.variables.domain_variables`) whose range each group records, and
#: their names in messages: the parallel layout and the batch (the running batch where a row
#: gives one, else its cap).
GROUP_VARIABLES: dict[str, str] = {"t": "tp", "p": "pp", "d": "dp", "e": "ep", "B": "batch"}
_TOL = 1e-9


def group_ranges(V: dict, row_group: np.ndarray, n_groups: int, cap=None) -> np.ndarray:
    """``(n_groups, len(GROUP_VARIABLES), 2)``: each group's smallest and largest value of
    each variable over its training rows (``row_group``: each row's group index; NaN where a
    group's rows never give the variable). The batch's upper end is the larger of the running
    batch and the cap (``cap``, the rows' ``batch_size``): a cap the group ran, predicted
    without its measured running batch, is inside.

    Examples
    --------
    >>> V = {k: np.array([1.0, 2.0, 4.0]) for k in GROUP_VARIABLES}
    >>> r = group_ranges(V, np.array([0, 0, 1]), 2, cap=[1.0, 8.0, 4.0])
    >>> r[:, 0].tolist(), r[:, -1].tolist()
    ([[1.0, 2.0], [4.0, 4.0]], [[1.0, 8.0], [4.0, 4.0]])
    """
    out = np.empty((n_groups, len(GROUP_VARIABLES), 2))
    out[..., 0], out[..., 1] = np.inf, -np.inf
    for j, name in enumerate(GROUP_VARIABLES):
        a = np.asarray(V[name], dtype=float)
        top = a if name != "B" or cap is None else np.fmax(a, pd.to_numeric(
            pd.Series(np.asarray(cap)), errors="coerce").to_numpy(dtype=float))
        ok = np.isfinite(a)
        np.minimum.at(out[:, j, 0], row_group[ok], a[ok])
        np.maximum.at(out[:, j, 1], row_group[ok], top[ok])
    out[~np.isfinite(out)] = np.nan  # a group that never gave the variable: nothing to flag
    return out


def flag_group_ranges(ext, ranges: np.ndarray | None, V: dict, groups: np.ndarray,
                      names: Sequence[str]) -> None:
    """Add to the :class:`~energylens.core.domain.Extrapolation` ``ext`` the rows of a trained
    group outside that group's own range of a variable (key ``"<column> of its group"``);
    rows of an unseen group (``groups == -1``, flagged as such already) and files without
    the ranges (``ranges`` None) add nothing. ``names`` are the groups' labels."""
    if ranges is None or not len(groups):
        return
    seen = groups >= 0
    g = np.where(seen, groups, 0)
    for j, (name, col) in enumerate(GROUP_VARIABLES.items()):
        a = np.asarray(V[name], dtype=float)
        lo, hi = ranges[g, j, 0], ranges[g, j, 1]
        tol = _TOL * np.maximum(1.0, np.abs(hi))
        mask = seen & ((a > hi + tol) | (a < lo - tol))
        if not mask.any():
            continue
        first = int(np.flatnonzero(mask)[0])
        n_groups = len(np.unique(groups[mask]))
        label = str(names[groups[first]]).replace(SEP, " / ")
        more = f" and {n_groups - 1} other group(s)" if n_groups > 1 else ""
        key = f"{col} of its group"
        ext.mask |= mask
        ext.columns[key] = mask
        ext.reasons[key] = (f"{col} {a[first]:g} where group '{label}'{more} measured "
                            f"{lo[first]:g} to {hi[first]:g} only (predicted from the other "
                            "groups' measurements there)")
