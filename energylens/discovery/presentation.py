"""How discovered formulas are shown: rounded constants, a legend of symbols, LaTeX.

Tables and printed lines show constants to four significant digits (``digits``); files meant
for machines (the CSV written by the command line, :attr:`DiscoveryResult.equations_`) keep
full precision. Wherever a formula is shown, a legend says what its symbols are
(:func:`energylens.core.variables.legend`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import sympy

from ..core.variables import VARIABLES, legend, variable_label

__all__ = ["LATEX_NAMES", "round_constants", "format_equation", "latex_equation", "symbol_names",
           "legend_text", "format_number", "latex_table"]

#: LaTeX spelling of the variables whose short names are more than one letter.
LATEX_NAMES: dict[str, str] = {"si": "s_i", "so": "s_o", "Na": "N_a"}


def round_constants(expr: sympy.Expr, digits: int | None = 4) -> sympy.Expr:
    """The expression with every floating constant rounded to ``digits`` significant digits
    (unchanged for ``digits=None``)."""
    if digits is None:
        return expr
    return expr.xreplace({f: sympy.Float(f, digits) for f in expr.atoms(sympy.Float)})


def format_equation(expr: sympy.Expr, digits: int | None = 4) -> str:
    """Formula text with constants to ``digits`` significant digits.

    Examples
    --------
    >>> import sympy
    >>> si, B = sympy.symbols("si B")
    >>> format_equation(0.0123456789 * si + 123456.789 / B)
    '0.01235*si + 1.235e+5/B'
    """
    return str(round_constants(expr, digits))


def latex_equation(expr: sympy.Expr, digits: int | None = 4) -> str:
    """Formula in LaTeX (``s_i``, ``s_o`` for the lengths), constants to ``digits`` digits.

    Examples
    --------
    >>> import sympy
    >>> si, so, B = sympy.symbols("si so B")
    >>> latex_equation(0.0123456 * si + 0.5 * so / B)
    '0.01235 s_i + \\\\frac{0.5 s_o}{B}'
    """
    e = round_constants(expr, digits)
    names = {s: LATEX_NAMES[str(s)] for s in e.free_symbols if str(s) in LATEX_NAMES}
    return sympy.latex(e, symbol_names=names, min=-3, max=3)


def symbol_names(exprs: Iterable[sympy.Expr]) -> list[str]:
    """Variables used by the formulas: the library's variables in their order, then others."""
    used = {str(s) for e in exprs for s in e.free_symbols}
    return [v for v in VARIABLES if v in used] + sorted(used - set(VARIABLES))


def legend_text(names: Iterable[str], *, latex: bool = False) -> str:
    """What the symbols mean, in one line (columns outside the library are named as such).

    Examples
    --------
    >>> legend_text(["si", "B", "x0"])
    'si = input tokens per request; B = effective running batch per replica; x0 = column x0'
    """
    names = list(names)
    if latex:
        return "; ".join(f"${LATEX_NAMES.get(n, n)}$ = " + (variable_label(n) if n in VARIABLES
                                                             else f"column {n}") for n in names)
    known = [n for n in names if n in VARIABLES]
    parts = [legend(known)] if known else []
    parts += [f"{n} = column {n}" for n in names if n not in VARIABLES]
    return "; ".join(parts)


def format_number(x: float, digits: int | None = 4) -> float:
    """``x`` rounded to ``digits`` significant digits (unchanged for ``digits=None``)."""
    if digits is None or not np.isfinite(x) or x == 0:
        return float(x)
    return float(f"{float(x):.{digits}g}")


def _latex_number(x: float, digits: int) -> str:
    return sympy.latex(sympy.Float(float(x), digits), min=-3, max=3) if np.isfinite(x) else r"\infty"


def latex_table(exprs: list[sympy.Expr], table: pd.DataFrame, *, digits: int = 4) -> str:
    """A LaTeX ``tabular`` of a front (complexity, loss, score, equation, a star on the
    selected row) followed by the legend of its symbols."""
    lines = [r"\begin{tabular}{rrrlc}", r"\hline",
             r"complexity & loss & score & equation & selected \\", r"\hline"]
    star = r"$\star$"
    for e, (_, r) in zip(exprs, table.iterrows(), strict=True):
        lines.append(f"{int(r['complexity'])} & ${_latex_number(r['loss'], digits)}$ & "
                     f"${_latex_number(r['score'], digits)}$ & ${latex_equation(e, digits)}$ & "
                     f"{star if r['selected'] else ''} " + r"\\")
    lines += [r"\hline", r"\end{tabular}", ""]
    lines.append("Symbols: " + legend_text(symbol_names(exprs), latex=True) + ".")
    return "\n".join(lines) + "\n"
