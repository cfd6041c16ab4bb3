"""Weighted least squares over candidate terms, shared by the engines.

Energies span orders of magnitude, so coefficients are fitted on *relative* errors: each
row is divided by its target (``relative=True``), optionally weighted by ``sample_weight``
(a bootstrap resample is the vector of row counts). Model sizes are compared with an
information criterion on the residual sum of squares ``RSS`` of ``n`` rows and ``k`` fitted
constants (terms, and the constants inside a term) out of a library of ``L`` terms:

* ``"bic"``: ``n ln(RSS/n) + k ln n``;
* ``"mdl"`` (default): ``n ln(RSS/n) + k ln n + 2 k ln L``, a two-part code length
  (``ln n / 2`` nats per coefficient plus ``ln L`` nats to name each term, doubled to the
  scale of the BIC) that equals the extended BIC of Chen and Chen (2008) with
  ``gamma = 1``; it guards against spurious terms picked out of a large library.

Both add the small-sample correction of the AICc (Hurvich and Tsai, 1989),
``2 k (k + 1) / (n - k - 1)``, and are infinite where ``n <= k + 1``. The fit term
``n ln(RSS/n)`` is optimistic when few rows are left per coefficient (``k = n - 1`` terms
fit ``n`` rows almost exactly), and the ``ln n`` penalty per term is too weak to say so: on a
group of 7 ML.ENERGY rows the uncorrected MDL preferred 6 terms (-39.3) to 3 (-37.8), and
the 6-term formula predicted -12513 J at batch 8 (the rows span 32 to 512). The correction is
negligible where rows outnumber terms (0.8 nats for 10 terms on 300 rows) and decisive
where they do not (20 nats for 4 terms on 7 rows). Leave-one-out over the (model, GPU)
groups of ML.ENERGY v2 and v3 (5 to 20 rows each; the term search, which also caps the
terms at ``(n - 1) // 2``) bears it out: the size the corrected MDL prefers predicts a
held-out row with a mean error of 6.4% (v2) and 9.5% (v3), against 19.9% and 45.9% before.

``n`` counts the distinct configurations (rows of the feature table) with a positive weight,
and ``RSS`` is ``n`` times the weighted mean squared residual: a row repeated, or every
weight multiplied by the same number, tells nothing new about which terms the data support,
and leaves the criterion, the cap on terms and so the chosen formula unchanged (a bootstrap
resample is judged on the configurations it drew).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import sympy
from scipy import optimize

from ...core.options import check_str_option

__all__ = ["Criterion", "Design", "criterion_value", "additive_terms", "term_values",
           "refit_additive", "simplify_formula", "fitted_constants", "distinct_rows",
           "max_supported_terms"]

Criterion = Literal["bic", "mdl"]
_CHUNK = 40_000


def criterion_value(rss: float, n: float, k: int, n_library: int, criterion: Criterion) -> float:
    """Information criterion of a fit, small-sample corrected (see the module docstring).

    ``rss`` is the residual sum of squares over ``n`` rows (the sum of the weights) of ``k``
    terms picked out of a library of ``n_library``. Lower is better; ``inf`` where
    ``n <= k + 1`` (no rows left to judge the fit).

    Examples
    --------
    >>> round(criterion_value(1.0, 100, 2, 50, "bic"), 3)
    -451.183
    >>> criterion_value(1e-9, 7, 6, 17, "mdl")
    inf
    """
    check_str_option("criterion_value", "criterion", criterion, ("bic", "mdl"))
    if n - k - 1 <= 0:
        return math.inf
    rss = max(float(rss), 1e-14 * n)
    base = n * math.log(rss / n) + k * math.log(n) + 2 * k * (k + 1) / (n - k - 1)
    return base if criterion == "bic" else base + 2 * k * math.log(max(n_library, 2))


def max_supported_terms(n: float) -> int:
    """Most fitted constants a formula may have on ``n`` distinct configurations:
    ``(n - 1) // 2``, at least 1.

    Examples
    --------
    >>> [max_supported_terms(n) for n in (3, 7, 8, 13, 300)]
    [1, 3, 3, 6, 149]
    """
    return max(1, int((n - 1) // 2))


def distinct_rows(columns, weight: np.ndarray | None = None) -> int:
    """Distinct configurations among the rows with a positive weight: rows of ``columns``
    (a DataFrame, a mapping of equal-length arrays or a 2-D array) that differ in a value.

    Examples
    --------
    >>> import numpy as np
    >>> distinct_rows({"B": np.array([8.0, 8.0, 16.0]), "si": np.array([1.0, 1.0, 1.0])})
    2
    >>> distinct_rows(np.array([[1.0], [2.0], [3.0]]), weight=np.array([1.0, 0.0, 4.0]))
    2
    """
    if isinstance(columns, Mapping):
        A = np.column_stack([np.asarray(v, float) for v in columns.values()]) if columns else None
    else:
        A = np.asarray(columns, float)
        A = A.reshape(len(A), -1) if A.ndim else None
    if A is None or A.shape[1] == 0:
        n = len(weight) if weight is not None else 1
        return int(n > 0 and (weight is None or np.any(weight > 0)))
    if weight is not None:
        A = A[np.asarray(weight, float) > 0]
    if len(A) == 0:
        return 0
    return int(len(np.unique(np.round(A, 12), axis=0)))


def fitted_constants(expr: sympy.Expr) -> int:
    """Constants of a formula that a fit sets: its floating-point numbers, counted once per
    absolute value (``0.5*t - 0.5`` is one constant, ``0.5*(t - 1)`` expanded), and not
    counting whole-number exponents (``B**2.0``).

    Examples
    --------
    >>> import sympy
    >>> B = sympy.Symbol("B")
    >>> fitted_constants(16.61 - 3.538e4 / (2.34e5 - 2.748 * B**2) + 587.6 / B)
    5
    >>> fitted_constants(sympy.Float(0.5) * (B - 1))
    1
    """
    values: set[float] = set()

    def walk(e):
        if isinstance(e, sympy.Float):
            values.add(abs(float(e)))
            return
        if isinstance(e, sympy.Pow):
            walk(e.base)
            if not (e.exp.is_Number and float(e.exp).is_integer()):
                walk(e.exp)
            return
        for a in e.args:
            walk(a)

    walk(sympy.sympify(expr))
    return len(values)


class Design:
    """Weighted, column-scaled design ``A`` and target ``b``, and solvers of column subsets.

    Parameters
    ----------
    T : array of shape (n, L)
        Values of the candidate terms.
    y : array of shape (n,)
        Target (> 0 when ``relative``).
    relative : bool
        Divide each row by ``y``.
    positive : bool
        Non-negative coefficients (:func:`scipy.optimize.nnls`).
    weight : array of shape (n,), optional
        Row weights (counts).
    n_configs : int, optional
        Distinct configurations, the criterion's ``n`` (default: the distinct rows of ``T``
        with a positive weight; see the module docstring).
    """

    def __init__(self, T: np.ndarray, y: np.ndarray, relative: bool, positive: bool,
                 weight: np.ndarray | None = None, n_configs: int | None = None):
        w = 1.0 / y if relative else np.ones_like(y)
        if weight is not None:
            w = w * np.sqrt(weight)
        A = T * w[:, None]
        self.b = y * w
        self.norms = np.linalg.norm(A, axis=0)
        self.norms[self.norms == 0] = 1.0
        self.A = A / self.norms
        self.G = self.A.T @ self.A
        self.g = self.A.T @ self.b
        self.bb = float(self.b @ self.b)
        self.positive = positive
        #: Sum of the weights: the loss is the weighted mean squared residual ``rss / total``.
        self.total = float(len(y) if weight is None else np.sum(weight))
        self.n = float(distinct_rows(T, weight) if n_configs is None else n_configs)

    def criterion(self, rss: float, k: int, n_library: int, criterion: Criterion) -> float:
        """:func:`criterion_value` of a subset's weighted ``rss`` with ``k`` constants, on the
        distinct configurations (scale-free in the weights)."""
        return criterion_value(rss * self.n / self.total, self.n, k, n_library, criterion)

    def solve(self, S: Sequence[int]) -> tuple[np.ndarray, float]:
        """Scaled coefficients and RSS of the subset ``S`` (exact solver)."""
        S = list(S)
        if not S:
            return np.zeros(0), self.bb
        As = self.A[:, S]
        if self.positive:
            x, rnorm = optimize.nnls(As, self.b, maxiter=50 * len(S))
            return x, float(rnorm**2)
        x, *_ = np.linalg.lstsq(As, self.b, rcond=None)
        r = self.b - As @ x
        return x, float(r @ r)

    def coefficients(self, S: Sequence[int]) -> tuple[np.ndarray, float]:
        """Coefficients of the unscaled terms of ``S`` and the RSS."""
        x, rss = self.solve(S)
        return x / self.norms[list(S)], rss

    def batch_rss(self, combos: np.ndarray) -> np.ndarray:
        """RSS of many subsets of equal size at once (normal equations)."""
        out = np.empty(len(combos))
        k = combos.shape[1]
        eye = np.eye(k) * 1e-12
        for s in range(0, len(combos), _CHUNK):
            idx = combos[s:s + _CHUNK]
            Gs = self.G[idx[:, :, None], idx[:, None, :]] + eye
            gs = self.g[idx]
            try:
                x = np.linalg.solve(Gs, gs[..., None])[..., 0]
            except np.linalg.LinAlgError:
                x = np.stack([np.linalg.lstsq(G1, g1, rcond=None)[0]
                              for G1, g1 in zip(Gs, gs, strict=True)])
            rss = self.bb - np.einsum("ij,ij->i", gs, x)
            if self.positive:
                rss = np.where(np.all(x >= 0, axis=1), rss, np.inf)
            out[s:s + _CHUNK] = rss
        return np.maximum(out, 0.0)


def additive_terms(expr: sympy.Expr) -> list[tuple[float, sympy.Expr]]:
    """Split an expanded expression into ``(numeric coefficient, term)`` pairs.

    Examples
    --------
    >>> import sympy
    >>> si, so, B = sympy.symbols("si so B")
    >>> sorted(str(t) for _, t in additive_terms(0.5 * si * (1 + so / B) + 2))
    ['1', 'si', 'si*so/B']
    """
    expr = sympy.expand(expr)
    out: dict[sympy.Expr, float] = {}
    for a in sympy.Add.make_args(expr):
        c, rest = a.as_coeff_Mul()
        if rest == 1 and a.is_Number:
            c, rest = a, sympy.Integer(1)
        out[rest] = out.get(rest, 0.0) + float(c)
    return [(c, t) for t, c in out.items()]


def term_values(term: sympy.Expr, V: Mapping[str, np.ndarray], n: int, syms=None) -> np.ndarray:
    """Values of one term on ``n`` rows: monomials (products of integer powers of variables)
    directly with numpy, anything else through :func:`sympy.lambdify`."""
    powers = term.as_powers_dict()
    with np.errstate(all="ignore"):
        if term != 1 and all(b.is_Symbol and e.is_Integer for b, e in powers.items()):
            v = np.ones(n)
            for b, e in powers.items():
                v = v * np.asarray(V[str(b)], float) ** int(e)
            return v
        syms = sorted(term.free_symbols, key=str) if syms is None else syms
        fn = sympy.lambdify(syms, term, "numpy")
        return np.broadcast_to(np.asarray(fn(*[V[str(s)] for s in syms]), float), (n,)).copy()


def _term_columns(pairs, V: Mapping[str, np.ndarray], n: int):
    syms = sorted({s for _, t in pairs for s in t.free_symbols}, key=str)
    missing = [str(s) for s in syms if str(s) not in V]
    if missing:
        raise ValueError(f"variables {missing} are not available to refit the expression.")
    cols, keep = [], []
    for _, t in pairs:
        v = term_values(t, V, n, syms)
        if np.all(np.isfinite(v)) and np.linalg.norm(v) > 0:
            cols.append(v)
            keep.append(t)
    return cols, keep


def refit_additive(
    expr: sympy.Expr,
    V: Mapping[str, np.ndarray],
    y: np.ndarray,
    *,
    relative: bool = True,
    criterion: Criterion = "mdl",
    positive: bool = False,
    n_library: int | None = None,
    weight: np.ndarray | None = None,
) -> sympy.Expr:
    """Expand an expression into additive terms, refit their coefficients and drop the
    terms the criterion does not support (backward elimination).

    Tidies formulas returned by genetic-programming engines: a spurious intercept or a
    near-zero correction term disappears, the remaining coefficients are refitted on
    relative errors. Every constant counts as a parameter of the criterion: a term's
    coefficient and the constants inside it (``1/(2.34e5 - 2.748*B**2)`` carries two), which
    are kept as found. ``n`` is the number of distinct configurations of ``V``.

    Examples
    --------
    >>> import numpy as np, sympy
    >>> si = sympy.Symbol("si")
    >>> x = np.linspace(1.0, 10.0, 30)
    >>> refit_additive(1.9 * si + 1e-9, {"si": x}, 2.0 * x)
    2.0*si
    """
    y = np.asarray(y, float)
    n = len(y)
    pairs = additive_terms(expr)
    if not pairs:
        return expr
    cols, keep_terms = _term_columns(pairs, V, n)
    if not cols:
        return expr
    D = Design(np.column_stack(cols), y, relative, positive, weight,
               n_configs=distinct_rows({k: v for k, v in V.items() if np.ndim(v)}, weight))
    L = max(n_library or len(cols), len(cols))
    size = [1 + fitted_constants(t) for t in keep_terms]
    S = list(range(len(cols)))
    _, rss = D.solve(S)
    crit = D.criterion(rss, sum(size[j] for j in S), L, criterion)
    while len(S) > 1:
        trials = []
        for j in S:
            S2 = [s for s in S if s != j]
            _, r2 = D.solve(S2)
            trials.append((D.criterion(r2, sum(size[i] for i in S2), L, criterion), S2))
        c2, S2 = min(trials, key=lambda z: z[0])
        if c2 >= crit and math.isfinite(crit):  # more terms than the rows support: drop one
            break
        crit, S = c2, S2
    coef, _ = D.coefficients(S)
    return sympy.Add(*[sympy.Float(float(c), 15) * keep_terms[j]
                       for j, c in zip(S, coef, strict=True)])


def simplify_formula(expr: sympy.Expr, V: Mapping[str, np.ndarray], y: np.ndarray, *,
                     relative: bool = True, criterion: Criterion = "mdl") -> sympy.Expr:
    """:func:`refit_additive`, or the formula unchanged where it cannot be refitted (a term
    that is not finite on every row, a singular design)."""
    try:
        return refit_additive(expr, V, y, relative=relative, criterion=criterion)
    except (ValueError, np.linalg.LinAlgError):
        return expr
