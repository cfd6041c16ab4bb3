"""The model behind the report's headline and parameter table, and how it is shown.

:func:`main_model` is the one place that says which estimator the report fits (today one
:class:`~energylens.EnergyLensModel` per model and GPU); :func:`parameter_view` the one
place that says which parameters it shows (the best-identified group of a grouped model,
or the population values of a model that has them). Passing another estimator to
:func:`energylens.report.analyse` switches both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["main_model", "choose_main", "is_hierarchical", "group_columns", "fit_table",
           "ParameterView", "parameter_view", "fitted_groups_mask"]


def group_columns(df: pd.DataFrame) -> list[str]:
    """The columns the closed forms are fitted per (model and GPU, those present)."""
    return [c for c in ("model", "gpu") if c in df.columns]


def is_hierarchical(model) -> bool:
    """Whether ``model`` is the hierarchical model (one form for the whole table, its groups
    partially pooled), which the report shows by population values and shrinkage."""
    from ..models import HierarchicalEnergyModel

    return isinstance(model, HierarchicalEnergyModel)


def main_model(df: pd.DataFrame):
    """The unfitted estimator of the headline and the parameter table for ``df``.

    The hierarchical model (one form for the whole table, groups partially pooled) where the
    catalogue knows every model and GPU of the table and it has several groups; otherwise
    one twelve-parameter model per model and GPU.

    Examples
    --------
    >>> import pandas as pd
    >>> type(main_model(pd.DataFrame({"model": ["m"], "gpu": ["g"]}))).__name__
    'GroupedModel'
    >>> two = pd.DataFrame({"model": ["Llama-3.1-8B", "Llama-3.1-8B"], "gpu": ["H100-SXM", "L4"]})
    >>> type(main_model(two)).__name__
    'HierarchicalEnergyModel'
    """
    from ..core.catalogue import resolve_gpu, resolve_model
    from ..exceptions import CatalogueError
    from ..models import EnergyLensModel, GroupedModel, HierarchicalEnergyModel

    by = group_columns(df)
    if by == ["model", "gpu"] and len(df[by].drop_duplicates()) > 1:
        try:
            for name in pd.unique(df["model"].astype(str)):
                resolve_model(name)
            for name in pd.unique(df["gpu"].astype(str)):
                resolve_gpu(name)
        except CatalogueError:
            pass
        else:
            return HierarchicalEnergyModel()
    return GroupedModel(EnergyLensModel(), by=by)


def choose_main(df: pd.DataFrame, comp) -> tuple[object, str, str]:
    """The unfitted main model, its name in the comparison and why it was chosen (a
    sentence): of the hierarchical model and the per-group EnergyLens model, the one with
    the lower held-out MAPE at the largest training size of the comparison;
    :func:`main_model` where the comparison did not run or neither model fitted."""
    from ..models import EnergyLensModel, GroupedModel, HierarchicalEnergyModel

    candidates = {"Hierarchical": HierarchicalEnergyModel,
                  "EnergyLens": lambda: GroupedModel(EnergyLensModel(), by=group_columns(df))}
    summary = getattr(comp, "summary", None)
    if isinstance(summary, pd.DataFrame) and "mape" in summary.columns:
        ok = summary[summary["model"].isin(list(candidates)) & summary["mape"].notna()]
        if len(ok):
            n = ok["n_train"].max()
            at = ok[ok["n_train"] == n].set_index("model")["mape"]
            name = str(at.idxmin())
            others = ", ".join(f"{m} {v:.1f}%" for m, v in at.items() if m != name)
            why = (f"Chosen for the lower held-out MAPE in the comparison at {n} training rows "
                   f"per group: {at[name]:.1f}%" + (f" against {others}" if others else ""))
            return candidates[name](), name, why
    est = main_model(df)
    name = "Hierarchical" if isinstance(est, HierarchicalEnergyModel) else "EnergyLens"
    return est, name, ("Chosen as the default for this table: the comparison could not rank "
                       "the closed forms on it")


def fit_table(model) -> pd.DataFrame:
    """One row per fitted unit (group) with its statistics and, where it failed, why."""
    if is_hierarchical(model):  # groups and shrinkage
        g = model.groups_.reset_index()
        shrink = [c for c in g.columns if c.endswith("_shrink")]
        out = g[[*model.group_columns_, "n_rows"]].rename(columns={"n_rows": "rows"})
        if shrink:
            out["shrinkage (mean)"] = g[shrink].mean(axis=1)
        return out
    if hasattr(model, "groups_"):
        stats = model.groups_.copy()
        by = list(getattr(model, "by_", []))
        keep = [c for c in [*by, "n_rows", "fitted", "mape_pct", "n_free", "rank", "batch_rule",
                            "aic", "error"] if c in stats.columns]
        out = stats[keep].rename(columns={"mape_pct": "in-sample MAPE (%)", "n_free": "free parameters",
                                          "rank": "identified", "error": "why not fitted",
                                          "n_rows": "rows"})
        if "why not fitted" in out.columns:
            out["why not fitted"] = out["why not fitted"].fillna("").astype(str)
        return out
    stats = getattr(model, "fit_stats_", {}) or {}
    return pd.DataFrame([{k: v for k, v in stats.items() if np.isscalar(v)}])


def fitted_groups_mask(model, X: pd.DataFrame) -> np.ndarray:
    """Rows of ``X`` the model can predict (a grouped model without a fallback predicts only
    the groups it fitted)."""
    models = getattr(model, "models_", None)
    if models is None or getattr(model, "fallback_", None) is not None:
        return np.ones(len(X), dtype=bool)
    by = list(model.by_)
    if not by:
        return np.ones(len(X), dtype=bool)
    from ..models.grouped import group_key

    keys = X[by].astype(object).itertuples(index=False, name=None)
    return np.fromiter((group_key(k) in models for k in keys), dtype=bool, count=len(X))


@dataclass
class ParameterView:
    """The parameters the report shows.

    Attributes
    ----------
    title : str
        What they belong to (``"Llama-3.1-8B / H100-SXM (132 rows)"``).
    table : DataFrame
        ``parameter, value, stderr, unit, meaning, note, determined``; ``determined`` is
        False where the data cannot identify the parameter (greyed out in the report).
    report : str
        The fit report as text.
    why : str
        Why this set was chosen.
    key : tuple
        The group key (empty for an ungrouped model).
    """

    title: str
    table: pd.DataFrame
    report: str = ""
    why: str = ""
    key: tuple = field(default_factory=tuple)
    model: object = None


def _score(model) -> tuple:
    """Best-identified first: most determined parameters, then smallest median relative
    standard error among them, then most rows."""
    P = model.params_
    det = P["determined"].astype(bool)
    rel = P.loc[det, "rel_stderr"].abs()
    n = (getattr(model, "fit_stats_", {}) or {}).get("n", 0)
    return int(det.sum()), -float(rel.median()) if len(rel) else -np.inf, int(n)


def _shown(P: pd.DataFrame) -> pd.DataFrame:
    out = P.reset_index()
    notes = []
    for _, r in out.iterrows():
        parts = [str(r["note"])] if r["note"] else []
        if r["at_bound"] and "bound" not in str(r["note"]):
            parts.append("at its bound")
        if not parts and not r["determined"]:
            parts.append("not determined by the data")
        notes.append("; ".join(parts))
    out["note"] = notes
    return out[["parameter", "value", "stderr", "unit", "meaning", "note", "determined"]]


def parameter_view(model) -> ParameterView:
    """The parameters to show for a fitted model: population values where the model has
    them, the best-identified group of a grouped model, or the model's own."""
    if is_hierarchical(model):
        P = model.params_
        shown = P.reset_index()[["parameter", "value", "stderr", "unit", "meaning", "note"]].copy()
        shown["determined"] = (P["identifiable"].to_numpy(dtype=bool)
                               & ~P["fixed"].to_numpy(dtype=bool))
        shown["note"] = shown["note"].fillna("").astype(str)
        return ParameterView("the whole table (population values)", shown, model.fit_report(),
                             why="the hierarchical model's population values (each group's "
                                 "parameters deviate from them; see the group table)",
                             model=model)
    models = getattr(model, "models_", None)
    if models:
        scored = [(k, m) for k, m in models.items() if hasattr(m, "params_")]
        if scored:
            key, best = max(scored, key=lambda km: _score(km[1]))
            n = (best.fit_stats_ or {}).get("n", 0)
            det = int(best.params_["determined"].sum())
            return ParameterView(
                f"{' / '.join(map(str, key))} ({n} rows)", _shown(best.params_),
                best.fit_report(),
                why=f"the best-identified of {len(models)} groups: {det} of "
                    f"{len(best.params_)} parameters determined by its data",
                key=tuple(key), model=best)
    if hasattr(model, "params_"):
        return ParameterView("the fitted model", _shown(model.params_), model.fit_report(),
                             why="one model over the whole table", model=model)
    return ParameterView("no parameters", pd.DataFrame(),
                         why=f"{type(model).__name__} has no named parameters")
