"""Partial pooling on arrays: the penalised solver and the empirical-Bayes spreads.

The unknowns ``z`` (log-parameters: population values and level deviations) minimise

.. math::

    \\sum_i \\frac{(\\log y_i - \\log E_i(z))^2}{\\sigma^2}
    + \\sum_j \\frac{(z_j - \\mu_j)^2}{s_j^2}

where ``s_j`` is a population column's fixed prior spread or, for a deviation, the spread
``tau`` of its (level, parameter) between level values. Levenberg-Marquardt solves the
normal equations through a Schur complement: the local columns of each group form a small
block (factored in one batched call), so only the global block is solved densely, and a
thousand groups cost little more than one. ``sigma`` and the spreads are estimated by
empirical Bayes (the Laplace/MacKay fixed point, over-relaxed): a level with fewer than
:data:`MIN_LEVELS` values keeps the fixed spread :data:`TAU_FEW`.

The chunks' normal equations go through joblib (:func:`map_chunks`), so a distributed
backend spreads the per-group work over its workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from joblib import Parallel, delayed
from scipy import linalg

from ...exceptions import FitError
from .chunks import Chunk, SystemPart, chunk_cost, chunk_system

__all__ = ["TAU_FLOOR", "TAU_CEIL", "TAU_FEW", "TAU_NONE", "MIN_LEVELS", "OMEGA", "SIGMA_FLOOR",
           "System",
           "Posterior", "PoolingResult", "map_chunks", "fit_pooled", "posterior"]

#: Smallest spread (sd of a log parameter): 1%, i.e. complete pooling.
TAU_FLOOR = 0.01
TAU_CEIL = 5.0
#: Fixed spread of a level with too few values to estimate one (a factor of 1.6).
TAU_FEW = 0.5
#: Fixed weak spread of every deviation without pooling (a factor of 20).
TAU_NONE = 3.0
#: Levels with fewer values than this keep TAU_FEW.
MIN_LEVELS = 5
#: Over-relaxation of the empirical-Bayes fixed point (in log spread).
OMEGA = 1.7
#: Levenberg-Marquardt iterations of the final solve at the estimated spreads. Without
#: pooling, groups of a few rows leave nearly flat directions along which the solve creeps:
#: ML.ENERGY v2 and v3 need 100-200 iterations there (about a second in all).
FINAL_ITERATIONS = 500
#: Smallest residual sd of log energy (0.5%): repeated runs of one configuration differ by
#: 0.7-2%, so a fit that explains a table better than this is fitting its noise (a table with
#: fewer rows than unknowns would otherwise drive the estimate to zero and the normal
#: equations to a condition number no factorisation survives).
SIGMA_FLOOR = 0.005


def map_chunks(fn, chunks: list[Chunk], n_jobs, *args) -> list:
    """``fn(chunk, *args)`` for every chunk: in process for one chunk, else through joblib
    (``n_jobs`` as :func:`energylens.models.grouped._n_jobs` reads it)."""
    if len(chunks) == 1:
        return [fn(chunks[0], *args)]
    from ..grouped import _n_jobs

    return Parallel(n_jobs=_n_jobs(n_jobs))(delayed(fn)(c, *args) for c in chunks)


@dataclass
class System:
    """The assembled data part of the normal equations, and the block layout."""

    cost: float
    HGG: np.ndarray
    bG: np.ndarray
    HLL: np.ndarray
    HLG: np.ndarray
    bL: np.ndarray

    @classmethod
    def from_parts(cls, parts: list[SystemPart]) -> System:
        return cls(sum(p.cost for p in parts), sum(p.HGG for p in parts), sum(p.bG for p in parts),
                   np.concatenate([p.HLL for p in parts]), np.concatenate([p.HLG for p in parts]),
                   np.concatenate([p.bL for p in parts]))


@dataclass
class Layout:
    """Where the local columns sit: ``local[g, a]`` is the column of position ``a`` of group
    ``g`` (-1 for padding); ``touched[g]`` the global columns its rows touch (padded with
    ``P``)."""

    n_global: int
    local: np.ndarray
    touched: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        return self.local >= 0


def _local_take(layout: Layout, x: np.ndarray, pad: float = 0.0) -> np.ndarray:
    out = np.full(layout.local.shape, pad)
    ok = layout.valid
    out[ok] = x[layout.local[ok]]
    return out


def _scatter_tt(layout: Layout, M: np.ndarray) -> np.ndarray:
    """Sum the (G, t, t) blocks into the global (P, P) matrix at the touched columns."""
    P = layout.n_global
    T = layout.touched
    flat = (T[:, :, None] * (P + 1) + T[:, None, :]).ravel()
    out = np.bincount(flat, M.ravel(), minlength=(P + 1) ** 2).reshape(P + 1, P + 1)
    return out[:P, :P]


def _blocks(sys: System, layout: Layout, prec: np.ndarray, lam: float):
    """Damped global and local blocks (prior precision on the diagonal)."""
    P = layout.n_global
    HGG = sys.HGG + np.diag(prec[:P])
    AGG = HGG + lam * np.diag(np.diag(HGG))
    dl = _local_take(layout, prec, 1.0)
    HLL = sys.HLL.copy()
    idx = np.arange(HLL.shape[1])
    HLL[:, idx, idx] += dl
    ALL = HLL.copy()
    ALL[:, idx, idx] *= 1.0 + lam
    return AGG, ALL


def schur_step(sys: System, layout: Layout, z, mu, prec, lam: float) -> np.ndarray:
    """One damped Gauss-Newton step of the penalised problem (raises LinAlgError)."""
    P = layout.n_global
    AGG, ALL = _blocks(sys, layout, prec, lam)
    rG = sys.bG - prec[:P] * (z[:P] - mu[:P])
    rL = sys.bL - _local_take(layout, prec * (z - mu))
    if ALL.shape[1] and layout.valid.any():
        rhs = np.concatenate([sys.HLG, rL[:, :, None]], axis=2)
        X = np.linalg.solve(ALL, rhs)
        W, u = X[:, :, :-1], X[:, :, -1]
        S = AGG - _scatter_tt(layout, np.matmul(sys.HLG.transpose(0, 2, 1), W))
        rhsG = rG - np.bincount(layout.touched.ravel(),
                                np.einsum("gct,gc->gt", sys.HLG, u).ravel(), minlength=P + 1)[:P]
    else:
        W = u = None
        S, rhsG = AGG, rG
    dG = linalg.cho_solve(linalg.cho_factor(S, check_finite=False), rhsG, check_finite=False)
    step = np.zeros_like(z)
    step[:P] = dG
    rhs_all = np.zeros_like(z)
    rhs_all[:P] = rG
    damp = np.zeros_like(z)
    damp[:P] = np.diag(AGG) - np.diag(AGG) / (1.0 + lam)
    if W is not None:
        dL = u - np.einsum("gct,gt->gc", W, np.append(dG, 0.0)[layout.touched])
        ok = layout.valid
        step[layout.local[ok]] = dL[ok]
        rhs_all[layout.local[ok]] = rL[ok]
        dd = np.einsum("gcc->gc", ALL)
        damp[layout.local[ok]] = (dd - dd / (1.0 + lam))[ok]
    # decrease of the quadratic model: h'rhs + lam h'diag(H)h (A h = rhs, A = H + lam diag H)
    pred = float(step @ rhs_all + np.sum(damp * step**2))
    return step, pred


@dataclass
class Posterior:
    """The Laplace posterior of the unknowns, in block form.

    ``cov_global`` is the covariance of the global columns; for group ``g``,
    ``local_inv[g]`` is the inverse of its local block and ``coupling[g]`` the local block's
    solve of its coupling to the touched global columns ``layout.touched[g]``. The full
    covariance follows: ``Cov(L_g) = local_inv + W S W'``, ``Cov(L_g, G) = -W S[T_g, :]``.
    """

    cov_global: np.ndarray
    local_inv: np.ndarray
    coupling: np.ndarray
    diag: np.ndarray
    logdet: float


def posterior(sys: System, layout: Layout, prec: np.ndarray) -> Posterior:
    """Covariance (block form), its diagonal and the log-determinant of the precision.

    Examples
    --------
    >>> from energylens.models.hierarchical import HierarchicalEnergyModel, form_table
    >>> t, _ = form_table(["Llama-3.1-8B"], ["H100-SXM", "A100-80GB"], rows_per_group=5)
    >>> post = HierarchicalEnergyModel().fit(t).posterior_
    >>> bool((post.diag > 0).all())  # every unknown keeps some posterior variance
    True
    """
    P = layout.n_global
    AGG, ALL = _blocks(sys, layout, prec, 0.0)
    C = len(prec)
    diag = np.zeros(C)
    if ALL.shape[1] and layout.valid.any():
        Ainv = np.linalg.inv(ALL)
        W = Ainv @ sys.HLG
        S = AGG - _scatter_tt(layout, np.matmul(sys.HLG.transpose(0, 2, 1), W))
    else:
        Ainv = np.zeros((ALL.shape[0], 0, 0))
        W = np.zeros((ALL.shape[0], 0, layout.touched.shape[1]))
        S = AGG
    cf = linalg.cho_factor(S, check_finite=False)
    Sinv = np.ascontiguousarray(linalg.cho_solve(cf, np.eye(P), check_finite=False))
    logdet = 2.0 * float(np.sum(np.log(np.abs(np.diag(cf[0])))))
    diag[:P] = np.diag(Sinv)
    if Ainv.shape[1]:
        ext = np.zeros((P + 1, P + 1))
        ext[:P, :P] = Sinv
        T = layout.touched
        STT = ext[T[:, :, None], T[:, None, :]]
        dl = np.einsum("gcc->gc", Ainv) + np.einsum("gct,gts,gcs->gc", W, STT, W)
        diag[layout.local[layout.valid]] = dl[layout.valid]
        logdet += float(np.sum(np.linalg.slogdet(ALL)[1]))
    # symmetric to the last bit, as a model file stores them (one triangle): a loaded model's
    # intervals are then bit-identical to the fitted one's
    Sinv = 0.5 * (Sinv + Sinv.T)
    Ainv = 0.5 * (Ainv + Ainv.transpose(0, 2, 1))
    return Posterior(Sinv, Ainv, W, diag, logdet)


@dataclass
class PoolingResult:
    """What :func:`fit_pooled` learns."""

    z: np.ndarray
    sigma: float
    tau: dict
    post: Posterior
    cost: float
    rss: float
    converged: bool
    n_iter: int
    history: list = field(default_factory=list)
    #: Degrees of freedom of ``sigma``: rows less the columns the data inform (at least 1).
    dof: float = np.inf


class _Problem:
    """The chunks, the prior and the damping state of one fit."""

    def __init__(self, chunks, layout, mu, n_jobs, ftol):
        self.chunks, self.layout, self.mu, self.n_jobs = chunks, layout, mu, n_jobs
        self.lam, self.ftol, self.ytol = 1e-3, ftol, 1e-4

    def system(self, z, sigma) -> System:
        return System.from_parts(map_chunks(chunk_system, self.chunks, self.n_jobs, z, sigma))

    def cost(self, z, sigma, z_ref=None) -> tuple[float, float]:
        """Data cost at ``z`` and the largest change of a fitted log energy from ``z_ref``."""
        parts = map_chunks(chunk_cost, self.chunks, self.n_jobs, z, sigma, z_ref)
        return float(sum(c for c, _ in parts)), max(m for _, m in parts)

    def solve(self, z, prec, sigma, max_iter):
        """Levenberg-Marquardt with Nielsen's damping update; the damping carries over
        between calls (the empirical-Bayes steps change the problem little). Returns z, the
        total cost, the system at z and whether it converged."""
        def prior(x):
            return float(np.sum(prec * (x - self.mu) ** 2))

        sys = self.system(z, sigma)
        cost = sys.cost + prior(z)
        lam, nu, converged = self.lam, 2.0, False
        for _ in range(max_iter):
            improved = False
            for _ in range(30):
                try:
                    step, pred = schur_step(sys, self.layout, z, self.mu, prec, lam)
                except (np.linalg.LinAlgError, linalg.LinAlgError):
                    lam, nu = lam * nu, nu * 2.0
                    continue
                z_new = z + step
                c_data, moved = self.cost(z_new, sigma, z)
                c_new = c_data + prior(z_new)
                if np.isfinite(c_new) and c_new < cost:
                    improved = True
                    break
                lam, nu = lam * nu, nu * 2.0
            if not improved:
                converged = True  # no step lowers the cost: a (local) minimum
                break
            gain = (cost - c_new) / max(pred, 1e-300)
            lam, nu = max(lam * max(1.0 / 3.0, 1.0 - (2.0 * gain - 1.0) ** 3), 1e-9), 2.0
            # converged when the cost no longer changes or no fitted energy moves by 0.01%
            done = (cost - c_new < self.ftol or np.max(np.abs(step)) < 1e-6
                    or moved < self.ytol)
            z, cost = z_new, c_new
            self.lam = lam
            sys = self.system(z, sigma)
            if done:
                converged = True
                break
        return z, cost, sys, converged


def _update_spreads(z, post, prec, tau, groups, n_values, n_rows, rss, sigma, pooling):
    """One over-relaxed empirical-Bayes update of sigma and the spreads."""
    gamma = 1.0 - post.diag * prec  # share of each column's prior variance the data remove
    g_data = float(np.clip(gamma, 0.0, 1.0).sum())
    new_sigma = max(float(np.sqrt(rss / max(n_rows - g_data, 1.0))), SIGMA_FLOOR)
    new_tau = dict(tau)
    if pooling == "partial":
        for g, js in groups.items():
            if n_values[g] < MIN_LEVELS:
                continue
            gs = float(np.sum(gamma[js]))
            t_mk = np.sqrt(max(np.sum(z[js] ** 2) / gs, TAU_FLOOR**2)) if gs > 1e-3 else TAU_FLOOR
            t_new = float(np.exp(np.log(tau[g]) + OMEGA * (np.log(t_mk) - np.log(tau[g]))))
            new_tau[g] = float(np.clip(t_new, TAU_FLOOR, TAU_CEIL))
    change = max([abs(np.log(new_sigma / sigma))]
                 + [abs(new_tau[g] - tau[g]) / max(tau[g], 0.05) for g in tau] + [0.0])
    return new_sigma, new_tau, change


def _precision(prior_sd, groups, tau) -> np.ndarray:
    sd = prior_sd.copy()
    for g, js in groups.items():
        sd[js] = tau[g]
    return 1.0 / sd**2


def fit_pooled(chunks, layout, mu, prior_sd, groups, *, pooling="partial", n_jobs=None,
               max_em=12, tol=1e-2, ftol=1e-4, z0=None) -> PoolingResult:
    """Fit the unknowns, ``sigma`` and the spreads.

    Parameters
    ----------
    chunks : list of Chunk
    layout : Layout
    mu, prior_sd : ndarray
        Prior mean of every column; fixed prior spread of population columns (NaN for
        deviations).
    groups : dict
        (level, parameter) -> columns sharing one spread.
    pooling : {"partial", "none", "complete"}
        ``"partial"`` estimates the spreads; ``"none"`` holds them at :data:`TAU_NONE`.

    Examples
    --------
    >>> from energylens.models.hierarchical import HierarchicalEnergyModel, form_table
    >>> t, _ = form_table(["Llama-3.1-8B", "Qwen3-8B"], ["H100-SXM", "A100-80GB"], rows_per_group=5)
    >>> m = HierarchicalEnergyModel().fit(t)  # runs fit_pooled on the table's chunks
    >>> m.posterior_.cov_global.shape == (m.design_.n_global, m.design_.n_global)
    True
    """
    n_rows = sum(len(c.ly) for c in chunks)
    n_values = {g: len(js) for g, js in groups.items()}
    tau = {g: (TAU_NONE if pooling == "none" else TAU_FEW) for g in groups}
    sigma = 0.1
    prob = _Problem(chunks, layout, mu, n_jobs, ftol)
    z = mu.copy() if z0 is None else z0.copy()
    history = []
    n_em = max_em if pooling == "partial" else 1
    for it in range(n_em):
        prec = _precision(prior_sd, groups, tau)
        z, cost, sys, _ = prob.solve(z, prec, sigma, 100 if it == 0 else 3)
        try:
            post = posterior(sys, layout, prec)
        except (np.linalg.LinAlgError, linalg.LinAlgError):
            break  # keep the spreads of the last iteration that could be assessed
        sigma_new, tau, change = _update_spreads(z, post, prec, tau, groups, n_values, n_rows,
                                                 sys.cost * sigma**2, sigma, pooling)
        sigma = sigma_new
        history.append({"iteration": it, "sigma": sigma, "cost": cost, "change": change})
        if change < tol:
            break
    prec = _precision(prior_sd, groups, tau)
    z, cost, sys, converged = prob.solve(z, prec, sigma, FINAL_ITERATIONS)
    try:
        post = posterior(sys, layout, prec)
    except (np.linalg.LinAlgError, linalg.LinAlgError) as exc:
        raise FitError("HierarchicalEnergyModel: the penalised normal equations are numerically "
                       f"singular at the optimum ({exc}); the table cannot support this structure: "
                       "try levels='default' or pooling='complete'.") from exc
    informed = float(np.clip(1.0 - post.diag * prec, 0.0, 1.0).sum())
    return PoolingResult(z, sigma, tau, post, cost, sys.cost * sigma**2, converged,
                         len(history), history, max(n_rows - informed, 1.0))
