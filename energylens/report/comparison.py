"""The report's comparison against baselines, and the held-out accuracy of the headline.

The models are the shared list of :func:`energylens.evaluation.comparison_models`, drawn
per group as ``energylens compare`` draws them. A failed fit keeps its reason. Top-1 and
regret are taken over the report's scenarios (:func:`energylens.report.choices.scenario_columns`,
the rows that serve the same requests), the scenarios every other section uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["Comparison", "compare", "with_main", "summarise", "training_sizes", "DEFAULT_SEEDS",
           "ENSEMBLES", "RULE_OF_THUMB", "CEILING"]

#: Seeds of the comparison by default, and with ``quick``.
DEFAULT_SEEDS = {False: 3, True: 2}
#: The black-box baselines the headline compares against.
ENSEMBLES = ("RandomForest", "HistGradientBoosting")
#: The two reference lines the headline always shows beside the model
#: (:mod:`energylens.evaluation.reference`): the rule of thumb, fitted on nothing, and the
#: 2%-noise ceiling.
RULE_OF_THUMB, CEILING = "RuleOfThumb", "NoiseCeiling2%"
#: The metrics the headline reads, with the line each one goes to.
_HEADLINE_METRICS = ("mape", "top1", "regret")


@dataclass
class Comparison:
    """Results of the comparison.

    Attributes
    ----------
    long : DataFrame
        Every ``(model, n_train, seed, metric, value, error)`` row.
    summary : DataFrame
        Mean per model and size, with ``failure_reason``.
    seeds, n_train : int, list of int
    accuracy : dict
        Held-out MAPE of the main model and of the best ensemble at the largest size, and
        ``lines``: ``(role, model, {metric: value})`` of the main model, the best ensemble,
        the rule of thumb and the 2%-noise ceiling at that size (MAPE, Top-1 and regret,
        those measured).
    """

    long: pd.DataFrame
    summary: pd.DataFrame
    seeds: int
    n_train: list[int]
    accuracy: dict = field(default_factory=dict)


def training_sizes(df: pd.DataFrame, by: list[str], quick: bool) -> list[int]:
    """Rows per group to train on: 10, 20 (and 50) where groups are large enough to test
    on the rest; the smallest size is always kept."""
    sizes = (10, 20) if quick else (10, 20, 50)
    largest = int(df.groupby(by).size().max()) if by else len(df)
    keep = [n for n in sizes if n <= largest - 2]
    return keep or [max(1, min(sizes[0], largest - 2))]


def summarise(long: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric per model and training size, with ``failure_reason``: the first
    reason of any failed fit (empty where none failed). Models keep their order."""
    keys = ["model", "n_train"]
    table = long.groupby([*keys, "metric"])["value"].mean().unstack("metric").reset_index()
    failed = long[(long["metric"] == "fit_failed") & (long["value"] > 0)]
    reasons = failed.groupby(keys)["error"].agg(lambda s: next((e for e in s if e), "unknown"))
    table["failure_reason"] = [reasons.get((m, n), "") for m, n in
                               zip(table["model"], table["n_train"])]
    order = {name: i for i, name in enumerate(pd.unique(long["model"]))}
    return table.sort_values(["model", "n_train"], key=lambda s: s.map(order) if s.name == "model"
                             else s).reset_index(drop=True)


def _metrics(row: pd.Series) -> dict:
    """The headline's metrics of one summary row, those measured."""
    return {m: float(row[m]) for m in _HEADLINE_METRICS if m in row.index and pd.notna(row[m])}


def _accuracy(summary: pd.DataFrame, main: str) -> dict:
    """The headline's accuracy: the main model's, the best ensemble's and the two reference
    lines' (:data:`RULE_OF_THUMB`, :data:`CEILING`) at the main model's largest training
    size."""
    if "mape" not in summary.columns:
        return {}
    ok = summary[summary["mape"].notna()]
    mine = ok[ok["model"] == main]
    if mine.empty:
        return {"main": main, "reason": "the main model failed on every draw: "
                + next((r for r in summary.loc[summary["model"] == main, "failure_reason"] if r),
                       "no result")}
    n = int(mine["n_train"].max())
    at = ok[ok["n_train"] == n]
    ens = at[at["model"].isin(ENSEMBLES)]
    row = mine.loc[mine["n_train"] == n].iloc[0]
    out = {"main": main, "n_train": n, "mape": float(row["mape"]),
           "lines": [("the model", main, _metrics(row))]}
    if "top1" in at.columns and pd.notna(row["top1"]):
        out["top1"] = float(row["top1"])
    if len(ens):
        best = ens.loc[ens["mape"].idxmin()]
        out.update({"ensemble": str(best["model"]), "ensemble_mape": float(best["mape"])})
        out["lines"].append(("best ensemble", out["ensemble"], _metrics(best)))
    # The rule of thumb predicts no joules (no MAPE): read it from every row at this size.
    refs = summary[summary["n_train"] == n].set_index("model")
    for role, name in (("rule of thumb", RULE_OF_THUMB), ("noise ceiling", CEILING)):
        if name in refs.index:
            out["lines"].append((role, name, _metrics(refs.loc[name])))
    return out


def with_main(comp, main: str):
    """The comparison with its headline accuracy read for the model named ``main``."""
    if not isinstance(comp, Comparison):
        return comp
    return Comparison(comp.long, comp.summary, comp.seeds, comp.n_train,
                      _accuracy(comp.summary, main))


def compare(df: pd.DataFrame, by: list[str], *, seeds: int, quick: bool, source: str,
            n_jobs: int | None = None, show_progress: bool | None = None,
            main: str = "EnergyLens") -> Comparison | str:
    """Run the comparison; a string says why it could not run."""
    from ..evaluation import comparison_models, sample_efficiency
    from .choices import scenario_columns

    n_train = training_sizes(df, by, quick)
    data = df.reset_index(drop=True)
    long = sample_efficiency(comparison_models(by, quick=quick), data, n_train=n_train,
                             seeds=seeds, group=by or None, scenario=scenario_columns(data),
                             dataset=source, errors=True, n_jobs=n_jobs,
                             show_progress=show_progress)
    if long.empty:
        return (f"the table is too small to hold rows out: no group keeps two rows to test "
                f"after training on {n_train[0]}")
    summary = summarise(long)
    n_seeds = int(long["seed"].nunique())
    return Comparison(long, summary, n_seeds, sorted(int(n) for n in np.unique(long["n_train"])),
                      _accuracy(summary, main))
