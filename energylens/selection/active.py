"""Active profiling: which configurations to measure next."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from numbers import Integral
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from ..core.checks import flag_column
from ..core.options import LEVEL, POSITIVE_INT, StrOptions, check_options
from ..exceptions import EnergyLensWarning
from ..tables.values import MISSING_TEXT
from .rank import as_served

__all__ = ["suggest_next"]

_KEYS = ("model", "gpu", "workload", "tp", "pp", "dp", "batch_size", "input_tokens",
         "output_tokens")
_OPTIONS = {
    "k": [POSITIVE_INT],
    "strategy": [StrOptions({"uncertainty", "selection"})],
    "level": [LEVEL],
    "random_state": [Integral, None],
}
_DRAWS = 4000


def _text(df: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """The columns ``cols`` as text, a missing cell (a blank label) as :data:`MISSING_TEXT`.

    >>> _text(pd.DataFrame({"workload": ["chat", None]}), ["workload"])["workload"].tolist()
    ['chat', '–']
    """
    part = df[list(cols)].astype(object)
    return part.where(part.notna(), MISSING_TEXT).astype(str)


def _labels(df: pd.DataFrame, cols: Sequence[str]) -> np.ndarray:
    """One scenario label per row: the ``cols`` joined, a blank cell shown as
    :data:`MISSING_TEXT`.

    >>> _labels(pd.DataFrame({"gpu": ["L4", "L4"], "workload": ["chat", np.nan]}),
    ...         ["gpu", "workload"]).tolist()
    ['L4|chat', 'L4|–']
    """
    if not cols:
        return np.full(len(df), "all", dtype=object)
    return _text(df, cols).agg("|".join, axis=1).to_numpy(dtype=object)


def _config_keys(df: pd.DataFrame, keys: Sequence[str], numeric: set[str]) -> list[tuple]:
    """Each row's configuration, by value: the ``numeric`` columns as floats (``256`` and
    ``256.0`` are one batch), the others as text."""
    text = _text(df, [c for c in keys if c not in numeric])
    cols = [[None if np.isnan(v) else float(v)  # a blank matches a blank
             for v in pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)]
            if c in numeric else text[c].to_numpy() for c in keys]
    return list(zip(*cols)) if cols else [()] * len(df)


def _unmeasured(cand: pd.DataFrame, measured: pd.DataFrame | None) -> pd.DataFrame:
    """Candidates not in ``measured``, matched by value on the configuration columns both
    have (a column numeric in both is compared as numbers)."""
    if measured is None or not len(measured):
        return cand
    keys = [c for c in _KEYS if c in cand.columns and c in measured.columns]
    numeric = {c for c in keys if all(pd.api.types.is_numeric_dtype(d[c]) for d in (cand, measured))}
    seen = set(_config_keys(measured, keys, numeric))
    return cand[np.array([r not in seen for r in _config_keys(cand, keys, numeric)], dtype=bool)]


def _feasible(cand: pd.DataFrame) -> pd.DataFrame:
    """The candidates that can run (``feasible``, as :func:`candidate_grid` gives it: a row
    that needs more memory or GPUs than there are is never worth measuring)."""
    if "feasible" not in cand.columns or cand.empty:
        return cand
    ok = flag_column(cand, "feasible", "suggest_next", missing=None)
    if not ok.any():
        raise ValueError("suggest_next: no candidate is feasible (column 'feasible' is False in "
                         f"all {len(cand)} rows; see their 'reason').")
    return cand[ok]


def _optimum_probability(f: np.ndarray, rel_sd: np.ndarray, labels: np.ndarray,
                         incumbent: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    """Monte Carlo probability that each candidate is the best of its scenario (and beats
    the scenario's best measured energy, where there is one)."""
    score = np.zeros(len(f))
    for lab in pd.unique(labels):
        idx = np.flatnonzero(labels == lab)
        sims = np.log(f[idx])[None, :] + rng.normal(size=(_DRAWS, len(idx))) * rel_sd[idx][None, :]
        best = np.argmin(sims, axis=1)
        won = np.ones(_DRAWS, dtype=bool)
        if lab in incumbent:
            won = sims[np.arange(_DRAWS), best] < np.log(incumbent[lab])
        score[idx] = np.bincount(best[won], minlength=len(idx)) / _DRAWS
    return score


def _spread_text(rel_sd: float) -> str:
    if rel_sd > 1.0:
        return "relative predictive sd above 100% (the interval spans orders of magnitude)"
    return f"relative predictive sd {rel_sd:.1%}"


def _incumbents(measured: pd.DataFrame | None, cols: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    if measured is not None and len(measured) and "energy_j" in measured.columns:
        for lab, e in zip(_labels(measured, cols), measured["energy_j"].to_numpy(dtype=float)):
            if np.isfinite(e):
                out[lab] = min(e, out.get(lab, np.inf))
    return out


def suggest_next(
    model,
    candidates: pd.DataFrame,
    k: int = 5,
    *,
    strategy: Literal["uncertainty", "selection"] = "uncertainty",
    measured: pd.DataFrame | None = None,
    scenario: Sequence[str] = ("model", "gpu", "workload"),
    level: float = 0.9,
    random_state: int | None = 0,
) -> pd.DataFrame:
    """Propose the ``k`` configurations to measure next (active profiling).

    Parameters
    ----------
    model : estimator
        A fitted model with ``predict_interval``.
    candidates : DataFrame
        Configurations that could be measured; those flagged infeasible (``feasible``, as
        :func:`candidate_grid` gives it) are left out, and one flagged ``memory_limited`` is
        predicted at its ``running_batch``. Candidates
        identical as served (the same in every column but the cap: caps above the KV
        capacity run the same running batch) are one candidate, scored once at the smallest
        of their caps; its ``reason`` names the caps it stands for.
    k : int
        How many to propose.
    strategy : {"uncertainty", "selection"}
        ``"uncertainty"``: the widest relative prediction intervals (learn the model where
        it knows least). ``"selection"``: the highest probability of being the optimum of
        its scenario (rows sharing the ``scenario`` columns) under the predictive
        distribution (log-normal with the interval's spread, independent across
        candidates), estimated by Monte Carlo; where ``measured`` carries ``energy_j``,
        the best measured energy of the scenario is an incumbent to beat. Measuring those
        settles the choice fastest. A candidate without a finite interval is the most
        uncertain of all for ``"uncertainty"``; for ``"selection"`` its probability is
        unknown (score NaN, listed last, with a warning).
    measured : DataFrame, optional
        Configurations already measured (excluded), matched by value on the configuration
        columns.
    scenario : sequence of str
        Columns that define a selection problem (``"selection"`` only).
    level : float
        Coverage of the interval that sets the predictive spread.
    random_state : int, optional
        Seed of the Monte Carlo draws and of the tie-breaking.

    Returns
    -------
    DataFrame
        ``k`` distinct candidate rows with ``score`` and ``reason``, highest score first.

    Examples
    --------
    >>> import warnings
    >>> from energylens import EnergyLensModel, simulate_profiles, suggest_next
    >>> table = simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"])
    >>> measured = table.sample(16, random_state=0)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     model = EnergyLensModel().fit(measured)
    >>> nxt = suggest_next(model, table.drop(columns="energy_j"), k=3, measured=measured)
    >>> len(nxt), bool(set(nxt.index) & set(measured.index))
    (3, False)
    """
    check_options("suggest_next", _OPTIONS, locals())
    cand = _unmeasured(_feasible(candidates), measured)
    if cand.empty:
        raise ValueError("No unmeasured candidate left to suggest.")
    cand, stands_for = collapse_served(cand)
    rng = np.random.default_rng(random_state)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pi = model.predict_interval(as_served(cand), level=level)
    for w in caught:  # said where suggest_next was called, not deep inside it
        warnings.warn(w.message, w.category, stacklevel=2)
    f = pi["energy_j"].to_numpy(dtype=float)
    z = stats.norm.ppf(0.5 + level / 2)
    with np.errstate(invalid="ignore", over="ignore"):
        rel_sd = np.maximum((pi["upper"] - pi["lower"]).to_numpy(dtype=float)
                            / (2 * z * np.maximum(f, 1e-300)), 1e-9)
    known = np.isfinite(rel_sd) & np.isfinite(f) & (f > 0)
    if strategy == "uncertainty":
        score = np.where(known, rel_sd, np.inf)  # no finite interval: the least known of all
        reason = [_spread_text(s) if ok else "no finite prediction interval (the model cannot "
                  "say how uncertain it is here)" for s, ok in zip(score, known)]
    else:
        cols = [c for c in scenario if c in cand.columns]
        score = np.full(len(f), np.nan)
        if known.any():
            score[known] = _optimum_probability(f[known], rel_sd[known],
                                                _labels(cand[known], cols),
                                                _incumbents(measured, cols), rng)
        reason = [f"P(optimum of its scenario) = {s:.3f}" if ok else "P(optimum) unknown: no "
                  "finite prediction interval" for s, ok in zip(score, known)]
        if not known.all():
            warnings.warn(
                f"suggest_next: {int((~known).sum())} of {len(known)} candidate(s) have no finite "
                "prediction interval (a setting the model has not seen, or no degrees of freedom "
                "left): their probability of being the optimum is unknown (score NaN), and they "
                "are listed after the others; strategy='uncertainty' puts them first.",
                EnergyLensWarning, stacklevel=2)
    jitter = rng.uniform(0, 1e-12, len(score))
    order = np.argsort(-np.nan_to_num(score + jitter, nan=-np.inf), kind="mergesort")[:k]
    out = cand.iloc[order].copy()
    out["score"] = np.asarray(score)[order]
    out["reason"] = [r + (f"; also stands for caps {stands_for[i]} (memory-limited: they run "
                          "the same running batch, so they are one configuration as served)"
                          if i in stands_for else "")
                     for i, r in zip(out.index, np.asarray(reason, dtype=object)[order])]
    return out


def collapse_served(cand: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The candidates with those identical as served (:func:`as_served`: the same in every
    column but the cap, a memory-limited cap running the KV capacity) collapsed into one,
    the smallest cap kept; and, per kept row label, the larger caps it stands for.

    Caps above the KV capacity run identically (the same running batch), so scoring them
    apart would suggest one served configuration several times and split its probability
    of being the optimum."""
    served = as_served(cand)
    if served is cand:  # no memory-limited row: nothing runs like another
        return cand, {}
    key = served.drop(columns=[c for c in ("memory_limited",) if c in served])
    labels = [tuple(map(str, r)) for r in key.itertuples(index=False)]
    cap = pd.to_numeric(cand["batch_size"], errors="coerce").to_numpy(dtype=float)
    order = np.lexsort((cap,))  # smallest cap first (stable)
    keep, stands_for, first = [], {}, {}
    for i in order:
        lab = labels[i]
        if lab in first:
            stands_for.setdefault(cand.index[first[lab]], []).append(float(cap[i]))
        else:
            first[lab] = i
            keep.append(i)
    if len(keep) == len(cand):
        return cand, {}
    stands_for = {k: [f"{c:g}" for c in sorted(v)] for k, v in stands_for.items()}
    return cand.iloc[sorted(keep)], {k: ", ".join(v) for k, v in stands_for.items()}
