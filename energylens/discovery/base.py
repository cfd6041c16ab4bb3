"""The result of a structure search: :class:`DiscoveryResult`, its table and its selection rule."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import sympy

from ..core.expressions import expression_complexity, symbol
from ..core.options import check_str_option
from ..core.variables import table_variables
from .presentation import (
    format_equation,
    format_number,
    latex_equation,
    latex_table,
    legend_text,
    symbol_names,
)

__all__ = ["DiscoveryResult", "Selection", "SELECTIONS", "equations_table", "select_index", "make_row"]

Selection = Literal["best", "accuracy", "score", "criterion"]
SELECTIONS = ("best", "accuracy", "score", "criterion")


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
    """Row chosen by a selection rule (PySR's meanings, and the term search's criterion).

    ``"accuracy"``: the lowest loss; ``"score"``: the highest score; ``"best"``: the
    highest score among the rows whose loss is at most 1.5 times the minimum loss;
    ``"criterion"``: the lowest information criterion (the ``criterion`` column, which the
    term search reports). Ties go to the simpler (earlier) row.
    """
    check_str_option("select_index", "model_selection", rule, SELECTIONS)
    if rule == "criterion":
        if "criterion" not in equations.columns:
            raise ValueError("model_selection='criterion' needs the information criterion of each "
                             "equation, which only the term search reports; use 'best', 'accuracy' "
                             "or 'score'.")
        return int(np.argmin(equations["criterion"].to_numpy(dtype=float)))
    loss = equations["loss"].to_numpy(dtype=float)
    score = equations["score"].to_numpy(dtype=float)
    if rule == "accuracy":
        return int(np.argmin(loss))
    if rule == "score":
        return int(np.argmax(score))
    return int(np.argmax(np.where(loss <= 1.5 * loss.min(), score, -np.inf)))


class DiscoveryResult:
    """Equations found by a structure search, with exactly one selected.

    Attributes
    ----------
    equations_ : DataFrame
        The Pareto front, full precision: ``complexity, loss, score, equation, sympy`` (and
        engine-specific columns: ``n_terms``, ``criterion``). ``loss`` is the mean squared
        relative error of the searched target (mean squared error of its log for
        ``log=True``). Equations are in the short variable names (``t, p, B, si, so, N``).
    engine_ : str
        The engine that ran (``"terms"``, ``"operon"`` or ``"pysr"``).
    selection : str
        Rule choosing :attr:`best_index_` (:func:`select_index`).
    target, per, log :
        What was searched: column, ``"request"`` or ``"token"``, log or not.
    features_ : list of str
        Variables the equations may use.
    batch_rule_, batch_k_ :
        Effective-batch rule used for ``B``.
    info_ : dict
        Engine settings and run statistics (plain data).

    A result holds only sympy and pandas objects: it pickles and reloads without its
    backend. Printed, it shows the selected formula with constants to four significant
    digits and a legend of its symbols; :meth:`table` and :meth:`to_latex` show the front.
    """

    def __init__(self, equations: pd.DataFrame, *, engine: str, selection: Selection = "best",
                 target: str = "energy_j", per: str = "request", log: bool = False,
                 features: Sequence[str] = (), batch_rule: str = "cap", batch_k: float | None = None,
                 info: Mapping[str, Any] | None = None):
        self.equations_ = equations
        self.engine_ = engine
        select_index(equations, selection)  # checks the rule against this table
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

    def __str__(self) -> str:
        return self.summary()

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

    def equation(self, index: int | None = None, digits: int | None = None) -> str:
        """The chosen equation as text (constants to ``digits`` significant digits)."""
        return format_equation(self.sympy(index), digits)

    def latex(self, index: int | None = None, digits: int | None = 4) -> str:
        """The chosen equation in LaTeX, constants to ``digits`` significant digits."""
        return latex_equation(self.sympy(index), digits)

    def _lhs(self) -> str:
        lhs = f"{self.target}/so" if self.per == "token" else self.target
        return f"log({lhs})" if self.log else lhs

    def legend(self, index: int | None = None) -> str:
        """What the symbols of the chosen (or ``index``-th) equation mean."""
        return legend_text(symbol_names([self.sympy(index)]))

    def summary(self, digits: int = 4) -> str:
        """The selected equation, how it was chosen, and the legend of its symbols."""
        i = self.best_index_
        r = self.equations_.iloc[i]
        lines = [f"selected ({self.engine_} engine, rule {self.selection!r}, complexity "
                 f"{int(r['complexity'])}, loss {format_number(r['loss'], digits):g}; index {i} of "
                 f"equations_, 0 to {len(self.equations_) - 1}):",
                 f"  {self._lhs()} = {self.equation(digits=digits)}"]
        names = symbol_names([self.sympy()])
        if names:
            lines.append(f"  where {legend_text(names)}")
        return "\n".join(lines)

    def table(self, digits: int | None = 4) -> pd.DataFrame:
        """The front for reading: ``complexity, loss, score, equation, selected`` (and the
        engine's columns), with numbers and constants to ``digits`` significant digits
        (``None``: full precision, as for a CSV file); ``selected`` marks :attr:`best_index_`."""
        eq = self.equations_
        out = eq.drop(columns=["sympy"]).copy()
        out["equation"] = [format_equation(e, digits) for e in eq["sympy"]]
        for c in ("loss", "score", "criterion"):
            if c in out.columns:
                out[c] = [format_number(x, digits) for x in out[c]]
        out.insert(4, "selected", np.arange(len(eq)) == self.best_index_)
        return out

    def to_latex(self, digits: int = 4) -> str:
        """The front as a LaTeX ``tabular`` (the selected row starred) with a legend."""
        return latex_table(list(self.equations_["sympy"]), self.table(digits), digits=digits)

    def _repr_html_(self) -> str:
        legend = html.escape(legend_text(symbol_names(self.equations_["sympy"])))
        return (f"<p><b>{html.escape(self.summary().splitlines()[0])}</b></p>"
                + self.table().to_html(index=False) + f"<p>{legend}</p>")

    def energy_expression(self, index: int | None = None) -> sympy.Expr:
        """The equation turned into energy per request (J): times ``so`` for a per-token
        target, ``exp`` of it for a log target."""
        e = self.sympy(index)
        if self.log:
            e = sympy.exp(e)
        if self.per == "token":
            e = symbol("so") * e
        return e

    @property
    def _target_name(self) -> str:
        return self.target

    def predict(self, X: pd.DataFrame, index: int | None = None) -> np.ndarray:
        """Energy per request (J) predicted by the chosen equation for a canonical table.

        Raises
        ------
        ValueError
            Where the equation gives a negative or non-finite energy, naming the first such
            rows and their values: the rule of every model's ``predict``
            (:func:`~energylens.models.design.checked_prediction`). A formula fitted to a few
            rows can turn negative a step outside them; refit it as a closed form
            (:meth:`to_model`) or choose a simpler row of the front (``index``).
        """
        from ..models.design import checked_prediction

        e = self.energy_expression(index)
        names = sorted(str(s) for s in e.free_symbols)
        rule = self.batch_rule_ if "B" in names else "cap"
        V = table_variables(X, names, batch_rule=rule, batch_k=self.batch_k_,
                            owner="DiscoveryResult.predict")
        fn = sympy.lambdify([symbol(n) for n in names], e, "numpy")
        with np.errstate(all="ignore"):
            out = fn(*[V[n] for n in names])
        out = np.broadcast_to(np.asarray(out, float), (len(X),)).copy()
        return checked_prediction(out, X, type(self).__name__, self.target)

    def to_model(self, index: int | None = None, **kwargs):
        """The chosen equation as an unfitted :class:`~energylens.models.expression.ExpressionModel`
        of energy per request, its constants as parameters starting at the discovered
        values (``kwargs`` go to the constructor; the batch rule defaults to the one used)."""
        from ..models.expression import ExpressionModel

        kwargs.setdefault("batch_rule", self.batch_rule_ if self.batch_rule_ != "saturating" else "auto")
        return ExpressionModel.from_sympy(self.energy_expression(index), **kwargs)

    def terms_found(self, index: int | None = None) -> list[str]:
        """Additive terms of the chosen energy equation (expanded, coefficients dropped)."""
        from .engines.linear import additive_terms

        return sorted(str(t) for _, t in additive_terms(self.energy_expression(index)))


def make_row(expr: sympy.Expr, loss: float, complexity: int | None = None, **extra) -> dict:
    """One row of an equations table."""
    return {"complexity": int(expression_complexity(expr) if complexity is None else complexity),
            "loss": float(loss), "equation": str(expr), "sympy": expr, **extra}
