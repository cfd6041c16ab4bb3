"""Coverage of the hierarchical model's intervals when it is fitted on a few rows.

For each public ML.ENERGY table and each training size, ``--draws`` random draws of rows are
fitted and every other row of the table is predicted: the share of measured energies inside
the 90% interval, as the library gives it (the Student-t quantile on the residual sd's
degrees of freedom) and with the normal quantile in its place (the same sd), beside the
median degrees of freedom. Rows flagged as extrapolated are counted too (a new model or GPU
is most of a small draw's test rows); the second pair of columns leaves them out.

Run (about a minute on one core)::

    python benchmarks/hierarchical_small_fits.py [--draws 15] [--sizes 15,25,50,100]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import energylens
from energylens.datasets import real_data_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _markdown import md_table  # noqa: E402

LEVEL = 0.9


def coverage(df: pd.DataFrame, n: int, draws: int, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {k: [] for k in ("t", "normal", "t_inside", "normal_inside", "dof")}
    for _ in range(draws):
        rows = rng.choice(len(df), n, replace=False)
        train, test = df.iloc[rows], df.drop(df.index[rows])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = energylens.HierarchicalEnergyModel().fit(train)
            pi = m.predict_interval(test, level=LEVEL)
        err = np.abs(np.log(test["energy_j"].to_numpy() / pi["energy_j"].to_numpy()))
        half = np.log(pi["upper"].to_numpy() / pi["energy_j"].to_numpy())  # t quantile x sd
        normal = half * stats.norm.ppf(0.5 + LEVEL / 2) / stats.t.ppf(0.5 + LEVEL / 2, m.sigma_dof_)
        inside = ~pi["extrapolated"].to_numpy()
        out["t"].append(np.mean(err <= half))
        out["normal"].append(np.mean(err <= normal))
        out["t_inside"].append(np.mean((err <= half)[inside]) if inside.any() else np.nan)
        out["normal_inside"].append(np.mean((err <= normal)[inside]) if inside.any() else np.nan)
        out["dof"].append(m.sigma_dof_)
    return {"90% coverage, t (library)": np.mean(out["t"]),
            "normal quantile": np.mean(out["normal"]),
            "t, rows not extrapolated": np.nanmean(out["t_inside"]),
            "normal, rows not extrapolated": np.nanmean(out["normal_inside"]),
            "median dof": np.median(out["dof"])}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=15)
    ap.add_argument("--sizes", default="15,25,50,100")
    args = ap.parse_args(argv)
    root = real_data_dir()
    if root is None:
        sys.exit("the public data folder is absent (set ENERGYLENS_REAL_DATA)")
    rows = []
    for name in ("v2", "v3"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = energylens.read_mlenergy_leaderboard(root / f"mlenergy_{name}").reset_index(drop=True)
        for n in map(int, args.sizes.split(",")):
            rows.append({"table": f"ML.ENERGY {name}", "rows": n, **coverage(df, n, args.draws)})
    print(md_table(pd.DataFrame(rows), {"median dof": "{:.1f}"}))


if __name__ == "__main__":
    main()
