"""Tables and reports of a fitted hierarchical model: population, spreads, groups.

A population value that the data do not inform (its posterior spread is more than half its
prior spread, or its term is switched off) is flagged ``identifiable = False`` with the
reason: it is the prior speaking, not the physics of the table. So is a bounded parameter
(:data:`~.form.UPPER`) that the data push against its physical range (``at_bound``, see
:func:`at_physical_bound`): they do not measure it, the value is the bound's.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
from scipy import sparse

from ...exceptions import ConvergenceWarning, IdentifiabilityWarning
from ..report import poor_fit
from .design import SEP
from .form import (
    PARAMETER_NAMES,
    PARAMETERS,
    UPPER,
    WORKLOAD_PARAMETERS,
    link_slope,
    theta_from_link,
)
from .pooling import FINAL_ITERATIONS, MIN_LEVELS, TAU_FLOOR
from .uncertainty import quadratic_form

__all__ = ["PRIOR_DRIVEN", "BOUND_NEAR", "BOUND_REACH", "at_physical_bound", "population_table",
           "spread_table", "group_table", "compute_group_table",
           "fit_report", "html_report", "fit_warnings"]

#: Posterior over prior variance above which a population value is reported as prior-driven.
PRIOR_DRIVEN = 0.5
#: Share of its bound from which a bounded parameter's estimate counts as near the bound.
BOUND_NEAR = 0.8
#: Share of its bound that the upper end of a near estimate's 90% interval must reach for the
#: estimate to count as at the bound (see :func:`at_physical_bound`).
BOUND_REACH = 0.95
_Z90 = 1.6448536269514722  # one-sided 95% point: the ends of a two-sided 90% interval
_TERM_OF = {"lep": "ep", "cpp": "pipeline", "rho": "drain", "kappa": "drain", "dc": "gemm",
            "tau1": "host", "aa": "attention", "ap": "prefill", "si": "prefill", "ac": "roofline",
            "pic": "roofline"}


def _note(model, name: str, shrink: float, at_bound: bool = False) -> tuple[bool, bool, str]:
    """(fixed, identifiable, note) of a population value."""
    if name == "s":
        return True, False, "held at 1: the energy scale belongs to the levels"
    term = _TERM_OF.get(name)
    if term is not None and not model.terms_.get(term, True):
        return True, False, f"term '{term}' switched off: not used"
    if at_bound:
        return False, False, (f"at its physical bound {model.upper_[name]:g}: the data push it "
                              "beyond its range (another cost, confounded with the few groups "
                              "that inform it), so they do not measure it; the value is the "
                              "bound's, not physics")
    if shrink > PRIOR_DRIVEN:
        return False, False, (f"prior-driven: the data remove only {1 - shrink:.0%} of its prior "
                              "variance")
    return False, True, ""


def fit_warnings(model) -> list[tuple[type[Warning], str]]:
    """What a fit warns of: no convergence, no parameter informed beyond the scales (the
    values are the priors), a poor in-sample fit."""
    out: list[tuple[type[Warning], str]] = []
    if not model.converged_:
        out.append((ConvergenceWarning, f"the penalised fit did not converge in {FINAL_ITERATIONS} "
                                        "iterations; the parameters may be off their optimum."))
    if not population_table(model)["identifiable"].any():
        out.append((IdentifiabilityWarning,
                    f"{model.n_train_} row(s) inform none of the form's parameters beyond the "
                    "scale of each level: every other value is its prior (the catalogue's "
                    "physics), not a measurement; the fit report marks each one prior-driven."))
    return out + poor_fit(model.train_mape_, model._setting("poor_fit_mape"))


def at_physical_bound(link: float, link_sd: float) -> bool:
    """Whether a parameter fitted as the logit ``link`` (sd ``link_sd``) of its share of an
    upper bound is at that bound: its estimate lies in the top fifth of the range (share at
    least :data:`BOUND_NEAR`) and the upper end of its 90% interval, ``link + 1.645 link_sd``,
    reaches :data:`BOUND_REACH` of the bound, so that the data do not keep it off the bound.

    The rule is decided on the logit, where the posterior is normal: a standard error of the
    value (delta method, ``value (1 - value/u) link_sd``) shrinks as the value nears the bound
    and cannot measure the distance to it. A value measured close to but clearly below the
    bound (narrow interval) is not flagged, nor is a mid-range value with a wide interval
    (that one is prior-driven, not pushed against the bound).

    Examples
    --------
    >>> from scipy.special import logit
    >>> at_physical_bound(logit(0.889), 0.86)  # pushed against the bound: 90% up to 0.97
    True
    >>> at_physical_bound(logit(0.6), 1.9), at_physical_bound(logit(0.85), 0.2)
    (False, False)
    """
    return bool(link >= np.log(BOUND_NEAR / (1 - BOUND_NEAR))
                and link + _Z90 * link_sd >= np.log(BOUND_REACH / (1 - BOUND_REACH)))


def _meaning(model, p) -> str:
    """A parameter's meaning, saying so where a model fitted it without its bound (a file of
    version 1 fitted every parameter as its log)."""
    if p.name not in UPPER or p.name in model.upper_:
        return p.meaning
    bound, free = f"bounded by {p.upper:g}", (f"fitted without its bound {p.upper:g}, as its "
                                              "log (a version-1 model file)")
    return p.meaning.replace(bound, free) if bound in p.meaning else f"{p.meaning} ({free})"


def _natural(model, k: int, link: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values of parameter ``k`` from link values, and ``d log value / d link``."""
    LT = np.zeros((len(link), len(PARAMETER_NAMES)))
    LT[:, k] = link
    upper = model.upper_
    return theta_from_link(LT, upper)[:, k], link_slope(LT, upper)[:, k]


def population_table(model) -> pd.DataFrame:
    """One row per population value (``rho[chat]`` style names per workload).

    ``log_sd`` and ``prior_log_sd`` are the posterior and prior sd of the fitted link (the
    log, or for a bounded parameter the logit); ``stderr`` is the value's (delta method);
    ``at_bound`` marks a bounded parameter that the data push against its bound
    (:func:`at_physical_bound`, decided on the logit). It is reporting only: it sets the
    note and ``identifiable`` (hence the fit's warnings and reports), never the predictions
    or their intervals.
    """
    model._check_fitted()
    d, z, diag = model.design_, model.coef_, model.posterior_.diag
    rows, names = [], []
    for j in np.flatnonzero(d.kind != "re"):
        k = int(d.param[j])
        p = PARAMETERS[k]
        log_sd = float(np.sqrt(max(diag[j], 0.0)))
        shrink = float(diag[j] / d.prior_sd[j] ** 2)
        (value, prior), (slope, _) = _natural(model, k, np.array([z[j], d.prior_mean[j]]))
        value, stderr = float(value), float(value * slope * log_sd)
        at_bound = p.name in model.upper_ and at_physical_bound(float(z[j]), log_sd)
        fixed, ident, note = _note(model, p.name, shrink, at_bound)
        names.append(p.name if d.kind[j] == "pop" else f"{p.name}[{d.value[j]}]")
        rows.append({"value": value, "stderr": stderr, "log_sd": log_sd,
                     "prior": float(prior), "prior_log_sd": float(d.prior_sd[j]),
                     "fixed": fixed, "identifiable": ident, "at_bound": bool(at_bound),
                     "note": note, "unit": p.unit, "meaning": _meaning(model, p)})
    return pd.DataFrame(rows, index=pd.Index(names, name="parameter"))


def spread_table(model) -> pd.DataFrame:
    """Spread (sd of the log parameter) between the values of each level."""
    model._check_fitted()
    rows = []
    for lv in model.design_.levels:
        for name in lv.names:
            tau = model.tau_map_[(lv.label, name)]
            estimated = model._setting("pooling") == "partial" and len(lv.values) >= MIN_LEVELS
            rows.append({"level": lv.label, "parameter": name, "tau": tau,
                         "n_values": len(lv.values), "estimated": estimated,
                         "pooled": bool(estimated and tau <= TAU_FLOOR * 1.0001)})
    out = pd.DataFrame(rows, columns=["level", "parameter", "tau", "n_values", "estimated", "pooled"])
    return out.set_index(["level", "parameter"])


def _column_spreads(model) -> np.ndarray:
    """Prior spread of every column's deviation (0 for population and workload columns)."""
    d = model.design_
    tau = np.zeros(d.n_columns)
    for lv in d.levels:
        for ni, name in enumerate(lv.names):
            tau[lv.col[:, ni]] = model.tau_map_[(lv.label, name)]
    return tau


def _group_gradient(model, A) -> tuple[np.ndarray, np.ndarray]:
    """Global and local parts of the rows of a (groups x columns) sparse matrix."""
    P, lay = model.design_.n_global, model.layout_
    aG = A[:, :P].toarray()
    aL = np.zeros(lay.local.shape)
    ok = lay.valid
    if ok.any():
        aL[ok] = np.asarray(A[np.nonzero(ok)[0], lay.local[ok]]).ravel()
    return aG, aL


def compute_group_table(model, row_cols: np.ndarray, row_group: np.ndarray) -> pd.DataFrame:
    """Each group's parameters (geometric mean over its rows), their log standard errors and
    the shrinkage of the group's own deviation (its group level and the levels nested in it,
    given the population and the levels it shares with other groups): posterior over prior
    variance, 1 = pooled (the group's rows say nothing), 0 = fitted on its own rows.

    Examples
    --------
    >>> from energylens.models.hierarchical import HierarchicalEnergyModel, form_table
    >>> t, _ = form_table(["Llama-3.1-8B"], ["H100-SXM", "A100-80GB"], rows_per_group=5)
    >>> HierarchicalEnergyModel().fit(t).groups_["n_rows"].tolist()
    [5, 5]
    """
    d, z = model.design_, model.coef_
    G, C = len(d.groups), d.n_columns
    n_g = np.bincount(row_group, minlength=G).astype(float)
    keys = [g.split(SEP) for g in d.groups]
    index = (pd.MultiIndex.from_tuples([tuple(k) for k in keys], names=model.group_columns_)
             if len(model.group_columns_) > 1 else pd.Index([k[0] for k in keys],
                                                             name=model.group_columns_[0]))
    out = pd.DataFrame({"n_rows": n_g.astype(int)}, index=index)
    tau = _column_spreads(model)
    lay = model.layout_
    tau_local = np.where(lay.valid, tau[np.maximum(lay.local, 0)], 0.0)
    groups = np.arange(G)
    shrink = {}
    for k, name in enumerate(PARAMETER_NAMES):
        if name in WORKLOAD_PARAMETERS:
            continue
        slots = np.flatnonzero(d.slot_param == k)
        r = np.repeat(row_group, len(slots))
        c = row_cols[:, slots].ravel()
        A = sparse.coo_matrix((1.0 / n_g[r], (r, c)), shape=(G, C)).tocsr()
        value, slope = _natural(model, k, A @ z)  # slope 1 but for a bounded parameter
        out[name] = value
        out[f"{name}_log_sd"] = slope * np.sqrt(quadratic_form(model, *_group_gradient(model, A),
                                                               groups))
        aL = _group_gradient(model, A)[1]
        prior = np.einsum("gc,gc->g", aL**2, tau_local**2)
        if model.posterior_.local_inv.shape[1] and np.any(prior > 0):
            cond = np.einsum("gc,gcd,gd->g", aL, model.posterior_.local_inv, aL)
            shrink[f"{name}_shrink"] = np.where(prior > 0, cond / np.where(prior > 0, prior, 1), np.nan)
    for key, v in shrink.items():
        out[key] = v
    return out


def group_table(model) -> pd.DataFrame:
    model._check_fitted()
    return model._groups_table.copy()


def _table_rows(model) -> str:
    """The training table's rows, and the observations fitted where a row's prefill and
    decode energies count apart (each such row is two observations)."""
    rows = model.n_train_ - model.phases_
    if not model.phases_:
        return f"{rows}"
    return f"{rows} ({model.n_train_} observations: prefill and decode of {model.phases_} rows apart)"


def _summary(model) -> list[str]:
    d = model.design_
    return [f"HierarchicalEnergyModel(pooling={model._setting('pooling')!r}, structure={model.structure_!r})",
            f"  rows {_table_rows(model)}, groups {len(d.groups)} (by {', '.join(model.group_columns_)}), "
            f"unknowns {d.n_columns} ({d.n_global} global)",
            f"  residual sd of log energy {model.sigma_:.4f}{_dof_text(model)}, in-sample MAPE "
            f"{model.train_mape_:.2f}%, "
            f"converged {model.converged_}, fit {model.fit_time_s_:.2f} s",
            f"  formula: {model.formula}"] + _calibration_line(model) + [
            f"  warning ({category.__name__}): {message}" for category, message in fit_warnings(model)]


def _dof_text(model) -> str:
    """The residual sd's degrees of freedom, which set the intervals' Student-t quantile."""
    dof = getattr(model, "sigma_dof_", np.inf)
    return f" ({dof:.1f} degrees of freedom)" if np.isfinite(dof) else ""


def _calibration_line(model) -> list[str]:
    scores = getattr(model, "new_model_scores_", None)
    if scores is None:
        return []
    from .calibration import new_model_quantile

    q50, q90 = new_model_quantile(scores, 0.5), new_model_quantile(scores, 0.9)
    return [f"  intervals of a model absent from training: calibrated on {len(scores)} rows of "
            f"held-out models (|log error| / sd quantiles: 50% {q50:.2f}, 90% {q90:.2f}; "
            "normal 0.67, 1.64)"]


def fit_report(model, max_groups: int = 30) -> str:
    """Population values, spreads between level values, and each group's shrinkage."""
    model._check_fitted()
    P = population_table(model)
    lines = _summary(model) + ["", "[[Population]] (value, standard error; prior-driven values "
                                   "are the prior, not the data)"]
    for name, r in P.iterrows():
        flag = f"  ({r['note']})" if r["note"] else ""
        lines.append(f"  {name:<14} {r['value']:>11.4g} +/- {r['stderr']:<10.3g} {r['unit']:<10}{flag}")
    T = spread_table(model)
    lines += ["", "[[Spread between level values]] (sd of the log parameter; 'fixed' where a level "
                  f"has fewer than {MIN_LEVELS} values)"]
    for (lv, name), r in T.iterrows():
        how = "estimated" if r["estimated"] else "fixed"
        lines.append(f"  {lv:<40} {name:<6} {r['tau']:.3f}  ({how}, {r['n_values']} values)")
    G = model._groups_table
    shrink = [c for c in G.columns if c.endswith("_shrink")]
    lines += ["", f"[[Groups]] (rows, scale s, shrinkage of the group deviations: 1 = pooled, 0 = own "
                  f"rows; first {min(max_groups, len(G))} of {len(G)})"]
    for g, r in G.head(max_groups).iterrows():
        sh = ", ".join(f"{c[:-7]} {r[c]:.2f}" for c in shrink)
        name = " | ".join(map(str, g)) if isinstance(g, tuple) else str(g)
        lines.append(f"  {name:<60} {int(r['n_rows']):>4}  s {r['s']:.3f}  {sh}")
    return "\n".join(lines)


def _table_html(df: pd.DataFrame, grey=None) -> str:
    names = [n for n in df.index.names if n] or [""]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [" | ".join(names), *df.columns])
    body = []
    for i, (idx, r) in enumerate(df.iterrows()):
        style = " style='color:#999'" if grey is not None and grey[i] else ""
        label = " | ".join(map(str, idx)) if isinstance(idx, tuple) else str(idx)
        cells = [html.escape(label)] + [
            f"{v:.4g}" if isinstance(v, (float, np.floating)) else html.escape(str(v)) for v in r]
        body.append(f"<tr{style}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_report(model) -> str:
    """The report as HTML tables (prior-driven population values greyed out)."""
    if not hasattr(model, "coef_"):
        return f"<pre>{html.escape(repr(model))} (not fitted)</pre>"
    P = population_table(model)
    T = spread_table(model).reset_index()
    T.index = pd.Index(T.pop("level"), name="level")
    G = model._groups_table.head(50)
    shrink = [c for c in G.columns if c.endswith("_shrink")]
    head = "".join(f"<p>{html.escape(line.strip())}</p>" for line in _summary(model))
    return (head + "<h4>Population</h4>" + _table_html(
        P[["value", "stderr", "unit", "note", "meaning"]], grey=~P["identifiable"].to_numpy())
        + "<h4>Spread between level values</h4>" + _table_html(T)
        + "<h4>Groups</h4>" + _table_html(G[["n_rows", "s", *shrink]]))
