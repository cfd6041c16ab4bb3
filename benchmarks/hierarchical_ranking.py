"""Where the hierarchical model's configuration choice goes wrong on ML.ENERGY v2.

Three views, each printed as a Markdown table:

1. *In sample*: fitted on every v2 row, the Top-1 and MAPE the form reaches with each
   random-effect structure (the most any amount of pooling can give with this form).
2. *The shape of the misses*: for the library's own choice of structure, each scenario whose measured best is not the
   predicted best (the pick's extra energy), and the mean predicted/measured ratio by the
   cap's position relative to the measured best (log2 of cap over best cap).
3. *50 random rows*: the share of scenarios picked right, wrong in the batch cap, or wrong in
   the tensor-parallel degree, and how many wrong picks were within 2% of the best.
4. *50 random rows, each structure*: Top-1, regret and MAPE of the structures of view 1
   through :func:`energylens.evaluation.sample_efficiency` (``--seeds-structures`` seeds).

Run (under a minute on 2 cores)::

    python benchmarks/hierarchical_ranking.py [--seeds 6]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import energylens
from energylens import HierarchicalEnergyModel
from energylens.datasets import real_data_dir
from energylens.evaluation import sample_efficiency
from energylens.models.hierarchical.design import RICH_LEVELS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _markdown import md_table  # noqa: E402

SCENARIO = ["model", "gpu", "workload"]
STRUCTURES = {
    "auto (the library's choice: rich with every row, default at 50)": "auto",
    "default": "default",
    "rich": "rich",
    "rich + per-group GEMM growth": tuple(RICH_LEVELS) + ((("group",), ("dc",)),),
    "rich + per-scenario GEMM growth and host time": tuple(RICH_LEVELS)
    + ((("group", "workload"), ("dc", "tau1")),),
}


def scenarios(d: pd.DataFrame):
    return [g for _, g in d.groupby(SCENARIO) if len(g) >= 2]


def in_sample(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rows, fits = [], {}
    for name, levels in STRUCTURES.items():
        d = df.assign(pred=HierarchicalEnergyModel(levels=levels).fit(df).predict(df))
        fits[name] = d
        hits = [g.energy_j.idxmin() == g.pred.idxmin() for g in scenarios(d)]
        rows.append({"structure": name, "scenarios": len(hits), "Top-1": np.mean(hits),
                     "MAPE (%)": 100 * np.mean(np.abs(d.pred / d.energy_j - 1))})
    d = fits[next(iter(STRUCTURES))]
    misses, ratios = [], []
    for g in scenarios(d):
        best, pick = g.energy_j.idxmin(), g.pred.idxmin()
        pos = np.round(np.log2(g.batch_size / g.loc[best, "batch_size"])).astype(int)
        ratios += [{"position": p, "ratio": r} for p, r in zip(pos, g.pred / g.energy_j)]
        if best != pick:
            misses.append({"model": g.loc[best, "model"], "gpu": g.loc[best, "gpu"],
                           "workload": g.loc[best, "workload"],
                           "best cap": int(g.loc[best, "batch_size"]),
                           "picked cap": int(g.loc[pick, "batch_size"]),
                           "extra energy of the pick (%)":
                               100 * (g.loc[pick, "energy_j"] / g.loc[best, "energy_j"] - 1)})
    shape = (pd.DataFrame(ratios).groupby("position")["ratio"].agg(["mean", "count"])
             .reset_index().rename(columns={"position": "log2(cap / best cap)",
                                            "mean": "predicted / measured", "count": "rows"}))
    return pd.DataFrame(rows), pd.DataFrame(misses), shape


def fifty_rows(df: pd.DataFrame, seeds: int) -> pd.DataFrame:
    kinds = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(df), 50, replace=False)
        test = df.drop(index=idx)
        test = test.assign(pred=HierarchicalEnergyModel().fit(df.loc[idx]).predict(test))
        for g in scenarios(test):
            best, pick = g.energy_j.idxmin(), g.pred.idxmin()
            kind = ("right" if best == pick else
                    "wrong TP degree" if g.loc[best, "tp"] != g.loc[pick, "tp"] else "wrong batch cap")
            near = (g.energy_j <= 1.02 * g.energy_j.min()).sum() > 1
            kinds.append({"kind": kind, "another within 2%": near})
    k = pd.DataFrame(kinds)
    out = k.groupby("kind").agg(share=("kind", "size"), near=("another within 2%", "mean"))
    out["share"] /= len(k)
    return out.reset_index().rename(columns={"near": "share with another candidate within 2%"})


def structures_at_50(df: pd.DataFrame, seeds: int) -> pd.DataFrame:
    models = {name: HierarchicalEnergyModel(levels=levels) for name, levels in STRUCTURES.items()}
    res = sample_efficiency(models, df, n_train=[50], seeds=seeds, n_jobs=2)
    out = res[res.metric.isin(["top1", "regret", "mape"])].groupby(["model", "metric"])["value"]
    out = out.mean().unstack("metric").reindex(list(STRUCTURES))
    return out.reset_index().rename(columns={"model": "structure", "top1": "Top-1",
                                             "mape": "MAPE (%)"})[
        ["structure", "Top-1", "regret", "MAPE (%)"]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--seeds-structures", type=int, default=10)
    args = ap.parse_args(argv)
    real = real_data_dir()
    if real is None or not (real / "mlenergy_v2").is_dir():
        raise SystemExit("ML.ENERGY v2 is not available (set ENERGYLENS_REAL_DATA)")
    df = energylens.read_mlenergy_leaderboard(real / "mlenergy_v2").reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structures, misses, shape = in_sample(df)
        kinds = fifty_rows(df, args.seeds)
        at_50 = structures_at_50(df, args.seeds_structures)
    print("## In sample, all of ML.ENERGY v2\n")
    print(md_table(structures, {"Top-1": "{:.3f}", "MAPE (%)": "{:.2f}"}), "\n")
    print("## Misses in sample (the library's choice of structure)\n")
    print(md_table(misses, {"extra energy of the pick (%)": "{:.1f}"}), "\n")
    print(md_table(shape, {"predicted / measured": "{:.3f}"}), "\n")
    print(f"## 50 random rows, {args.seeds} seeds\n")
    print(md_table(kinds, {"share": "{:.3f}", "share with another candidate within 2%": "{:.2f}"}),
          "\n")
    print(f"## 50 random rows, each structure, {args.seeds_structures} seeds\n")
    print(md_table(at_50, {"Top-1": "{:.3f}", "regret": "{:.3f}", "MAPE (%)": "{:.2f}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
