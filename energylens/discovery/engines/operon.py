"""The pyoperon engine (genetic programming with constant optimisation, C++ Operon).

pyoperon is imported only when a search runs, through
:func:`energylens._optional.import_optional`. The settings follow what works on small
energy tables: constant optimisation on (``optimizer_iterations``) and a two-objective
search (``objectives=['r2', 'length']``) whose Pareto front is returned.

One run, on every core. The noise level that Operon's minimum-description-length choice
needs (``uncertainty``) only ranks the finished front, it does not steer the search, so it
is estimated before the run from a cheap linear fit (the residual standard deviation of
``y`` on the features, their squares and pairwise products, with the degrees of freedom
accounted for) instead of by a second search. ``info["noise_sd"]`` reports the residual
standard deviation of Operon's choice afterwards.

Reproducibility: a run is budgeted by generations and evaluations, never by time, and
Operon draws each individual's random numbers from ``random_state``, so the front depends
on ``random_state`` alone, not on ``n_threads`` (tested); pass ``max_time`` in ``options``
and runs stop being reproducible.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import sympy

from ..._optional import import_optional
from ...core.expressions import expression_complexity, parse_expression
from ...core.options import Integral, Interval, StrOptions
from ...core.progress import logger
from ...core.threads import usable_cores
from .base import Engine
from .linear import Criterion, simplify_formula

__all__ = ["OPERON_SYMBOLS", "Operon", "default_threads", "noise_estimate"]

#: Our operator names -> Operon's symbol names.
OPERON_SYMBOLS: dict[str, str] = {
    "add": "add", "+": "add", "sub": "sub", "-": "sub", "mul": "mul", "*": "mul",
    "div": "div", "/": "div", "exp": "exp", "log": "log", "sqrt": "sqrt", "square": "square",
    "abs": "abs", "pow": "pow", "^": "pow", "inv": "div",
}
DEFAULT_OPERATORS = ("add", "sub", "mul", "div")


def default_threads() -> int:
    """Threads of a search: every core this process may use."""
    return usable_cores()


def _symbols(operators: Sequence[str]) -> str:
    out = []
    for op in operators:
        if op not in OPERON_SYMBOLS:
            raise ValueError(f"operator {op!r} is not supported by the operon engine; supported: "
                             f"{sorted(OPERON_SYMBOLS)}.")
        if OPERON_SYMBOLS[op] not in out:
            out.append(OPERON_SYMBOLS[op])
    return ",".join(out + ["constant", "variable"])


def noise_estimate(X: np.ndarray, y: np.ndarray) -> float:
    """Residual standard deviation of ``y`` after a least-squares fit on an intercept, the
    columns of ``X``, their squares and pairwise products (only the linear part where rows
    are too few), divided by ``n - rank``: an upper bound of the noise, in the units of ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(0.0, 1.0, 50)[:, None]
    >>> noise_estimate(x, 1.0 + 2.0 * x[:, 0] + 3.0 * x[:, 0] ** 2) < 1e-10
    True
    """
    n, k = X.shape
    scale = np.where(np.ptp(X, axis=0) > 0, np.abs(X).max(axis=0), 1.0)
    Z = X / np.where(scale > 0, scale, 1.0)
    cols = [np.ones(n), *Z.T]
    quad = [Z[:, i] * Z[:, j] for i in range(k) for j in range(i, k)]
    if n > 2 * (1 + k + len(quad)):
        cols += quad
    A = np.column_stack(cols)
    coef, _, rank, _ = np.linalg.lstsq(A, y, rcond=None)
    dof = max(n - int(rank), 1)
    sd = float(np.sqrt(np.sum((y - A @ coef) ** 2) / dof))
    return sd if sd > 0 else 1e-12 * (float(np.std(y)) or 1.0)


class Operon(Engine):
    """Genetic programming with pyoperon (``pip install pyoperon``).

    Parameters
    ----------
    operators : sequence of str, default=("add", "sub", "mul", "div")
        Our operator names (:data:`OPERON_SYMBOLS`).
    max_length : int, default=25
        Largest formula size (tree nodes).
    generations : int, default=100
    population_size : int, default=500
    max_evaluations : int, default=500_000
    optimizer_iterations : int, default=10
        Constant-optimisation steps per individual.
    random_state : int, default=0
        Seed; the front depends on it alone (see the module docstring).
    n_threads : int, optional
        Threads; default: every core this process may use (:func:`default_threads`).
    simplify : bool, default=True
        Expand each formula into additive terms, refit their coefficients on relative errors
        and drop the terms ``criterion`` rejects.
    criterion : {"mdl", "bic"}, default="mdl"
    options : dict, optional
        Further keyword arguments of ``pyoperon.sklearn.SymbolicRegressor``.
    """

    name: ClassVar[str] = "operon"
    _parameter_constraints: ClassVar[dict] = {
        "operators": ["array-like"],
        "max_length": [Interval(Integral, 1, None, closed="left")],
        "generations": [Interval(Integral, 1, None, closed="left")],
        "population_size": [Interval(Integral, 2, None, closed="left")],
        "max_evaluations": [Interval(Integral, 1, None, closed="left")],
        "optimizer_iterations": [Interval(Integral, 0, None, closed="left")],
        "random_state": [Interval(Integral, 0, None, closed="left")],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "simplify": ["boolean"],
        "criterion": [StrOptions({"mdl", "bic"})],
        "options": [dict, None],
    }

    def __init__(self, operators: Sequence[str] = DEFAULT_OPERATORS, max_length: int = 25,
                 generations: int = 100, population_size: int = 500,
                 max_evaluations: int = 500_000, optimizer_iterations: int = 10,
                 random_state: int = 0, n_threads: int | None = None, simplify: bool = True,
                 criterion: Criterion = "mdl", options: Mapping[str, Any] | None = None):
        self.operators = operators
        self.max_length = max_length
        self.generations = generations
        self.population_size = population_size
        self.max_evaluations = max_evaluations
        self.optimizer_iterations = optimizer_iterations
        self.random_state = random_state
        self.n_threads = n_threads
        self.simplify = simplify
        self.criterion = criterion
        self.options = options

    @classmethod
    def available(cls) -> tuple[bool, str]:
        import importlib.util

        if importlib.util.find_spec("pyoperon") is None:
            return False, "pyoperon is not installed (pip install pyoperon)."
        return True, ""

    def settings(self, X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        """Keyword arguments of ``SymbolicRegressor`` for a run on ``(X, y)``."""
        out = dict(
            allowed_symbols=_symbols(self.operators), optimizer_iterations=self.optimizer_iterations,
            objectives=["r2", "length"], model_selection_criterion="minimum_description_length",
            max_length=self.max_length, population_size=self.population_size,
            max_evaluations=self.max_evaluations, generations=self.generations,
            n_threads=self.n_threads or default_threads(), random_state=self.random_state,
        )
        out.update(dict(self.options or {}))
        if out.get("uncertainty") is None:
            out["uncertainty"] = [noise_estimate(X, y)]
        return out

    def _search(self, F, y, weight, definitions, relative, progress):
        sk = import_optional("pyoperon.sklearn", purpose="run the 'operon' discovery engine")
        names = [str(c) for c in F.columns]
        # Writable, contiguous copies: the C++ bindings refuse read-only (copy-on-write) arrays.
        X = np.array(F.to_numpy(dtype=float), dtype=float, order="C", copy=True)
        y = np.array(y, dtype=float, copy=True)
        settings = self.settings(X, y)
        t0 = time.perf_counter()
        reg = sk.SymbolicRegressor(**settings)
        reg.fit(X, y)
        search_s = time.perf_counter() - t0
        logger.info("operon: %d models on the front (%.1f s, %d threads)", len(reg.pareto_front_),
                    search_s, settings["n_threads"])
        V = {c: F[c].to_numpy() for c in names}
        rows = []
        for d in reg.pareto_front_:
            text = reg.get_model_string(d["tree"], 12, names)
            e = parse_expression(text, names, caret_is_pow=True).xreplace(
                {sympy.Symbol(k): v for k, v in definitions.items()})
            if self.simplify:
                e = simplify_formula(e, V, y, relative=relative, criterion=self.criterion)
            rows.append((e, expression_complexity(e), {}))
        info = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in settings.items()}
        info.update({"noise_sd": float(np.std(y - reg.predict(X), ddof=1)),
                     "selected_mdl": reg.get_model_string(reg.model_, 12, names),
                     "stats": {k: float(v) for k, v in dict(reg.stats_).items()
                               if isinstance(v, (int, float, np.integer, np.floating))},
                     "search_s": search_s, "time_s": time.perf_counter() - t0})
        return rows, None, info

