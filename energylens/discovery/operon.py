"""The pyoperon engine (genetic programming with constant optimisation, C++ Operon).

pyoperon is imported only when a search runs, through
:func:`energylens._optional.import_optional`. The settings follow what works on small
energy tables: constant optimisation on (``optimizer_iterations``), a two-objective search
(``objectives=['r2', 'length']``) whose Pareto front is returned, and model selection by
minimum description length with the noise level (``uncertainty=[sd]``) estimated by a
first, shorter pass. Runs are reproducible for a given ``random_state`` with
``n_threads=1``, and budgeted by generations and evaluations rather than time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import sympy

from .._optional import import_optional
from .sympy_tools import parse_expression

__all__ = ["OPERON_SYMBOLS", "run_operon"]

#: Our operator names -> Operon's symbol names.
OPERON_SYMBOLS: dict[str, str] = {
    "add": "add", "+": "add", "sub": "sub", "-": "sub", "mul": "mul", "*": "mul",
    "div": "div", "/": "div", "exp": "exp", "log": "log", "sqrt": "sqrt", "square": "square",
    "abs": "abs", "pow": "pow", "^": "pow", "inv": "div",
}
DEFAULT_OPERATORS = ("add", "sub", "mul", "div")


def _symbols(operators: Sequence[str]) -> str:
    out = []
    for op in operators:
        if op not in OPERON_SYMBOLS:
            raise ValueError(f"operator {op!r} is not supported by the operon engine; supported: "
                             f"{sorted(OPERON_SYMBOLS)}.")
        s = OPERON_SYMBOLS[op]
        if s not in out:
            out.append(s)
    return ",".join(out + ["constant", "variable"])


def run_operon(
    F: pd.DataFrame,
    y: np.ndarray,
    *,
    operators: Sequence[str] = DEFAULT_OPERATORS,
    max_length: int = 25,
    generations: int = 100,
    population_size: int = 500,
    max_evaluations: int = 500_000,
    optimizer_iterations: int = 10,
    random_state: int = 0,
    n_threads: int = 1,
    progress: bool = False,
    options: Mapping | None = None,
) -> tuple[list[dict], dict]:
    """Run pyoperon and return its Pareto front.

    Returns
    -------
    front : list of dict
        ``expr`` (sympy, in the column names of ``F``) and ``complexity`` (Operon's).
    info : dict
        Settings and statistics of the run (plain data).
    """
    sk = import_optional("pyoperon.sklearn", purpose="run the 'operon' discovery engine")
    names = [str(c) for c in F.columns]
    # Writable, contiguous copies: the C++ bindings refuse read-only (copy-on-write) arrays.
    X = np.array(F.to_numpy(dtype=float), dtype=float, order="C", copy=True)
    y = np.array(y, dtype=float, copy=True)
    settings = dict(
        allowed_symbols=_symbols(operators), optimizer_iterations=optimizer_iterations,
        objectives=["r2", "length"], model_selection_criterion="minimum_description_length",
        max_length=max_length, population_size=population_size, max_evaluations=max_evaluations,
        n_threads=n_threads, random_state=random_state,
    )
    settings.update(dict(options or {}))
    t0 = time.perf_counter()
    # First pass: estimate the noise level for the MDL criterion.
    first = sk.SymbolicRegressor(**{**settings, "generations": max(5, generations // 4),
                                    "uncertainty": [float(np.std(y)) or 1.0]})
    first.fit(X, y)
    sd = float(np.std(y - first.predict(X), ddof=1)) or 1e-12 * float(np.std(y) or 1.0)
    if progress:
        print(f"[operon] first pass: noise sd {sd:.4g} ({time.perf_counter() - t0:.1f} s)",
              file=sys.stderr)
    reg = sk.SymbolicRegressor(**{**settings, "generations": generations, "uncertainty": [sd]})
    reg.fit(X, y)
    if progress:
        print(f"[operon] search: {len(reg.pareto_front_)} models on the front "
              f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    front = []
    for d in reg.pareto_front_:
        text = reg.get_model_string(d["tree"], 12, names)
        expr = parse_expression(text, names, caret_is_pow=True)
        front.append({"expr": expr, "complexity": int(d.get("complexity", d.get("length", 0)))})
    best_text = reg.get_model_string(reg.model_, 12, names)
    info = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in settings.items()}
    info.update({"generations": generations, "noise_sd": sd, "selected_mdl": best_text,
                 "stats": {k: float(v) for k, v in dict(reg.stats_).items()
                           if isinstance(v, (int, float, np.integer, np.floating))},
                 "time_s": time.perf_counter() - t0})
    return front, info


def mdl_expression(info: dict, names: Sequence[str]) -> sympy.Expr:
    """Operon's MDL-selected model as sympy."""
    return parse_expression(info["selected_mdl"], list(names), caret_is_pow=True)
