"""Speed of the README's first command, as ratios against a plain fit run in this process.

The baseline is the report's own first step: one EnergyLens model per model and GPU of the
demo table (``GroupedModel(EnergyLensModel()).fit``), timed here. Against it:

- ``energylens report data/demo_profiles.csv -o <tmp>`` run as a fresh process (what a user
  waits for: Python start, imports, analysis, figures, files; target <= 15 s on an idle
  two-core machine), and with ``--quick``;
- the report's steps, from one analysis in this process (which of them dominates);
- ``energylens --help`` in a fresh process (target <= 150 ms), beside a bare Python start;
- the comparison's ensembles at scikit-learn's default size (100 trees or rounds, the
  comparison list's) against the estimators' own 300: held-out MAPE and time per fit.

Run::

    python benchmarks/report_speed.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import run_times  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo_profiles.csv"


def _median_time(fn, repeats: int) -> float:
    return statistics.median(run_times(fn, repeats))


def _cli(args: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "energylens", *args], check=True, capture_output=True,
                   cwd=ROOT)


def plain_fit(df, repeats: int) -> float:
    from energylens import EnergyLensModel, GroupedModel

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            GroupedModel(EnergyLensModel(), by=["model", "gpu"]).fit(df)
    fit()  # warm: imports and first calls
    return _median_time(fit, max(repeats, 5))


def report_runs(repeats: int) -> dict[str, float]:
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for name, extra in (("report", []), ("report --quick", ["--quick"])):
            args = ["report", str(DEMO), "-o", os.path.join(d, name.replace(" ", "")), "--quiet",
                    *extra]
            out[name] = _median_time(lambda args=args: _cli(args), repeats)
    return out


def steps(df) -> dict[str, float]:
    from energylens.report import analyse, render

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = analyse(df, show_progress=False)
        t = time.perf_counter()
        render(a)
    return {**a.timings, "drawing the figures and the page": time.perf_counter() - t}


def help_time(repeats: int) -> tuple[float, float]:
    def run(cmd):
        return lambda: subprocess.run(cmd, check=True, capture_output=True)
    return (_median_time(run([sys.executable, "-m", "energylens", "--help"]), max(repeats, 5)),
            _median_time(run([sys.executable, "-c", "import argparse"]), max(repeats, 5)))


def ensembles(df, seeds: int = 5) -> list[tuple[str, float, float]]:
    from energylens.evaluation import sample_efficiency
    from energylens.models.ensemble import GradientBoostingEnergyModel, RandomForestEnergyModel

    models = {"RandomForest 100": RandomForestEnergyModel(n_estimators=100),
              "RandomForest 300": RandomForestEnergyModel(n_estimators=300),
              "HistGradientBoosting 100": GradientBoostingEnergyModel(max_iter=100),
              "HistGradientBoosting 300": GradientBoostingEnergyModel(max_iter=300)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sample_efficiency(models, df, n_train=[10, 20, 50], seeds=seeds,
                                group=["model", "gpu"])
    rows = []
    for name in models:
        r = res[res["model"] == name]
        mape = r[r["metric"] == "mape"].groupby("n_train")["value"]
        rows.append((name, mape.mean().to_dict(), mape.std().to_dict(),
                     float(r[r["metric"] == "fit_time_s"]["value"].mean())))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="runs of each command (median)")
    args = ap.parse_args(argv)
    import energylens

    df = energylens.read_profiles(DEMO)
    print(f"# energylens report speed ({platform.python_version()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at the start)")
    base = plain_fit(df, args.repeats)
    print(f"baseline: GroupedModel(EnergyLensModel()).fit on the demo table ({len(df)} rows): "
          f"{1e3 * base:.0f} ms")
    for name, t in report_runs(args.repeats).items():
        print(f"energylens {name} data/demo_profiles.csv (fresh process): {t:.1f} s = "
              f"{t / base:.0f}x the plain fit" + (" (target <= 15 s)" if name == "report" else ""))
    print("steps of one report (in this process):")
    for name, t in steps(df).items():
        print(f"  {name:<48} {t:6.2f} s  {t / base:6.1f}x")
    h, py = help_time(args.repeats)
    print(f"energylens --help: {1e3 * h:.0f} ms (target <= 150 ms; bare Python start "
          f"{1e3 * py:.0f} ms)")
    print("ensemble sizes in the comparison (held-out MAPE %, mean +- sd over 5 seeds, by rows "
          "per group; mean time per fit and prediction):")
    for name, mean, sd, t in ensembles(df):
        cells = ", ".join(f"{n}: {mean[n]:.1f} +- {sd[n]:.1f}" for n in sorted(mean))
        print(f"  {name:<26} {cells}; {t:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
