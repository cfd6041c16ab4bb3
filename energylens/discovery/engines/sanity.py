"""Whether a formula behaves over the measured ranges: finite, positive, without a pole.

A formula found on a few rows can fit them almost exactly and still blow up between them:
on six ML.ENERGY rows (batch 64 to 512) a genetic search returned
``16.61 - 3.538e4/(2.34e5 - 2.748*B**2) + 587.6/B``, whose pole at ``B = 292`` lies between
the measured batches 256 and 320 (6.4 J predicted at batch 290 where both neighbours
measure about 19 J). Its in-sample loss is near zero, so every loss-based rule would select
it. :class:`DomainCheck` evaluates each candidate over the box that the training rows span
(each variable from its smallest to its largest measured value, every whole value in
between for a layout degree with few values) and refuses it where

- its value is not finite, or not positive where the target is an energy (relative errors),
  at a point of the box (a grid over it, the training rows, lines through them);
- a denominator changes sign along a line of the grid: a pole lies in between, however
  narrow the stretch where the value itself turns negative (0.8 batches in the example).

The box is the training domain that :meth:`DiscoveryResult.predict
<energylens.discovery.DiscoveryResult.predict>` flags extrapolation against: inside it a
selected formula must be sane.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import sympy

__all__ = ["DomainCheck", "MAX_POINTS"]

#: Most points of the grid over the box of one formula's variables.
MAX_POINTS = 60_000
_AXIS = 33  # points per continuous variable
_MIN_AXIS = 9  # fewer per variable, and the grid becomes lines through the training rows
_ROWS = 128  # training rows the lines go through
_RANDOM = 2048  # random points of the box in that case
_DISCRETE_SPAN = 32  # whole-valued variables spanning at most this are taken value by value


def _fmt(x: float) -> str:
    return f"{x:.4g}"


class _Points:
    """Points of the box: arrays of one shape per variable, and ``(axis, variable)`` for each
    axis along which neighbouring points lie on a line of one continuous variable."""

    def __init__(self, arrays: dict[str, np.ndarray], lines: Sequence[tuple[int, str]] = ()):
        self.arrays = arrays
        self.lines = tuple(lines)
        self.shape = np.broadcast_shapes(*(a.shape for a in arrays.values())) if arrays else (1,)

    def values(self, fn: Callable, names: Sequence[str]) -> np.ndarray:
        with np.errstate(all="ignore"):
            out = fn(*[self.arrays[n] for n in names])
        return np.broadcast_to(np.asarray(out, dtype=float), self.shape)

    def where(self, flat_index: int, names: Sequence[str]) -> str:
        idx = np.unravel_index(flat_index, self.shape)
        return ", ".join(f"{n}={_fmt(float(np.broadcast_to(self.arrays[n], self.shape)[idx]))}"
                         for n in names)


class DomainCheck:
    """Checks candidate formulas over the box spanned by the columns of a feature table.

    Parameters
    ----------
    F : DataFrame
        The training rows (one column per variable a formula may use).
    relative : bool
        The target is an energy (> 0); else (a log target) only finiteness is required.

    Examples
    --------
    >>> import numpy as np, pandas as pd, sympy
    >>> F = pd.DataFrame({"B": [64.0, 128, 256, 320, 384, 512]})
    >>> B = sympy.Symbol("B")
    >>> check = DomainCheck(F, relative=True)
    >>> print(check.defect(16.61 - 3.538e4 / (2.34e5 - 2.748 * B**2) + 587.6 / B))
    ... # doctest: +NORMALIZE_WHITESPACE
    has a pole inside the measured ranges: its denominator 234000.0 - 2.748*B**2 changes sign
    between B=285.3 and B=304.4
    >>> check.defect(2.0 + 500.0 / B) is None
    True
    """

    def __init__(self, F: pd.DataFrame, relative: bool = True):
        self.relative = relative
        self._cols = {str(c): F[c].to_numpy(dtype=float) for c in F.columns}
        self._axes: dict[str, tuple[np.ndarray, bool]] = {}
        self._points: dict[tuple[str, ...], list[_Points]] = {}
        self._ranges = {c: (float(np.nanmin(a)), float(np.nanmax(a))) for c, a in self._cols.items()
                        if len(a)}

    # ------------------------------------------------------------------ the grid
    def _axis(self, name: str, m: int = _AXIS) -> tuple[np.ndarray, bool]:
        """Values of one variable over its range, and whether it is continuous."""
        key = f"{name}@{m}"
        if key not in self._axes:
            a = self._cols[name]
            u = np.unique(a[np.isfinite(a)])
            lo, hi = float(u[0]), float(u[-1])
            if len(u) == 1:
                self._axes[key] = (u, False)
            elif np.all(u == np.round(u)) and hi - lo <= _DISCRETE_SPAN:
                self._axes[key] = (np.arange(lo, hi + 1.0), False)
            elif lo > 0 and hi / lo > 4:
                self._axes[key] = (np.geomspace(lo, hi, m), True)
            else:
                self._axes[key] = (np.linspace(lo, hi, m), True)
        return self._axes[key]

    def _grid(self, names: tuple[str, ...]) -> list[_Points]:
        if names in self._points:
            return self._points[names]
        rows = np.unique(np.column_stack([self._cols[n] for n in names]), axis=0) if names else \
            np.zeros((1, 0))
        out = [_Points({n: rows[:, j] for j, n in enumerate(names)})]
        axes = {n: self._axis(n) for n in names}
        cont = [n for n in names if axes[n][1]]
        n_disc = math.prod(len(axes[n][0]) for n in names if not axes[n][1])
        m = _AXIS if not cont else int((MAX_POINTS / n_disc) ** (1.0 / len(cont)))
        if n_disc * max(m, 1) ** len(cont) <= MAX_POINTS and (not cont or m >= _MIN_AXIS):
            m = min(m, _AXIS)
            values = [self._axis(n, m)[0] if n in cont else axes[n][0] for n in names]
            mesh = np.meshgrid(*values, indexing="ij") if names else []
            out.append(_Points(dict(zip(names, mesh)), [(j, n) for j, n in enumerate(names) if n in cont]))
        else:
            # Lines through (some of) the training rows, one variable at a time, and random
            # points of the box.
            rng = np.random.default_rng(0)
            R = rows if len(rows) <= _ROWS else rows[np.sort(rng.choice(len(rows), _ROWS, replace=False))]
            for n in names:
                arr = {o: R[:, i][:, None] for i, o in enumerate(names)}
                arr[n] = axes[n][0][None, :]
                out.append(_Points(arr, [(1, n)] if axes[n][1] else []))
            rand = {}
            for n in names:
                values, continuous = axes[n]
                lo, hi = float(values[0]), float(values[-1])
                if not continuous:
                    rand[n] = rng.choice(values, _RANDOM)
                elif lo > 0 and hi / lo > 4:
                    rand[n] = np.exp(rng.uniform(np.log(lo), np.log(hi), _RANDOM))
                else:
                    rand[n] = rng.uniform(lo, hi, _RANDOM)
            out.append(_Points(rand))
        self._points[names] = out
        return out

    # ------------------------------------------------------------------ the checks
    def _positive_by_construction(self, expr: sympy.Expr) -> bool:
        """A sum of positive multiples of monomials in variables that are >= 0 over the box,
        one of them > 0 everywhere: positive and finite without evaluating anything."""
        strict = False
        for term in sympy.Add.make_args(expr):
            c, rest = term.as_coeff_Mul()
            if not (c.is_Number and c > 0):
                return False
            positive = True
            for base, e in rest.as_powers_dict().items():
                if base == 1:
                    continue
                if not (base.is_Symbol and e.is_Integer and str(base) in self._ranges):
                    return False
                lo = self._ranges[str(base)][0]
                if lo < 0 or (lo == 0 and e < 0):
                    return False
                positive = positive and lo > 0
            strict = strict or positive
        return strict

    def defect(self, expr: sympy.Expr, fn: Callable | None = None,
               names: Sequence[str] | None = None) -> str | None:
        """What is wrong with ``expr`` over the box (None: nothing).

        ``fn`` may be ``expr`` compiled over the variables ``names`` (sorted), to save a
        compilation.
        """
        expr = sympy.sympify(expr)
        if names is None:
            names = sorted(str(s) for s in expr.free_symbols)
        names = tuple(names)
        unknown = [n for n in names if n not in self._cols]
        if unknown:
            return None  # variables the table does not give: nothing to check against
        if self.relative and self._positive_by_construction(expr):
            return None
        syms = [sympy.Symbol(n) for n in names]
        if fn is None:
            fn = sympy.lambdify(syms, expr, "numpy")
        grid = self._grid(names)
        for pts in grid:
            f = pts.values(fn, names).ravel()
            bad = ~np.isfinite(f) | ((f <= 0) if self.relative else False)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                what = "energy" if self.relative else "value"
                return f"gives {what} {_fmt(f[i])} inside the measured ranges (at {pts.where(i, names)})"
        for den in _denominators(expr):
            if den.is_Symbol and (self._ranges[str(den)][0] > 0 or self._ranges[str(den)][1] < 0):
                continue  # a variable of one sign over the box
            g = sympy.lambdify(syms, den, "numpy")
            for pts in grid:
                d = pts.values(g, names)
                for ax, var in pts.lines:
                    a = np.moveaxis(d, ax, -1)
                    flip = a[..., :-1] * a[..., 1:] <= 0
                    if flip.any():
                        idx = np.unravel_index(int(np.flatnonzero(flip)[0]), flip.shape)
                        line = np.moveaxis(np.broadcast_to(pts.arrays[var], d.shape), ax, -1)
                        lo_v, hi_v = float(line[idx]), float(line[idx[:-1] + (idx[-1] + 1,)])
                        return (f"has a pole inside the measured ranges: its denominator {den} "
                                f"changes sign between {var}={_fmt(lo_v)} and {var}={_fmt(hi_v)}")
        return None


def _denominators(expr: sympy.Expr) -> list[sympy.Expr]:
    """Bases raised to a negative power in ``expr`` (each once)."""
    out: list[sympy.Expr] = []
    for p in sympy.preorder_traversal(expr):
        if isinstance(p, sympy.Pow) and p.exp.is_number and p.exp.is_negative and \
                p.base.free_symbols and p.base not in out:
            out.append(p.base)
    return out
