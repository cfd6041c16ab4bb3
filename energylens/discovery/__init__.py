"""Structure discovery: symbolic regression turned into refittable closed forms.

:func:`discover` searches a profiling table for formulas of energy as a function of the
configuration with one of three engines (``"terms"``: our deterministic term-library
search; ``"operon"``: pyoperon; ``"pysr"``: PySR where Julia works) and returns a
:class:`DiscoveryResult` whose equations convert to sympy, LaTeX and an
:class:`~energylens.models.expression.ExpressionModel` fitted like every other closed form.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import sympy
from sklearn.base import BaseEstimator, RegressorMixin

from .base import DiscoveryResult, Selection, equations_table, make_row, select_index
from .features import (
    TRANSFORMS,
    default_features,
    feature_table,
    table_variables,
    target_values,
)
from .sympy_tools import parse_expression, parse_pysr_equation

__all__ = [
    "discover",
    "discover_phases",
    "DiscoveryResult",
    "SymbolicEnergyRegressor",
    "ENGINES",
    "DEFAULT_TRANSFORMS",
    "parse_expression",
    "parse_pysr_equation",
    "select_index",
]

Engine = Literal["auto", "terms", "operon", "pysr"]
ENGINES = ("auto", "terms", "operon", "pysr")
DEFAULT_TRANSFORMS: tuple[str, ...] = ("inv_B", "t_m1", "p_m1", "tp_prod")


def _resolve_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ValueError(f"The 'engine' parameter must be a str among {set(ENGINES)}. Got {engine!r} instead.")
    if engine != "auto":
        return engine
    from .pysr import probe_pysr

    if probe_pysr()[0]:
        return "pysr"
    if importlib.util.find_spec("pyoperon") is not None:
        return "operon"
    return "terms"


def _loss(expr: sympy.Expr, V: Mapping[str, np.ndarray], y: np.ndarray, log: bool) -> float:
    names = sorted(str(s) for s in expr.free_symbols)
    fn = sympy.lambdify([sympy.Symbol(n) for n in names], expr, "numpy")
    with np.errstate(all="ignore"):
        f = np.broadcast_to(np.asarray(fn(*[V[n] for n in names]), float), y.shape)
    r = (f - y) if log else (f - y) / y
    val = float(np.mean(r**2))
    return val if np.isfinite(val) else np.inf


def _pareto(rows: list[dict]) -> list[dict]:
    """Keep, by increasing complexity, rows that lower the loss (and drop duplicates)."""
    rows = sorted(rows, key=lambda r: (r["complexity"], r["loss"]))
    out, best, seen = [], np.inf, set()
    for r in rows:
        if not np.isfinite(r["loss"]) or r["equation"] in seen:
            continue
        # Below a mean squared relative error of 1e-20 the fit is exact: nothing more to gain.
        if r["loss"] < best * (1 - 1e-6) and best > 1e-20:
            out.append(r)
            best = r["loss"]
            seen.add(r["equation"])
    return out


def discover(
    df: pd.DataFrame,
    target: str = "energy_j",
    features: Sequence[str] | None = None,
    *,
    engine: Engine = "auto",
    transforms: Sequence[str] = DEFAULT_TRANSFORMS,
    per: Literal["request", "token"] = "request",
    log: bool = False,
    operators: Sequence[str] | None = None,
    max_complexity: int | None = None,
    seed: int = 0,
    niterations: int | None = None,
    model_selection: Selection = "best",
    criterion: Literal["mdl", "bic"] = "mdl",
    positive: bool = False,
    max_terms: int = 6,
    max_order: int = 3,
    exhaustive_max: int = 3,
    simplify: bool = True,
    batch_rule: str = "auto",
    batch_k: float = 1.0,
    phases: bool = False,
    progress: bool = False,
    engine_options: Mapping[str, Any] | None = None,
) -> DiscoveryResult | dict[str, DiscoveryResult]:
    """Discover closed-form structure of energy over a profiling table.

    Parameters
    ----------
    df : DataFrame
        Canonical profiling table.
    target : str, default="energy_j"
        Column to explain (J per request).
    features : sequence of str, optional
        Variables (short names ``t, p, B, si, so, N`` or canonical columns ``tp, pp,
        batch_size, input_tokens, output_tokens, params_b``); default: those that vary.
        ``B`` is the effective batch (:func:`energylens.models.batch.effective_batch`).
    engine : {"auto", "terms", "operon", "pysr"}
        ``"auto"`` takes PySR if it imports with a working Julia (probed in a
        subprocess), else pyoperon if installed, else the term search. The result's
        ``engine_`` says which ran.
    transforms : sequence of str
        Extra inputs built from the features: ``inv_B`` (1/B), ``t_m1`` (t-1), ``p_m1``
        (p-1), ``tp_prod`` (t*p), ``ctx`` (si + so/2), ``inv_so`` (1/so; always added
        for ``per="token"``).
    per : {"request", "token"}
        Search energy per request, or per output token.
    log : bool
        Search the log of the target.
    operators : sequence of str, optional
        Operators of the genetic engines (``add, sub, mul, div, exp, log, sqrt, square,
        inv, pow, abs``); the term search builds products and ratios instead.
    max_complexity : int, optional
        Largest formula size (Operon ``max_length``, PySR ``maxsize``; default 25); the
        term search drops front rows above it.
    seed : int
        Random seed (Operon ``random_state``, PySR ``random_state`` with
        ``deterministic=True, parallelism='serial'``).
    niterations : int, optional
        Iteration budget: Operon generations (default 100) or PySR iterations (default 40).
    model_selection : {"best", "accuracy", "score"}
        Rule choosing the reported equation (see :func:`~energylens.discovery.base.select_index`).
    criterion : {"mdl", "bic"}
        Criterion of the term search and of the simplification of genetic formulas.
    positive : bool
        Non-negative coefficients in the term search.
    max_terms, max_order, exhaustive_max : int
        Term search: largest model, factors per term, sizes searched exhaustively.
    simplify : bool
        Expand formulas from the genetic engines into additive terms, refit their
        coefficients on relative errors and drop the terms the criterion rejects.
    batch_rule : str
        Effective-batch rule (``"auto"``); ``batch_k`` is the constant of the
        ``"saturating"`` rule.
    phases : bool
        Discover ``prefill_energy_j`` and ``decode_energy_j`` separately (returns a dict).
    progress : bool
        Print progress of long searches to stderr (PySR shows its own display).
    engine_options : dict, optional
        Extra keyword arguments for the engine (``SymbolicRegressor`` or ``PySRRegressor``).

    Returns
    -------
    DiscoveryResult
        (or a dict ``{"prefill": ..., "decode": ...}`` with ``phases=True``)

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"input_tokens": rng.uniform(100, 2000, 60),
    ...                    "output_tokens": rng.uniform(50, 500, 60),
    ...                    "batch_size": rng.choice([1.0, 8.0, 64.0], 60)})
    >>> df["energy_j"] = 0.01 * df.input_tokens + 0.5 * df.output_tokens / df.batch_size
    >>> res = discover(df, engine="terms")
    >>> res.terms_found()
    ['si', 'so/B']
    """
    if phases:
        return discover_phases(df, features, engine=engine, transforms=transforms, per=per, log=log,
                               operators=operators, max_complexity=max_complexity, seed=seed,
                               niterations=niterations, model_selection=model_selection,
                               criterion=criterion, positive=positive, max_terms=max_terms,
                               max_order=max_order, exhaustive_max=exhaustive_max,
                               simplify=simplify, batch_rule=batch_rule, batch_k=batch_k,
                               progress=progress, engine_options=engine_options)
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"discover needs a canonical profiling table (DataFrame); got {type(df).__name__}.")
    if len(df) < 3:
        raise ValueError(f"discover needs at least 3 rows; got {len(df)}.")
    if features is None:
        features = default_features(df)
        if not features:
            raise ValueError("no configuration column varies in the table; pass features=[...].")
    transforms = list(transforms)
    if per == "token" and "inv_so" not in transforms:
        transforms.append("inv_so")
    F, defs, rule = feature_table(df, features, transforms, batch_rule=batch_rule, batch_k=batch_k)
    base_vars = [str(s) for s in sorted(set().union(*[e.free_symbols for e in defs.values()]), key=str)]
    V = table_variables(df, base_vars, batch_rule=rule, batch_k=batch_k)
    y = target_values(df, target, per=per, log=log)
    name = _resolve_engine(engine)
    ops = tuple(operators) if operators is not None else ("add", "sub", "mul", "div")
    maxc = 25 if max_complexity is None else int(max_complexity)
    relative = not log
    info: dict[str, Any] = {}
    rows: list[dict] = []
    if name == "terms":
        from .terms import search_terms, terms_expression

        front, sel, lib = search_terms(F, y, max_order=max_order, max_terms=max_terms,
                                       exhaustive_max=exhaustive_max, criterion=criterion,
                                       positive=positive, relative=relative, progress=progress)
        for i, r in enumerate(front):
            expr = terms_expression(r["terms"], r["coef"], defs)
            rows.append(make_row(expr, _loss(expr, V, y, log), complexity=len(r["terms"]),
                                 n_terms=len(r["terms"]), criterion=r["criterion"],
                                 selected_by_criterion=(i == sel)))
        rows = [r for r in rows if r["complexity"] <= maxc] or rows[:1]
        info = {"library_size": len(lib), "criterion": criterion, "max_order": max_order,
                "selected_by_criterion": str(rows[min(sel, len(rows) - 1)]["equation"])}
    else:
        if name == "operon":
            from .operon import run_operon

            opts = dict(engine_options or {})
            front, info = run_operon(F, y, operators=ops, max_length=maxc,
                                     generations=100 if niterations is None else int(niterations),
                                     random_state=seed, progress=progress, options=opts)
            raw = [(f["expr"], f["complexity"]) for f in front]
        else:
            from .pysr import run_pysr

            table, info = run_pysr(F, y, operators=ops, maxsize=maxc,
                                   niterations=40 if niterations is None else int(niterations),
                                   random_state=seed, progress=progress, options=engine_options)
            raw = list(zip(table["sympy"], table["complexity"], strict=False))
        subs = {sympy.Symbol(k): v for k, v in defs.items()}
        for expr, _complexity in raw:
            e = sympy.sympify(expr).xreplace(subs)
            if simplify:
                from .terms import refit_additive

                try:
                    e = refit_additive(e, V, y, relative=relative, criterion=criterion)
                except (ValueError, np.linalg.LinAlgError):
                    pass
            rows.append(make_row(e, _loss(e, V, y, log)))
    rows = _pareto(rows)
    if not rows:
        raise RuntimeError(f"the {name} engine found no finite equation.")
    table = equations_table(rows)
    return DiscoveryResult(table, engine=name, selection=model_selection, target=target, per=per,
                           log=log, features=base_vars, batch_rule=rule,
                           batch_k=batch_k if rule == "saturating" else None, info=info)


def discover_phases(df: pd.DataFrame, features: Sequence[str] | None = None,
                    **kwargs: Any) -> dict[str, DiscoveryResult]:
    """Discover prefill and decode energy separately (columns ``prefill_energy_j`` and
    ``decode_energy_j``); keyword arguments as for :func:`discover`."""
    missing = [c for c in ("prefill_energy_j", "decode_energy_j") if c not in df.columns]
    if missing:
        raise ValueError(f"phase-wise discovery needs the column(s) {missing}.")
    kwargs.pop("phases", None)
    kwargs.pop("target", None)
    return {phase: discover(df, f"{phase}_energy_j", features, **kwargs)
            for phase in ("prefill", "decode")}


class SymbolicEnergyRegressor(RegressorMixin, BaseEstimator):
    """Structure discovery as a scikit-learn regressor.

    ``fit`` runs :func:`discover`; ``predict`` evaluates the selected equation (energy
    per request, J). The parameters are those of :func:`discover`.

    Attributes
    ----------
    result_ : DiscoveryResult
    equations_ : DataFrame
    engine_ : str

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"input_tokens": np.linspace(100, 2000, 40),
    ...                    "output_tokens": np.tile([50.0, 400.0], 20)})
    >>> df["energy_j"] = 0.01 * df.input_tokens + 0.2 * df.output_tokens
    >>> reg = SymbolicEnergyRegressor(engine="terms").fit(df)
    >>> float(np.round(reg.predict(df.head(1))[0], 6))
    11.0
    """

    def __init__(self, *, target: str = "energy_j", features: Sequence[str] | None = None,
                 engine: Engine = "auto", transforms: Sequence[str] = DEFAULT_TRANSFORMS,
                 per: Literal["request", "token"] = "request", log: bool = False,
                 operators: Sequence[str] | None = None, max_complexity: int | None = None,
                 seed: int = 0, niterations: int | None = None, model_selection: Selection = "best",
                 criterion: Literal["mdl", "bic"] = "mdl", positive: bool = False, max_terms: int = 6,
                 batch_rule: str = "auto", progress: bool = False,
                 engine_options: Mapping[str, Any] | None = None):
        self.target = target
        self.features = features
        self.engine = engine
        self.transforms = transforms
        self.per = per
        self.log = log
        self.operators = operators
        self.max_complexity = max_complexity
        self.seed = seed
        self.niterations = niterations
        self.model_selection = model_selection
        self.criterion = criterion
        self.positive = positive
        self.max_terms = max_terms
        self.batch_rule = batch_rule
        self.progress = progress
        self.engine_options = engine_options

    def fit(self, X: pd.DataFrame, y=None):
        """Run the search on a canonical table (``y`` replaces ``X[target]`` when given)."""
        if not isinstance(X, pd.DataFrame):
            raise ValueError("SymbolicEnergyRegressor.fit needs a canonical profiling table "
                             f"(DataFrame); got {type(X).__name__}.")
        if y is not None:
            X = X.copy()
            X[self.target] = np.asarray(y, float)
        self.result_ = discover(
            X, self.target, self.features, engine=self.engine, transforms=self.transforms,
            per=self.per, log=self.log, operators=self.operators, max_complexity=self.max_complexity,
            seed=self.seed, niterations=self.niterations, model_selection=self.model_selection,
            criterion=self.criterion, positive=self.positive, max_terms=self.max_terms,
            batch_rule=self.batch_rule, progress=self.progress, engine_options=self.engine_options)
        self.equations_ = self.result_.equations_
        self.engine_ = self.result_.engine_
        return self

    def _check(self):
        if not hasattr(self, "result_"):
            from ..models.base import _NotFitted

            raise _NotFitted("This SymbolicEnergyRegressor instance is not fitted yet. Call 'fit' "
                             "with appropriate arguments before using this estimator.")

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Energy per request (J) from the selected equation."""
        self._check()
        return self.result_.predict(X)

    def sympy(self, index: int | None = None) -> sympy.Expr:
        self._check()
        return self.result_.sympy(index)

    def latex(self, index: int | None = None) -> str:
        self._check()
        return self.result_.latex(index)

    def to_model(self, index: int | None = None, **kwargs):
        self._check()
        return self.result_.to_model(index, **kwargs)


_ = TRANSFORMS  # re-exported for documentation
