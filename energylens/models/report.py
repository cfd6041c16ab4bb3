"""Reports of a fitted closed form: the parameter table, text (lmfit-style) and HTML.

A parameter the data cannot see is reported as fixed with the reason, never as physics; a
standard error larger than the value itself (an interval spanning orders of magnitude) is
flagged as undetermined rather than printed as if it meant something.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from ..core.metrics import mape
from ..core.variables import VARIABLE_COLUMNS
from ..exceptions import (
    ConvergenceWarning,
    EnergyLensWarning,
    IdentifiabilityWarning,
    PoorFitWarning,
)
from .design import SETTINGS

__all__ = ["params_table", "correlation_table", "fit_stats", "fit_report", "html_report",
           "fit_warnings", "unmodelled_settings"]

#: Relative standard error above which a parameter is reported as undetermined.
UNDETERMINED_REL_SE = 1.0


def params_table(model) -> pd.DataFrame:
    """One row per parameter: value, standard error, bounds, unit, meaning and flags."""
    model._check_fitted()
    st = model._state_
    specs = model._param_specs()
    se = np.full(len(specs), np.nan)
    if st.free.any():
        se[st.free] = np.sqrt(np.maximum(np.diag(st.cov), 0))
    fixed_by_user = set(model._setting("fixed") or {})
    rows = []
    for i, p in enumerate(specs):
        value = float(model.coef_[i])
        rel = float(se[i] / abs(value)) if value != 0 else np.nan
        free = bool(st.free[i])
        ident = p.name not in st.not_identifiable
        bound = p.name in model.at_bound_
        note = st.not_identifiable.get(p.name, "fixed by the user" if p.name in fixed_by_user else "")
        if free and np.isfinite(rel) and rel > UNDETERMINED_REL_SE and not bound:
            note = f"undetermined: standard error {rel:.0%} of the value"
        rows.append({
            "value": value, "stderr": float(se[i]), "rel_stderr": rel,
            "lower": float(model._lo_[i]), "upper": float(model._hi_[i]),
            "unit": p.unit, "meaning": p.meaning, "fixed": not free, "at_bound": bound,
            "identifiable": ident,
            "determined": free and not bound and bool(np.isfinite(rel) and rel <= UNDETERMINED_REL_SE),
            "note": note,
        })
    return pd.DataFrame(rows, index=pd.Index([p.name for p in specs], name="parameter"))


def correlation_table(model) -> pd.DataFrame:
    """Correlation matrix of the free parameters."""
    model._check_fitted()
    st = model._state_
    names = [p.name for p, f in zip(model._param_specs(), st.free) if f]
    d = np.sqrt(np.maximum(np.diag(st.cov), 1e-300))
    return pd.DataFrame(st.cov / np.outer(d, d), index=names, columns=names)


def fit_stats(model) -> dict:
    """Summary numbers of a fit (plain Python values)."""
    model._check_fitted()
    st = model._state_
    k = int(st.free.sum())
    fit_term = st.n * np.log(max(2 * st.cost, 1e-300) / st.n)  # as aic_ and bic_, once
    return {
        "n": st.n, "n_params": len(model.coef_), "n_free": k, "rank": st.rank,
        "converged": st.success, "nfev": st.nfev, "loss": model._setting("loss"), "sigma": st.sigma,
        "mape_pct": st.mape_pct, "aic": float(fit_term + 2.0 * k),
        "bic": float(fit_term + np.log(max(st.n, 1)) * k), "fit_time_s": st.fit_time_s,
        "batch_rule": st.batch_rule, "batch_k": st.batch_k,
        "not_identifiable": sorted(st.not_identifiable), "at_bound": list(model.at_bound_),
    }


def _warnings(model) -> list[str]:
    st = model._state_
    warn = []
    if not st.success:
        warn.append("the optimiser did not converge")
    if model.at_bound_:
        warn.append(f"at bound: {', '.join(model.at_bound_)}")
    if st.not_identifiable:
        warn.append(f"not identifiable: {', '.join(st.not_identifiable)}")
    if st.dof <= 0:
        warn.append("no degrees of freedom left: standard errors undefined")
    if st.batch_k_at_bound:
        warn.append("batch constant k at the edge of its search range")
    limit = model._setting("poor_fit_mape")
    if st.mape_pct > limit:
        warn.append(f"POOR FIT (in-sample MAPE {st.mape_pct:.1f}% > {limit:g}%)")
    bad = negative_rows(model)
    if bad:
        warn.append(f"NEGATIVE ENERGY on {bad[0]} of {bad[1]} training rows")
    return warn


def _header(model) -> list[str]:
    st = model._state_
    n_par = len(model.coef_)
    lines = [f"[[{type(model).__name__} fit]]"]
    if model.formula:
        lines.append(f"    formula: {model.formula}")
    lines.append(f"    loss = {model._setting('loss')}, n = {st.n}, parameters = {n_par} "
                 f"(free {model.n_free_params_}, fixed {n_par - model.n_free_params_})")
    lines.append(f"    converged: {'yes' if st.success else 'NO'} (nfev {st.nfev}); "
                 f"Jacobian rank {st.rank} of {model.n_free_params_}")
    lines.append(f"    residual sd ({model._setting('loss')}) = {st.sigma:.4g}; in-sample MAPE = "
                 f"{st.mape_pct:.2f}%; AIC = {model.aic_:.2f}; BIC = {model.bic_:.2f}")
    if model._uses_batch():
        btxt = f"    effective batch: {st.batch_rule}"
        if st.batch_k is not None:
            se = f" +/- {st.batch_k_stderr:.3g}" if st.batch_k_stderr else ""
            btxt += f" (k = {st.batch_k:.4g}{se})"
        lines.append(btxt)
    if st.domain.filled:
        cols = ", ".join(f"{VARIABLE_COLUMNS.get(v, v)} = {x:g}" for v, x in st.domain.filled.items())
        lines.append(f"    absent from the training table, taken at the schema's default: {cols}")
    warn = _warnings(model)
    if warn:
        lines.append("    WARNING: " + "; ".join(warn))
    return lines


def fit_report(model, *, min_correlation: float = 0.5) -> str:
    """Statistics, parameters with errors (and why any is fixed), strong correlations."""
    model._check_fitted()
    P = params_table(model)
    lines = _header(model) + ["[[Parameters]]"]
    w = max(len(n) for n in P.index) if len(P) else 1
    for name, r in P.iterrows():
        if r["fixed"]:
            txt = f"    {name:<{w}} = {r['value']: .6g} ({r['note'] or 'fixed'})"
        else:
            rel = (f" ({100 * r['rel_stderr']:.1f}%)"
                   if np.isfinite(r["rel_stderr"]) and r["determined"] else "")
            txt = f"    {name:<{w}} = {r['value']: .6g} +/- {r['stderr']:.3g}{rel}"
            if r["at_bound"]:
                txt += " AT BOUND"
            elif r["note"]:
                txt += f" ({r['note'].upper()})"
        lines.append(txt + f"  [{r['unit']}]  {r['meaning']}")
    if model.n_free_params_ > 1:
        C = correlation_table(model)
        names = list(C.index)
        pairs = [(abs(C.iat[i, j]), names[i], names[j], C.iat[i, j])
                 for i in range(len(names)) for j in range(i + 1, len(names))
                 if abs(C.iat[i, j]) >= min_correlation]
        if pairs:
            lines.append(f"[[Correlations]] (|C| >= {min_correlation})")
            lines += [f"    C({a}, {b}) = {c:+.3f}" for _, a, b, c in sorted(pairs, reverse=True)]
    return "\n".join(lines)


def html_report(model) -> str:
    """The parameter table as HTML (for notebooks); not-determined rows are greyed out."""
    if not hasattr(model, "coef_"):
        return f"<pre>{html.escape(repr(model))} (not fitted)</pre>"
    st = model._state_
    P = params_table(model)
    head = (f"<p><b>{html.escape(type(model).__name__)}</b> &mdash; n = {st.n}, loss = "
            f"{html.escape(model._setting('loss'))}, converged = {st.success}, in-sample MAPE = "
            f"{st.mape_pct:.2f}%, AIC = {model.aic_:.2f}, BIC = {model.bic_:.2f}</p>")
    if model.formula:
        head += f"<p><code>{html.escape(model.formula)}</code></p>"
    warn = _warnings(model)
    if warn:
        head += f"<p style='color:#8a4b00'>WARNING: {html.escape('; '.join(warn))}</p>"
    rows = []
    for name, r in P.iterrows():
        err = "fixed" if r["fixed"] else f"{r['stderr']:.3g}"
        flag = html.escape(r["note"]) + (" at bound" if r["at_bound"] else "")
        style = "" if (r["determined"] or r["fixed"] and not r["note"]) else " style='color:#999'"
        rows.append(f"<tr{style}><td>{html.escape(name)}</td><td>{r['value']:.6g}</td><td>{err}</td>"
                    f"<td>{html.escape(r['unit'])}</td><td>{html.escape(r['meaning'])}</td>"
                    f"<td>{flag}</td></tr>")
    return (head + "<table><thead><tr><th>parameter</th><th>value</th><th>std. error</th>"
            "<th>unit</th><th>meaning</th><th>note</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def fit_warnings(model) -> list[tuple[type, str]]:
    """The warnings a fit raises: (category, message) pairs."""
    st, out = model._state_, []
    if not st.success:
        out.append((ConvergenceWarning, f"the fit did not converge ({st.message}); the "
                                        "parameters may be unreliable."))
    if model.at_bound_:
        out.append((ConvergenceWarning, f"parameter(s) {model.at_bound_} ended at a bound; "
                                        "their standard errors are not meaningful (see fit_report())."))
    if st.batch_k_at_bound:
        out.append((ConvergenceWarning, f"the saturating batch constant k = {st.batch_k:.4g} sits "
                                        f"at the edge of its search range [0.01, 1000]: "
                                        "the data do not determine it."))
    if st.not_identifiable:
        notes = "; ".join(f"{k}: {v.split(': ', 1)[-1]}" for k, v in st.not_identifiable.items())
        out.append((IdentifiabilityWarning, f"parameter(s) {sorted(st.not_identifiable)} fixed at "
                                            f"neutral values because they are not identifiable "
                                            f"from this data ({notes})."))
    if st.free.any() and st.rank < st.free.sum():
        out.append((IdentifiabilityWarning, f"the Jacobian at the optimum has rank {st.rank} of "
                                            f"{int(st.free.sum())} free parameters: some combinations "
                                            "are not determined by the data (see correlation_)."))
    if st.dof <= 0:
        out.append((IdentifiabilityWarning, f"{st.n} rows for {int(st.free.sum())} free parameters: "
                                            "no degrees of freedom are left to estimate the scatter, "
                                            "so standard errors and intervals are undefined (NaN)."))
    out += unmodelled_settings(model)
    out += poor_fit(st.mape_pct, model._setting("poor_fit_mape"))
    out += negative_on_training(model)
    return out


def in_sample(model, sol, V: dict, data) -> tuple[float, int]:
    """A fit's in-sample MAPE (percent), and how many of its training rows the fitted form
    gives a negative or non-finite energy (which ``predict`` refuses); only a form with a
    parameter allowed below zero can, and only such a form is evaluated again for it."""
    f = None
    if model.loss in ("relative", "robust") and data.w is None:
        r = sol.residuals  # f / y - 1
        mape_pct = 100.0 * float(np.abs(r).sum()) / len(r)
    else:
        f = model._kernel(V, sol.theta)
        mape_pct = mape(data.y, f)
    if not np.any(model._lo_ < 0):
        return mape_pct, 0
    if f is None:
        with np.errstate(all="ignore"):
            f = model._kernel(V, sol.theta)
    return mape_pct, int(np.sum(~(np.isfinite(f) & (f >= 0))))


def negative_rows(model) -> tuple[int, int] | None:
    """(rows, of how many) of :func:`in_sample`'s negative count; None where there are none."""
    st = model._state_
    bad = getattr(st, "n_negative", 0)
    return (bad, st.n) if bad else None


def negative_on_training(model) -> list[tuple[type, str]]:
    """The warning of :func:`negative_rows`, if any."""
    bad = negative_rows(model)
    if bad is None:
        return []
    return [(PoorFitWarning, f"the fitted form gives a negative or non-finite energy for "
                             f"{bad[0]} of its {bad[1]} training rows, which predict refuses: "
                             "this form does not describe the table (a form that stays positive, "
                             "such as EnergyLensModel or LogLinearEnergyModel, does).")]


def unmodelled_settings(model) -> list[tuple[type, str]]:
    """The warning of training rows that differ in a layout setting the form has no term for
    (data-parallel replicas, expert parallelism): their effect is averaged away."""
    ranges, used = model._state_.domain.ranges, model._model_variables()
    mixed = [f"{VARIABLE_COLUMNS[v]} ({lo:g} to {hi:g})" for v in SETTINGS
             if v not in used and v in ranges for lo, hi in [ranges[v]] if hi > lo]
    if not mixed:
        return []
    return [(EnergyLensWarning,
             f"the rows differ in {', '.join(mixed)}, which this form has no term for: rows "
             "that differ only there are fitted as one configuration, and predictions do not "
             "change with it. Fit one model per value (GroupedModel(by=[..., 'dp'])) or use "
             "HierarchicalEnergyModel, which has replica and expert terms.")]


def poor_fit(mape_pct: float, limit: float) -> list[tuple[type, str]]:
    """The poor-fit warning of an in-sample MAPE above ``limit`` (percent), if it is."""
    if not mape_pct > limit:
        return []
    return [(PoorFitWarning, f"poor fit, in-sample MAPE {mape_pct:.1f}% exceeds {limit:g}%: this "
                             "closed form does not describe the data well.")]
