"""Speed and memory of fitting and prediction, as ratios against baselines run in this process.

Each figure compares energylens with the bare computation it wraps, from the same data and
the same start, so that the overhead of the library is what is measured:

- fit of the twelve-parameter model on 5,000 rows vs :func:`scipy.optimize.least_squares`
  alone from the start the library computes (target <= 1.2x); both on one BLAS thread, as
  the library's fits run (the default threads are shown beside: on a busy machine they are
  many times slower, see :mod:`energylens.core.threads`);
- 1,000 groups of 20 rows (``GroupedModel``) vs a loop of ``least_squares`` calls over the
  same groups from the same starts (target <= 1.3x);
- prediction of 1,000,000 rows vs the same formula written in plain numpy on the table's
  columns (target <= 1.2x);
- peak memory of a fit on 1,000,000 rows (tracemalloc) vs the size of one Jacobian,
  rows x 12 x 8 bytes (target <= 3x);
- ``energylens --help`` wall time (target <= 150 ms), beside a bare Python start;
- the library's own work per fit, outside the solver (the solver's results replayed), in
  milliseconds: a steadier view of the overhead than the ratios on a busy machine;
- with ``--breakdown`` (only that): the milliseconds of each step of that work, timed one by
  one on a 20-row and a 5,000-row fit.

Run::

    python benchmarks/speed.py [--repeats 7] [--quick] [--breakdown]
"""

from __future__ import annotations

import argparse
import functools
import platform
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize

from energylens import EnergyLensModel, GroupedModel
from energylens.models import energylens_kernel
from energylens.models.design import distinct_labels, training_data
from energylens.models.least_squares import (
    Problem,
    _identify,
    _inside,
    at_bound,
    covariance,
    residual_functions,
)
from energylens.models.parameters import resolve
from energylens.models.start import linear_start

THETA = np.array([0.01, 2e-6, 0.08, 0.05, 1.5, 0.02, 3e-6, 0.1, 0.06, 0.5, 0.05, 2.0])


def table(n: int, seed: int = 0, groups: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "model": np.repeat([f"m{i}" for i in range(groups)], n // groups), "gpu": "g",
        "tp": rng.choice([1, 2, 4, 8], n), "pp": rng.choice([1, 2, 4], n),
        "batch_size": rng.choice([1.0, 4, 16, 64, 256], n),
        "input_tokens": rng.choice([64.0, 256, 1024, 4096], n),
        "output_tokens": rng.choice([16.0, 64, 256, 1024], n),
    })
    V = {"t": df.tp.to_numpy(float), "p": df.pp.to_numpy(float), "B": df.batch_size.to_numpy(),
         "si": df.input_tokens.to_numpy(), "so": df.output_tokens.to_numpy()}
    df["energy_j"] = energylens_kernel(V, THETA) * np.exp(rng.normal(0, 0.02, n))
    return df


def raw_problem(df: pd.DataFrame):
    """The bare least-squares call the library makes: residuals, start, bounds, free set."""
    m = EnergyLensModel()
    d = training_data(df, None, None, variables=m._model_variables(), uses_batch=True,
                      target="energy_j", unit="J", owner="bench")
    V = dict(d.V)
    V["B"] = d.batch.cap.copy()
    specs = m._param_specs()
    r = resolve(specs)
    theta, free = r.theta.copy(), r.free.copy()
    cols0 = np.flatnonzero(free)
    p = Problem(m._kernel, m._jacobian, V, d.y)
    _, J0, G0 = _identify(p, specs, theta, free, r.lower, r.upper)
    theta = np.clip(linear_start(p, specs, theta, free, r.lower, J0, cols0, G0), r.lower, r.upper)
    fun, jac = residual_functions(p, theta, free)
    lo, hi = r.lower[free], r.upper[free]
    x0 = _inside(theta[free], lo, hi)
    return lambda: optimize.least_squares(fun, x0, jac=jac, bounds=(lo, hi), method="trf",
                                          x_scale="jac", tr_solver="exact", xtol=1e-10,
                                          ftol=1e-10, gtol=1e-10)


def timings(pairs: dict, repeats: int) -> dict[str, list[float]]:
    """Times of each callable, interleaved so that drift hits all alike (after one untimed
    call of each, so that imports and first-use costs are not counted)."""
    for fn in pairs.values():
        fn()
    times = {k: [] for k in pairs}
    for _ in range(repeats):
        for k, fn in pairs.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times


def medians(pairs: dict, repeats: int) -> dict:
    """Median time of each callable (see :func:`timings`); ``"ratios"`` holds the range of
    the per-repeat ratios of the first callable to the second (how far one run can fall)."""
    times = timings(pairs, repeats)
    out = {k: float(np.median(v)) for k, v in times.items()}
    a, b = list(times)[:2]
    r = np.asarray(times[a]) / np.asarray(times[b])
    out["ratios"] = (float(r.min()), float(r.max()))
    return out


def _range(t: dict) -> str:
    lo, hi = t["ratios"]
    return f"{lo:.2f}-{hi:.2f}x"


def quiet(fn):
    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    return run


def one_thread(fn):
    """The raw baseline under the same one-thread BLAS limit as the library's fits."""
    from energylens.core.threads import single_blas_thread

    def run():
        with single_blas_thread():
            return fn()
    return run


def bench_fit(repeats: int) -> tuple[float, float, float, str]:
    df = table(5000)
    raw = raw_problem(df)
    t = medians({"lib": quiet(lambda: EnergyLensModel().fit(df)), "raw": one_thread(raw),
                 "raw_threads": raw}, repeats)
    return t["lib"], t["raw"], t["raw_threads"], _range(t)


def bench_groups(n_groups: int, repeats: int) -> tuple[float, float, str]:
    df = table(20 * n_groups, seed=1, groups=n_groups)
    parts = [g for _, g in df.groupby("model", sort=True)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raws = [raw_problem(g) for g in parts]
    t = medians({"lib": quiet(lambda: GroupedModel(EnergyLensModel(), by=["model"]).fit(df)),
                 "raw": one_thread(quiet(lambda: [r() for r in raws]))}, max(3, repeats // 2))
    return t["lib"], t["raw"], _range(t)


def _replay(results, *args, **kwargs):
    return next(results)


def bench_overhead(n_rows: int, n_fits: int, repeats: int) -> float:
    """Seconds per fit spent outside the solver: every fit of ``n_fits`` tables of ``n_rows``
    rows runs once, then again with :func:`scipy.optimize.least_squares` replaced by a replay
    of its recorded results, so that only the library's own work is timed (steadier than a
    difference of two noisy timings)."""
    from energylens.core.threads import single_blas_thread
    from energylens.models import least_squares as lsq

    df = table(n_rows * n_fits, seed=4, groups=n_fits)
    m = EnergyLensModel()
    d = training_data(df, None, None, variables=m._model_variables(), uses_batch=True,
                      target="energy_j", unit="J", owner="bench", read=m._read_variables)
    parts = [d.take(np.arange(i * n_rows, (i + 1) * n_rows)) for i in range(n_fits)]
    solve, recorded = lsq.optimize.least_squares, []

    def fit_all():
        with single_blas_thread():
            for part in parts:
                EnergyLensModel()._fit_data(part)

    times = []
    try:
        lsq.optimize.least_squares = lambda *a, **k: recorded.append(solve(*a, **k)) or recorded[-1]
        quiet(fit_all)()
        for _ in range(repeats):
            lsq.optimize.least_squares = functools.partial(_replay, iter(list(recorded)))
            t0 = time.perf_counter()
            quiet(fit_all)()
            times.append(time.perf_counter() - t0)
    finally:
        lsq.optimize.least_squares = solve
    return float(np.median(times)) / n_fits


def bench_breakdown(n_rows: int, number: int) -> list[tuple[str, float]]:
    """Milliseconds of each step of one fit outside the solver, each timed on its own
    (best of five runs of ``number`` calls), on one group of ``n_rows`` rows: where the
    library's own work per fit goes."""
    import copy
    import timeit

    from energylens.core.domain import Domain
    from energylens.models.report import fit_warnings
    from energylens.models.start import linear_start as start

    df = table(n_rows * 5, seed=1, groups=5)
    est = EnergyLensModel()
    whole = training_data(df, None, None, variables=est._model_variables(), uses_batch=True,
                          target="energy_j", unit="J", owner="bench", read=est._read_variables)
    d = whole.take(np.arange(n_rows))
    m = EnergyLensModel()
    quiet(lambda: m._fit_data(d))()
    specs, st = m._param_specs(), m._state_
    r = resolve(specs)
    V = dict(d.V)
    V["B"] = d.batch.cap
    p = Problem(m._kernel, m._jacobian, V, d.y)

    def identify():
        return _identify(p, specs, r.theta.copy(), r.free.copy(), r.lower, r.upper)

    _, J0, G0 = identify()
    cols0 = np.flatnonzero(r.free)
    fitted_jac = m._jacobian(V, m.coef_)
    params = est.get_params(deep=False)
    part = df.iloc[:n_rows]
    steps = {
        "read the table (a single fit)": lambda: training_data(
            part, None, None, variables=est._model_variables(), uses_batch=True,
            target="energy_j", unit="J", owner="bench", read=est._read_variables),
        "rows of a group (grouped fits)": lambda: whole.take(np.arange(n_rows, 2 * n_rows)),
        "estimator from its parameters": lambda: type(est)(**copy.deepcopy(params)),
        "identifiability (Jacobian, Gram, rank)": identify,
        "linear start": lambda: start(p, specs, r.theta.copy(), r.free.copy(), r.lower, J0,
                                      cols0, G0),
        "covariance": lambda: covariance(fitted_jac, 0.1),
        "bound check": lambda: at_bound(m.coef_, m._lo_, m._hi_, st.free, st.cov,
                                        m.parameter_names),
        "training domain (labels read when first used)": lambda: Domain.from_training(
            V, d.seen(), filled=d.filled, known=d.ranges),
        "the labels, when first used": lambda: distinct_labels(d.labels),
        "fit statistics (groups_ table)": lambda: m.fit_stats_,
        "fit warnings": lambda: fit_warnings(m),
    }
    out = [(name, min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e3)
           for name, fn in steps.items()]
    out.append(("kernel Jacobian alone, for scale", min(timeit.repeat(
        lambda: m._jacobian(V, m.coef_), number=number, repeat=5)) / number * 1e3))
    return out


def plain_numpy(df: pd.DataFrame) -> np.ndarray:
    c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12 = THETA
    t, p = df["tp"].to_numpy(float), df["pp"].to_numpy(float)
    B, si = df["batch_size"].to_numpy(float), df["input_tokens"].to_numpy(float)
    so = df["output_tokens"].to_numpy(float)
    b = B / np.minimum(B, p)
    return (si * (c1 + c2 * si) * (1 + c3 * (t - 1)) * (1 + c4 * (p - 1))
            + so * (c5 / b + c6 + c7 * (si + so / 2)) * (1 + c8 * (t - 1)) * (1 + c9 * (p - 1))
            + t * p * (c10 + c11 * so) / B + c12)


def bench_predict(n: int, repeats: int) -> tuple[float, float, float, str]:
    """Candidates as numbers only (the target), and with model and GPU labels, which the
    library also checks against the labels it was fitted on."""
    labelled = table(n, seed=2)
    numeric = labelled.drop(columns=["model", "gpu", "energy_j"])
    m = quiet(lambda: EnergyLensModel().fit(labelled.head(2000)))()
    m.coef_ = THETA.copy()  # the same formula as plain_numpy
    t = medians({"lib": quiet(lambda: m.predict(numeric)), "raw": lambda: plain_numpy(numeric),
                 "labelled": quiet(lambda: m.predict(labelled))}, repeats)
    np.testing.assert_allclose(m.predict(numeric), plain_numpy(numeric), rtol=1e-10)
    return t["lib"], t["raw"], t["labelled"], _range(t)


def bench_memory(n: int) -> tuple[float, float]:
    df = table(n, seed=3)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    quiet(lambda: EnergyLensModel().fit(df))()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return float(peak), float(n * 12 * 8)


def bench_help(repeats: int) -> tuple[float, float]:
    def run(cmd):
        return lambda: subprocess.run(cmd, check=True, capture_output=True)
    t = medians({"help": run([sys.executable, "-m", "energylens", "--help"]),
                 "python": run([sys.executable, "-c", "import argparse"])}, repeats)
    return t["help"], t["python"]


def bench_first_read(repeats: int) -> tuple[float, float]:
    """A notebook's first ``read_profiles`` of the shipped demo table (import included), in a
    fresh interpreter, beside ``pandas.read_csv`` of the same file."""
    demo = str(Path(__file__).resolve().parents[1] / "data" / "demo_profiles.csv")

    def run(code):
        return lambda: subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    t = medians({"read": run(f"import energylens; energylens.read_profiles({demo!r})"),
                 "pandas": run(f"import pandas; pandas.read_csv({demo!r})")}, repeats)
    return t["read"], t["pandas"]


def fit_page_faults(n: int = 20) -> tuple[float, float]:
    """Minor page faults per 5,000-row fit and per bare solve: fresh memory the allocator hands
    out (and takes back) costs microseconds a page on this machine, so the fit ratio above
    moves with the allocator's state as much as with the library's own work."""
    import resource

    df = table(5000)
    lib, raw = quiet(lambda: EnergyLensModel().fit(df)), one_thread(raw_problem(df))
    out = []
    for fn in (lib, raw):
        fn()
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(n):
            fn()
        out.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n)
    return out[0], out[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--breakdown", action="store_true",
                    help="only the milliseconds of each step of a fit outside the solver")
    args = ap.parse_args(argv)
    r = args.repeats
    if args.breakdown:
        for n_rows, number in ((20, 2000), (5000, 100)):
            print(f"# steps of a {n_rows:,}-row fit outside the solver, ms each (best of 5)")
            for name, ms in bench_breakdown(n_rows, number):
                print(f"{name:45s} {ms:8.4f}")
        return 0
    big = 200_000 if args.quick else 1_000_000
    print(f"# energylens speed ({platform.python_version()}, numpy {np.__version__}, {platform.machine()})")
    lib, raw, threads, spread = bench_fit(6 * r)  # 20 ms a call: many repeats are cheap
    print(f"fit 5,000 rows: {1e3 * lib:.1f} ms vs least_squares alone {1e3 * raw:.1f} ms: "
          f"{lib / raw:.2f}x (target <= 1.2x; single repeats {spread}); least_squares with the "
          f"default BLAS threads {1e3 * threads:.1f} ms")
    lib_pf, raw_pf = fit_page_faults()
    print(f"  minor page faults per call: fit {lib_pf:.0f}, least_squares alone {raw_pf:.0f}")
    n_groups = 200 if args.quick else 1000
    lib, raw, spread = bench_groups(n_groups, r)
    print(f"{n_groups} groups of 20 rows: {lib:.2f} s vs a least_squares loop {raw:.2f} s: "
          f"{lib / raw:.2f}x (target <= 1.3x; single repeats {spread})")
    small, tall = bench_overhead(20, 300, 2 * r + 1), bench_overhead(5000, 10, 2 * r + 1)
    print(f"the library's own work per fit, the solver's results replayed: {1e3 * small:.2f} ms at "
          f"20 rows, {1e3 * tall:.2f} ms at 5,000 rows")
    lib, raw, labelled, spread = bench_predict(big, r)
    print(f"predict {big:,} rows: {1e3 * lib:.1f} ms vs plain numpy {1e3 * raw:.1f} ms: "
          f"{lib / raw:.2f}x (target <= 1.2x; single repeats {spread}); with model and GPU labels checked against "
          f"the training domain {1e3 * labelled:.1f} ms ({labelled / raw:.2f}x)")
    peak, jac = bench_memory(big)
    print(f"fit memory at {big:,} rows: peak {peak / 1e6:.0f} MB, {peak / jac:.2f}x one Jacobian "
          f"({jac / 1e6:.0f} MB) (target <= 3x)")
    lib, raw = bench_help(r)
    print(f"energylens --help: {1e3 * lib:.0f} ms (bare Python start {1e3 * raw:.0f} ms; "
          "target <= 150 ms)")
    lib, raw = bench_first_read(r)
    print(f"first read_profiles of data/demo_profiles.csv in a fresh interpreter: {1e3 * lib:.0f} ms "
          f"vs pandas.read_csv {1e3 * raw:.0f} ms ({lib / raw:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
