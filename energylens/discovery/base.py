"""The result of a structure search: :class:`DiscoveryResult`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import sympy

from .sympy_tools import expression_complexity, symbol

__all__ = ["DiscoveryResult", "Selection", "equations_table", "select_index"]

Selection = Literal["best", "accuracy", "score"]
SELECTIONS = ("best", "accuracy", "score")


def equations_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Pareto table ``complexity, loss, score, equation, sympy`` (plus any extra keys).

    Rows are sorted by complexity; ``score`` is PySR's: the negative derivative of the
    log-loss with respect to complexity between consecutive rows (0 for the first row).
    """
    df = pd.DataFrame(list(rows))
    if df.empty:
        raise ValueError("the search returned no equation.")
    df = df.sort_values(["complexity", "loss"], kind="stable").reset_index(drop=True)
    loss = np.maximum(df["loss"].to_numpy(dtype=float), 1e-300)
    c = df["complexity"].to_numpy(dtype=float)
    score = np.zeros(len(df))
    for i in range(1, len(df)):
        dc = c[i] - c[i - 1]
        score[i] = -(np.log(loss[i]) - np.log(loss[i - 1])) / dc if dc > 0 else 0.0
    df.insert(2, "score", score)
    cols = ["complexity", "loss", "score", "equation", "sympy"]
    return df[cols + [k for k in df.columns if k not in cols]]


def select_index(equations: pd.DataFrame, rule: Selection = "best") -> int:
    """Row chosen by a selection rule (PySR's meanings).

    ``"accuracy"``: the lowest loss; ``"score"``: the highest score; ``"best"``: the
    highest score among the rows whose loss is at most 1.5 times the minimum loss.
    Ties go to the simpler (earlier) row.
    """
    if rule not in SELECTIONS:
        raise ValueError(f"The 'model_selection' parameter must be a str among {set(SELECTIONS)}. "
                         f"Got {rule!r} instead.")
    loss = equations["loss"].to_numpy(dtype=float)
    score = equations["score"].to_numpy(dtype=float)
    if rule == "accuracy":
        return int(np.argmin(loss))
    if rule == "score":
        return int(np.argmax(score))
    ok = loss <= 1.5 * loss.min()
    s = np.where(ok, score, -np.inf)
    return int(np.argmax(s))


class DiscoveryResult:
    """Equations found by a structure search, with a chosen one.

    Attributes
    ----------
    equations_ : DataFrame
        The Pareto front: ``complexity, loss, score, equation, sympy`` (and
        engine-specific columns). ``loss`` is the mean squared relative error of the
        searched target (mean squared error of its log for ``log=True``). Equations are
        in the short variable names (``t, p, B, si, so, N``) of the searched target.
    engine_ : str
        The engine that ran (``"terms"``, ``"operon"`` or ``"pysr"``).
    selection : str
        Rule choosing :attr:`best_index_` (``"best"``, ``"accuracy"``, ``"score"``).
    target, per, log :
        What was searched: column, ``"request"`` or ``"token"``, log or not.
    features_ : list of str
        Variables the equations may use.
    batch_rule_, batch_k_ :
        Effective-batch rule used for ``B``.
    info_ : dict
        Engine settings and run statistics (plain data).

    A result holds only sympy and pandas objects: it pickles and reloads without its
    backend.
    """

    def __init__(self, equations: pd.DataFrame, *, engine: str, selection: Selection = "best",
                 target: str = "energy_j", per: str = "request", log: bool = False,
                 features: Sequence[str] = (), batch_rule: str = "cap", batch_k: float | None = None,
                 info: Mapping[str, Any] | None = None):
        self.equations_ = equations
        self.engine_ = engine
        if selection not in SELECTIONS:
            raise ValueError(f"The 'model_selection' parameter must be a str among {set(SELECTIONS)}. "
                             f"Got {selection!r} instead.")
        self.selection = selection
        self.target = target
        self.per = per
        self.log = log
        self.features_ = list(features)
        self.batch_rule_ = batch_rule
        self.batch_k_ = batch_k
        self.info_ = dict(info or {})

    def __repr__(self) -> str:
        return (f"DiscoveryResult(engine={self.engine_!r}, n_equations={len(self.equations_)}, "
                f"selected={self.equation()!r})")

    @property
    def best_index_(self) -> int:
        """Row of :attr:`equations_` chosen by :attr:`selection`."""
        return select_index(self.equations_, self.selection)

    def _row(self, index: int | None) -> pd.Series:
        i = self.best_index_ if index is None else int(index)
        if not 0 <= i < len(self.equations_):
            raise IndexError(f"index {i} out of range for {len(self.equations_)} equations.")
        return self.equations_.iloc[i]

    def sympy(self, index: int | None = None) -> sympy.Expr:
        """The chosen (or ``index``-th) equation as sympy, for the searched target."""
        return self._row(index)["sympy"]

    def equation(self, index: int | None = None) -> str:
        """The chosen equation as text."""
        return str(self._row(index)["equation"])

    def latex(self, index: int | None = None, **kwargs) -> str:
        """The chosen equation in LaTeX (``kwargs`` go to :func:`sympy.latex`)."""
        kwargs.setdefault("min", -3)
        kwargs.setdefault("max", 3)
        return sympy.latex(self.sympy(index), **kwargs)

    def energy_expression(self, index: int | None = None) -> sympy.Expr:
        """The equation turned into energy per request (J): times ``so`` for a per-token
        target, ``exp`` of it for a log target."""
        e = self.sympy(index)
        if self.log:
            e = sympy.exp(e)
        if self.per == "token":
            e = symbol("so") * e
        return e

    def predict(self, X: pd.DataFrame, index: int | None = None) -> np.ndarray:
        """Energy per request (J) predicted by the chosen equation for a canonical table."""
        from .features import table_variables

        e = self.energy_expression(index)
        names = sorted(str(s) for s in e.free_symbols)
        rule = self.batch_rule_ if "B" in names else "cap"
        V = table_variables(X, names, batch_rule=rule, batch_k=self.batch_k_)
        fn = sympy.lambdify([symbol(n) for n in names], e, "numpy")
        with np.errstate(all="ignore"):
            out = fn(*[V[n] for n in names])
        return np.broadcast_to(np.asarray(out, float), (len(X),)).copy()

    def to_model(self, index: int | None = None, **kwargs):
        """The chosen equation as an unfitted :class:`~energylens.models.expression.ExpressionModel`
        of energy per request, its constants as parameters starting at the discovered
        values (``kwargs`` go to the constructor; the batch rule defaults to the one used)."""
        from ..models.expression import ExpressionModel

        kwargs.setdefault("batch_rule", self.batch_rule_ if self.batch_rule_ != "saturating" else "auto")
        return ExpressionModel.from_sympy(self.energy_expression(index), **kwargs)

    def terms_found(self, index: int | None = None) -> list[str]:
        """Additive terms of the chosen energy equation (expanded, coefficients dropped)."""
        from .terms import additive_terms

        return sorted(str(t) for _, t in additive_terms(self.energy_expression(index)))


def make_row(expr: sympy.Expr, loss: float, complexity: int | None = None, **extra) -> dict:
    """One row of an equations table."""
    return {"complexity": int(expression_complexity(expr) if complexity is None else complexity),
            "loss": float(loss), "equation": str(expr), "sympy": expr, **extra}
