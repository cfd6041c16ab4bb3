"""Speed of :func:`energylens.core.catalogue.descriptors` on a large table: first call and warm.

Makes a table of ``--rows`` rows (default 1,000,000; seeded) whose ``model`` and ``gpu`` are
drawn at random from every row of the shipped catalogue (each model at its own checkpoint
precision), then calls ``descriptors`` on it ``--repeats`` times in this process and prints
two wall times:

* the first call, which pays one-time costs: the first use of pandas' string kernels and
  fresh memory for the result (about 200 MB of floats); it says whether the call imported
  scikit-learn (its option check does not, for a valid ``errors``);
* "warm", the best of the later calls: what a session that has already used the library pays
  per call. The previous result is released before each call; one still held while the next
  is computed makes that call find fresh memory again (about 0.5 s more at a million rows).

The catalogue files are read before the first call (to draw the names), so their reading is
not in the figures.

Run::

    python benchmarks/descriptors_speed.py [--rows 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import pandas as pd


def table(n_rows: int, seed: int = 0) -> tuple[pd.DataFrame, int, int]:
    """``n_rows`` rows of every catalogue model and GPU, drawn at random; with the counts."""
    from energylens.core.catalogue import gpu_table, model_table

    gpus, models = gpu_table()["name"].to_numpy(), model_table()["name"].to_numpy()
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"model": rng.choice(models, n_rows), "gpu": rng.choice(gpus, n_rows)})
    return df, len(models), len(gpus)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the table")
    ap.add_argument("--repeats", type=int, default=5, help="calls in all (at least 2)")
    args = ap.parse_args(argv)
    if args.repeats < 2 or args.rows < 1:
        ap.error("--repeats must be at least 2 and --rows at least 1")
    from energylens.core.catalogue import descriptors

    df, n_models, n_gpus = table(args.rows)
    sklearn_before = "sklearn" in sys.modules
    times, sklearn_by_call = [], False
    for _ in range(args.repeats):
        out = None  # release the previous result (see the module's docstring)
        t0 = time.perf_counter()
        out = descriptors(df)
        times.append(time.perf_counter() - t0)
        sklearn_by_call = sklearn_by_call or (not sklearn_before and "sklearn" in sys.modules)
        assert len(out) == len(df)
    print(f"# descriptors speed (Python {platform.python_version()}, numpy {np.__version__}, "
          f"pandas {pd.__version__}, {platform.machine()}, {os.cpu_count()} CPU cores)")
    print(f"{args.rows:,} rows over {n_models} models and {n_gpus} GPUs "
          f"({df.groupby(['model', 'gpu']).ngroups} (model, GPU) pairs present)")
    print(f"first call: {times[0]:.2f} s"
          + (" (includes importing scikit-learn)" if sklearn_by_call else ""))
    print(f"warm (best of calls 2-{args.repeats}): {min(times[1:]):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
