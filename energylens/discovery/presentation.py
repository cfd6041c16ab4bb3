"""How discovered formulas are shown: rounded constants, a legend of symbols, LaTeX.

Tables and printed lines show constants to four significant digits (``digits``), or more
where four would not reproduce a formula's predictions on its training rows to 0.1%
(:func:`digits_needed`; terms that nearly cancel need more); files meant for machines (the
CSV written by the command line, :attr:`DiscoveryResult.equations_`) keep full precision. Wherever a formula is shown, a legend says what its symbols are
(:func:`energylens.core.variables.legend`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import sympy

from ..core.variables import VARIABLES, legend, variable_label

__all__ = ["LATEX_NAMES", "round_constants", "format_equation", "latex_equation", "symbol_names",
           "legend_text", "format_number", "latex_table", "digits_needed"]

#: LaTeX spelling of the variables whose short names are more than one letter.
LATEX_NAMES: dict[str, str] = {"si": "s_i", "so": "s_o", "Na": "N_a"}


def round_constants(expr: sympy.Expr, digits: int | None = 4) -> sympy.Expr:
    """The expression with every floating constant rounded to ``digits`` significant digits
    (unchanged for ``digits=None``)."""
    if digits is None:
        return expr
    return expr.xreplace({f: sympy.Float(f, digits) for f in expr.atoms(sympy.Float)})


def digits_needed(expr: sympy.Expr, V: Mapping[str, np.ndarray], *, digits: int = 4,
                  rtol: float = 1e-3, return_values: bool = False):
    """Fewest significant digits (at least ``digits``, at most 15) with which the formula,
    its constants rounded as printed, gives the values of the full-precision formula on the
    rows of ``V`` to a relative ``rtol``; with ``return_values``, also those values (None
    where the formula uses a variable ``V`` lacks).

    Examples
    --------
    >>> import numpy as np, sympy
    >>> si, so = sympy.symbols("si so")
    >>> V = {"si": np.array([100.0, 200, 300]), "so": np.array([100.1, 200.2, 300.3])}
    >>> digits_needed(0.5 * si + 2.0 * so, V)
    4
    >>> e = 100.123456 * si - 100.0 * so + 1.0  # the terms nearly cancel on these rows
    >>> digits_needed(e, V), format_equation(e, digits_needed(e, V))
    (8, '100.12346*si - 100.0*so + 1.0')
    """
    names = sorted(str(s) for s in expr.free_symbols)
    if any(n not in V for n in names):
        return (digits, None) if return_values else digits
    # One compiled function with the constants as arguments, evaluated at full precision and
    # at each rounding.
    floats = sorted(expr.atoms(sympy.Float), key=float)
    consts = [sympy.Dummy() for _ in floats]
    fn = sympy.lambdify([sympy.Symbol(n) for n in names] + consts,
                        expr.xreplace(dict(zip(floats, consts))), "numpy")
    args = [np.asarray(V[n], float) for n in names]
    n = len(args[0]) if args else 1

    def values(cs):
        with np.errstate(all="ignore"):
            return np.broadcast_to(np.asarray(fn(*args, *cs), float), (n,))

    full = values([float(f) for f in floats])
    need = 15
    if not floats or not np.all(np.isfinite(full)):
        need = digits
    else:
        for d in range(digits, 16):
            with np.errstate(all="ignore"):
                err = np.abs(values([float(f"{float(f):.{d}g}") for f in floats]) - full)
            if np.all(err <= rtol * np.abs(full)):
                need = d
                break
    return (need, full) if return_values else need


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


def latex_table(exprs: list[sympy.Expr], table: pd.DataFrame, *, digits: int = 4,
                equation_digits: list[int | None] | None = None) -> str:
    """A LaTeX ``tabular`` of a front (complexity, loss, score, equation, a star on the
    selected row) followed by the legend of its symbols; ``equation_digits`` may give each
    equation's significant digits (default ``digits``)."""
    lines = [r"\begin{tabular}{rrrlc}", r"\hline",
             r"complexity & loss & score & equation & selected \\", r"\hline"]
    star = r"$\star$"
    shown = equation_digits if equation_digits is not None else [digits] * len(exprs)
    for e, d, (_, r) in zip(exprs, shown, table.iterrows(), strict=True):
        lines.append(f"{int(r['complexity'])} & ${_latex_number(r['loss'], digits)}$ & "
                     f"${_latex_number(r['score'], digits)}$ & ${latex_equation(e, d)}$ & "
                     f"{star if r['selected'] else ''} " + r"\\")
    lines += [r"\hline", r"\end{tabular}", ""]
    lines.append("Symbols: " + legend_text(symbol_names(exprs), latex=True) + ".")
    return "\n".join(lines) + "\n"
