"""Tables with a measured prefill/decode split: each such row fitted as its two phases.

With only total energy the split between prefill and decode is not identified; a row that
measures both phases is fitted as two observations, each against its part of the form. Its
energy must then be the phases' sum: a row whose total differs (energy outside the two
phases, or columns that disagree) is fitted on its total instead.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ...core.checks import plain as _plain
from ...exceptions import EnergyLensWarning, FitError
from .form import PHASE_DECODE, PHASE_PREFILL, PHASE_TOTAL

__all__ = ["SPLIT_TOLERANCE", "phase_rows"]

#: Largest relative gap between a row's energy and the sum of its measured phases.
SPLIT_TOLERANCE = 0.02


def _split_total(X, y, pre, dec, split, phases) -> np.ndarray:
    """The split rows whose energy (``y``) is the sum of their phases (within
    :data:`SPLIT_TOLERANCE`): only those are fitted from their phases. With ``phases=True``
    another row is a FitError; with ``"auto"`` it is fitted on its energy, with a warning."""
    gap = np.abs(y / (pre + dec) - 1.0)
    bad = split & ~(gap <= SPLIT_TOLERANCE)
    if not bad.any():
        return split
    first = np.flatnonzero(bad)[:5]
    what = (f"energy_j (or y) differs from prefill_energy_j + decode_energy_j by more than "
            f"{SPLIT_TOLERANCE:.0%} in {int(bad.sum())} row(s) (rows "
            f"{[_plain(X.index[i]) for i in first]}: energy {y[first].tolist()}, phases sum to "
            f"{(pre + dec)[first].tolist()})")
    if phases is True:
        raise FitError(f"HierarchicalEnergyModel(phases=True): {what}. Correct the columns, or "
                       "pass phases='auto' (such rows fitted on their energy) or False.")
    warnings.warn(f"HierarchicalEnergyModel: {what}; those rows are fitted on their energy, not "
                  "their phases (energy outside the two phases, or columns that disagree).",
                  EnergyLensWarning, stacklevel=5)  # fit's caller, through phase_rows and _fit
    return split & ~bad


def phase_rows(X: pd.DataFrame, y: np.ndarray, phases="auto"):
    """The rows to fit (positions in ``X``), their log energies and what each measures
    (``PHASE_*`` of :mod:`~energylens.models.hierarchical.form`): where ``phases`` allows it
    (``"auto"``, True), a row with a measured prefill/decode split is taken twice, once per
    phase.

    Examples
    --------
    >>> X = pd.DataFrame({"prefill_energy_j": [1.0, np.nan], "decode_energy_j": [3.0, np.nan]})
    >>> rows, ly, phase = phase_rows(X, np.array([4.0, 5.0]))
    >>> rows.tolist(), phase.tolist(), np.exp(ly).round(6).tolist()
    ([1, 0, 0], [0, 1, 2], [5.0, 1.0, 3.0])
    """
    cols = ("prefill_energy_j", "decode_energy_j")
    has = all(c in X.columns for c in cols)
    if phases is True and not has:
        raise FitError(f"HierarchicalEnergyModel(phases=True) needs the columns {list(cols)}.")
    split = np.zeros(len(X), dtype=bool)
    if has and phases is not False:
        pre = pd.to_numeric(X[cols[0]], errors="coerce").to_numpy(float)
        dec = pd.to_numeric(X[cols[1]], errors="coerce").to_numpy(float)
        split = np.isfinite(pre) & np.isfinite(dec) & (pre > 0) & (dec > 0)
    if split.any():
        split = _split_total(X, y, pre, dec, split, phases)
    if not split.any():
        return np.arange(len(X)), np.log(y), np.full(len(X), PHASE_TOTAL)
    keep, both = np.flatnonzero(~split), np.flatnonzero(split)
    ly = np.concatenate([np.log(y[keep]), np.log(pre[both]), np.log(dec[both])])
    phase = np.concatenate([np.full(len(keep), PHASE_TOTAL), np.full(len(both), PHASE_PREFILL),
                            np.full(len(both), PHASE_DECODE)])
    return np.concatenate([keep, both, both]), ly, phase
