"""Structure discovery on simulated and real profiling tables.

Runs :func:`energylens.discovery.discover` (the deterministic ``terms`` engine, and
``operon`` with a small budget where pyoperon is installed) per (model, GPU) group of

* the simulator table :func:`energylens.simulate_profiles` (seed 0, 2% noise), and
* the public measurements in ``../shared/data`` (ML.ENERGY v2 and the Wilkins length
  sweeps), read with :mod:`energylens.readers`; skipped with a message where absent,

records which additive terms each search finds and maps them onto the terms of the
twelve-parameter EnergyLens form (c1 ... c12). Writes ``docs/discovery_results.md``.

Usage::

    python benchmarks/discovery.py [--quick] [--no-operon] [--out docs/discovery_results.md]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import sympy

import energylens
from energylens.discovery import discover
from energylens.discovery.terms import additive_terms

ROOT = Path(__file__).resolve().parents[1]
_SYMS = {n: sympy.Symbol(n) for n in ("t", "p", "B", "si", "so", "N")}


def energylens_term(term: sympy.Expr) -> str:
    """Which EnergyLens parameter's term an expanded monomial corresponds to."""
    powers = {n: 0 for n in _SYMS}
    for base, exp in term.as_powers_dict().items():
        name = str(base)
        if name not in powers or not exp.is_Integer:
            return "other"
        powers[name] = int(exp)
    t, p, B, si, so = (powers[k] for k in ("t", "p", "B", "si", "so"))
    if so == 0 and si == 0:
        if t == p == B == 0:
            return "c12"
        if B == -1 and t >= 0 and p >= 0:
            return "c10"
        return "other"
    if so == 0:
        if B != 0 or p > 1 or t > 1:
            return "other"
        if si == 1 and t == 0 and p == 0:
            return "c1"
        if si == 2 and t == 0 and p == 0:
            return "c2"
        if si == 1 and t == 1:
            return "c3" if p == 0 else "c3*c4"
        if si == 1 and p == 1:
            return "c4"
        if si == 2 and (t or p):
            return "c2*c3/c4"
        return "other"
    if so == 1 and si == 0:
        if B == 0 and t == 0 and p == 0:
            return "c6"
        if B == -1 and t == 0 and p == 0:
            return "c5"
        if B == 0 and t == 1 and p == 0:
            return "c8"
        if B == 0 and p == 1 and t == 0:
            return "c9"
        if B == -1 and (t or p):
            return "c11 (or c5*c8)"
        return "other"
    if (so == 1 and si == 1) or (so == 2 and si == 0):
        return "c7" if B == 0 and t == 0 and p == 0 else "c7*c8/c9"
    return "other"


def run_group(df: pd.DataFrame, engines: list[str], features: list[str] | None = None) -> list[dict]:
    rows = []
    for engine in engines:
        kw = {}
        if engine == "operon":
            kw = dict(niterations=30, engine_options={"population_size": 300}, seed=0)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = discover(df, engine=engine, features=features, **kw)
        elapsed = time.perf_counter() - t0
        e = res.energy_expression()
        terms = [t for _, t in additive_terms(e)]
        mapped = sorted({energylens_term(t) for t in terms})
        pred = res.predict(df)
        mape = float(100 * np.mean(np.abs(pred - df["energy_j"]) / df["energy_j"]))
        rows.append({"engine": engine, "n": len(df), "time_s": round(elapsed, 2),
                     "terms": ", ".join(sorted(str(t) for t in terms)),
                     "energylens": ", ".join(mapped), "mape_pct": round(mape, 2)})
    return rows


def simulator_section(engines: list[str], quick: bool) -> tuple[pd.DataFrame, str]:
    if (ROOT / "energylens" / "simulate.py").exists():
        df = energylens.simulate_profiles(seed=0)
        note = "energylens.simulate_profiles(seed=0) (2% noise), one search per (model, GPU)."
    else:  # pragma: no cover - only before the simulator exists
        raise SystemExit("energylens.simulate is missing.")
    out = []
    groups = list(df.groupby(["model", "gpu"]))
    if quick:
        groups = groups[:2]
    for (model, gpu), g in groups:
        for r in run_group(g.reset_index(drop=True), engines):
            out.append({"table": "simulator", "group": f"{model} / {gpu}", **r})
    return pd.DataFrame(out), note


def real_sections(engines: list[str], quick: bool) -> tuple[pd.DataFrame, list[str]]:
    from energylens.datasets import real_data_dir

    notes = []
    base = real_data_dir()
    if base is None:
        return pd.DataFrame(), ["Real data absent (../shared/data or $ENERGYLENS_REAL_DATA): skipped."]
    try:
        from energylens import readers
    except ImportError as exc:  # pragma: no cover
        return pd.DataFrame(), [f"energylens.readers unavailable ({exc}): real data skipped."]
    out = []
    try:
        ml = readers.read_mlenergy_leaderboard(base / "mlenergy_v2")
        ml = ml[ml["energy_j"] > 0]
        keys = ["model", "gpu", "workload"] if "workload" in ml.columns else ["model", "gpu"]
        sizes = ml.groupby(keys).size().sort_values(ascending=False)
        take = sizes[sizes >= 12].index[: (2 if quick else 8)]
        for key in take:
            g = ml.set_index(keys).loc[key].reset_index()
            for r in run_group(g, engines):
                out.append({"table": "ML.ENERGY v2", "group": " / ".join(map(str, key)), **r})
        notes.append("ML.ENERGY v2: the largest (model, GPU, task) groups with >= 12 configurations; "
                     "input length is fixed by the task, so prefill terms appear as constants.")
    except (FileNotFoundError, ValueError, OSError) as exc:
        notes.append(f"ML.ENERGY v2 skipped: {exc}")
    try:
        wk = readers.read_wilkins(base / "wilkins2024")
        keys = ["model", "gpu"]
        sizes = wk.groupby(keys).size().sort_values(ascending=False)
        take = sizes[sizes >= 20].index[: (2 if quick else 6)]
        for key in take:
            g = wk.set_index(keys).loc[key].reset_index()
            feats = [c for c in ("input_tokens", "output_tokens") if g[c].nunique() > 1]
            for r in run_group(g, engines, features=feats):
                out.append({"table": "Wilkins 2024", "group": " / ".join(map(str, key)), **r})
        notes.append("Wilkins 2024: length sweeps at batch 1 (one factor at a time), per (model, system).")
    except (FileNotFoundError, ValueError, OSError, KeyError) as exc:
        notes.append(f"Wilkins 2024 skipped: {exc}")
    return pd.DataFrame(out), notes


def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(r[c]).replace("|", "/") for c in cols) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two groups per table")
    ap.add_argument("--no-operon", action="store_true", help="terms engine only")
    ap.add_argument("--out", default=str(ROOT / "docs" / "discovery_results.md"))
    args = ap.parse_args(argv)
    engines = ["terms"]
    if not args.no_operon and importlib.util.find_spec("pyoperon") is not None:
        engines.append("operon")
    t0 = time.perf_counter()
    sim, sim_note = simulator_section(engines, args.quick)
    real, real_notes = real_sections(engines, args.quick)
    parts = [
        "# Discovery results (generated)",
        "",
        "Generated by `python benchmarks/discovery.py" + (" --quick" if args.quick else "") +
        "`; do not edit by hand. Each row is one search on one group: the additive terms of the "
        "selected formula of energy per request (expanded, in `t, p, B, si, so`; `B` is the "
        "effective batch), the EnergyLens parameters whose terms they are, and the in-sample "
        "MAPE of the discovered formula.",
        "",
        "## Simulator",
        "",
        sim_note,
        "",
        _md_table(sim),
        "",
        "## Real measurements",
        "",
        *[f"- {n}" for n in real_notes],
        "",
        _md_table(real) if len(real) else "(none)",
        "",
        f"Total time: {time.perf_counter() - t0:.0f} s.",
        "",
    ]
    Path(args.out).write_text("\n".join(parts), encoding="utf-8")
    print("\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
