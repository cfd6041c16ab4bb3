"""The result of a structure search: :class:`DiscoveryResult`, its table and its selection rule."""

from __future__ import annotations

import html
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import sympy

from ..core.domain import Domain, Extrapolation
from ..core.expressions import expression_complexity, symbol
from ..core.options import check_str_option
from ..core.variables import VARIABLE_COLUMNS, table_variables
from .presentation import (
    format_equation,
    format_number,
    latex_equation,
    latex_table,
    legend_text,
    symbol_names,
)

__all__ = ["DiscoveryResult", "Selection", "SELECTIONS", "equations_table", "select_index", "make_row",
           "energy_of"]

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
    domain_ : Domain or None
        The training domain (:class:`~energylens.core.domain.Domain`): the range of every
        configuration variable of the table searched, those the formulas do not use too,
        and the labels (model, GPU ...) seen. :meth:`predict` flags rows outside it.
    scale_ : dict or None
        Where the searched target was energy divided by a scale per group (the fronts of
        :func:`~energylens.discovery.derive_model`): ``{"by": columns, "table": DataFrame}``
        with the groups' key columns and ``scale``; :meth:`predict` multiplies by it.
    info_ : dict
        Engine settings and run statistics (plain data); ``info_["rejected"]`` lists the
        formulas the engine found but refused (too many constants for the rows, or a pole or
        a non-positive energy inside the measured ranges), each with the reason.

    Notes
    -----
    A result holds only sympy and pandas objects: it pickles and reloads without its
    backend. Printed, it shows the selected formula, its in-sample MAPE and a legend of its
    symbols, with constants to four significant digits, or more where four would not
    reproduce its predictions on the training rows to 0.1% (the ``digits`` column);
    :meth:`table` and :meth:`to_latex` show the front.
    """

    def __init__(self, equations: pd.DataFrame, *, engine: str, selection: Selection = "best",
                 target: str = "energy_j", per: str = "request", log: bool = False,
                 features: Sequence[str] = (), batch_rule: str = "cap", batch_k: float | None = None,
                 info: Mapping[str, Any] | None = None, domain: Domain | None = None,
                 scale: Mapping[str, Any] | None = None):
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
        self.domain_ = domain
        self.scale_ = dict(scale) if scale is not None else None

    def __setstate__(self, state):
        # results pickled before the training domain and group scales were recorded
        state.setdefault("domain_", None)
        state.setdefault("scale_", None)
        self.__dict__.update(state)

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

    def _digits(self, index: int | None, digits: int | None) -> int | None:
        """``digits``, or more where the row records that more are needed to reproduce its
        predictions on the training rows to 0.1%."""
        if digits is None or "digits" not in self.equations_.columns:
            return digits
        need = self._row(index)["digits"]
        return max(int(digits), int(need)) if pd.notna(need) else digits

    def equation(self, index: int | None = None, digits: int | None = None) -> str:
        """The chosen equation as text (constants to ``digits`` significant digits)."""
        return format_equation(self.sympy(index), digits)

    def latex(self, index: int | None = None, digits: int | None = 4) -> str:
        """The chosen equation in LaTeX, constants to at least ``digits`` significant digits
        (more where the ``digits`` column says so; ``None``: full precision)."""
        return latex_equation(self.sympy(index), self._digits(index, digits))

    def _lhs(self) -> str:
        lhs = f"{self.target}/so" if self.per == "token" else self.target
        if self.scale_ is not None:
            lhs = f"{lhs}/scale"
        return f"log({lhs})" if self.log else lhs

    def legend(self, index: int | None = None) -> str:
        """What the symbols of the chosen (or ``index``-th) equation mean."""
        return legend_text(symbol_names([self.sympy(index)]))

    def summary(self, digits: int = 4) -> str:
        """The selected equation, how it was chosen, its in-sample MAPE and the legend of its
        symbols; constants to at least ``digits`` significant digits, more where the printed
        formula would not reproduce the predictions on the training rows to 0.1%."""
        i = self.best_index_
        r = self.equations_.iloc[i]
        fit = ""
        if "mape_pct" in r.index and pd.notna(r["mape_pct"]):
            fit = f", in-sample MAPE {r['mape_pct']:.1f}%"
        shown = self._digits(i, digits)
        note = f"  ({shown} significant digits)" if shown is not None and shown != digits else ""
        lines = [f"selected ({self.engine_} engine, rule {self.selection!r}, complexity "
                 f"{int(r['complexity'])}, loss {format_number(r['loss'], digits):g}{fit}; index "
                 f"{i} of equations_, 0 to {len(self.equations_) - 1}):",
                 f"  {self._lhs()} = {self.equation(digits=shown)}{note}"]
        names = symbol_names([self.sympy()])
        if names:
            lines.append(f"  where {legend_text(names)}")
        if self.scale_ is not None:
            lines.append(f"  scale = the scale of the row's group of {self.scale_['by']} "
                         "(predict multiplies by it)")
        return "\n".join(lines)

    def table(self, digits: int | None = 4) -> pd.DataFrame:
        """The front for reading: ``complexity, loss, score, equation, selected`` (and the
        engine's columns), with numbers to ``digits`` significant digits and constants to at
        least as many (more where a row's ``digits`` says so; ``None``: full precision, as for
        a CSV file); ``selected`` marks :attr:`best_index_`."""
        eq = self.equations_
        out = eq.drop(columns=["sympy"]).copy()
        out["equation"] = [format_equation(e, self._digits(i, digits))
                           for i, e in enumerate(eq["sympy"])]
        for c in ("loss", "score", "criterion", "mape_pct"):
            if c in out.columns:
                out[c] = [format_number(x, digits) for x in out[c]]
        out.insert(4, "selected", np.arange(len(eq)) == self.best_index_)
        return out

    def to_latex(self, digits: int = 4) -> str:
        """The front as a LaTeX ``tabular`` (the selected row starred) with a legend."""
        need = [self._digits(i, digits) for i in range(len(self.equations_))]
        return latex_table(list(self.equations_["sympy"]), self.table(digits), digits=digits,
                           equation_digits=need)

    def _repr_html_(self) -> str:
        legend = html.escape(legend_text(symbol_names(self.equations_["sympy"])))
        return (f"<p><b>{html.escape(self.summary().splitlines()[0])}</b></p>"
                + self.table().to_html(index=False) + f"<p>{legend}</p>")

    def energy_expression(self, index: int | None = None) -> sympy.Expr:
        """The equation turned into energy per request (J): times ``so`` for a per-token
        target, ``exp`` of it for a log target."""
        return energy_of(self.sympy(index), self.per, self.log)

    @property
    def _target_name(self) -> str:
        return self.target

    def extrapolation(self, X: pd.DataFrame) -> Extrapolation:
        """Which rows of ``X`` lie outside the training domain (:attr:`domain_`), and how far.

        A variable the formula does not use counts too: a formula found where ``tp`` was 2
        throughout predicts ``tp = 8`` as if it were 2, which is an extrapolation.
        """
        dom = self.domain_
        if dom is None or not isinstance(X, pd.DataFrame):
            return Extrapolation(np.zeros(len(X), dtype=bool))
        names = [n for n in dom.ranges if VARIABLE_COLUMNS.get(n, n) in X.columns]
        V = table_variables(X, names, batch_rule=self.batch_rule_, batch_k=self.batch_k_, check=False,
                            owner="DiscoveryResult.predict")
        return dom.check(V, X)

    def _flag(self, X: pd.DataFrame, stacklevel: int) -> Extrapolation:
        from ..exceptions import ExtrapolationWarning

        ext = self.extrapolation(X)
        if ext.any:
            warnings.warn(f"{type(self).__name__}: {int(ext.mask.sum())} of {len(ext.mask)} row(s) "
                          f"lie outside the training data ({ext.describe()}); these predictions "
                          "extrapolate.", ExtrapolationWarning, stacklevel=stacklevel + 1)
        return ext

    def _group_scale(self, X: pd.DataFrame) -> np.ndarray:
        by, table = list(self.scale_["by"]), self.scale_["table"]
        if not by:
            return np.full(len(X), float(table["scale"].iloc[0]))
        missing = [c for c in by if c not in X.columns]
        if missing:
            raise ValueError(f"DiscoveryResult.predict: this formula is of energy divided by the "
                             f"scale of each group of {by}; X lacks {missing}.")
        keys = pd.MultiIndex.from_frame(X[by].astype(str))
        lookup = pd.Series(table["scale"].to_numpy(float),
                           index=pd.MultiIndex.from_frame(table[by].astype(str)))
        out = lookup.reindex(keys).to_numpy(dtype=float)
        bad = ~np.isfinite(out)
        if bad.any():
            rows = X.index[np.flatnonzero(bad)[:5]].tolist()
            raise ValueError(f"DiscoveryResult.predict: {int(bad.sum())} row(s) belong to groups "
                             f"of {by} without a scale (not searched; first rows {rows}).")
        return out

    def _evaluate(self, X: pd.DataFrame, index: int | None) -> np.ndarray:
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
        if self.scale_ is not None:
            out = out * self._group_scale(X)
        return checked_prediction(out, X, type(self).__name__, self.target)

    def predict(self, X: pd.DataFrame, index: int | None = None) -> np.ndarray:
        """Energy per request (J) predicted by the chosen equation for a canonical table.

        Rows outside the training data (:meth:`extrapolation`: a variable beyond its range,
        one that was constant in training and is not here, a model or GPU not seen) are
        predicted and flagged by one :class:`~energylens.ExtrapolationWarning`, as by the
        closed forms.

        Raises
        ------
        ValueError
            Where the equation gives a negative or non-finite energy, naming the first such
            rows and their values: the rule of every model's ``predict``
            (:func:`~energylens.models.design.checked_prediction`). A formula fitted to a few
            rows can turn negative a step outside them; refit it as a closed form
            (:meth:`to_model`) or choose a simpler row of the front (``index``).
        """
        self._flag(X, stacklevel=2)
        return self._evaluate(X, index)

    def predict_interval(self, X: pd.DataFrame, level: float = 0.9, *,
                         index: int | None = None) -> pd.DataFrame:
        """The prediction with the columns of the closed forms' ``predict_interval``.

        A discovered formula has no parameter covariance, so ``lower``, ``upper`` and
        ``stderr`` are NaN (refit it as a closed form, ``to_model().fit(df)``, for
        intervals); ``extrapolated`` and ``extrapolated_by`` flag the rows outside the
        training data (:meth:`extrapolation`), which is what
        :func:`~energylens.select_config` shows.

        Returns
        -------
        DataFrame
            The target's column (``energy_j``), ``lower``, ``upper``, ``stderr``,
            ``extrapolated``, ``extrapolated_by`` and ``wide`` (False), indexed like ``X``.
        """
        from ..core.options import LEVEL, check_options

        check_options("predict_interval", {"level": [LEVEL]}, {"level": level})
        ext = self._flag(X, stacklevel=2)
        f = self._evaluate(X, index)
        nan = np.full(len(f), np.nan)
        return pd.DataFrame({self.target: f, "lower": nan, "upper": nan, "stderr": nan,
                             "extrapolated": ext.mask, "extrapolated_by": ext.per_row,
                             "wide": np.zeros(len(f), dtype=bool)}, index=X.index)

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


def energy_of(expr: sympy.Expr, per: str = "request", log: bool = False) -> sympy.Expr:
    """A formula of the searched target as energy per request: ``exp`` of it for a log
    target, times ``so`` for a target per output token."""
    if log:
        expr = sympy.exp(expr)
    if per == "token":
        expr = symbol("so") * expr
    return expr


def make_row(expr: sympy.Expr, loss: float, complexity: int | None = None, **extra) -> dict:
    """One row of an equations table."""
    return {"complexity": int(expression_complexity(expr) if complexity is None else complexity),
            "loss": float(loss), "equation": str(expr), "sympy": expr, **extra}
