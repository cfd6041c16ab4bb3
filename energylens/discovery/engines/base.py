"""What every structure-search engine is: :class:`Engine`, and what a search returns.

An engine is a scikit-learn-style object, as pysindy's optimizers and PySR's regressor are:
its constructor only stores settings, whose defaults live in the class, ``get_params`` and
``set_params`` work and :func:`sklearn.base.clone` copies it. :meth:`Engine.search` takes a
feature table and a target and returns a :class:`Front`: candidate formulas by increasing
complexity, each with a loss computed the same way for every engine, reduced to the Pareto
front (each candidate has a lower loss than every simpler one).

Every engine's candidates pass the same two checks before they reach the front: a formula
has at most ``(n - 1) // 2`` fitted constants on ``n`` distinct configurations (every
constant counts, those inside a term too: see
:func:`~energylens.discovery.engines.linear.fitted_constants`), and over the box the
training rows span it is finite, positive for an energy, and free of poles
(:class:`~energylens.discovery.engines.sanity.DomainCheck`). A candidate that fails either
is left out and listed in ``front.info["rejected"]`` with the reason; where none passes,
the front keeps them (with a ``defect`` column) and a warning says so.

A search leaves the engine unchanged, so one engine object can be run many times, for
example on bootstrap resamples given as row counts (``sample_weight``) in a
stability-selection loop that reads the additive terms of each run's chosen formula from
:meth:`Front.chosen` and :meth:`Candidate.terms`.

Writing an engine: subclass :class:`Engine`, set ``name`` and ``_parameter_constraints``,
store the settings in ``__init__`` and implement ``_search(F, y, weight, definitions,
relative, progress)`` returning ``(rows, selected, info)``: ``rows`` a list of
``(expression, complexity, extra)`` with expressions in the column names of ``F`` (or, where
``definitions`` are given, with those columns replaced by their formulas). An engine whose
candidates carry an information criterion (``extra["criterion"]``) sets
``reports_criterion = True``, so that ``model_selection="criterion"`` is accepted before its
search runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import sympy
from sklearn.base import BaseEstimator

from ...exceptions import EnergyLensWarning
from .linear import additive_terms, distinct_rows, fitted_constants, max_supported_terms
from .sanity import DomainCheck

__all__ = ["Candidate", "Front", "Engine", "candidate_loss", "pareto_rows", "check_search_inputs"]


@dataclass(frozen=True)
class Candidate:
    """One formula of a front.

    Attributes
    ----------
    expression : sympy.Expr
        The formula of the searched target.
    complexity : int
        Its size: terms for the term search; nodes of the returned (simplified) expression
        tree for the genetic engines, so that the sizes of their formulas compare.
    loss : float
        Mean squared relative error (or squared error for ``relative=False``), weighted by
        ``sample_weight``.
    extra : dict
        Engine-specific values (``n_terms``, ``criterion``).
    """

    expression: sympy.Expr
    complexity: int
    loss: float
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def equation(self) -> str:
        """The formula as text (full precision)."""
        return str(self.expression)

    def terms(self) -> list[str]:
        """Additive terms of the expanded formula, coefficients dropped, sorted.

        Examples
        --------
        >>> import sympy
        >>> si, B = sympy.symbols("si B")
        >>> Candidate(0.5 * si * (1 + 1 / B), 2, 0.0).terms()
        ['si', 'si/B']
        """
        return sorted(str(t) for _, t in additive_terms(self.expression))


@dataclass(frozen=True)
class Front(Sequence):
    """The candidates of one search, by increasing complexity (a read-only sequence).

    Attributes
    ----------
    candidates : tuple of Candidate
    selected : int or None
        The candidate the engine itself prefers (the term search: lowest information
        criterion); None for engines without a preference.
    info : dict
        The engine's settings and run statistics (plain data).
    """

    candidates: tuple[Candidate, ...]
    selected: int | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, i):
        return self.candidates[i]

    def __len__(self) -> int:
        return len(self.candidates)

    def __iter__(self) -> Iterator[Candidate]:
        return iter(self.candidates)

    def chosen(self) -> Candidate:
        """The engine's preferred candidate, else the one PySR's ``"best"`` rule picks."""
        if self.selected is not None:
            return self.candidates[self.selected]
        from ..base import equations_table, make_row, select_index

        table = equations_table([make_row(c.expression, c.loss, c.complexity) for c in self])
        return self.candidates[select_index(table, "best")]


def check_search_inputs(features, y, sample_weight, relative: bool, owner: str):
    """Validated ``(F, y, weight)``: rows with weight 0 dropped, weights None when all 1."""
    if not isinstance(features, pd.DataFrame):
        raise ValueError(f"{owner}.search needs the feature table as a DataFrame (see "
                         f"energylens.discovery.features.feature_table); got {type(features).__name__}.")
    F = features.astype(float)
    bad = ~np.isfinite(F.to_numpy())
    if bad.any():
        cols = [str(c) for c in F.columns[bad.any(axis=0)]]
        raise ValueError(f"{owner}.search: feature column(s) {cols} hold missing or infinite values "
                         f"(first at rows {np.flatnonzero(bad.any(axis=1))[:5].tolist()}).")
    y = np.asarray(y, dtype=float).reshape(-1)
    if len(y) != len(F):
        raise ValueError(f"{owner}.search: the target has {len(y)} values for {len(F)} rows.")
    low = ~np.isfinite(y) | ((y <= 0) if relative else False)
    if low.any():
        what = "finite and > 0 (relative errors)" if relative else "finite"
        raise ValueError(f"{owner}.search: the target must be {what}; {int(low.sum())} value(s) "
                         f"are not (first at rows {np.flatnonzero(low)[:5].tolist()}).")
    if sample_weight is None:
        return F, y, None
    w = np.asarray(sample_weight, dtype=float).reshape(-1)
    if len(w) != len(y) or not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ValueError(f"{owner}.search: sample_weight must hold {len(y)} finite values >= 0, "
                         "not all zero.")
    keep = w > 0
    F, y, w = F[keep], y[keep], w[keep]
    return F, y, (None if np.all(w == 1.0) else w)


def _repeat_rows(F: pd.DataFrame, y: np.ndarray, w: np.ndarray, owner: str):
    counts = np.rint(w).astype(int)
    if not np.allclose(w, counts):
        raise ValueError(f"{owner} takes sample_weight as whole row counts (a bootstrap "
                         "resample) only; got fractional weights.")
    idx = np.repeat(np.arange(len(y)), counts)
    return F.iloc[idx].reset_index(drop=True), y[idx]


def _compiled(expr: sympy.Expr):
    names = sorted(str(s) for s in expr.free_symbols)
    return sympy.lambdify([sympy.Symbol(n) for n in names], expr, "numpy"), names


def candidate_loss(expr: sympy.Expr, V: Mapping[str, np.ndarray], y: np.ndarray, *,
                   relative: bool = True, weight: np.ndarray | None = None,
                   compiled=None) -> float:
    """Mean squared relative error of a formula (squared error without ``relative``);
    ``inf`` where it is not finite on every row. ``compiled``: ``(function, names)`` of the
    formula, where the caller has it already."""
    fn, names = compiled if compiled is not None else _compiled(expr)
    with np.errstate(all="ignore"):
        f = np.broadcast_to(np.asarray(fn(*[V[n] for n in names]), float), y.shape)
        r = (f - y) / y if relative else f - y
        val = float(np.average(r**2, weights=weight))
    return val if np.isfinite(val) else np.inf


def _lowest_criterion(rows: Sequence[Candidate], preferred: bool) -> int | None:
    """Where the engine's own choice was refused: the lowest criterion left, if it reports one."""
    if not preferred or not rows or not all("criterion" in r.extra for r in rows):
        return None
    return int(np.argmin([float(r.extra["criterion"]) for r in rows]))


def pareto_rows(rows: Sequence[Candidate]) -> list[Candidate]:
    """Keep, by increasing complexity, the candidates that lower the loss (no duplicates)."""
    ordered = sorted(rows, key=lambda r: (r.complexity, r.loss))
    out: list[Candidate] = []
    best, seen = np.inf, set()
    for r in ordered:
        if not np.isfinite(r.loss) or r.equation in seen:
            continue
        # Below a mean squared relative error of 1e-20 the fit is exact: nothing more to gain.
        if r.loss < best * (1 - 1e-6) and best > 1e-20:
            out.append(r)
            best = r.loss
            seen.add(r.equation)
    return out


class Engine(BaseEstimator):
    """Base class of the structure-search engines (see the module docstring)."""

    #: Name accepted by ``discover(engine=...)`` and recorded in results.
    name: ClassVar[str] = ""
    _parameter_constraints: ClassVar[dict] = {}
    #: Whether ``_search`` takes row weights itself (else whole counts are repeated rows).
    _native_weights: ClassVar[bool] = False
    #: Whether the candidates carry an information criterion (``model_selection="criterion"``).
    reports_criterion: ClassVar[bool] = False

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether the engine can run here, and why not."""
        return True, ""

    def search(
        self,
        features: pd.DataFrame,
        y,
        *,
        definitions: Mapping[str, sympy.Expr] | None = None,
        sample_weight=None,
        relative: bool = True,
        progress: bool | None = None,
    ) -> Front:
        """Search formulas of ``y`` over the columns of ``features``.

        Parameters
        ----------
        features : DataFrame
            One column per input (see :func:`~energylens.discovery.features.feature_table`).
        y : array of shape (n,)
            Target; > 0 when ``relative``.
        definitions : mapping, optional
            Formulas of some columns in terms of other columns (``{"inv_B": 1/B}``); the
            returned formulas are written with those columns replaced.
        sample_weight : array of shape (n,), optional
            Row weights; whole counts (a bootstrap resample) work with every engine.
        relative : bool, default=True
            Fit relative errors (rows divided by ``y``); else absolute errors (log targets).
        progress : bool, optional
            Show progress (None: only when standard error is a terminal).

        Returns
        -------
        Front
            The candidates that pass the checks of the module docstring (those that do not
            are in ``info["rejected"]``).
        """
        self._validate_params()
        owner = type(self).__name__
        F, y, w = check_search_inputs(features, y, sample_weight, relative, owner)
        n_configs = distinct_rows(F)
        if w is not None and not self._native_weights:
            F, y = _repeat_rows(F, y, w, owner)
            w = None
        defs = {k: v for k, v in dict(definitions or {}).items() if k in F.columns}
        raw, selected, info = self._search(F, y, w, defs, relative, progress)
        V = {str(c): F[c].to_numpy() for c in F.columns}
        # The box is over the variables the formulas are written in: with definitions, the
        # columns that are not formulas of others.
        plain = [c for c in F.columns if str(c) not in defs or defs[str(c)] == sympy.Symbol(str(c))]
        check = DomainCheck(F[plain], relative)
        cap = max_supported_terms(n_configs)
        rows, reasons = [], []
        for e, c, extra in raw:
            expr = sympy.sympify(e)
            compiled = _compiled(expr)
            cand = Candidate(expr, int(c), candidate_loss(expr, V, y, relative=relative, weight=w,
                                                          compiled=compiled), dict(extra))
            k = int(extra.get("n_terms") or fitted_constants(expr))
            why = None
            if k > cap:
                why = (f"{k} fitted constants on {n_configs} distinct configurations (at most "
                       f"(n - 1) // 2 = {cap})")
            elif np.isfinite(cand.loss):
                why = check.defect(expr, *compiled)
            rows.append(cand)
            reasons.append(why)
        sane = [r for r, why in zip(rows, reasons) if why is None]
        info = dict(info)
        info["rejected"] = [{"equation": r.equation, "reason": why}
                            for r, why in zip(rows, reasons) if why is not None]
        if not pareto_rows(sane) and pareto_rows(rows):
            warnings.warn(
                f"{owner}: none of the {len(rows)} formulas found is sane over the measured "
                f"ranges ({n_configs} distinct configurations); the front keeps them with the "
                f"defect of each (first: {next(r for r in reasons if r)}). Measure more "
                "configurations, or use a closed form.", EnergyLensWarning, stacklevel=2)
            sane = [Candidate(r.expression, r.complexity, r.loss, {**r.extra, "defect": why})
                    for r, why in zip(rows, reasons)]
            selected = None
        elif selected is not None and reasons[selected] is None:
            selected = next(i for i, r in enumerate(sane) if r is rows[selected])
        else:
            selected = _lowest_criterion(sane, selected is not None)
        keep = pareto_rows(sane)
        if not keep:
            raise RuntimeError(f"the {self.name} engine found no finite formula.")
        kept = [id(r) for r in keep]
        chosen = None
        if selected is not None and id(sane[selected]) in kept:
            chosen = kept.index(id(sane[selected]))
        return Front(tuple(keep), chosen, info)

    def _search(self, F: pd.DataFrame, y: np.ndarray, weight: np.ndarray | None,
                definitions: Mapping[str, sympy.Expr], relative: bool, progress: bool | None):
        raise NotImplementedError  # pragma: no cover
