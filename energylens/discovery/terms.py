"""Deterministic structure search over a library of physically meaningful terms.

The energy of a serving configuration is, to a good approximation, a sum of terms each
of which is a product of a few factors: a length (``si``, ``so``), an overhead factor
(``t - 1``, ``p - 1``), a share of the batch (``1/B``), the GPUs held (``t*p``). The
engine builds every product of the features and transforms up to ``max_order`` factors
(each to a power up to ``max_power``), then selects a subset of those terms:

``"best_subset"``
    every subset of up to ``exhaustive_max`` terms is solved (vectorised normal
    equations on the column-scaled design), then the best subset grows by stepwise
    forward additions with swaps up to ``max_terms``;
``"stepwise"``
    forward additions with swaps from the empty model.

Coefficients are fitted on relative errors (each row divided by ``y``; energies span
orders of magnitude and must never be fitted by plain least squares in joules), with
optional non-negativity (:func:`scipy.optimize.nnls`). The size is chosen by an
information criterion on the residual sum of squares ``RSS`` of ``n`` rows and ``k``
terms out of a library of ``L``:

* ``"bic"``: ``n ln(RSS/n) + k ln n``;
* ``"mdl"`` (default): ``n ln(RSS/n) + k ln n + 2 k ln L``, a two-part code length
  (``ln n / 2`` nats per coefficient plus ``ln L`` nats to name each term, doubled to the
  scale of the BIC) that equals the extended BIC of Chen and Chen (2008) with
  ``gamma = 1``; it guards against spurious terms picked out of a large library.

The Pareto front is the best model for each number of terms.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import sympy
from scipy import optimize

from .sympy_tools import symbol

__all__ = ["Term", "build_library", "search_terms", "refit_additive", "criterion_value"]

Criterion = Literal["bic", "mdl"]
Method = Literal["best_subset", "stepwise"]
#: Largest number of subsets solved by the exhaustive stage of one size.
MAX_SUBSETS = 250_000
_CHUNK = 40_000


@dataclass(frozen=True)
class Term:
    """One candidate term: exponents over the feature columns."""

    exponents: tuple[tuple[str, int], ...]

    @property
    def order(self) -> int:
        return sum(abs(e) for _, e in self.exponents)

    def sympy(self, defs: Mapping[str, sympy.Expr] | None = None) -> sympy.Expr:
        out = sympy.Integer(1)
        for name, e in self.exponents:
            base = defs[name] if defs is not None and name in defs else symbol(name)
            out = out * base**e
        return out

    def values(self, F: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        col = np.ones(n)
        for name, e in self.exponents:
            col = col * np.asarray(F[name], float) ** e
        return col

    def __str__(self) -> str:
        return str(self.sympy()) if self.exponents else "1"


def _default_factors(columns: Sequence[str]) -> list[str]:
    """Columns used as factors: a transform replaces the raw variable it is built from."""
    cols = list(columns)
    drop = set()
    if "t_m1" in cols:
        drop.add("t")
    if "p_m1" in cols:
        drop.add("p")
    if "inv_B" in cols:
        drop.add("B")
    return [c for c in cols if c not in drop]


def build_library(
    F: pd.DataFrame,
    *,
    max_order: int = 3,
    max_power: int = 2,
    factors: Sequence[str] | None = None,
    include_constant: bool = True,
) -> list[Term]:
    """Candidate terms: products of up to ``max_order`` factors, each to a power <= ``max_power``.

    Terms whose column is zero everywhere, not finite, or an exact multiple of an earlier
    (simpler) term's column are dropped.

    Examples
    --------
    >>> import pandas as pd
    >>> F = pd.DataFrame({"si": [1.0, 2.0, 3.0], "inv_B": [1.0, 0.5, 0.25]})
    >>> [str(t) for t in build_library(F, max_order=1)]
    ['1', 'si', 'inv_B']
    """
    if max_order < 1 or max_power < 1:
        raise ValueError("max_order and max_power must be >= 1.")
    names = list(factors) if factors is not None else _default_factors(F.columns)
    unknown = [f for f in names if f not in F.columns]
    if unknown:
        raise ValueError(f"factors {unknown} are not columns of the feature table {list(F.columns)}.")
    n = len(F)
    cols = {c: F[c].to_numpy(dtype=float) for c in names}
    out: list[Term] = []
    seen: list[np.ndarray] = []
    if include_constant:
        out.append(Term(()))
        seen.append(np.ones(n) / math.sqrt(n))
    for order in range(1, max_order + 1):
        for combo in itertools.combinations_with_replacement(names, order):
            counts: dict[str, int] = {}
            for c in combo:
                counts[c] = counts.get(c, 0) + 1
            if max(counts.values()) > max_power:
                continue
            term = Term(tuple((c, counts[c]) for c in names if c in counts))
            v = term.values(cols, n)
            if not np.all(np.isfinite(v)):
                continue
            nv = np.linalg.norm(v)
            if nv <= 1e-300:
                continue
            u = v / nv
            if any(abs(abs(float(u @ s)) - 1.0) < 1e-10 for s in seen):
                continue
            seen.append(u)
            out.append(term)
    return out


def criterion_value(rss: float, n: int, k: int, n_library: int, criterion: Criterion) -> float:
    """Information criterion of a fit (see the module docstring)."""
    rss = max(float(rss), 1e-14 * n)
    base = n * math.log(rss / n) + k * math.log(n)
    if criterion == "bic":
        return base
    if criterion == "mdl":
        return base + 2 * k * math.log(max(n_library, 2))
    raise ValueError(f"The 'criterion' parameter must be a str among {{'bic', 'mdl'}}. Got {criterion!r} instead.")


class _Design:
    """Weighted, column-scaled design and helpers to solve subsets."""

    def __init__(self, T: np.ndarray, y: np.ndarray, relative: bool, positive: bool):
        w = 1.0 / y if relative else np.ones_like(y)
        A = T * w[:, None]
        self.b = y * w
        self.norms = np.linalg.norm(A, axis=0)
        self.norms[self.norms == 0] = 1.0
        self.A = A / self.norms
        self.G = self.A.T @ self.A
        self.g = self.A.T @ self.b
        self.bb = float(self.b @ self.b)
        self.positive = positive
        self.n = len(y)

    def solve(self, S: Sequence[int]) -> tuple[np.ndarray, float]:
        """Scaled coefficients and RSS of the subset S (exact solver)."""
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
                x = np.stack([np.linalg.lstsq(G1, g1, rcond=None)[0] for G1, g1 in zip(Gs, gs, strict=False)])
            rss = self.bb - np.einsum("ij,ij->i", gs, x)
            if self.positive:
                rss = np.where(np.all(x >= 0, axis=1), rss, np.inf)
            out[s:s + _CHUNK] = rss
        return np.maximum(out, 0.0)


def _stepwise(D: _Design, start: list[int], max_terms: int, L: int, best: dict,
              progress: bool, t0: float) -> None:
    """Forward additions with swaps; records the best subset per size in ``best``."""
    cur = list(start)
    while len(cur) < min(max_terms, L):
        rest = [j for j in range(L) if j not in cur]
        trials = [(D.solve(cur + [j])[1], j) for j in rest]
        rss, j = min(trials)
        cur = cur + [j]
        # Swaps: replace one member by a non-member while that lowers the RSS.
        improved = True
        while improved:
            improved = False
            for pos in range(len(cur)):
                for j2 in range(L):
                    if j2 in cur:
                        continue
                    cand = cur[:pos] + [j2] + cur[pos + 1:]
                    r2 = D.solve(cand)[1]
                    if r2 < rss * (1 - 1e-12):
                        cur, rss, improved = cand, r2, True
        k = len(cur)
        if k not in best or rss < best[k][0]:
            best[k] = (rss, sorted(cur))
        if progress:
            print(f"[terms] {k} terms: RSS {rss:.4g} ({time.perf_counter() - t0:.1f} s)",
                  file=sys.stderr)


def search_terms(
    F: pd.DataFrame,
    y: np.ndarray,
    *,
    library: Sequence[Term] | None = None,
    max_order: int = 3,
    max_power: int = 2,
    max_terms: int = 8,
    exhaustive_max: int = 3,
    method: Method = "best_subset",
    criterion: Criterion = "mdl",
    positive: bool = False,
    relative: bool = True,
    progress: bool = False,
) -> tuple[list[dict], int, list[Term]]:
    """Run the term search.

    Parameters
    ----------
    F : DataFrame
        Feature table (see :func:`energylens.discovery.features.feature_table`).
    y : array of shape (n,)
        Target (> 0 when ``relative``).
    library : sequence of Term, optional
        Candidate terms (default :func:`build_library` of ``F``).
    max_order, max_power : int
        Library size: factors per term and the largest power of one factor.
    max_terms : int
        Largest model size.
    exhaustive_max : int
        Sizes solved exhaustively by ``"best_subset"`` (reduced while a size would need
        more than :data:`MAX_SUBSETS` subsets).
    method : {"best_subset", "stepwise"}
    criterion : {"mdl", "bic"}
    positive : bool
        Non-negative coefficients.
    relative : bool
        Fit relative errors (rows divided by ``y``); else absolute errors (log targets).
    progress : bool
        Print progress to stderr.

    Returns
    -------
    front : list of dict
        One row per model size: ``terms`` (list of Term), ``coef`` (ndarray), ``rss``,
        ``loss`` (mean squared residual), ``criterion``.
    selected : int
        Index in ``front`` of the model with the lowest criterion.
    library : list of Term
    """
    if method not in ("best_subset", "stepwise"):
        raise ValueError(f"The 'method' parameter must be a str among {{'best_subset', 'stepwise'}}. "
                         f"Got {method!r} instead.")
    y = np.asarray(y, float)
    if relative and np.any(y <= 0):
        raise ValueError("relative fitting needs a target > 0 in every row.")
    lib = list(library) if library is not None else build_library(F, max_order=max_order,
                                                                  max_power=max_power)
    n, L = len(y), len(lib)
    if L == 0:
        raise ValueError("the term library is empty.")
    cols = {c: F[c].to_numpy(dtype=float) for c in F.columns}
    T = np.column_stack([t.values(cols, n) for t in lib])
    D = _Design(T, y, relative, positive)
    t0 = time.perf_counter()
    best: dict[int, tuple[float, list[int]]] = {}
    max_terms = max(1, min(max_terms, L, n - 1))
    start: list[int] = []
    if method == "best_subset":
        for k in range(1, min(exhaustive_max, max_terms) + 1):
            if math.comb(L, k) > MAX_SUBSETS:
                break
            combos = np.array(list(itertools.combinations(range(L), k)), dtype=np.intp)
            rss = D.batch_rss(combos)
            i = int(np.argmin(rss))
            if not np.isfinite(rss[i]):
                break
            S = combos[i].tolist()
            best[k] = (D.solve(S)[1], S)
            start = S
            if progress:
                print(f"[terms] {k} terms: {len(combos)} subsets, best RSS {best[k][0]:.4g} "
                      f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    if len(start) < max_terms:
        _stepwise(D, start, max_terms, L, best, progress, t0)
    front = []
    last = np.inf
    for k in sorted(best):
        rss, S = best[k]
        if not rss < last * (1 - 1e-9):
            continue
        last = rss
        x, rss = D.solve(S)
        coef = x / D.norms[S]
        front.append({"terms": [lib[j] for j in S], "coef": coef, "rss": rss, "loss": rss / n,
                      "criterion": criterion_value(rss, n, k, L, criterion)})
    selected = int(np.argmin([r["criterion"] for r in front]))
    return front, selected, lib


def terms_expression(terms: Sequence[Term], coef: np.ndarray,
                     defs: Mapping[str, sympy.Expr] | None = None) -> sympy.Expr:
    """The sum ``sum_j coef_j * term_j`` as sympy (in the short variable names with ``defs``)."""
    return sympy.Add(*[sympy.Float(float(c), 15) * t.sympy(defs) for t, c in zip(terms, coef, strict=False)])


def additive_terms(expr: sympy.Expr) -> list[tuple[float, sympy.Expr]]:
    """Split an expanded expression into (numeric coefficient, term) pairs."""
    expr = sympy.expand(expr)
    out: dict[sympy.Expr, float] = {}
    for a in sympy.Add.make_args(expr):
        c, rest = a.as_coeff_Mul()
        if rest == 1 and a.is_Number:
            c, rest = a, sympy.Integer(1)
        out[rest] = out.get(rest, 0.0) + float(c)
    return [(c, t) for t, c in out.items()]


def refit_additive(
    expr: sympy.Expr,
    V: Mapping[str, np.ndarray],
    y: np.ndarray,
    *,
    relative: bool = True,
    criterion: Criterion = "mdl",
    positive: bool = False,
    n_library: int | None = None,
) -> sympy.Expr:
    """Expand an expression into additive terms, refit their coefficients and drop the
    terms the criterion does not support (backward elimination).

    Used to tidy formulas returned by genetic-programming engines: a spurious intercept or
    a near-zero correction term disappears, the remaining coefficients are refitted on
    relative errors.
    """
    y = np.asarray(y, float)
    n = len(y)
    pairs = additive_terms(expr)
    if not pairs:
        return expr
    syms = sorted({s for _, t in pairs for s in t.free_symbols}, key=str)
    missing = [str(s) for s in syms if str(s) not in V]
    if missing:
        raise ValueError(f"variables {missing} are not available to refit the expression.")
    cols = []
    keep_terms = []
    for _, t in pairs:
        fn = sympy.lambdify(syms, t, "numpy")
        with np.errstate(all="ignore"):
            v = np.broadcast_to(np.asarray(fn(*[V[str(s)] for s in syms]), float), (n,)).copy()
        if np.all(np.isfinite(v)) and np.linalg.norm(v) > 0:
            cols.append(v)
            keep_terms.append(t)
    if not cols:
        return expr
    D = _Design(np.column_stack(cols), y, relative, positive)
    L = max(n_library or len(cols), len(cols))
    S = list(range(len(cols)))
    x, rss = D.solve(S)
    crit = criterion_value(rss, n, len(S), L, criterion)
    while len(S) > 1:
        trials = []
        for j in S:
            S2 = [s for s in S if s != j]
            _, r2 = D.solve(S2)
            trials.append((criterion_value(r2, n, len(S2), L, criterion), S2))
        c2, S2 = min(trials, key=lambda z: z[0])
        if c2 >= crit:
            break
        crit, S = c2, S2
    x, _ = D.solve(S)
    coef = x / D.norms[S]
    return sympy.Add(*[sympy.Float(float(c), 15) * keep_terms[j] for j, c in zip(S, coef, strict=False)])
