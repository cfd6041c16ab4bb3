"""Prediction variances of the hierarchical model from its block-form posterior.

For a row whose log energy has gradient ``a`` in the unknowns (global part ``a_G``; local
part ``a_L`` in its group's block), the variance of the prediction is

.. math::

    a^\\top \\Sigma a = b^\\top S^{-1} b + a_L^\\top A_g^{-1} a_L,
    \\qquad b = a_G - W_g^\\top a_L \\ \\text{(placed at the group's touched columns)}

with ``S^{-1}`` the covariance of the global columns, ``A_g`` the group's local block and
``W_g = A_g^{-1} H_{LG}`` its coupling: the full covariance is never formed. Rows are taken
in blocks, so memory stays bounded on large tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..design import checked_prediction
from ..intervals import distance_outside, flag_wide
from .calibration import new_model_quantile
from .design import IDENTITY_COLUMNS, UNSEEN, level_keys
from .form import PARAMETER_NAMES, WORKLOAD_PARAMETERS, energy_jacobian, link_slope, theta_from_link
from .pooling import MIN_LEVELS
from .variables import domain_variables

__all__ = ["gradient_rows", "parameter_variance", "new_level_variance", "quadratic_form",
           "only_new_model",
           "interval_table", "FALLBACK_SPREADS"]

_BLOCK = 2048
#: Label columns whose values absent from training widen the interval by a fixed spread (the
#: setting named) where training could not estimate one: no level of at least
#: :data:`~.pooling.MIN_LEVELS` values over that column alone or crossed with the GPU. A
#: precision x GPU level is merged into the GPU level when training has one precision, and a
#: source level dropped when it has one source: those tables know nothing of the spread.
FALLBACK_SPREADS: dict[str, str] = {"gpu": "new_gpu_spread", "precision": "new_precision_spread",
                                    "source": "new_source_spread"}


def gradient_rows(model, cols: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense global part (n, P) and local part (n, cmax) of the rows' gradients.

    ``weights[i, k]`` is the derivative of row ``i``'s quantity in its log-parameter ``k``;
    each slot of the row passes it to the slot's column (a workload not seen in training
    spreads it evenly over the known workloads' columns).
    """
    d, lay = model.design_, model.layout_
    n, P = len(cols), d.n_global
    aG = np.zeros((n, P + 1))
    rows = np.arange(n)
    cmax = lay.local.shape[1]
    aL = np.zeros((n, cmax))
    for m, k in enumerate(d.slot_param):
        w = weights[:, k]
        c = cols[:, m]
        seen = c != UNSEEN
        if d.slot_local[m]:
            g = np.searchsorted(d.block_start, c[seen], side="right") - 1
            aL[rows[seen], c[seen] - d.block_start[g]] += w[seen]
            continue
        np.add.at(aG, (rows[seen], c[seen]), w[seen])
        if d.slot_level[m] < 0 and PARAMETER_NAMES[k] in WORKLOAD_PARAMETERS and (~seen).any():
            wl = np.flatnonzero((d.kind == "wl") & (d.param == k))
            aG[np.ix_(rows[~seen], wl)] += (w[~seen] / len(wl))[:, None]
    return aG[:, :P], aL


def quadratic_form(model, aG: np.ndarray, aL: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``a' Cov a`` per row, for gradients split as by :func:`gradient_rows`."""
    post, lay = model.posterior_, model.layout_
    P = lay.n_global
    b = aG.copy()
    out = np.zeros(len(aG))
    has = (groups >= 0) & (np.abs(aL).sum(axis=1) > 0) if aL.shape[1] else np.zeros(len(aG), bool)
    if has.any() and post.local_inv.shape[1]:
        g = groups[has]
        v = np.einsum("ic,ict->it", aL[has], post.coupling[g])
        ext = np.zeros((int(has.sum()), P + 1))
        np.add.at(ext, (np.repeat(np.arange(len(g)), lay.touched.shape[1]),
                        lay.touched[g].ravel()), v.ravel())
        b[has] -= ext[:, :P]
        out[has] += np.einsum("ic,icd,id->i", aL[has], post.local_inv[g], aL[has])
    out += np.einsum("ip,pq,iq->i", b, post.cov_global, b)
    return np.maximum(out, 0.0)


def parameter_variance(model, cols: np.ndarray, groups: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Variance of each row's log energy from the parameters' posterior (delta method).

    Examples
    --------
    >>> from energylens.models.hierarchical import HierarchicalEnergyModel, form_table
    >>> t, _ = form_table(["Llama-3.1-8B"], ["H100-SXM", "A100-80GB"], rows_per_group=5)
    >>> pi = HierarchicalEnergyModel().fit(t).predict_interval(t)  # uses it
    >>> bool((pi["log_sd"] > 0).all())
    True
    """
    out = np.zeros(len(cols))
    for a in range(0, len(cols), _BLOCK):
        sl = slice(a, a + _BLOCK)
        aG, aL = gradient_rows(model, cols[sl], D[sl])
        out[sl] = quadratic_form(model, aG, aL, groups[sl])
    return out


def new_level_variance(model, labels: pd.DataFrame, D: np.ndarray) -> np.ndarray:
    """Variance added by level values not seen in training: their deviations are unknown,
    drawn from the level's estimated spread. A GPU, precision or source absent from
    training whose spread training could not estimate (fewer than
    :data:`~.pooling.MIN_LEVELS` values, or a level merged away: :data:`FALLBACK_SPREADS`)
    adds its fixed spread instead: ``new_gpu_spread``, ``new_precision_spread``,
    ``new_source_spread`` (sd of log energy). ``D`` holds the derivatives of each row's log
    energy in its link values.

    Examples
    --------
    >>> from energylens.models.hierarchical import HierarchicalEnergyModel, form_table
    >>> t, _ = form_table(["Llama-3.1-8B"], ["H100-SXM", "A100-80GB"], rows_per_group=5)
    >>> m = HierarchicalEnergyModel().fit(t)  # one precision (bf16): no spread between them
    >>> labels = m._labels(t.head(1).assign(precision="fp8"), m.group_columns_)
    >>> float(new_level_variance(m, labels, np.zeros((1, 18)))[0]) == 0.42**2
    True
    """
    d = model.design_
    var = np.zeros(len(labels))
    known: set[str] = set()
    for lv in d.levels:
        if len(lv.values) < MIN_LEVELS:
            continue
        known |= {c for c in FALLBACK_SPREADS if c in lv.columns and set(lv.columns) <= {c, "gpu"}}
        unseen = ~np.isin(level_keys(labels, lv.columns), lv.values)
        if not unseen.any():
            continue
        for name in lv.names:
            t = model.tau_map_[(lv.label, name)]
            var += np.where(unseen, (t * D[:, PARAMETER_NAMES.index(name)]) ** 2, 0.0)
    for col, setting in FALLBACK_SPREADS.items():
        if col in known or col not in labels.columns:
            continue
        values = labels[col].to_numpy(dtype=object)
        if col == "gpu":
            new = ~np.isin(values, model.gpus_)
        else:  # a value the rows do not give ("-") is not a new one
            seen = model.domain_.labels.get(col)
            if seen is None:
                continue
            new = (values != "-") & ~np.isin(values.astype(str), seen)
        var += np.where(new, model._setting(setting) ** 2, 0.0)
    return var


def only_new_model(model, ext) -> np.ndarray:
    """Rows whose model training did not see, on a GPU, precision and source it did: the
    rows the held-out models' scores speak for (they left models out, never a GPU). Read from
    the extrapolation flags ``ext``, which name each unseen label per row."""
    new = np.array(ext.columns.get("model", np.zeros_like(ext.mask)), dtype=bool)
    identity = IDENTITY_COLUMNS | set(model.group_columns_)
    for key, mask in ext.columns.items():
        parts = set(key.split(" x "))
        if "model" not in parts and parts <= identity:
            new &= ~np.asarray(mask, dtype=bool)
    return new


def interval_table(model, X: pd.DataFrame, V: dict, LT: np.ndarray, rows: tuple, ext,
                   level: float) -> pd.DataFrame:
    """The table of :meth:`HierarchicalEnergyModel.predict_interval
    <energylens.models.hierarchical.HierarchicalEnergyModel.predict_interval>` from the rows'
    variables, log-parameters, ``(columns, labels, groups)`` and extrapolation flags; the
    warning of wide intervals points at the caller of ``predict_interval``. A row whose model
    training did not see takes the quantile of the held-out models' scores where the fit
    calibrated them (``calibrate="models"``, :mod:`.calibration`); every other row the
    Student-t quantile on the residual sd's degrees of freedom (``sigma_dof_``)."""
    cols, labels, groups = rows
    logE, D = energy_jacobian(V, theta_from_link(LT, model.upper_), model.terms_)
    D = D * link_slope(LT, model.upper_)  # in the link values, as the posterior is
    var = parameter_variance(model, cols, groups, D) + model.sigma_**2
    var = var + new_level_variance(model, labels, D)
    sd = np.sqrt(var) * (1.0 + distance_outside(domain_variables(X, V), model.domain_))
    dof = getattr(model, "sigma_dof_", np.inf)
    zq = np.full(len(sd), stats.t.ppf(0.5 + level / 2, dof))
    scores = getattr(model, "new_model_scores_", None)
    if scores is not None:  # a model absent from training: the held-out models' quantile
        zq[only_new_model(model, ext)] = new_model_quantile(scores, level, dof)
    f = checked_prediction(np.exp(logE), X, type(model).__name__)
    with np.errstate(over="ignore", invalid="ignore"):
        lower, upper, stderr = f * np.exp(-zq * sd), f * np.exp(zq * sd), f * sd
    wide = flag_wide(lower, upper, type(model).__name__, level, stacklevel=3)
    return pd.DataFrame({"energy_j": f, "lower": lower, "upper": upper, "log_sd": sd,
                         "stderr": stderr, "extrapolated": ext.mask,
                         "extrapolated_by": ext.per_row, "wide": wide}, index=X.index)
