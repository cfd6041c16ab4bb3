"""Active profiling: how many measurements selection needs, active against random sampling.

Each study starts every pool of candidate configurations from a small random seed set of
measured rows, then adds ``k`` rows per round, chosen by

- ``random``: uniformly among the unmeasured candidates;
- ``uncertainty``: :func:`energylens.suggest_next` with ``strategy="uncertainty"`` (widest
  relative prediction interval);
- ``selection``: :func:`energylens.suggest_next` with ``strategy="selection"`` (highest
  probability of being the optimum of its scenario, the best measured energy as incumbent),

refits :class:`energylens.EnergyLensModel` on the measured rows and, for every scenario of
the pool, picks the configuration of least energy: the measured energy where a candidate
has been measured, the model's prediction elsewhere. Top-1 is the share of scenarios whose
pick is the true optimum; regret is the pick's true energy over the optimum's, minus one.
Both are averaged over scenarios and seeds, per number of measured rows.

Studies:

- ``simulator``: :func:`energylens.simulate_profiles` (2% noise) for two models on two GPUs;
  a pool is one (model, GPU), a scenario one (input, output) length pair, the candidates
  every (tp, pp, batch) that fits;
- ``mlenergy``: ML.ENERGY leaderboard v2 (real measurements, when the data are present); a
  pool and a scenario are one (model, GPU, task), the candidates its measured (tp, pp,
  batch cap) rows.

Writes ``docs/active_profiling.md``. Run::

    python benchmarks/active_profiling.py            # full study (about 4 minutes on 2 cores)
    python benchmarks/active_profiling.py --quick    # smaller, for a smoke test
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

import energylens
from energylens import EnergyLensModel, suggest_next

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ("random", "uncertainty", "selection")


def _fit(train: pd.DataFrame) -> EnergyLensModel | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return EnergyLensModel().fit(train)
        except (ValueError, np.linalg.LinAlgError):
            return None


def _picks(model, pool: pd.DataFrame, measured: pd.Index, scenario: Sequence[str]) -> pd.Series:
    """Index of the chosen row per scenario: measured energy where known, prediction elsewhere."""
    est = pd.Series(np.nan, index=pool.index)
    if model is not None:
        est[:] = model.predict(pool)
    est[measured] = pool.loc[measured, "energy_j"]
    est = est.fillna(np.inf)
    return est.groupby([pool[c] for c in scenario] if scenario else np.zeros(len(pool))).idxmin()


def run_pool(pool: pd.DataFrame, *, scenario: Sequence[str], n_seed: int, k: int, rounds: int,
             strategy: str, seed: int) -> list[dict]:
    """One active-profiling run on one pool; a record per round."""
    rng = np.random.default_rng(seed)
    truth = pool["energy_j"].groupby([pool[c] for c in scenario] if scenario else np.zeros(len(pool)))
    best = truth.idxmin()
    best_e = truth.min()
    measured = pd.Index(rng.choice(pool.index.to_numpy(), size=min(n_seed, len(pool)), replace=False))
    out = []
    for rnd in range(rounds + 1):
        model = _fit(pool.loc[measured])
        picks = _picks(model, pool, measured, scenario)
        top1 = float(np.mean(picks.to_numpy() == best.loc[picks.index].to_numpy()))
        regret = float(np.mean(pool.loc[picks.to_numpy(), "energy_j"].to_numpy()
                               / best_e.loc[picks.index].to_numpy() - 1))
        out.append({"strategy": strategy, "seed": seed, "round": rnd, "measured": len(measured),
                    "top1": top1, "regret": regret, "complete": len(measured) == len(pool)})
        rest = pool.index.difference(measured)
        if rnd == rounds:
            break
        if len(rest) == 0:  # exhausted: the pool keeps its (exact) result in later rounds
            continue
        kk = min(k, len(rest))
        if strategy == "random" or model is None:
            new = pd.Index(rng.choice(rest.to_numpy(), size=kk, replace=False))
        else:
            sug = suggest_next(model, pool.loc[rest].drop(columns="energy_j"), k=kk, strategy=strategy,
                               measured=pool.loc[measured], scenario=scenario, random_state=seed)
            new = sug.index
        measured = measured.append(new)
    return out


def study(pools: dict[str, pd.DataFrame], *, scenario: Sequence[str], n_seed: int, k: int, rounds: int,
          seeds: int) -> pd.DataFrame:
    recs = []
    for name, pool in pools.items():
        for strategy in STRATEGIES:
            for seed in range(seeds):
                for r in run_pool(pool, scenario=scenario, n_seed=n_seed, k=k, rounds=rounds,
                                  strategy=strategy, seed=seed):
                    recs.append({"pool": name, **r})
    return pd.DataFrame(recs)


def summarise(res: pd.DataFrame) -> pd.DataFrame:
    """Mean Top-1 (%) and mean regret (%) per round and strategy, over pools and seeds."""
    g = res.groupby(["round", "strategy"]).agg(measured=("measured", "mean"), top1=("top1", "mean"),
                                               regret=("regret", "mean"), complete=("complete", "mean"))
    t = g.unstack("strategy")
    out = pd.DataFrame({"measured rows (mean per pool)": t["measured"]["random"].round(1),
                        "pools fully measured (%)": (100 * t["complete"]["random"]).round(1)})
    for s in STRATEGIES:
        out[f"Top-1 {s} (%)"] = (100 * t["top1"][s]).round(1)
    for s in STRATEGIES:
        out[f"regret {s} (%)"] = (100 * t["regret"][s]).round(2)
    return out


def rows_to_reach(res: pd.DataFrame, target: float) -> pd.Series:
    """Mean measured rows at the first round whose Top-1 (averaged over pools and seeds) reaches target."""
    g = res.groupby(["strategy", "round"]).agg(measured=("measured", "mean"), top1=("top1", "mean"))
    out = {}
    for s in STRATEGIES:
        d = g.loc[s]
        hit = d[d.top1 >= target]
        out[s] = float(hit.measured.iloc[0]) if len(hit) else np.nan
    return pd.Series(out)


def simulator_pools(quick: bool) -> dict[str, pd.DataFrame]:
    models = ["Llama-3.1-8B"] if quick else ["Llama-3.1-8B", "Llama-3.1-70B"]
    gpus = ["H100-SXM"] if quick else ["A100-80GB", "H100-SXM"]
    df = energylens.simulate_profiles(models=models, gpus=gpus, noise=0.02, seed=1)
    return {f"{m} / {g}": d.reset_index(drop=True) for (m, g), d in df.groupby(["model", "gpu"])}


def mlenergy_pools(real: Path, quick: bool) -> dict[str, pd.DataFrame]:
    df = energylens.read_mlenergy_leaderboard(real / "mlenergy_v2")
    pools = {f"{m} / {g} / {w}": d.reset_index(drop=True)
             for (m, g, w), d in df.groupby(["model", "gpu", "workload"]) if len(d) >= 6}
    if quick:
        pools = dict(list(pools.items())[:3])
    return pools


def _md(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join([df.index.name or "", *cols]) + " |",
             "|" + "---|" * (len(cols) + 1)]
    for idx, row in df.iterrows():
        lines.append("| " + " | ".join([str(idx), *[f"{v:g}" if isinstance(v, float) else str(v)
                                                      for v in row]]) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small study (smoke test)")
    ap.add_argument("--seeds", type=int, default=None, help="random seeds per strategy and pool")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "active_profiling.md")
    args = ap.parse_args(argv)
    seeds = args.seeds or (2 if args.quick else 8)
    t0 = time.perf_counter()
    sections = []
    sim = simulator_pools(args.quick)
    sim_cfg = dict(scenario=("input_tokens", "output_tokens"), n_seed=8, k=4, rounds=3 if args.quick else 8)
    res_sim = study(sim, seeds=seeds, **sim_cfg)
    sections.append(("Simulator", sim, sim_cfg, res_sim))
    real = energylens.datasets.real_data_dir()
    if real is not None and (real / "mlenergy_v2").is_dir():
        ml = mlenergy_pools(real, args.quick)
        ml_cfg = dict(scenario=(), n_seed=3, k=1, rounds=2 if args.quick else 6)
        res_ml = study(ml, seeds=seeds, **ml_cfg)
        sections.append(("ML.ENERGY leaderboard v2 (real measurements)", ml, ml_cfg, res_ml))
    cmd = "python benchmarks/active_profiling.py" + (" --quick" if args.quick else "") + (
        f" --seeds {args.seeds}" if args.seeds else "")
    text = ["# Active profiling: measurements needed for selection", "",
            f"Generated by `{cmd}` ({time.perf_counter() - t0:.0f} s); do not edit by hand.", "",
            "Every pool starts from a random seed set of measured rows and adds `k` rows per round,",
            "chosen at random or by `energylens.suggest_next` (`uncertainty`: widest relative",
            "prediction interval; `selection`: highest probability of being the scenario's optimum,",
            "the best measured energy as incumbent). After each round `EnergyLensModel` is refitted on",
            "the measured rows and each scenario's pick is the least energy among measured values and",
            "predictions for the unmeasured. Top-1: share of scenarios whose pick is the true optimum;",
            "regret: the pick's energy over the optimum's, minus one. Means over pools, scenarios and",
            f"{seeds} seeds. Where a pool is fully measured its pick is exact, so late rounds on small",
            "pools say little (see the column of fully measured pools).", ""]
    for title, pools, cfg, res in sections:
        n_cand = np.mean([len(p) for p in pools.values()])
        text += [f"## {title}", "",
                 f"{len(pools)} pools, {n_cand:.1f} candidates per pool on average; seed set "
                 f"{cfg['n_seed']}, {cfg['k']} added per round, scenario columns "
                 f"{list(cfg['scenario']) or '(the pool)'}.", "",
                 _md(summarise(res)), ""]
        reach = pd.DataFrame({f"Top-1 >= {int(100 * t)}%": rows_to_reach(res, t) for t in (0.8, 0.9)})
        reach.index.name = "strategy"
        text += ["Mean measured rows per pool at the first round reaching the Top-1 target "
                 "(nan: never reached within the rounds run):", "", _md(reach), ""]
    args.out.write_text("\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
