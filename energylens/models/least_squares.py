"""Bounded nonlinear least squares on plain arrays: the numerical core of every closed form.

Nothing here knows about tables or estimators. A :class:`Problem` is a kernel ``f(V,
theta)`` with its analytic Jacobian, the variables ``V`` (a dict of arrays), the target
``y``, optional weights and a loss; :func:`fit_problem` finds which parameters the data
can identify (from the rank of the Jacobian), starts from a data-driven guess, solves with
:func:`scipy.optimize.least_squares` and returns the parameters with their covariance.

Residuals of the losses:

- ``"relative"``: ``(f - y) / y``; ``"robust"``: the same under a soft-L1 loss;
- ``"log"``: ``log f - log y``;
- ``"absolute"``: ``f - y`` (joules: rarely wise, energies span orders of magnitude).

Memory: the Jacobian is scaled in place, so a fit holds the model's Jacobian, the
solver's scaled copy and, for the exact trust-region solver, its SVD factors. Above
:data:`EXACT_SOLVER_MAX_ROWS` rows the iterative solver (LSMR) replaces the SVD.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .parameters import Parameter, Resolved
from .start import linear_start as start_linear

__all__ = ["Problem", "Solution", "fit_problem", "distinct_values", "residual_functions", "identify",
           "covariance", "at_bound", "profile_scalar", "EXACT_SOLVER_MAX_ROWS"]

#: Rows above which the iterative trust-region solver replaces the exact (SVD) one. The exact
#: solver is faster (benchmarks/speed.py), but its SVD holds another n x k matrix.
EXACT_SOLVER_MAX_ROWS = 200_000
#: Relative tolerance of the rank decisions (on singular values of the column-scaled Jacobian).
RANK_TOL = 1e-7
#: Among confounded columns, those at least this share as independent of the kept ones
#: (squared residual, relative to the best) count as ties, broken by preference.
PIVOT_SLACK = 0.25

Kernel = Callable[[Mapping[str, np.ndarray], np.ndarray], np.ndarray]


@dataclass
class Problem:
    """A least-squares problem on arrays.

    ``jacobian`` must return a new array on every call (it is scaled in place).
    """

    kernel: Kernel
    jacobian: Kernel
    V: Mapping[str, np.ndarray]
    y: np.ndarray
    w: np.ndarray | None = None
    loss: str = "relative"
    f_scale: float = 0.05
    #: ``(V, theta, out)``: writes the Jacobian into ``out`` (large problems; optional).
    jacobian_into: Callable | None = None

    @property
    def n(self) -> int:
        return len(self.y)


@dataclass
class Solution:
    """Result of :func:`fit_problem`."""

    theta: np.ndarray
    free: np.ndarray
    not_identifiable: dict[str, str]
    residuals: np.ndarray
    cov: np.ndarray
    sigma: float
    rank: int
    cost: float
    nfev: int
    success: bool
    message: str


def distinct_values(a: np.ndarray, cap: int = 4) -> int:
    """Distinct values of ``a``, counted up to ``cap`` (relative tolerance 1e-12).

    A few passes over the data (one per value found), without sorting.
    """
    rest = np.asarray(a, dtype=float)
    tol = 1e-12 * max(1.0, float(np.max(np.abs(rest)))) if rest.size else 0.0
    count = 0
    while rest.size and count < cap:
        rest = rest[np.abs(rest - rest[0]) > tol]
        count += 1
    return count


def residual_functions(p: Problem, theta_full: np.ndarray, free: np.ndarray):
    """Residual and Jacobian functions over the free parameters."""
    all_free = bool(free.all())
    sqrt_w = None if p.w is None else np.sqrt(p.w)
    inv_y = 1.0 / p.y if p.loss in ("relative", "robust") else None
    log_y = np.log(p.y) if p.loss == "log" else None

    def full(x):
        if all_free:
            return x
        th = theta_full.copy()
        th[free] = x
        return th

    def fun(x):
        f = p.kernel(p.V, full(x))
        if inv_y is not None:
            r = f * inv_y
            r -= 1.0
        elif log_y is not None:
            r = np.log(np.maximum(f, 1e-300)) - log_y
        else:
            r = f - p.y
        if sqrt_w is not None:
            r *= sqrt_w
        return r

    def jac(x):
        th = full(x)
        J = p.jacobian(p.V, th)
        if not all_free:
            J = J[:, free]
        if inv_y is not None:
            J *= inv_y[:, None]
        elif log_y is not None:
            J /= np.maximum(p.kernel(p.V, th), 1e-300)[:, None]
        if sqrt_w is not None:
            J *= sqrt_w[:, None]
        return J

    return fun, jac


class _OperatorJacobian:
    """Residuals and a Jacobian held in one buffer, for problems too tall to copy.

    The Jacobian of all parameters is written into one ``n x k`` buffer (by the model where it
    can, else copied once), scaled for the loss in place, and handed to the solver as a
    :class:`~scipy.sparse.linalg.LinearOperator` over the free columns: the solver's
    iterative trust-region steps never copy it.
    """

    def __init__(self, p: Problem, theta_full: np.ndarray, free: np.ndarray):
        self.p, self.theta, self.free = p, theta_full, free
        self.cols = np.flatnonzero(free)
        self.buf = np.empty((p.n, len(theta_full)))
        self.fun, _ = residual_functions(p, theta_full, free)

    def _fill(self, x) -> np.ndarray:
        th = self.theta.copy()
        th[self.free] = x
        p, buf = self.p, self.buf
        if p.jacobian_into is not None:
            p.jacobian_into(p.V, th, buf)
        else:
            buf[...] = p.jacobian(p.V, th)
        if p.loss in ("relative", "robust"):
            buf /= p.y[:, None]
        elif p.loss == "log":
            buf /= np.maximum(p.kernel(p.V, th), 1e-300)[:, None]
        if p.w is not None:
            buf *= np.sqrt(p.w)[:, None]
        return buf

    def jac(self, x):
        from scipy.sparse.linalg import LinearOperator

        buf, cols, k = self._fill(x), self.cols, len(self.theta)

        def matvec(v):
            full = np.zeros(k)
            full[cols] = np.ravel(v)
            return buf @ full

        def rmatvec(u):
            return (buf.T @ np.ravel(u))[cols]

        return LinearOperator((self.p.n, len(cols)), matvec=matvec, rmatvec=rmatvec,
                              dtype=float)

    def gram(self) -> np.ndarray:
        """``J^T J`` over the free columns, of the Jacobian last written."""
        return (self.buf.T @ self.buf)[np.ix_(self.cols, self.cols)]


def _scaled_gram(J: np.ndarray, G: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gram matrix of the unit-normalised columns of ``J`` (or of a given ``G = J^T J``;
    ``J`` is not copied), and the column norms."""
    G = J.T @ J if G is None else G
    norms = np.sqrt(np.maximum(np.diag(G), 0.0))
    safe = np.where(norms > 1e-300, norms, 1.0)
    return G / np.outer(safe, safe), norms


def _rank(G: np.ndarray) -> int:
    if G.size == 0:
        return 0
    w = np.linalg.eigvalsh(G)
    return int(np.sum(w > RANK_TOL**2 * max(w.max(initial=0.0), 1e-300)))


def identify(J: np.ndarray | None, order: Sequence[int], *, gram: np.ndarray | None = None) -> list[int]:
    """Columns of ``J`` to fix so that the rest have full rank.

    The decision is the data's: as many columns are kept as the numerical rank of ``J``
    (relative tolerance :data:`RANK_TOL`), the rest are fixed. The kept columns are chosen
    as in a column-pivoted QR: one at a time, the column least explained by those already
    kept, so that two nearly collinear columns are never both kept while an independent one
    is fixed. ``order`` (the columns to fix first) breaks near-ties: among columns at least
    :data:`PIVOT_SLACK` as independent as the best, the one fixed last in ``order`` is kept.
    ``gram`` (``J^T J``) may be given instead of ``J``.
    """
    G, norms = _scaled_gram(J, gram)
    if G.size == 0:
        return []
    k = G.shape[0]
    alive = [j for j in range(k) if norms[j] > 1e-300]
    target = _rank(G[np.ix_(alive, alive)])
    ranked = [j for j in reversed(list(order)) if j in alive]
    prefer = ranked + [j for j in alive if j not in ranked]  # most wanted first
    kept: list[int] = []
    while len(kept) < target:
        cand = [j for j in prefer if j not in kept]
        if kept:
            K = np.ix_(kept, kept)
            proj = np.linalg.solve(G[K], G[np.ix_(kept, cand)])
            resid = G[cand, cand] - np.einsum("ij,ij->j", G[np.ix_(kept, cand)], proj)
        else:
            resid = G[cand, cand]
        best = resid.max()
        kept.append(cand[int(np.flatnonzero(resid >= PIVOT_SLACK * best)[0])])
    return sorted(set(range(k)) - set(kept))


def covariance(J: np.ndarray | None, sigma: float, *, gram: np.ndarray | None = None
               ) -> tuple[np.ndarray, int]:
    """Parameter covariance ``sigma^2 (J^T J)^-1`` and the numerical rank of ``J``.

    Directions with singular values below :data:`RANK_TOL` of the largest are treated as
    unidentified (pseudo-inverse). ``gram`` (``J^T J``) may be given instead of ``J``.
    """
    G, norms = _scaled_gram(J, gram)
    norms = np.where(norms > 0, norms, 1.0)
    w, U = np.linalg.eigh(G)
    keep = w > RANK_TOL**2 * max(w.max(initial=0.0), 1e-300)
    w_inv = np.where(keep, 1.0 / np.where(keep, w, 1.0), 0.0)
    cov_s = (U * w_inv) @ U.T
    return cov_s / np.outer(norms, norms) * sigma**2, int(keep.sum())


def _inside(x0, lo, hi):
    span = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    x0 = np.clip(x0, lo + 1e-10 * span, hi - 1e-10 * span)
    return np.where(lo == hi, lo, x0)


def _tie_order(specs: Sequence[Parameter], free: np.ndarray, distinct: Mapping[str, int]) -> list[int]:
    """Fixing order among confounded parameters: first those whose variables take the fewest
    distinct values (a quadratic term needs three), then the later-declared terms."""
    idx = [i for i in range(len(specs)) if free[i]]

    def key(i):
        seen = [distinct.get(v, 10**9) for v in specs[i].informed_by]
        return (min(seen) if seen else 10**9, -i)

    return sorted(idx, key=key)


def _identify(p: Problem, specs, theta, free, lo, hi
              ) -> tuple[dict[str, str], np.ndarray | None, np.ndarray]:
    """Fix (at their neutral values) the parameters the data cannot identify.

    Returns the notes, the scaled Jacobian at the start over the columns free on entry
    (None for tall problems, whose Jacobian is not kept) and its Gram matrix ``J^T J``,
    which the linear start reuses.
    """
    notes: dict[str, str] = {}
    cols = np.flatnonzero(free)
    J = None
    if p.n > EXACT_SOLVER_MAX_ROWS:
        op = _OperatorJacobian(p, theta, free)
        op._fill(theta[free])
        G = op.gram()
        del op
    else:
        J = residual_functions(p, theta, free)[1](theta[free])
        G = J.T @ J
    Gs, norms = _scaled_gram(None, G)
    if np.all(norms > 1e-300) and _rank(Gs) == len(cols):
        return notes, J, G  # full rank: every free parameter is identified
    distinct = {v: distinct_values(a) for v, a in p.V.items()}
    order = [int(np.flatnonzero(cols == i)[0]) for i in _tie_order(specs, free, distinct)]
    fixed = identify(None, order, gram=G)
    for j in fixed:
        i = cols[j]
        spec = specs[i]
        counts = [distinct.get(v, 10**9) for v in spec.informed_by]
        if counts and max(counts) == 1:
            label = ", ".join(spec.informed_by)
            notes[spec.name] = f"not identifiable from this data: a single value of {label}"
        elif counts and min(counts) <= 2:
            label = ", ".join(v for v, c in zip(spec.informed_by, counts) if c <= 2)
            notes[spec.name] = (f"not identifiable from this data: too few distinct values of "
                                f"{label} (confounded with other terms)")
        else:
            notes[spec.name] = ("not identifiable from this data: its effect is confounded with "
                                "other terms")
        theta[i] = spec.neutral
        free[i] = False
    np.clip(theta, lo, hi, out=theta)
    return notes, J, G


def fit_problem(p: Problem, specs: Sequence[Parameter], resolved: Resolved, *,
                initial_guess: Callable | None = None, linear_start: bool = True,
                max_nfev: int | None = None) -> Solution:
    """Identify, start, solve and summarise one closed-form fit.

    Parameters
    ----------
    p : Problem
        Kernel, Jacobian, data and loss.
    specs : sequence of Parameter
        Declarations (names, neutral values, tie-breaking variables).
    resolved : Resolved
        Start values, bounds and free mask after the user's overrides.
    initial_guess : callable, optional
        ``(V, y, w, theta, free) -> theta``: a data-driven start for the free parameters;
        without one, the parameters declared ``linear`` start from a least-squares solve
        with the others held (``linear_start``).
    linear_start : bool, default=True
        Whether to compute that start (False keeps the declared or given start values).
    max_nfev : int, optional
        Evaluation budget of the optimiser.
    """
    theta = np.clip(resolved.theta.copy(), resolved.lower, resolved.upper)
    free, lo, hi = resolved.free.copy(), resolved.lower, resolved.upper
    cols0 = np.flatnonzero(free)
    notes, J0, G0 = _identify(p, specs, theta, free, lo, hi) if free.any() else ({}, None, None)
    if initial_guess is not None and free.any():
        w = np.ones_like(p.y) if p.w is None else p.w
        theta = np.clip(initial_guess(p.V, p.y, w, theta, free), lo, hi)
    elif linear_start and free.any():
        theta = np.clip(start_linear(p, specs, theta, free, lo, J0, cols0, G0), lo, hi)
    del J0, G0
    k = int(free.sum())
    if not k:
        r = residual_functions(p, theta, free)[0](np.empty(0))
        ss = float(r @ r)
        return Solution(theta, free, notes, r, np.zeros((0, 0)), _sigma(ss, p.n), 0, 0.5 * ss,
                        0, True, "all parameters fixed")
    lo_f, hi_f = lo[free], hi[free]
    x0 = _inside(theta[free], lo_f, hi_f)
    common = dict(bounds=(lo_f, hi_f), method="trf", loss="soft_l1" if p.loss == "robust" else "linear",
                  f_scale=p.f_scale, max_nfev=max_nfev, xtol=1e-10, ftol=1e-10, gtol=1e-10)
    if p.n > EXACT_SOLVER_MAX_ROWS:
        op = _OperatorJacobian(p, theta, free)
        op._fill(x0)
        scale = np.sqrt(np.maximum(np.diag(op.gram()), 0.0))
        x_scale = np.where(scale > 0, 1.0 / np.where(scale > 0, scale, 1.0), 1.0)
        res = optimize.least_squares(op.fun, x0, jac=op.jac, x_scale=x_scale, tr_solver="lsmr",
                                     **common)
        gram, J = op.gram(), None
    else:
        fun, jac = residual_functions(p, theta, free)
        res = optimize.least_squares(fun, x0, jac=jac, x_scale="jac", tr_solver="exact", **common)
        gram, J = None, res.jac
    theta[free] = res.x
    r = res.fun
    ss = float(r @ r)
    sigma = _sigma(ss, p.n - k)
    cov, rank = covariance(J, sigma, gram=gram)
    return Solution(theta, free, notes, r, cov, sigma, rank, 0.5 * ss,
                    int(res.nfev), bool(res.status > 0), str(res.message))


def _sigma(ss: float, dof: int) -> float:
    """Residual standard deviation from the sum of squared residuals ``ss`` on ``dof``
    degrees of freedom (NaN when none are left)."""
    return float(np.sqrt(ss / dof)) if dof > 0 else float("nan")


def at_bound(theta, lo, hi, free, cov, names: Sequence[str]) -> list[str]:
    """Free parameters at a finite bound: within a relative 1e-6 of it, or closer to it than
    a thousandth of their own standard error (indistinguishable from the bound).

    A dozen scalars: plain Python floats are faster here than array operations.
    """
    idx = np.flatnonzero(free)
    se = [math.nan] * len(idx)
    if cov is not None and cov.size and len(idx) == cov.shape[0]:
        se = np.sqrt(np.maximum(np.diag(cov), 0)).tolist()
    theta, lo, hi = (np.asarray(a, dtype=float).tolist() for a in (theta, lo, hi))
    out = []
    for i, s in zip(idx.tolist(), se):
        t = theta[i]
        slack = 1e-3 * s if math.isfinite(s) else 0.0
        for b in (lo[i], hi[i]):
            if math.isfinite(b) and abs(t - b) <= max(1e-6 * max(abs(t), abs(b)), slack) + 1e-300:
                out.append(names[i])
                break
    return out


def profile_scalar(cost: Callable[[float], float], bounds: tuple[float, float], *,
                   n: int, k_free: int, xatol: float = 1e-3) -> tuple[float, float | None, bool]:
    """Minimise ``cost(x)`` over a bounded scalar (the log10 of a hyper-parameter).

    Returns ``(x, stderr of x or None, at_bound)``; the standard error comes from the
    curvature of the profiled cost, ``at_bound`` says the optimum sits at a search bound.
    """
    res = optimize.minimize_scalar(cost, bounds=bounds, method="bounded", options={"xatol": xatol})
    x = float(res.x)
    edge = 10 * xatol
    at_edge = x <= bounds[0] + edge or x >= bounds[1] - edge
    h = 0.02
    c0, cp, cm = cost(x), cost(x + h), cost(x - h)
    curv = (cp - 2 * c0 + cm) / h**2
    if not np.isfinite(curv) or curv <= 0 or n <= k_free + 1:
        return x, None, at_edge
    s2 = 2 * c0 / (n - k_free - 1)
    return x, float(np.sqrt(s2 / curv)), at_edge
