"""Accuracy and selection metrics, each with a strict definition.

Conventions shared by every function:

- ``y_true`` must be finite and strictly positive (energies); a ``ValueError`` is raised
  otherwise, and on NaN predictions, on length mismatches and on empty input.
- Percent metrics say so in their name's docstring (``mape``, ``median_ape``); selection
  metrics are fractions in [0, 1].
- Selection metrics take ``groups``: one scenario label per row (for example
  ``(model, gpu, workload)``); the candidates of a scenario are its rows. Scenarios with
  fewer than two candidates are skipped (nothing to choose); if none remains a
  ``ValueError`` is raised.
- **Ties.** A configuration is a true optimum when its measured energy equals the scenario's
  minimum exactly. When several candidates share the lowest *predicted* energy, the pick is
  a uniformly random one among them, and every metric reports its expectation: Top-1 gives
  the fraction of the tied picks that are true optima, regret the mean regret of the tied
  picks. This makes a constant predictor score exactly the random-pick rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.metrics import abs_pct_errors

__all__ = [
    "mape",
    "median_ape",
    "r2",
    "top1_accuracy",
    "pairwise_accuracy",
    "regret",
    "within_tolerance_rate",
    "random_pick_top1",
    "selection_metrics",
]


def _check(y_true, y_pred=None):
    t = np.asarray(y_true, dtype=float).ravel()
    if t.size == 0:
        raise ValueError("y_true is empty.")
    if not np.all(np.isfinite(t)):
        raise ValueError("y_true contains NaN or infinity.")
    if np.any(t <= 0):
        raise ValueError(f"y_true must be > 0 (energies); {int(np.sum(t <= 0))} value(s) are not.")
    if y_pred is None:
        return t, None
    p = np.asarray(y_pred, dtype=float).ravel()
    if p.shape != t.shape:
        raise ValueError(f"y_true and y_pred have different lengths ({t.size} and {p.size}).")
    if not np.all(np.isfinite(p)):
        raise ValueError("y_pred contains NaN or infinity.")
    return t, p


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error, in **percent**: ``100 * mean(|pred - true| / true)``."""
    t, p = _check(y_true, y_pred)
    return float(np.mean(abs_pct_errors(t, p)))


def median_ape(y_true, y_pred) -> float:
    """Median absolute percentage error, in **percent**."""
    t, p = _check(y_true, y_pred)
    return float(np.median(abs_pct_errors(t, p)))


def r2(y_true, y_pred) -> float:
    """Coefficient of determination on the raw scale (a fraction, at most 1; can be negative).

    Returns NaN when ``y_true`` is constant (undefined).
    """
    t, p = _check(y_true, y_pred)
    ss_tot = np.sum((t - t.mean()) ** 2)
    if ss_tot == 0:
        return float("nan")
    return float(1.0 - np.sum((t - p) ** 2) / ss_tot)


def _scenarios(y_true, y_pred, groups):
    t, p = _check(y_true, y_pred) if y_pred is not None else _check(y_true)
    g = pd.Series(pd.Index(groups if not isinstance(groups, pd.DataFrame)
                           else list(map(tuple, groups.to_numpy()))).to_numpy(dtype=object))
    if len(g) != len(t):
        raise ValueError(f"groups has {len(g)} labels for {len(t)} rows.")
    out = []
    for _, idx in g.groupby(g.map(repr), sort=True).groups.items():
        idx = np.asarray(idx)
        if len(idx) >= 2:
            out.append((t[idx], None if p is None else p[idx]))
    if not out:
        raise ValueError("No scenario has two or more candidates: nothing to select.")
    return out


def _picks(pred: np.ndarray) -> np.ndarray:
    """Indices of the tied lowest predictions (the random pick is uniform among them)."""
    return np.flatnonzero(pred == pred.min())


def top1_accuracy(y_true, y_pred, groups) -> float:
    """Fraction of scenarios whose lowest-predicted candidate is a measured optimum.

    With predicted ties, a scenario scores the share of its tied picks that are optima
    (expected accuracy of a random tie-break). Result in [0, 1].
    """
    scores = []
    for t, p in _scenarios(y_true, y_pred, groups):
        picks = _picks(p)
        scores.append(np.mean(t[picks] == t.min()))
    return float(np.mean(scores))


def pairwise_accuracy(y_true, y_pred, groups) -> float:
    """Fraction of candidate pairs, within scenarios, that the prediction orders correctly.

    Pairs with equal measured energy are skipped; a predicted tie scores one half. The
    fraction is taken over all counted pairs of all scenarios. NaN if no pair counts.
    """
    good = total = 0.0
    for t, p in _scenarios(y_true, y_pred, groups):
        dt = np.sign(t[:, None] - t[None, :])
        dp = np.sign(p[:, None] - p[None, :])
        iu = np.triu_indices(len(t), 1)
        dt, dp = dt[iu], dp[iu]
        keep = dt != 0
        good += np.sum((dt[keep] == dp[keep]) * 1.0 + (dp[keep] == 0) * 0.5)
        total += np.sum(keep)
    return float(good / total) if total else float("nan")


def regret(y_true, y_pred, groups) -> float:
    """Mean over scenarios of ``measured energy of the pick / best measured energy - 1``.

    A fraction, never negative; with predicted ties, the mean over the tied picks.
    """
    vals = []
    for t, p in _scenarios(y_true, y_pred, groups):
        vals.append(np.mean(t[_picks(p)] / t.min() - 1.0))
    return float(np.mean(vals))


def within_tolerance_rate(y_true, y_pred, groups, tol: float = 0.05) -> float:
    """Fraction of scenarios whose pick is within ``tol`` (relative) of the best measured energy.

    With predicted ties, the share of the tied picks within tolerance.
    """
    if tol < 0:
        raise ValueError(f"tol must be >= 0; got {tol!r}.")
    vals = []
    for t, p in _scenarios(y_true, y_pred, groups):
        vals.append(np.mean(t[_picks(p)] <= (1 + tol) * t.min()))
    return float(np.mean(vals))


def random_pick_top1(y_true, groups) -> float:
    """Top-1 accuracy of a uniformly random pick: mean over scenarios of optima / candidates."""
    return float(np.mean([np.mean(t == t.min()) for t, _ in _scenarios(y_true, None, groups)]))


def selection_metrics(y_true, y_pred, groups, tol: float = 0.05) -> dict[str, float]:
    """Top-1, pairwise accuracy, regret, within-tolerance rate and the random-pick rate."""
    return {
        "top1": top1_accuracy(y_true, y_pred, groups),
        "pairwise": pairwise_accuracy(y_true, y_pred, groups),
        "regret": regret(y_true, y_pred, groups),
        "within5": within_tolerance_rate(y_true, y_pred, groups, tol),
        "random_top1": random_pick_top1(y_true, groups),
    }
