"""Which parameters a tiny group keeps free: the identifiability tie-break, measured.

When a group's rows cannot tell several terms apart (two rows, or a sweep of one variable at a
time), :func:`energylens.models.least_squares.identify` keeps as many columns as the Jacobian's
rank, choosing them as in a column-pivoted QR; among columns at least ``PIVOT_SLACK`` as
independent as the best, the declared preference decides. Every choice fits the training
rows equally well, so it only shows on held-out rows. This script runs the per-group
protocol of ``benchmarks/real_data.py`` (EnergyLens per group, n rows per group, the rest
held out) on the four public tables for the library's slack and for pure pivoting (no
preference among near-ties), and prints median MAPE over seeds and mean Top-1.

Run (under a minute on 2 cores)::

    python benchmarks/identifiability.py [--seeds 10] [--slack 0.25 0.999]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import pandas as pd

from energylens import EnergyLensModel, GroupedModel
from energylens.datasets import real_data_dir
from energylens.evaluation import sample_efficiency
from energylens.models import least_squares

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _markdown import md_table  # noqa: E402
from real_data import load  # noqa: E402


def run(seeds: int, slacks: list[float]) -> pd.DataFrame:
    real = real_data_dir()
    if real is None:
        raise SystemExit("the public measurements are not available (set ENERGYLENS_REAL_DATA)")
    sets = {k: v for k, v in load(Path(real)).items() if not k.startswith("demo")}
    rows = []
    default = least_squares.PIVOT_SLACK
    try:
        for slack in slacks:
            least_squares.PIVOT_SLACK = slack  # read by identify() at each call
            for name, spec in sets.items():
                model = {"EnergyLens": GroupedModel(EnergyLensModel(), by=spec["by"], min_rows=2,
                                                    fallback="pooled")}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = sample_efficiency(model, spec["df"], n_train=spec["n_group"], seeds=seeds,
                                            group=spec["by"], scenario=spec["scenario"])
                for n, g in res.groupby("n_train"):
                    rows.append({"slack": slack, "table": name, "rows per group": n,
                                 "MAPE (median over seeds)": g[g.metric == "mape"].value.median(),
                                 "Top-1": g[g.metric == "top1"].value.mean()})
    finally:
        least_squares.PIVOT_SLACK = default
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--slack", type=float, nargs="+", default=[least_squares.PIVOT_SLACK, 0.999])
    args = ap.parse_args(argv)
    res = run(args.seeds, args.slack)
    wide = res.pivot_table(index=["table", "rows per group"], columns="slack",
                           values=["MAPE (median over seeds)", "Top-1"])
    wide.columns = [f"{m}, slack {s:g}" for m, s in wide.columns]
    print(f"# Identifiability tie-break ({args.seeds} seeds; library default slack "
          f"{least_squares.PIVOT_SLACK:g})\n")
    print(md_table(wide.reset_index(), {c: "{:.3f}" if c.startswith("Top") else "{:.1f}"
                                        for c in wide.columns}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
