"""Where the hierarchical model's 50-row error on ML.ENERGY comes from.

For a few seeds of the 50-row protocol of ``benchmarks/hierarchical.py`` (the same draws:
:func:`energylens.evaluation.protocols._draws`), the held-out error of
``HierarchicalEnergyModel()`` broken down by group, by the group's training rows (0, 1,
2, 3+), by whether the model / GPU was seen at all, by model family (dense,
mixture-of-experts or hybrid, as the model's family level) and precision, by GPU, by batch cap and by workload; and the
zero-shot folds (leave one GPU out, leave one model out): each fold's MAPE, its level
(the mean log error, a constant factor) and its shape (the slope of the log error in
log batch and log tp), and the MAPE left once the level is removed.

Run::

    python benchmarks/v3_transfer_diagnosis.py [--table v3] [--seeds 5] [--zeroshot]
        [--groups] [--variant NAME]   # see VARIANTS in v3_transfer_variants.py

Prints markdown tables; nothing is written.
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
from energylens.core.catalogue import descriptors
from energylens.datasets import real_data_dir
from energylens.evaluation import metrics as M
from energylens.evaluation.protocols import _draws, _scenario_labels
from energylens.models.hierarchical.variables import model_family

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _markdown import md_table as _md_table  # noqa: E402

SCENARIO = ("model", "gpu", "workload")


def data_dir() -> Path:
    """The public measurements (``$ENERGYLENS_REAL_DATA`` or ``../shared/data``)."""
    real = real_data_dir()
    if real is None:
        sys.exit("The public measurements are not found (set ENERGYLENS_REAL_DATA): nothing to run.")
    return real


def load(name: str) -> pd.DataFrame:
    data = data_dir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "TokenPowerBench":
            df = energylens.read_tokenpowerbench(data / "tokenpowerbench")
        elif name == "Wilkins":
            df = energylens.read_wilkins(data / "wilkins2024")
        else:
            df = energylens.read_mlenergy_leaderboard(data / f"mlenergy_{name}")
        df = df.reset_index(drop=True)
    d = descriptors(df)
    df["family"] = model_family(d)  # the families of the model's own level
    df["prec"] = d["precision"].astype(str).to_numpy()
    df["cap"] = df["batch_size"] * (df["dp"] if "dp" in df else 1)
    return df


def fit_predict(train: pd.DataFrame, test: pd.DataFrame, make=HierarchicalEnergyModel) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = make().fit(train, train["energy_j"].to_numpy())
        return np.asarray(m.predict(test), dtype=float)


def split_metrics(test: pd.DataFrame, pred: np.ndarray) -> dict:
    y = test["energy_j"].to_numpy(float)
    out = {"mape": M.mape(y, pred), "median_ape": M.median_ape(y, pred)}
    try:
        out.update(M.selection_metrics(y, np.maximum(pred, 0.0), _scenario_labels(test, SCENARIO)))
    except ValueError:
        pass
    return out


def protocol_rows(df: pd.DataFrame, seeds, make=HierarchicalEnergyModel, n: int = 50):
    """Per held-out row: seed, labels, training rows of its group, log error; and the
    per-seed metrics."""
    rows, summary = [], []
    for s in seeds:
        (_, idx), = _draws(df, [n], s, None)
        train, test = df.loc[idx], df.drop(index=idx)
        pred = fit_predict(train, test, make)
        summary.append({"seed": s, **split_metrics(test, pred)})
        t = test.copy()
        t["seed"] = s
        t["pred"] = pred
        t["logerr"] = np.log(pred / t["energy_j"])
        t["ape"] = 100 * np.abs(pred / t["energy_j"] - 1)
        per_group = train.groupby(["model", "gpu"]).size()
        t["n_group"] = [int(per_group.get((a, b), 0)) for a, b in zip(t.model, t.gpu)]
        t["model_seen"] = t.model.isin(set(train.model))
        t["gpu_seen"] = t.gpu.isin(set(train.gpu))
        t["model_rows"] = t.model.map(train.model.value_counts()).fillna(0).astype(int)
        rows.append(t)
    return pd.concat(rows), pd.DataFrame(summary)


def breakdown(t: pd.DataFrame, by) -> pd.DataFrame:
    g = t.groupby(by, observed=True)
    out = g.agg(rows=("ape", "size"), mape=("ape", "mean"), median_ape=("ape", "median"),
                bias=("logerr", "mean"), sd=("logerr", "std"))
    out["share_of_error"] = 100 * g["ape"].sum() / t["ape"].sum()
    # MAPE once each (seed, model, gpu)'s mean log error (its level) is removed
    lvl = t.groupby(["seed", "model", "gpu"])["logerr"].transform("mean")
    t2 = t.assign(ape_shape=100 * np.abs(np.exp(t["logerr"] - lvl) - 1))
    out["mape_no_level"] = t2.groupby(by, observed=True)["ape_shape"].mean()
    return out.reset_index()


def slopes(t: pd.DataFrame) -> dict:
    """Least-squares slope of the log error in log batch and log tp (within one fold)."""
    out = {}
    B = np.log(t["running_batch"].fillna(t["batch_size"]).to_numpy(float) * t["dp"].to_numpy(float))
    tp = np.log(t["tp"].to_numpy(float))
    e = t["logerr"].to_numpy(float)
    for name, x in (("slope_logB", B), ("slope_logtp", tp)):
        out[name] = float(np.polyfit(x, e, 1)[0]) if np.ptp(x) > 0 else np.nan
    return out


def zeroshot(df: pd.DataFrame, split: str, make=HierarchicalEnergyModel) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, allrows = [], []
    for value in sorted(df[split].unique()):
        train, test = df[df[split] != value], df[df[split] == value]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = make().fit(train, train["energy_j"].to_numpy())
            pred = np.asarray(m.predict(test), dtype=float)
            y = test["energy_j"].to_numpy(float)
            cover = {}
            for level in (0.5, 0.9):
                pi = m.predict_interval(test, level=level)
                cover[f"cover{int(level * 100)}"] = float(np.mean((y >= pi.lower) & (y <= pi.upper)))
        t = test.copy()
        t["seed"] = 0
        t["pred"], t["logerr"] = pred, np.log(pred / test["energy_j"])
        t["ape"] = 100 * np.abs(pred / t["energy_j"] - 1)
        lvl = t["logerr"].mean()
        rows.append({"held_out": value, "n_test": len(t), "mape": t["ape"].mean(),
                     "level_factor": float(np.exp(lvl)),
                     "mape_no_level": float(np.mean(100 * np.abs(np.exp(t["logerr"] - lvl) - 1))),
                     **slopes(t), "top1": split_metrics(test, pred).get("top1", np.nan), **cover})
        allrows.append(t)
    return pd.DataFrame(rows), pd.concat(allrows)


def md(df: pd.DataFrame) -> str:
    fmt = {c: "{:.3f}" for c in ("bias", "sd", "slope_logB", "slope_logtp", "level_factor", "top1",
                                 "regret", "within5")}
    fmt.update({"cover50": "{:.2f}", "cover90": "{:.2f}"})
    fmt.update({c: "{:.1f}" for c in ("mape", "median_ape", "share_of_error", "mape_no_level")})
    return _md_table(df, fmt, missing="-")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--table", default="v3")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--zeroshot", action="store_true", help="also the zero-shot folds")
    ap.add_argument("--groups", action="store_true", help="also the per-group table")
    ap.add_argument("--variant", default="current",
                    help="a level structure of v3_transfer_variants.VARIANTS ('base': the "
                         "structures before the family level; default 'current': the code's)")
    args = ap.parse_args(argv)
    from v3_transfer_variants import variant

    with variant(args.variant):
        report(args)


def report(args) -> None:
    df = load(args.table)
    t, s = protocol_rows(df, range(args.seeds))
    print(f"## {args.table}, 50 rows, seeds 0-{args.seeds - 1}\n")
    print(md(s.mean().to_frame().T.drop(columns="seed")), "\n")
    t["n_group_bin"] = pd.cut(t["n_group"], [-1, 0, 1, 2, 1000], labels=["0", "1", "2", "3+"])
    t["model_rows_bin"] = pd.cut(t["model_rows"], [-1, 0, 1, 2, 1000], labels=["0", "1", "2", "3+"])
    for by in (["n_group_bin"], ["model_rows_bin"], ["model_seen", "gpu_seen"], ["family"],
               ["prec"], ["family", "prec"], ["gpu"], ["cap"], ["workload"], ["tp"]):
        print(f"### by {', '.join(by)}\n")
        print(md(breakdown(t, by)), "\n")
    if args.groups:
        g = breakdown(t, ["model", "gpu"]).sort_values("share_of_error", ascending=False)
        print("### by group (worst 15 by share of error)\n")
        print(md(g.head(15)), "\n")
    if args.zeroshot:
        for split in ("gpu", "model"):
            z, t = zeroshot(df, split)
            tot = np.average(z["mape"], weights=z["n_test"])
            print(f"### leave one {split} out: row-weighted MAPE {tot:.1f}%, without each fold's "
                  f"level {np.average(z['mape_no_level'], weights=z['n_test']):.1f}%\n")
            print(md(z.sort_values("mape", ascending=False)), "\n")
            by = ["gpu", "workload"] if split == "gpu" else ["family", "prec"]
            print(f"### leave one {split} out, by {', '.join(by)}\n")
            print(md(breakdown(t, by)), "\n")


if __name__ == "__main__":
    main()
