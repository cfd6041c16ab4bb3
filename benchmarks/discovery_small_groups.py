"""Term search on the small groups of real tables: leave-one-row-out error of ``discover``.

For every (model, GPU) group of ML.ENERGY v2 and v3 with at least five rows, each row in turn
is held out, ``discover(rest, engine="terms")`` is run on the others with the selection rule
given, and the held-out row is predicted by the chosen formula. Printed per table and rule:
the mean absolute percentage error over the held-out rows, and how many predictions the
library refused because the formula gave a negative energy there (refused rows are not in the
mean). This is the check behind the small-sample selection of the term search: a group of
seven rows must not get a six-term formula.

Run (under a minute on 2 cores)::

    python benchmarks/discovery_small_groups.py [--rules best criterion] [--min-rows 5]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

import energylens as el
from energylens.datasets import real_data_dir


def held_out_errors(df, rule: str, min_rows: int) -> tuple[list[float], int, int]:
    """Absolute percentage errors of the held-out rows, refusals, groups used."""
    errors, refused, groups = [], 0, 0
    for _, g in df.groupby(["model", "gpu"], sort=True):
        if len(g) < min_rows:
            continue
        groups += 1
        for i in range(len(g)):
            rest, row = g.drop(index=g.index[i]), g.iloc[[i]]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = el.discover(rest, engine="terms", model_selection=rule, progress=False)
                try:
                    pred = float(np.asarray(res.predict(row))[0])
                except ValueError:  # a negative or non-finite energy, refused with the row
                    refused += 1
                    continue
            errors.append(100.0 * abs(pred / float(row["energy_j"].iloc[0]) - 1.0))
    return errors, refused, groups


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", nargs="*", default=["best", "criterion"])
    ap.add_argument("--min-rows", type=int, default=5)
    args = ap.parse_args(argv)
    root = real_data_dir()
    if root is None:
        print("public data not found (set ENERGYLENS_REAL_DATA): nothing to measure")
        return 0
    print(f"# leave-one-row-out error of discover(engine='terms') per (model, GPU) group, "
          f">= {args.min_rows} rows")
    print("| table | rule | groups | held-out rows | mean APE % | median APE % | refused |")
    print("|---|---|---|---|---|---|---|")
    for name in ("mlenergy_v2", "mlenergy_v3"):
        df = el.read_mlenergy_leaderboard(root / name).reset_index(drop=True)
        for rule in args.rules:
            t0 = time.perf_counter()
            errors, refused, groups = held_out_errors(df, rule, args.min_rows)
            print(f"| {name} | {rule} | {groups} | {len(errors) + refused} | {np.mean(errors):.1f} | "
                  f"{np.median(errors):.1f} | {refused} |  ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
