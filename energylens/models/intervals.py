"""Prediction and confidence intervals of a fitted closed form.

Two methods: the delta method from the parameter covariance (fast), or a residual
bootstrap that refits the model (slower, better for strongly nonlinear parameters; needs
the training data, kept in memory by ``fit`` but never stored in files or pickles).

Intervals are multiplicative (symmetric in log energy) for the relative, log and robust
losses, so they never cross zero; additive for the absolute loss.

Outside the training data the interval widens: its standard deviation is multiplied by
``1 + d``, where ``d`` is the summed log-distance of the row's variables beyond their
fitted ranges (a row at 8 times the largest TP seen gets ``d = ln 8``, about 3 times the
width). This is a stated heuristic, not a derived result: a closed form that holds inside
its data is assumed to hold outside with an error that grows with the distance. A row of a
model or GPU the fit never saw gets no interval at all (NaN bounds): a fit of other groups
says nothing about the spread between groups; the hierarchical model does.

An interval whose upper bound is more than :data:`WIDE_RATIO` times its lower bound spans
orders of magnitude: it is flagged in the column ``wide`` and by one warning
(:func:`flag_wide`), never printed as if it meant something (its upper bound may be
infinite, where the spread overflows a float).
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ..core.blocks import in_row_blocks
from ..core.domain import Domain
from ..core.options import LEVEL, POSITIVE_INT, StrOptions, check_options
from ..core.progress import progress
from ..core.threads import single_blas_thread
from ..exceptions import EnergyLensWarning, FitError
from .least_squares import Problem, residual_functions

__all__ = ["predict_interval", "distance_outside", "flag_wide", "WIDE_RATIO"]

#: Ratio of an interval's upper to its lower bound above which it is flagged ``wide``: it
#: spans more than an order of magnitude, and says little beyond the order of the value.
WIDE_RATIO = 10.0


def flag_wide(lower: np.ndarray, upper: np.ndarray, owner: str, level: float, *,
              stacklevel: int) -> np.ndarray:
    """Rows whose interval spans more than :data:`WIDE_RATIO` (an upper bound above
    ``WIDE_RATIO`` times the lower one: a lower bound of 0 or an infinite upper one
    included; rows without an interval, NaN, are not flagged), warned once
    (:class:`~energylens.EnergyLensWarning`; ``stacklevel`` as seen from the caller).

    Examples
    --------
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     flag_wide(np.array([1.0, 1.0, 0.0, np.nan]), np.array([2.0, 50.0, 3.0, np.nan]),
    ...               "M", 0.9, stacklevel=2).tolist()
    [False, True, True, False]
    """
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        wide = ~(np.isnan(lower) | np.isnan(upper)) & (upper > WIDE_RATIO * lower)
    if wide.any():
        warnings.warn(
            f"{owner}: {int(wide.sum())} of {len(wide)} row(s) have a {level:.0%} interval "
            f"spanning more than a factor of {WIDE_RATIO:g} (upper / lower bound; flagged in the "
            "column 'wide'): it gives the order of magnitude at best, not a usable range.",
            EnergyLensWarning, stacklevel=stacklevel + 1)
    return wide


def distance_outside(V: dict[str, np.ndarray], domain: Domain) -> np.ndarray:
    """Summed |log| distance of each row's variables beyond the training ranges (0 inside,
    and 0 for a value the row does not give, NaN)."""
    n = len(next(iter(V.values()))) if V else 0
    d = np.zeros(n)
    if not n:
        return d
    for name, (lo, hi) in domain.ranges.items():
        if name not in V or lo <= 0:
            continue
        a = V[name]
        if np.fmin.reduce(a, initial=np.inf) >= lo and np.fmax.reduce(a, initial=-np.inf) <= hi:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            d += np.nan_to_num(np.abs(np.log(a / np.clip(a, lo, hi))), nan=0.0, posinf=np.inf)
    return d


def _bootstrap_variance(model, V, n_boot: int, random_state) -> np.ndarray:
    train = getattr(model, "_train_", None)
    st = model._state_
    if train is None:
        raise FitError(
            f"{type(model).__name__}: bootstrap intervals refit the model on its training data, "
            "which model files and pickles do not store; refit the model on its table or use "
            "method='delta'.")
    free = st.free
    f_new = model._kernel(V, model.coef_)
    if not free.any():
        return np.zeros(len(f_new))
    Vt, yt, wt = train
    rng = np.random.default_rng(random_state)
    f_train = model._kernel(Vt, model.coef_)
    loss = model._setting("loss")
    if loss == "absolute":
        resid = yt - f_train
    elif loss == "log":
        resid = np.log(yt) - np.log(f_train)
    else:
        resid = (yt - f_train) / f_train
    lo, hi = model._lo_[free], model._hi_[free]
    preds = []
    for _ in progress(range(n_boot), desc="bootstrap refits", unit="fit"):
        r = rng.choice(resid, size=len(resid), replace=True)
        yb = f_train + r if loss == "absolute" else (
            f_train * np.exp(r) if loss == "log" else f_train * (1 + r))
        if loss != "absolute":
            yb = np.maximum(yb, 1e-12 * np.max(np.abs(yb)))
        problem = Problem(model._kernel, model._jacobian, Vt, yb, wt, loss, model._setting("f_scale"))
        fun, jac = residual_functions(problem, model.coef_.copy(), free)
        res = optimize.least_squares(fun, np.clip(model.coef_[free], lo, hi), jac=jac,
                                     bounds=(lo, hi), method="trf", x_scale="jac", max_nfev=200)
        th = model.coef_.copy()
        th[free] = res.x
        preds.append(model._kernel(V, th))
    return np.var(np.asarray(preds), axis=0, ddof=1)


def predict_interval(model, X, level: float = 0.9, *,
                     kind: Literal["prediction", "confidence"] = "prediction",
                     method: Literal["delta", "bootstrap"] = "delta", n_boot: int = 200,
                     random_state: int | None = 0) -> pd.DataFrame:
    """Prediction with a two-sided interval.

    Parameters
    ----------
    model : ParametricModel
        A fitted closed form.
    X : DataFrame or array
        Configurations.
    level : float, default=0.9
        Coverage probability of the interval.
    kind : {"prediction", "confidence"}
        ``"prediction"`` covers a new measurement (parameter uncertainty plus the residual
        scatter); ``"confidence"`` covers the mean only.
    method : {"delta", "bootstrap"}
        Delta method from the parameter covariance, or a residual bootstrap of ``n_boot``
        refits (needs the training data: only on a model fitted in this process).
    n_boot : int
        Bootstrap refits.
    random_state : int, optional
        Seed of the bootstrap.

    Returns
    -------
    DataFrame
        ``energy_j`` (the prediction; the target's name for other models), ``lower``,
        ``upper``, ``stderr``, ``extrapolated`` (bool), ``extrapolated_by`` (the columns
        outside the training data, ``""`` inside) and ``wide`` (bool: the interval spans more
        than a factor of :data:`WIDE_RATIO`, see :func:`flag_wide`). Bounds are NaN where they
        cannot be estimated (no degrees of freedom, or a model/GPU never seen).
    """
    check_options("predict_interval", {
        "level": [LEVEL], "kind": [StrOptions({"prediction", "confidence"})],
        "method": [StrOptions({"delta", "bootstrap"})], "n_boot": [POSITIVE_INT]},
        {"level": level, "kind": kind, "method": method, "n_boot": n_boot})
    V, ext = model._predict_variables(X, stacklevel=4)  # the caller of model.predict_interval
    f = model._checked_output(in_row_blocks(model._kernel, V, model.coef_), X)
    st = model._state_
    free = st.free
    if method == "delta":
        if free.any():
            G = model._jacobian(V, model.coef_)[:, free]
            var_mean = np.maximum(np.einsum("ij,jk,ik->i", G, st.cov, G), 0)
        else:
            var_mean = np.zeros(len(f))
    else:
        with single_blas_thread():
            var_mean = _bootstrap_variance(model, V, n_boot, random_state)
    var = var_mean.copy()
    absolute = model._setting("loss") == "absolute"
    if kind == "prediction":
        noise = np.full_like(f, st.sigma) if absolute else st.sigma * np.abs(f)
        var = var + noise**2
    sd = np.sqrt(var) * (1.0 + distance_outside(V, st.domain))
    z = stats.t.ppf(0.5 + level / 2, st.dof) if st.dof > 0 else np.nan
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if absolute:
            lower, upper = np.maximum(f - z * sd, 0.0), f + z * sd
        else:
            rel = np.where(f > 0, sd / f, np.inf)
            lower, upper = f * np.exp(-z * rel), f * np.exp(z * rel)
    unseen = np.zeros(len(f), dtype=bool)
    for col, m in ext.columns.items():
        if col in st.domain.labels:
            unseen |= m
    lower, upper = np.where(unseen, np.nan, lower), np.where(unseen, np.nan, upper)
    wide = flag_wide(lower, upper, type(model).__name__, level, stacklevel=3)
    out = pd.DataFrame({model._target_name: f, "lower": lower, "upper": upper, "stderr": sd,
                        "extrapolated": ext.mask, "extrapolated_by": ext.per_row, "wide": wide})
    if isinstance(X, pd.DataFrame):
        out.index = X.index
    return out
