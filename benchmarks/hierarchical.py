"""Issue-16 figures of the hierarchical energy model, from the public measurements.

Every "Done when" figure of issue 16 comes from here: the 50- and 100-row protocol on
ML.ENERGY v2 and v3 (20 seeds) beside the rule of thumb, the 2%-noise ceiling, a
smooth-form oracle and every ensemble given the same rows; the rows the best ensemble needs
to match the hierarchical model's MAPE at 50 rows; leave one GPU out and leave one model out
(zero-shot from the catalogue's descriptors) with interval coverage; in-sample MAPE per v3
group; fit times on one core (all of v3; 1,000 groups of 20 rows, against a plain per-group
loop of the twelve-parameter model in the same process); and the ablation of the form's
terms on v2, v3, TokenPowerBench and the Wilkins sweeps.

Writes a section of ``docs/results.md`` and of ``docs/model.md`` (between their
``hierarchical-model`` markers, keeping the rest of each page), with the long results as CSV
and each part's markdown in ``docs/results/`` (so ``--only`` reruns a part and keeps the
others).

Run (about 25 minutes on 2 cores; ``--quick``: 3 seeds, smaller ensembles, about 4)::

    python benchmarks/hierarchical.py [--seeds 20] [--quick] [--only protocol,efficiency,...]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

import energylens
from energylens import EnergyLensModel, GroupedModel, HierarchicalEnergyModel
from energylens.core.io import atomic_write
from energylens.core.metrics import mape
from energylens.datasets import real_data_dir
from energylens.evaluation import extrapolate, sample_efficiency
from energylens.evaluation.reference import NoiseCeilingModel, RuleOfThumbModel
from energylens.models.ensemble import (
    GradientBoostingEnergyModel,
    RandomForestEnergyModel,
    XGBoostEnergyModel,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _markdown import md_table as _md_table  # noqa: E402
from _timing import run_times  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("protocol", "efficiency", "zeroshot", "insample", "speed", "ablation")
ENSEMBLES = ("RandomForest", "HistGradientBoosting", "XGBoost")
SCENARIO = ("model", "gpu", "workload")
BEGIN, END = "<!-- hierarchical-model:begin -->", "<!-- hierarchical-model:end -->"


def log(msg: str, t0: list) -> None:
    print(f"[{time.perf_counter() - t0[0]:6.0f}s] {msg}", file=sys.stderr, flush=True)


def tables(real: Path) -> dict[str, pd.DataFrame]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"v2": energylens.read_mlenergy_leaderboard(real / "mlenergy_v2").reset_index(drop=True),
                "v3": energylens.read_mlenergy_leaderboard(real / "mlenergy_v3").reset_index(drop=True),
                "TokenPowerBench": energylens.read_tokenpowerbench(real / "tokenpowerbench")
                .reset_index(drop=True),
                "Wilkins": energylens.read_wilkins(real / "wilkins2024").reset_index(drop=True)}


def ensembles(quick: bool) -> dict:
    size = 100 if quick else 300
    return {"RandomForest": RandomForestEnergyModel(n_estimators=size),
            "HistGradientBoosting": GradientBoostingEnergyModel(max_iter=size),
            "XGBoost": XGBoostEnergyModel(n_estimators=size)}


class SmoothOracle(RegressorMixin, BaseEstimator):
    """Reads ``smooth_j``: every layout's smooth curve fitted to ALL rows (log energy per
    output token polynomial in log batch per model, GPU, task, GPUs and replicas). No
    smooth closed form can rank better than the best such curve; a reference line only."""

    def __init__(self, *, column: str = "smooth_j"):
        self.column = column

    def fit(self, X, y=None):
        self.fitted_ = True
        return self

    def predict(self, X):
        return X[self.column].to_numpy(float)


def smooth_truth(df: pd.DataFrame, degree: int) -> np.ndarray:
    B = df["running_batch"].fillna(df["batch_size"]) * df["dp"]
    ly = np.log(df["energy_j"] / df["output_tokens"])
    out = pd.Series(np.nan, index=df.index)
    for _, g in df.groupby(["model", "gpu", "workload", "n_gpus", "dp"]):
        x = np.log(B[g.index])
        d = min(degree, len(g) - 1)
        out[g.index] = np.polyval(np.polyfit(x, ly[g.index], d), x) if d >= 1 else ly[g.index].mean()
    return (np.exp(out) * df["output_tokens"]).to_numpy()


def summarise(res: pd.DataFrame) -> pd.DataFrame:
    ok = res[res.metric != "fit_failed"]
    s = ok.groupby(["dataset", "n_train", "model", "metric"])["value"].mean().unstack("metric")
    s["fit_failed"] = res[res.metric == "fit_failed"].groupby(
        ["dataset", "n_train", "model"])["value"].mean().reindex(s.index).fillna(0)
    cols = [c for c in ("top1", "regret", "within5", "mape", "median_ape", "fit_time_s", "fit_failed")
            if c in s.columns]
    return s[cols].reset_index()


#: Formats of the result tables' columns.
FMT = {"top1": "{:.3f}", "regret": "{:.3f}", "within5": "{:.3f}", "mape": "{:.1f}",
       "median_ape": "{:.1f}", "fit_time_s": "{:.2f}", "fit_failed": "{:.2f}",
       "cover50": "{:.2f}", "cover90": "{:.2f}", "width90": "{:.1f}"}


def md_table(df: pd.DataFrame) -> str:
    return _md_table(df, FMT, missing="-")


# ------------------------------------------------------------------------------ parts
def part_protocol(data, seeds, quick, jobs, t0):
    frames = []
    for name in ("v2", "v3"):
        df = data[name].copy()
        df["smooth_j"] = smooth_truth(df, 3 if name == "v2" else 2)
        models = {"Hierarchical (partial)": HierarchicalEnergyModel(),
                  "Hierarchical (none)": HierarchicalEnergyModel(pooling="none"),
                  "Hierarchical (complete)": HierarchicalEnergyModel(pooling="complete"),
                  "RuleOfThumb": RuleOfThumbModel(), "NoiseCeiling2%": NoiseCeilingModel(),
                  "SmoothOracle": SmoothOracle(), **ensembles(quick)}
        log(f"protocol on {name}: {len(models)} models, {seeds} seeds, n = 50 and 100", t0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frames.append(sample_efficiency(models, df, n_train=[50, 100], seeds=seeds,
                                            scenario=SCENARIO, dataset=name, n_jobs=jobs))
    res = pd.concat(frames, ignore_index=True)
    s = summarise(res)
    text = ["### The 50- and 100-row protocol", "",
            f"n rows drawn at random from the whole table, tested on the rest, {seeds} seeds; "
            "scenarios are (model, GPU, task). The rule of thumb ranks by `tp*pp/batch_size` and "
            "has no MAPE; the 2%-noise ceiling is the truth times 2% lognormal noise; the smooth "
            "oracle knows every layout's smooth curve from all rows (cubic on v2, quadratic on v3 "
            "in log batch): the best any smooth closed form could rank.", "", md_table(s), ""]
    return "\n".join(text), s, res


def part_efficiency(data, seeds, quick, jobs, t0, protocol: pd.DataFrame | None):
    sizes = {"v2": [100, 150, 200, 250], "v3": [100, 200, 300, 400, 450]}
    rows, frames = [], []
    for name in ("v2", "v3"):
        df = data[name]
        hier = sample_efficiency({"Hierarchical (partial)": HierarchicalEnergyModel()}, df,
                                 n_train=[50], seeds=seeds, scenario=SCENARIO, dataset=name,
                                 n_jobs=jobs) if protocol is None else protocol[protocol.dataset == name]
        h50 = hier[(hier.metric == "mape") & (hier.n_train == 50)
                   & (hier.model == "Hierarchical (partial)")]["value"].mean()
        ns = sizes[name][:2] if quick else sizes[name]
        log(f"sample efficiency on {name}: ensembles at n = {ns}", t0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sample_efficiency(ensembles(quick), df, n_train=ns, seeds=seeds,
                                    scenario=SCENARIO, dataset=name, n_jobs=jobs)
        frames.append(res)
        m = res[res.metric == "mape"].groupby(["model", "n_train"])["value"].mean().unstack("n_train")
        for ens, curve in m.iterrows():
            n_match = match_rows(curve, h50)
            rows.append({"table": name, "ensemble": ens, "hierarchical MAPE@50": h50,
                         "ensemble MAPE by rows": ", ".join(f"{n}: {v:.1f}" for n, v in curve.items()),
                         "largest n run": int(max(curve.index)), "MAPE at largest n": float(curve.iloc[-1]),
                         "rows to match": n_match, "ratio": n_match / 50 if np.isfinite(n_match) else np.nan})
    out = pd.DataFrame(rows)
    text = ["### Sample efficiency", "",
            "The rows each ensemble needs to match the hierarchical model's MAPE at 50 rows "
            "(interpolated in log rows between the sizes run; '-' where no size reached it). "
            "Goal: at least 10x.", "", md_table(out), ""]
    return "\n".join(text), out, pd.concat(frames, ignore_index=True)


def match_rows(curve: pd.Series, target: float) -> float:
    """Rows where a MAPE curve (by rows) first falls to ``target`` (log-linear interpolation)."""
    ns, vals = np.array(curve.index, dtype=float), curve.to_numpy(float)
    if vals[0] <= target:
        return float(ns[0])
    for i in range(1, len(ns)):
        if vals[i] <= target:
            f = (vals[i - 1] - target) / (vals[i - 1] - vals[i])
            return float(np.exp(np.log(ns[i - 1]) + f * (np.log(ns[i]) - np.log(ns[i - 1]))))
    return float("nan")


def coverage(df: pd.DataFrame, split: str, calibrate: str = "none") -> pd.DataFrame:
    """Interval coverage of the hierarchical model on the held-out GPU (model) of each fold
    (``calibrate="models"``: each fold's fit leaves each of its models out once more)."""
    rows = []
    col = "gpu" if split == "gpu" else "model"
    for value in sorted(df[col].unique()):
        tr, te = df[df[col] != value], df[df[col] == value]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = HierarchicalEnergyModel(calibrate=calibrate).fit(tr)
            y = te["energy_j"].to_numpy()
            row = {"held_out": value, "n_test": len(te)}
            for level in (0.5, 0.9):
                pi = m.predict_interval(te, level=level)
                row[f"cover{int(level * 100)}"] = float(np.mean((y >= pi.lower) & (y <= pi.upper)))
                row[f"width{int(level * 100)}"] = float(np.median(pi.upper / pi.lower))
        rows.append(row)
    return pd.DataFrame(rows)


def part_zeroshot(data, seeds, quick, jobs, t0):
    frames, lines = [], []
    for name in ("v2", "v3"):
        df = data[name]
        for split in ("gpu", "model"):
            models = {"Hierarchical (partial)": HierarchicalEnergyModel(), **ensembles(quick)}
            log(f"leave one {split} out on {name}", t0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = extrapolate(models, df, split=split, scenario=SCENARIO, dataset=name)
            frames.append(res)
            cov = coverage(df, split)
            n = res[res.metric == "n_test"].set_index(["model", "split"])["value"]
            for model, g in res[res.metric != "fit_failed"].groupby("model"):
                row = {"table": name, "split": f"leave one {split} out", "model": model}
                for metric in ("mape", "median_ape", "top1", "within5"):
                    v = g[g.metric == metric].set_index("split")["value"]
                    w = n.loc[model].reindex(v.index) if metric in ("mape", "median_ape") else None
                    row[metric] = float(np.average(v, weights=w)) if len(v) else np.nan
                if model.startswith("Hierarchical"):
                    for c in ("cover50", "cover90"):
                        row[c] = float(np.average(cov[c], weights=cov["n_test"]))
                    row["width90"] = float(cov["width90"].median())
                lines.append(row)
            if split == "model":  # the same predictions; intervals scaled by held-out models
                log(f"leave one model out on {name}, calibrate='models'", t0)
                cal = coverage(df, split, calibrate="models")
                row = dict(next(r for r in lines if r["table"] == name and r["split"] ==
                                "leave one model out" and r["model"] == "Hierarchical (partial)"))
                row["model"] = "Hierarchical (partial, calibrate='models')"
                for c in ("cover50", "cover90"):
                    row[c] = float(np.average(cal[c], weights=cal["n_test"]))
                row["width90"] = float(cal["width90"].median())
                lines.append(row)
    out = pd.DataFrame(lines)
    text = ["### Zero-shot: leave one GPU out, leave one model out", "",
            "Each fold fits the other GPUs (models) and predicts the held-out one from the "
            "catalogue's descriptors; MAPE and coverage are row-weighted over folds, Top-1 and "
            "within-5% averaged over folds. Coverage: share of held-out rows inside the 50% and "
            "90% intervals; width90: median upper/lower ratio of the 90% interval. Goal: MAPE "
            "<= 15%, coverage within 5 points of nominal. `calibrate='models'`: the same "
            "predictions, each fold's fit leaving each of its models out once more and scaling "
            "a new model's interval by those held-out errors (one refit per model).", "",
            md_table(out), ""]
    return "\n".join(text), out, pd.concat(frames, ignore_index=True)


def part_insample(data, t0):
    df = data["v3"].copy()
    log("in-sample fit of all of v3", t0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = HierarchicalEnergyModel().fit(df)
        df["ape"] = 100 * np.abs(m.predict(df) / df["energy_j"] - 1)
    df["cap"] = df["batch_size"] * df["dp"]  # the unit's cap (max_num_seqs)
    g = df.groupby(["model", "gpu"]).agg(rows=("ape", "size"), mape=("ape", "mean"),
                                         max_ape=("ape", "max"),
                                         caps=("cap", lambda s: f"{s.min():g}-{s.max():g}"))
    df["floor_ape"] = 100 * np.abs(smooth_truth(df, 3) / df["energy_j"] - 1)
    g["cubic_floor"] = df.groupby(["model", "gpu"])["floor_ape"].mean()
    g = g.reset_index().sort_values("mape", ascending=False)
    big = g[g.rows >= 8]
    beyond = big[big.cubic_floor > 5]
    write_parameters(m, ROOT_OUT[0])
    text = ["### In-sample, all of ML.ENERGY v3 at once", "",
            f"{len(df)} rows, {len(g)} (model, GPU) groups, structure '{m.structure_}': MAPE "
            f"{mape(df.energy_j, df.energy_j * (1 + df.ape / 100)):.2f}%; {int((big.mape <= 5).sum())} of "
            f"{len(big)} groups with at least 8 rows within 5% (goal: all). `cubic_floor`: the "
            "MAPE of a cubic in log running batch fitted to each layout's own rows (GPUs, "
            "replicas and workload), four free numbers per layout; groups with at least 8 rows "
            f"that even this curve does not follow to 5%: {len(beyond)}"
            + (f" ({', '.join(f'{r.model} on {r.gpu}, {r.cubic_floor:.1f}%' for r in beyond.itertuples())})"
               if len(beyond) else "") + ". The ten worst groups:", "",
            md_table(g.head(10)), ""]
    return "\n".join(text), g, None


#: Where the part outputs go (set by main).
ROOT_OUT: list[Path] = [ROOT / "docs" / "results"]


def write_parameters(m: HierarchicalEnergyModel, csv_dir: Path) -> None:
    """The form's parameters with their prior and their population value on all of v3."""
    P = m.params_.reset_index()
    tab = pd.DataFrame({
        "parameter": P["parameter"], "unit": P["unit"], "meaning": P["meaning"],
        "prior (sd of log)": [f"{a:.3g} ({b:.2g})" for a, b in zip(P["prior"], P["prior_log_sd"])],
        "v3 value": [f"{v:.3g} +/- {e:.2g}" for v, e in zip(P["value"], P["stderr"])],
        "note": P["note"].replace("", "identified")})
    text = ["### The parameters, fitted on all of ML.ENERGY v3", "",
            "Population values (per workload for `rho` and `si`) with their standard errors; a "
            "prior-driven value is the prior, not the data. Generated by "
            "`python benchmarks/hierarchical.py`.", "", md_table(tab), ""]
    fam = family_deviations(m)
    if fam is not None:
        text += ["Each model family's deviation from the population, as a factor on the parameter "
                 "(`ac` is the inverse decode compute efficiency: a factor of 4 means a quarter of "
                 "the population's rate):", "", md_table(fam), ""]
    atomic_write(csv_dir / "hierarchical_parameters.txt", "\n".join(text) + "\n")


def family_deviations(m: HierarchicalEnergyModel) -> pd.DataFrame | None:
    """exp(deviation) of each model-family value and parameter (None without the level)."""
    lv = next((lv for lv in m.design_.levels if lv.columns == ("model_family",)), None)
    if lv is None:
        return None
    return pd.DataFrame([{"family": v, **{n: f"{np.exp(m.coef_[lv.col[i, j]]):.3g}"
                                          for j, n in enumerate(lv.names)}}
                         for i, v in enumerate(lv.values)])


def synthetic_groups(n_models: int = 40, n_gpus: int = 25, rows: int = 20) -> pd.DataFrame:
    """A table of n_models x n_gpus groups generated from the form (made-up GPUs registered
    in the catalogue for this process, real models)."""
    from energylens.core.catalogue import descriptors, model_table, register_gpus
    from energylens.models.hierarchical import form_table

    rng = np.random.default_rng(1)
    names = [f"BenchGPU-{i:02d}" for i in range(n_gpus)]
    register_gpus(pd.DataFrame({"name": names, "memory_gb": 80.0,
                                "memory_bw_bytes_s": 10 ** rng.uniform(11.8, 12.9, n_gpus),
                                "bf16_flop_s": 10 ** rng.uniform(14.0, 15.4, n_gpus),
                                "tdp_w": rng.uniform(250, 1000, n_gpus)}))
    cand = list(model_table().index)
    d = descriptors(pd.DataFrame({"model": cand, "gpu": "H100"}), errors="coerce")
    ok = ~d[["kv_bytes_per_token_full", "model_hidden", "model_layers"]].isna().any(axis=1)
    models = [m for m, good in zip(cand, ok) if good][:n_models]
    return form_table(models, names, rows_per_group=rows, seed=0)[0]


def best_of(fn, repeat: int) -> float:
    return min(run_times(fn, repeat))


def part_speed(data, quick, t0):
    rows = []
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("v3", "v2"):
            log(f"fit time: all of {name}", t0)
            t = best_of(lambda name=name: HierarchicalEnergyModel().fit(data[name]), 3)
            rows.append({"fit": f"all of ML.ENERGY {name} ({len(data[name])} rows)", "seconds": t,
                         "goal": "< 5 s" if name == "v3" else ""})
        n_models, n_gpus = (10, 10) if quick else (40, 25)
        big = synthetic_groups(n_models, n_gpus)
        log(f"fit time: {n_models * n_gpus} groups of 20 rows", t0)
        t_h = best_of(lambda: HierarchicalEnergyModel().fit(big), 1)
        t_loop = best_of(lambda: GroupedModel(EnergyLensModel()).fit(big), 1)
        rows.append({"fit": f"{n_models * n_gpus} groups x 20 rows, hierarchical", "seconds": t_h,
                     "goal": "< 30 s" if not quick else ""})
        rows.append({"fit": f"{n_models * n_gpus} groups x 20 rows, plain per-group loop "
                            "(GroupedModel of EnergyLensModel)", "seconds": t_loop, "goal": ""})
        rows.append({"fit": "ratio hierarchical / per-group loop", "seconds": t_h / t_loop, "goal": ""})
    out = pd.DataFrame(rows)
    text = ["### Fit times on one core", "",
            "Best of three on one BLAS thread (one fit for the large table), on this shared "
            "two-core machine; the ratio compares the two fits of the same table in the same process.",
            "", md_table(out), ""]
    return "\n".join(text), out, None


VARIANTS = {"full": {}, **{f"-{t}": {t: False} for t in
                          ("replicas", "experts", "drain", "gemm", "prefill", "attention", "host",
                           "ep", "pipeline")},
            "old-style (no replicas, experts, drain, gemm)": {"replicas": False, "experts": False,
                                                              "drain": False, "gemm": False}}


def cv_mape(df: pd.DataFrame, terms: dict, k: int = 5) -> float:
    errs = []
    for tr, te in KFold(k, shuffle=True, random_state=0).split(df):
        m = HierarchicalEnergyModel(terms=terms).fit(df.iloc[tr])
        errs.append(np.abs(m.predict(df.iloc[te]) / df["energy_j"].iloc[te] - 1))
    return 100 * float(np.mean(np.concatenate(errs)))


def part_ablation(data, seeds, jobs, t0):
    rows = []
    for vname, terms in VARIANTS.items():
        log(f"ablation: {vname}", t0)
        row = {"variant": vname}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in ("v2", "v3", "TokenPowerBench", "Wilkins"):
                df = data[name]
                m = HierarchicalEnergyModel(levels="rich", terms=terms).fit(df)
                row[f"{name} in-sample %"] = mape(df.energy_j, m.predict(df))
                if name in ("v2", "v3"):
                    res = sample_efficiency({vname: HierarchicalEnergyModel(terms=terms)}, df,
                                            n_train=[50], seeds=seeds, scenario=SCENARIO,
                                            dataset=name, n_jobs=jobs)
                    s = res.groupby("metric")["value"].mean()
                    row[f"{name} Top-1@50"], row[f"{name} MAPE@50 %"] = s["top1"], s["mape"]
                else:
                    row[f"{name} 5-fold %"] = cv_mape(df, terms)
        rows.append(row)
    out = pd.DataFrame(rows)
    text = ["### Ablation: each term off in turn", "",
            f"In-sample: all rows, rich structure. @50: the 50-row protocol, {seeds} seeds. "
            "TokenPowerBench and Wilkins: in-sample and 5-fold cross-validated MAPE (groups model x "
            "GPU x source; no selection scenarios). Generated by `python benchmarks/hierarchical.py`.",
            "", md_table(out.round(4)), ""]
    return "\n".join(text), out, None


# ------------------------------------------------------------------------------ verdict
def _read(csv_dir: Path, part: str) -> pd.DataFrame | None:
    p = csv_dir / f"hierarchical_{part}.csv"
    return pd.read_csv(p) if p.is_file() else None


def _protocol_goals(s: pd.DataFrame) -> list[str]:
    out = []
    s = s.set_index(["dataset", "n_train", "model"])
    for name, goal in (("v2", 0.80), ("v3", 0.92)):
        h, ceil = s.loc[(name, 50, "Hierarchical (partial)")], s.loc[(name, 50, "NoiseCeiling2%")]
        rule, smooth = s.loc[(name, 50, "RuleOfThumb")], s.loc[(name, 50, "SmoothOracle")]
        ens = {m: s.loc[(name, 50, m)] for m in ENSEMBLES if (name, 50, m) in s.index}
        met = h.top1 >= goal and h.top1 >= ceil.top1 - 0.03
        above = h.top1 > rule.top1 and all(h.top1 > e.top1 for e in ens.values())
        out.append(f"- {name}, 50 rows: Top-1 {h.top1:.3f} against the 2%-noise ceiling {ceil.top1:.3f} "
                   f"(goal >= {goal:.2f} and within 0.03): {'met' if met else 'not met'}; the smooth "
                   f"oracle reaches {smooth.top1:.3f}. Above the rule of thumb ({rule.top1:.3f}) and "
                   f"every ensemble (best {max(e.top1 for e in ens.values()):.3f}): "
                   f"{'yes' if above else 'no'}.")
        h100 = s.loc[(name, 100, "Hierarchical (partial)")]
        out.append(f"- {name}: regret {h.regret:.3f} (goal <= 0.01: {'met' if h.regret <= 0.01 else 'not met'}); "
                   f"within 5% {h.within5:.3f} (goal >= 0.95: {'met' if h.within5 >= 0.95 else 'not met'}; "
                   f"smooth oracle {smooth.within5:.3f}); MAPE {h.mape:.1f}% at 50 rows (goal <= 10%: "
                   f"{'met' if h.mape <= 10 else 'not met'}), {h100.mape:.1f}% at 100 (goal <= 7%: "
                   f"{'met' if h100.mape <= 7 else 'not met'}).")
    return out


def _other_goals(eff, zs, ins, speed) -> list[str]:
    out = []
    if eff is not None:
        for name, g in eff.groupby("table"):
            best = g.sort_values(["rows to match", "MAPE at largest n"], na_position="last").iloc[0]
            r = best["ratio"]
            if np.isfinite(r):
                need = f"about {best['rows to match']:.0f} rows ({r:.1f}x)"
            else:
                need = (f"more than the {best['largest n run']} rows run ({best['MAPE at largest n']:.1f}% "
                        f"there; at least {best['largest n run'] / 50:.0f}x)")
            lower = best["largest n run"] / 50
            status = ("met" if (np.isfinite(r) and r >= 10) or (not np.isfinite(r) and lower >= 10)
                      else "not met" if np.isfinite(r) else "not measurable on this table")
            out.append(f"- {name}, sample efficiency: the best ensemble ({best['ensemble']}) needs {need} "
                       f"to match the hierarchical MAPE at 50 rows ({best['hierarchical MAPE@50']:.1f}%; "
                       f"goal >= 10x: {status}).")
    if zs is not None:
        for _, r in zs[zs.model.str.startswith("Hierarchical (partial")].iterrows():
            ok_cov = abs(r.cover50 - 0.5) <= 0.05 and abs(r.cover90 - 0.9) <= 0.05
            cal = ", calibrate='models'" if "calibrate" in r.model else ""
            out.append(f"- {r.table}, {r.split}{cal}: MAPE {r.mape:.1f}% (goal <= 15%: "
                       f"{'met' if r.mape <= 15 else 'not met'}); coverage {r.cover50:.2f} / "
                       f"{r.cover90:.2f} of 50% / 90% intervals ({'within' if ok_cov else 'not within'} "
                       "5 points).")
    if ins is not None:
        big = ins[ins.rows >= 8]
        out.append(f"- v3 in-sample: {int((big.mape <= 5).sum())} of {len(big)} groups with >= 8 rows "
                   f"within 5% (goal: all; worst {big.mape.max():.2f}%, {big.iloc[0]['model']} on "
                   f"{big.iloc[0]['gpu']}; {int((big.cubic_floor > 5).sum())} group(s) that no cubic "
                   "in log batch per layout follows to 5% either).")
    if speed is not None:
        for _, r in speed[speed.goal.fillna("") != ""].iterrows():
            lim = float(r.goal.strip("< s"))
            out.append(f"- fit time, {r.fit}: {r.seconds:.2f} s (goal {r.goal}: "
                       f"{'met' if r.seconds < lim else 'not met'}).")
    return out


WHY = ("Why the Top-1 and within-5% goals are out of reach: the smooth oracle above knows every "
       "layout's smooth curve from all rows and still ranks below the 2%-noise ceiling, because "
       "the configuration-to-configuration irregularity of these tables (B200 step-time jumps, the "
       "data-parallel Qwen3-Coder-480B-FP8 runs, output-length noise of a few percent) is larger than "
       "2% noise; a smooth closed form cannot follow it, so the ceiling to read Top-1 against is the "
       "smooth oracle's. v3 MAPE from 50 rows stays high because a third of its 47 groups get no "
       "training row and its MoE, FP8 and B200 groups differ from one another more than their "
       "descriptors say (the catalogue computes MXFP4 at the BF16 rate, which B200's MXFP4 kernels "
       "exceed). Two GPUs per table cannot estimate a between-GPU spread, so a held-out GPU gets a "
       "fixed spread, widened further outside the training ranges. The 90% intervals of the "
       "zero-shot folds{cover}.")


def verdict(csv_dir: Path) -> str:
    lines = ["### Goals of issue 16, checked", ""]
    prot = _read(csv_dir, "protocol")
    if prot is not None:
        lines += _protocol_goals(prot)
    lines += _other_goals(_read(csv_dir, "efficiency"), _read(csv_dir, "zeroshot"),
                          _read(csv_dir, "insample"), _read(csv_dir, "speed"))
    zs = _read(csv_dir, "zeroshot")
    cover = " were not run"
    if zs is not None and "cover90" in zs:
        h = zs[zs.model.str.startswith("Hierarchical")]
        say = [f"too {kind} on {', '.join(f'{r.table} {r.split} ({r.cover90:.2f})' for r in g.itertuples())}"
               for kind, g in (("wide", h[h.cover90 > 0.95]), ("narrow", h[h.cover90 < 0.85])) if len(g)]
        cover = (": " + "; ".join(say)) if say else " are within 5 points of nominal"
    return "\n".join(lines + ["", WHY.format(cover=cover), ""])


# ------------------------------------------------------------------------------ writing
def replace_section(path: Path, body: str) -> None:
    """Put ``body`` between the markers of ``path`` (appended when the page has none)."""
    text = path.read_text() if path.is_file() else ""
    block = f"{BEGIN}\n{body.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    atomic_write(path, text)


def run_parts(parts, data, args, csv_dir, t0) -> None:
    """Run the parts asked for; each writes its summary CSV, long CSV and markdown."""
    seeds, quick, jobs = args.seeds, args.quick, args.jobs
    protocol = None
    for part in parts:
        if part == "protocol":
            md, summary, long = part_protocol(data, seeds, quick, jobs, t0)
            protocol = long
        elif part == "efficiency":
            md, summary, long = part_efficiency(data, seeds, quick, jobs, t0, protocol)
        elif part == "zeroshot":
            md, summary, long = part_zeroshot(data, seeds, quick, jobs, t0)
        elif part == "insample":
            md, summary, long = part_insample(data, t0)
        elif part == "speed":
            md, summary, long = part_speed(data, quick, t0)
        else:
            md, summary, long = part_ablation(data, seeds, jobs, t0)
        summary.to_csv(csv_dir / f"hierarchical_{part}.csv", index=False)
        if long is not None:
            long.to_csv(csv_dir / f"hierarchical_{part}_long.csv", index=False)
        atomic_write(csv_dir / f"hierarchical_{part}.txt", md + "\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="3 seeds, smaller ensembles and tables")
    ap.add_argument("--only", default=",".join(PARTS), help=f"parts to run, of {','.join(PARTS)}")
    ap.add_argument("--jobs", type=int, default=1, help="joblib workers over seeds")
    ap.add_argument("--docs", default=str(ROOT / "docs"))
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds = min(args.seeds, 3)
    parts = [p for p in args.only.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown parts {unknown}; parts are {list(PARTS)}")
    real = real_data_dir()
    if real is None:
        print("The public measurements are not found (set ENERGYLENS_REAL_DATA): nothing to run.",
              file=sys.stderr)
        return
    t0 = [time.perf_counter()]
    docs = Path(args.docs)
    csv_dir = docs / "results"
    csv_dir.mkdir(parents=True, exist_ok=True)
    ROOT_OUT[0] = csv_dir
    run_parts(parts, tables(real), args, csv_dir, t0)
    head = ["## Hierarchical energy model (issue 16)", "",
            "Generated by `python benchmarks/hierarchical.py" + (" --quick" if args.quick else
                                                                 f" --seeds {args.seeds}")
            + "`; do not edit by hand (each part's markdown and CSV are in `docs/results/hierarchical_*`). "
            f"energylens {energylens.__version__}, Python {platform.python_version()}.", ""]
    body = [(csv_dir / f"hierarchical_{p}.txt").read_text() for p in PARTS[:-1]
            if (csv_dir / f"hierarchical_{p}.txt").is_file()]
    replace_section(docs / "results.md", "\n".join(head + body + [verdict(csv_dir)]))
    model_parts = [(csv_dir / f"hierarchical_{p}.txt").read_text() for p in ("parameters", "ablation")
                   if (csv_dir / f"hierarchical_{p}.txt").is_file()]
    if model_parts:
        replace_section(docs / "model.md", "\n".join(model_parts))
    log("wrote docs/results.md and docs/model.md", t0)


if __name__ == "__main__":
    main()
