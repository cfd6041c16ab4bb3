"""Data-driven start values of a closed-form fit.

A closed form is usually linear in most of its parameters once a few (overheads,
exponents) are held: those declared ``linear`` start from a least-squares solve of the
relative residuals, non-negative where the bounds say so, which is already close to the
optimum; the non-linear solver then only refines it.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, optimize

__all__ = ["linear_start", "lstsq_linear", "positive_start"]

#: Rows used for the start values of tall problems (the start only needs to be close).
_START_ROWS = 50_000
#: Rows from which the linear solve goes through the Gram matrix (k x k) instead of the
#: rows themselves; below, the direct solve is as cheap and makes fewer calls.
_GRAM_MIN_ROWS = 256


def positive_start(A: np.ndarray, b: np.ndarray, sol: np.ndarray, columns=None) -> np.ndarray:
    """Replace zero entries of a non-negative least-squares start by small positive values.

    A parameter that starts exactly at its lower bound of 0 cannot leave it under the
    trust-region-reflective scaling; each zero becomes the value whose term alone would
    explain 0.1% of the (scaled) target, in mean absolute terms. ``columns`` (all by
    default) are the columns of ``A`` that ``sol`` multiplies.
    """
    out = sol.copy()
    zero = np.flatnonzero(out <= 0)
    if not len(zero):
        return out
    scale_b = float(np.mean(np.abs(b))) or 1.0
    idx = zero if columns is None else np.asarray(columns)[zero]
    cols = np.mean(np.abs(A[:, idx]), axis=0)
    out[zero] = np.where(cols > 0, 1e-3 * scale_b / np.where(cols > 0, cols, 1.0), 1e-12)
    return out


def linear_start(p, specs, theta, free, lo, J0, cols0, G0=None) -> np.ndarray:
    """Start values of the parameters the form is linear in, the others held.

    With the non-linear parameters at their start values the form is linear in the rest,
    so a least-squares solve of the relative residuals (non-negative where the bounds say
    so) gives a start that is already close. It reuses the Jacobian of the identifiability
    check where it can (and its Gram matrix ``G0 = J0^T J0``, when given, so that the rows
    are read once more only for ``J0^T b``); tall problems use an even subsample of rows.

    ``p`` is a :class:`~energylens.models.least_squares.Problem`; ``J0`` the scaled Jacobian
    at the start over the columns ``cols0`` (or None).
    """
    lin = [i for i in np.flatnonzero(free) if specs[i].linear]
    if not lin:
        return theta
    th0 = theta.copy()
    th0[lin] = 0.0
    V, y, w = p.V, p.y, p.w
    reuse = J0 is not None and p.loss in ("relative", "robust")
    if not reuse and p.n > _START_ROWS:
        rows = np.linspace(0, p.n - 1, _START_ROWS).astype(int)
        V, y = {k: v[rows] for k, v in V.items()}, y[rows]
        w = None if w is None else w[rows]
    if reuse:
        A, sel = J0, np.searchsorted(cols0, lin)
    else:
        A, sel = p.jacobian(V, theta)[:, lin] / y[:, None], np.arange(len(lin))
        if w is not None:
            A *= np.sqrt(w)[:, None]
    b = (y - p.kernel(V, th0)) / y
    if w is not None:
        b *= np.sqrt(w)
    G = None if G0 is None or not reuse else G0[sel][:, sel]
    sol = lstsq_linear(A, b, nonneg=bool(np.all(lo[lin] >= 0)), columns=sel, gram=G)
    if sol is not None:
        theta[lin] = sol
    return theta


def lstsq_linear(A: np.ndarray, b: np.ndarray, nonneg: bool, *, columns=None,
                 gram: np.ndarray | None = None) -> np.ndarray | None:
    """Solve ``A[:, columns] x ~ b`` on column-scaled columns (non-negative where asked);
    None on failure.

    A tall system is reduced through its Gram matrix: with ``A^T A = R^T R`` (Cholesky),
    ``||A x - b|| = ||R x - R^{-T} A^T b||`` up to a constant, so the solve works on a k x k
    system (the columns are scaled to unit norm first; an ill-conditioned Gram matrix falls
    back to the full solve). ``columns`` (all by default) selects columns of ``A`` without
    copying them, and ``gram`` may give their Gram matrix when the caller has it.
    """
    cols = np.arange(A.shape[1]) if columns is None else np.asarray(columns)
    Atb = (b @ A)[cols]
    picked = A[:, cols] if gram is None else None  # copied once, where it is needed at all
    G = picked.T @ picked if gram is None else gram
    norms = np.sqrt(np.maximum(np.diag(G), 0.0))
    norms[norms == 0] = 1.0
    try:
        sol = None
        if A.shape[0] >= max(_GRAM_MIN_ROWS, 2 * len(cols)):
            try:
                L = np.linalg.cholesky(G / np.outer(norms, norms))
                As, rhs = L.T, np.linalg.solve(L, Atb / norms)
                sol = np.linalg.solve(As, rhs)  # the unconstrained solution
            except np.linalg.LinAlgError:
                sol = None
        if sol is None:
            As, rhs = (A[:, cols] if picked is None else picked) / norms, b
            if not nonneg:
                sol = linalg.lstsq(As, rhs)[0]
        if nonneg and (sol is None or np.any(sol < 0)):  # the bound binds: solve under it
            sol, _ = optimize.nnls(As, rhs, maxiter=50 * len(cols))
    except (RuntimeError, np.linalg.LinAlgError, ValueError):
        return None
    sol = sol / norms
    return positive_start(A, b, sol, cols) if nonneg else sol
