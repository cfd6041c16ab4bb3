"""Structure discovery on simulated and real profiling tables, and the speed of the engines.

Speed (ratios against baselines run in the same process, so they carry over between machines):

* the term search on 500 rows, against one least-squares solve over its whole term library;
* pyoperon (where installed): the raw ``SymbolicRegressor`` run on one thread is the
  baseline; against it, the procedure energylens used before (a first, shorter pass to
  estimate the noise, then the search; one thread), the :class:`~energylens.discovery.Operon`
  engine on one thread, and the engine with its default threads (every core); and, at the
  engine's default budget, every core against one thread.

Recovery: :func:`energylens.discovery.discover` (``TermSearch()``, and ``Operon`` with a small
budget where pyoperon is installed) per (model, GPU) group of

* the simulator table :func:`energylens.simulate_profiles` (seed 0, 2% noise), and
* the public measurements in ``../shared/data`` (ML.ENERGY v2 and the Wilkins length
  sweeps), read with :mod:`energylens.readers`; skipped with a message where absent,

recording which additive terms each search finds and mapping them onto the terms of the
twelve-parameter EnergyLens form (c1 ... c12). Writes ``docs/discovery_results.md``.

Usage::

    python benchmarks/discovery.py [--quick] [--no-operon] [--repeats 3] [--out docs/discovery_results.md]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import sympy

import energylens
from energylens.core.io import atomic_write
from energylens.core.metrics import mape
from energylens.discovery import DEFAULT_TRANSFORMS, Operon, TermSearch, discover
from energylens.discovery.engines.linear import additive_terms
from energylens.discovery.engines.operon import default_threads
from energylens.discovery.engines.terms import build_library
from energylens.discovery.features import feature_table, target_values
from energylens.discovery.presentation import legend_text, symbol_names

ROOT = Path(__file__).resolve().parents[1]
_SYMS = {n: sympy.Symbol(n) for n in ("t", "p", "B", "si", "so", "N")}
FEATURES = ["tp", "pp", "batch_size", "input_tokens", "output_tokens"]
#: The genetic budget of the recovery sections.
OPERON_BUDGET = dict(generations=30, population_size=300, random_state=0)


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
        return "c10" if B == -1 and t >= 0 and p >= 0 else "other"
    if so == 0:
        if B != 0 or p > 1 or t > 1:
            return "other"
        return {(1, 0, 0): "c1", (2, 0, 0): "c2", (1, 1, 0): "c3", (1, 1, 1): "c3*c4",
                (1, 0, 1): "c4"}.get((si, t, p), "c2*c3/c4" if si == 2 else "other")
    if so == 1 and si == 0:
        simple = {(0, 0, 0): "c6", (-1, 0, 0): "c5", (0, 1, 0): "c8", (0, 0, 1): "c9"}
        if (B, t, p) in simple:
            return simple[(B, t, p)]
        return "c11 (or c5*c8)" if B == -1 and (t or p) else "other"
    if (so == 1 and si == 1) or (so == 2 and si == 0):
        return "c7" if B == 0 and t == 0 and p == 0 else "c7*c8/c9"
    return "other"


# ---- speed -----------------------------------------------------------------------------------
def _planted(n: int, seed: int = 0) -> pd.DataFrame:
    """Energy = 0.01 si (1 + 0.2 (t-1)) + 0.03 so + 0.4 so/B, with 1% noise."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"tp": rng.choice([1, 2, 4, 8], n), "pp": rng.choice([1, 2], n),
                       "batch_size": rng.choice([1.0, 4.0, 16.0, 64.0], n),
                       "input_tokens": rng.uniform(64, 2048, n), "output_tokens": rng.uniform(32, 1024, n)})
    f = (0.01 * df.input_tokens * (1 + 0.2 * (df.tp - 1)) + 0.03 * df.output_tokens
         + 0.4 * df.output_tokens / df.batch_size)
    df["energy_j"] = f * (1 + 0.01 * rng.standard_normal(n))
    return df


def _median_time(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return float(np.median(out))


def speed_terms(repeats: int) -> list[dict]:
    df = _planted(500)
    F, defs, _ = feature_table(df, FEATURES, DEFAULT_TRANSFORMS)
    y = target_values(df)
    lib = build_library(F)
    cols = {c: F[c].to_numpy() for c in F.columns}
    A = np.column_stack([t.values(cols, len(y)) for t in lib]) / y[:, None]
    engine = TermSearch()
    engine.search(F, y, definitions=defs)  # warm-up (imports, lambdify)
    base = _median_time(lambda: np.linalg.lstsq(A, np.ones(len(y)), rcond=None), repeats * 5)
    search = _median_time(lambda: engine.search(F, y, definitions=defs), repeats)
    return [{"what": f"one least-squares solve over the {len(lib)}-term library (baseline)",
             "time_s": base, "ratio": 1.0},
            {"what": "TermSearch() on 500 rows", "time_s": search, "ratio": search / base}]


def _old_two_pass(sk, settings: dict, X: np.ndarray, y: np.ndarray) -> None:
    """The procedure energylens used before: a pass of a quarter of the generations to
    estimate the noise for the MDL choice, then the search itself."""
    first = sk.SymbolicRegressor(**{**settings, "generations": max(5, settings["generations"] // 4),
                                    "uncertainty": [float(np.std(y)) or 1.0]})
    first.fit(X, y)
    sd = float(np.std(y - first.predict(X), ddof=1))
    sk.SymbolicRegressor(**{**settings, "uncertainty": [sd]}).fit(X, y)
    return None


def _timed(fn) -> tuple[float, float]:
    """(pyoperon time, total time) of one call; ``fn`` returns its pyoperon time or None."""
    t0 = time.perf_counter()
    inner = fn()
    total = time.perf_counter() - t0
    return (total if inner is None else inner), total


def speed_operon(repeats: int) -> list[dict]:
    import pyoperon.sklearn as sk

    df = _planted(200)
    F, defs, _ = feature_table(df, FEATURES, DEFAULT_TRANSFORMS)
    y = np.array(target_values(df), dtype=float, copy=True)
    X = np.array(F.to_numpy(dtype=float), order="C", copy=True)
    one, every = Operon(n_threads=1, **OPERON_BUDGET), Operon(**OPERON_BUDGET)
    settings = {**one.settings(X, y), "uncertainty": [1.0]}
    runs = {
        "raw": lambda: sk.SymbolicRegressor(**settings).fit(X, y) and None,
        "old": lambda: _old_two_pass(sk, settings, X, y),
        "one": lambda: one.search(F, y, definitions=defs).info["search_s"],
        "every": lambda: every.search(F, y, definitions=defs).info["search_s"],
    }
    # Interleaved rounds, so that a change in the machine's load touches every variant alike.
    times: dict[str, list] = {k: [] for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            times[k].append(_timed(fn))
    med = {k: np.median(np.array(v), axis=0) for k, v in times.items()}
    raw = float(med["raw"][0])
    n = default_threads()
    rows = [("raw pyoperon SymbolicRegressor, 1 thread (baseline)", med["raw"][0]),
            ("before: noise pass + search, 1 thread", med["old"][0]),
            ("after: Operon(n_threads=1), pyoperon part", med["one"][0]),
            (f"after: Operon() on {n} thread(s), pyoperon part", med["every"][0]),
            ("after: Operon(n_threads=1), whole search (+ noise estimate, parsing, "
             "simplification, losses)", med["one"][1]),
            (f"after: Operon() on {n} thread(s), whole search", med["every"][1])]
    return [{"what": w, "time_s": float(t), "ratio": float(t) / raw} for w, t in rows]


def speed_operon_threads(repeats: int) -> list[dict]:
    """The engine's default budget on one thread and on every core (pyoperon part)."""
    df = _planted(200)
    F, defs, _ = feature_table(df, FEATURES, DEFAULT_TRANSFORMS)
    y = target_values(df)
    engines = {"one": Operon(n_threads=1), "every": Operon()}
    times: dict[str, list] = {k: [] for k in engines}
    for _ in range(repeats):
        for k, e in engines.items():
            times[k].append(e.search(F, y, definitions=defs).info["search_s"])
    one, every = (float(np.median(times[k])) for k in ("one", "every"))
    return [{"what": "Operon(n_threads=1), default budget, pyoperon part (baseline)", "time_s": one,
             "ratio": 1.0},
            {"what": f"Operon(), default budget, {default_threads()} thread(s), pyoperon part",
             "time_s": every, "ratio": every / one}]


# ---- recovery --------------------------------------------------------------------------------
def run_group(df: pd.DataFrame, engines: dict, features: list[str] | None = None) -> tuple[list[dict], list]:
    rows, exprs = [], []
    for name, engine in engines.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = discover(df, engine=engine, features=features)
        elapsed = time.perf_counter() - t0
        terms = [t for _, t in additive_terms(res.energy_expression())]
        exprs.append(res.energy_expression())
        rows.append({"engine": name, "n": len(df), "time_s": round(elapsed, 2),
                     "terms": ", ".join(sorted(str(t) for t in terms)),
                     "energylens": ", ".join(sorted({energylens_term(t) for t in terms})),
                     "mape_pct": round(mape(df["energy_j"], res.predict(df)), 2)})
    return rows, exprs


def simulator_section(engines: dict, quick: bool) -> tuple[pd.DataFrame, list]:
    df = energylens.simulate_profiles(seed=0)
    groups = list(df.groupby(["model", "gpu"]))[: (2 if quick else None)]
    out, exprs = [], []
    for (model, gpu), g in groups:
        rows, e = run_group(g.reset_index(drop=True), engines)
        out += [{"table": "simulator", "group": f"{model} / {gpu}", **r} for r in rows]
        exprs += e
    return pd.DataFrame(out), exprs


def _groups(df: pd.DataFrame, keys: list[str], min_rows: int, take: int):
    sizes = df.groupby(keys).size().sort_values(ascending=False)
    for key in sizes[sizes >= min_rows].index[:take]:
        yield key, df.set_index(keys).loc[key].reset_index()


def real_sections(engines: dict, quick: bool) -> tuple[pd.DataFrame, list[str], list]:
    from energylens import readers
    from energylens.datasets import real_data_dir

    base = real_data_dir()
    if base is None:
        return pd.DataFrame(), ["Real data absent (../shared/data or $ENERGYLENS_REAL_DATA): skipped."], []
    out, notes, exprs = [], [], []
    try:
        ml = readers.read_mlenergy_leaderboard(base / "mlenergy_v2")
        ml = ml[ml["energy_j"] > 0]
        keys = ["model", "gpu", "workload"] if "workload" in ml.columns else ["model", "gpu"]
        for key, g in _groups(ml, keys, 12, 2 if quick else 8):
            rows, e = run_group(g, engines)
            out += [{"table": "ML.ENERGY v2", "group": " / ".join(map(str, key)), **r} for r in rows]
            exprs += e
        notes.append("ML.ENERGY v2: the largest (model, GPU, task) groups with >= 12 configurations; "
                     "input length is fixed by the task, so prefill terms appear as constants.")
    except (FileNotFoundError, ValueError, OSError) as exc:
        notes.append(f"ML.ENERGY v2 skipped: {exc}")
    try:
        wk = readers.read_wilkins(base / "wilkins2024")
        for key, g in _groups(wk, ["model", "gpu"], 20, 2 if quick else 6):
            feats = [c for c in ("input_tokens", "output_tokens") if g[c].nunique() > 1]
            rows, e = run_group(g, engines, features=feats)
            out += [{"table": "Wilkins 2024", "group": " / ".join(map(str, key)), **r} for r in rows]
            exprs += e
        notes.append("Wilkins 2024: length sweeps at batch 1 (one factor at a time), per (model, system).")
    except (FileNotFoundError, ValueError, OSError, KeyError) as exc:
        notes.append(f"Wilkins 2024 skipped: {exc}")
    return pd.DataFrame(out), notes, exprs


def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(r[c]).replace("|", "/") for c in cols) + " |")
    return "\n".join(lines)


def _speed_md(rows: list[dict]) -> str:
    return _md_table(pd.DataFrame([{"run": r["what"], "time_s": f"{r['time_s']:.3g}",
                                    "ratio": f"{r['ratio']:.2f}"} for r in rows]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two groups per table")
    ap.add_argument("--no-operon", action="store_true", help="terms engine only")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per speed figure")
    ap.add_argument("--out", default=str(ROOT / "docs" / "discovery_results.md"))
    args = ap.parse_args(argv)
    operon = not args.no_operon and importlib.util.find_spec("pyoperon") is not None
    engines = {"terms": TermSearch(), **({"operon": Operon(**OPERON_BUDGET)} if operon else {})}
    t0 = time.perf_counter()
    speed = speed_terms(args.repeats)
    ospeed = speed_operon(args.repeats) if operon else []
    tspeed = speed_operon_threads(args.repeats) if operon else []
    print(_speed_md(speed + ospeed + tspeed), flush=True)
    sim, sim_exprs = simulator_section(engines, args.quick)
    real, real_notes, real_exprs = real_sections(engines, args.quick)
    legend = legend_text(symbol_names(sim_exprs + real_exprs))
    cmd = "python benchmarks/discovery.py" + (" --quick" if args.quick else "")
    parts = [
        "# Discovery results (generated)", "",
        f"Generated by `{cmd}` on {os.cpu_count()} CPU(s); do not edit by hand.", "",
        "## Speed", "",
        "Median of repeated runs; each ratio is against the baseline of its block, run in the same "
        "process. pyoperon runs on the planted table of 200 rows with the budget below "
        f"({OPERON_BUDGET}); `before` is the procedure energylens used until the engine estimated "
        "the noise without a second search.", "",
        _speed_md(speed), "",
        _speed_md(ospeed) if ospeed else "(pyoperon not installed: no operon timings.)", "",
        *([f"Threads at the engine's default budget ({Operon().generations} generations, population "
           f"{Operon().population_size}):", "", _speed_md(tspeed), ""] if tspeed else []),
        "## Recovered terms", "",
        "Each row is one search on one group: the additive terms of the selected formula of energy "
        "per request (expanded), the EnergyLens parameters whose terms they are, and the in-sample "
        f"MAPE of the discovered formula. Engines: `TermSearch()`, `Operon({OPERON_BUDGET})`.", "",
        f"Symbols: {legend}.", "",
        "### Simulator", "",
        "energylens.simulate_profiles(seed=0) (2% noise), one search per (model, GPU).", "",
        _md_table(sim), "",
        "### Real measurements", "",
        *[f"- {n}" for n in real_notes], "",
        _md_table(real) if len(real) else "(none)", "",
        f"Total time: {time.perf_counter() - t0:.0f} s.", "",
    ]
    atomic_write(args.out, "\n".join(parts))
    print("\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
