"""Speed of the twelve-parameter model: prediction over a million candidates, fit on 5,000 rows.

Targets: predict 1,000,000 candidate configurations in under 0.2 s; fit the twelve
parameters on 5,000 rows in under 20 ms (median). Both are reported as times and as
ratios to a scikit-learn ``LinearRegression`` fit on the same data in the same process,
so that the figures carry over between machines.

Run::

    python benchmarks/speed.py [--repeats 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

from energylens import EnergyLensModel
from energylens.models import energylens_kernel

THETA = np.array([0.01, 2e-6, 0.08, 0.05, 1.5, 0.02, 3e-6, 0.1, 0.06, 0.5, 0.05, 2.0])
COLUMNS = ["tp", "pp", "batch_size", "input_tokens", "output_tokens"]


def table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "tp": rng.choice([1, 2, 4, 8], n), "pp": rng.choice([1, 2, 4], n),
        "batch_size": rng.choice([1.0, 4, 16, 64, 256], n),
        "input_tokens": rng.choice([64.0, 256, 1024, 4096], n),
        "output_tokens": rng.choice([16.0, 64, 256, 1024], n),
    })
    V = {"t": df.tp.to_numpy(float), "p": df.pp.to_numpy(float), "B": df.batch_size.to_numpy(),
         "si": df.input_tokens.to_numpy(), "so": df.output_tokens.to_numpy()}
    df["energy_j"] = energylens_kernel(V, THETA) * np.exp(rng.normal(0, 0.02, n))
    return df


def timed(fn, repeats: int) -> np.ndarray:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return np.asarray(out)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json", default=None, help="write the figures to this file")
    args = ap.parse_args(argv)

    fit_df = table(5000, seed=1)
    X_lin = fit_df[COLUMNS].to_numpy(float)
    y = fit_df["energy_j"].to_numpy()
    cand = table(1_000_000, seed=2).drop(columns="energy_j")
    model = EnergyLensModel().fit(fit_df)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_fit = timed(lambda: EnergyLensModel().fit(fit_df), args.repeats)
    t_lin = timed(lambda: LinearRegression().fit(X_lin, y), args.repeats)
    t_pred = timed(lambda: model.predict(cand), max(3, args.repeats // 3))

    res = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "fit_5000_rows_median_s": float(np.median(t_fit)),
        "predict_1e6_rows_median_s": float(np.median(t_pred)),
        "linear_regression_fit_5000_rows_median_s": float(np.median(t_lin)),
        "fit_ratio_to_linear_regression": float(np.median(t_fit) / np.median(t_lin)),
        "predict_ratio_to_linear_regression_fit": float(np.median(t_pred) / np.median(t_lin)),
        "fit_target_s": 0.020,
        "predict_target_s": 0.200,
    }
    res["fit_meets_target"] = res["fit_5000_rows_median_s"] < res["fit_target_s"]
    res["predict_meets_target"] = res["predict_1e6_rows_median_s"] < res["predict_target_s"]
    print(f"EnergyLensModel fit, 5,000 rows: median {1e3 * res['fit_5000_rows_median_s']:.1f} ms "
          f"(target < 20 ms; {res['fit_ratio_to_linear_regression']:.1f}x LinearRegression.fit "
          f"at {1e3 * res['linear_regression_fit_5000_rows_median_s']:.2f} ms)")
    print(f"EnergyLensModel predict, 1,000,000 rows: median "
          f"{1e3 * res['predict_1e6_rows_median_s']:.0f} ms (target < 200 ms; "
          f"{res['predict_ratio_to_linear_regression_fit']:.1f}x the LinearRegression fit)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return res


if __name__ == "__main__":
    main()
