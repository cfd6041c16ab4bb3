"""The per-group work of a hierarchical fit: residuals and normal equations of a chunk of
groups, on arrays.

A fit splits its groups into chunks (one per joblib worker; one chunk when running in
process). For a chunk and the current unknowns, :func:`chunk_system` evaluates the form and
its analytic Jacobian on the chunk's rows and returns the chunk's share of the normal
equations in block form: the global block (a dense ``P x P`` sum), and for each of its
groups the local block, the local-global coupling and the right-hand sides. Rows with the
same columns (same group, workload, layout) form a *cell*: their outer products are summed
in parameter space before they are spread over columns, so the cost grows with the
number of cells, not rows times slots squared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .form import PARAMETER_NAMES, energy_jacobian, energy_kernel, link_slope, theta_from_link

__all__ = ["Chunk", "SystemPart", "make_chunks", "chunk_system", "chunk_cost", "row_log_theta",
           "local_columns"]


@dataclass
class Chunk:
    """The rows of some groups, sorted by cell, and the indices that assemble their part."""

    V: dict[str, np.ndarray]
    ly: np.ndarray
    cell_start: np.ndarray  # first row of each cell
    cell_cols: np.ndarray  # (n_cells, n_slots) columns of each cell
    slot_param: np.ndarray  # (n_slots,)
    glob: np.ndarray  # global slots
    loc: np.ndarray  # local slots
    cell_group: np.ndarray  # (n_cells,) group of each cell, 0-based within the chunk
    local_pos: np.ndarray  # (n_cells, n_local_slots) position in the group's block
    touch_pos: np.ndarray  # (n_cells, n_global_slots) position in the group's touched set
    n_groups: int
    n_global: int
    cmax: int
    tmax: int
    terms: dict
    active: np.ndarray  # parameters whose derivative is not zero on every row of the chunk
    index: dict = field(default_factory=dict)  # scatter indices, built once

    def __post_init__(self):
        self.counts = np.diff(np.append(self.cell_start, len(self.ly)))
        P, c, t = self.n_global, self.cmax, self.tmax
        pos = np.full(len(PARAMETER_NAMES), -1)
        pos[self.active] = np.arange(len(self.active))
        ka = len(self.active)
        gl = self.glob[pos[self.slot_param[self.glob]] >= 0]  # slots of active parameters
        lo_keep = pos[self.slot_param[self.loc]] >= 0
        lo = self.loc[lo_keep]
        pg, pl = pos[self.slot_param[gl]], pos[self.slot_param[lo]]
        # cells that share every global column are summed before the global block is spread
        gcols, ginv = np.unique(self.cell_cols[:, gl], axis=0, return_inverse=True)
        gorder = np.argsort(np.ravel(ginv), kind="stable")
        gstart = np.flatnonzero(np.r_[True, np.diff(np.ravel(ginv)[gorder]) > 0])
        # Scatter indices in (slot pair, cell) order: the cell sums are kept as (pairs, cells)
        # arrays, whose row gathers are contiguous.
        self.index = {"GG": (gcols.T[:, None, :] * P + gcols.T[None, :, :]).ravel(),
                      "bG": gcols.T.ravel(), "pg": pg, "pl": pl,
                      "qGG": (pg[:, None] * ka + pg[None, :]).ravel(), "gorder": gorder,
                      "gstart": gstart}
        if len(lo):
            lpos = self.local_pos[:, lo_keep].T
            tpos = self.touch_pos[:, pos[self.slot_param[self.glob]] >= 0].T
            row = self.cell_group[None, :] * c + lpos
            self.index.update({
                "LL": (row[:, None, :] * c + lpos[None, :, :]).ravel(),
                "LG": (row[:, None, :] * t + tpos[None, :, :]).ravel(), "bL": row.ravel(),
                "qLL": (pl[:, None] * ka + pl[None, :]).ravel(),
                "qLG": (pl[:, None] * ka + pg[None, :]).ravel()})


@dataclass
class SystemPart:
    """A chunk's share of the normal equations (data terms only)."""

    cost: float  # sum of squared scaled residuals
    HGG: np.ndarray  # (P, P)
    bG: np.ndarray  # (P,)
    HLL: np.ndarray  # (G_c, cmax, cmax)
    HLG: np.ndarray  # (G_c, cmax, tmax)
    bL: np.ndarray  # (G_c, cmax)


def touched_columns(row_cols: np.ndarray, row_group: np.ndarray, glob: np.ndarray,
                    n_groups: int, n_global: int) -> tuple[np.ndarray, int]:
    """The global columns each group's rows touch, padded with ``n_global``: (G, tmax)."""
    sets = [np.unique(row_cols[row_group == g][:, glob]) for g in range(n_groups)]
    tmax = max((len(s) for s in sets), default=0)
    out = np.full((n_groups, max(tmax, 1)), n_global, dtype=np.int64)
    for g, s in enumerate(sets):
        out[g, :len(s)] = s
    return out, max(tmax, 1)


def make_chunks(V, ly, row_cols, row_group, design, touched, n_chunks, terms) -> list[Chunk]:
    """Split the training rows into ``n_chunks`` chunks of whole groups (balanced by rows).

    Examples
    --------
    >>> from energylens.models.hierarchical import HierarchicalEnergyModel, form_table
    >>> t, _ = form_table(["Llama-3.1-8B"], ["H100-SXM", "A100-80GB"], rows_per_group=5)
    >>> HierarchicalEnergyModel(n_jobs=1).fit(t).n_chunks_  # one chunk when run in process
    1
    """
    n_groups = len(design.groups)
    glob = np.flatnonzero(~design.slot_local)
    loc = np.flatnonzero(design.slot_local)
    cmax = int(max(design.block_size.max(initial=0), 1))
    sizes = np.bincount(row_group, minlength=n_groups)
    bounds = np.searchsorted(np.cumsum(sizes), np.linspace(0, len(ly), n_chunks + 1)[1:-1])
    edges = np.unique(np.concatenate([[0], np.minimum(bounds + 1, n_groups), [n_groups]]))
    chunks = []
    for a, b in zip(edges[:-1], edges[1:]):
        rows = np.flatnonzero((row_group >= a) & (row_group < b))
        cols = row_cols[rows]
        cells, inverse = np.unique(np.column_stack([row_group[rows], cols]), axis=0,
                                   return_inverse=True)
        inverse = np.ravel(inverse)
        order = np.argsort(inverse, kind="stable")
        rows, inverse = rows[order], inverse[order]
        start = np.flatnonzero(np.r_[True, np.diff(inverse) > 0])
        cgroup = cells[:, 0]
        ccols = cells[:, 1:]
        lpos = ccols[:, loc] - design.block_start[cgroup][:, None]
        tpos = np.zeros((len(cells), len(glob)), dtype=np.int64)
        for g in np.unique(cgroup):
            sel = cgroup == g
            tpos[sel] = np.searchsorted(touched[g], ccols[sel][:, glob])
        Vc = {k: v[rows] for k, v in V.items()}
        theta = theta_from_link(row_log_theta(design.prior_mean, cols[order], design.slot_param))
        active = np.flatnonzero(np.any(energy_jacobian(Vc, theta, terms)[1] != 0, axis=0))
        chunks.append(Chunk(Vc, ly[rows], start, ccols, design.slot_param, glob, loc, cgroup - a,
                            lpos, tpos, int(b - a), design.n_global, cmax, touched.shape[1],
                            dict(terms), active))
    return chunks


def row_log_theta(z: np.ndarray, cols: np.ndarray, slot_param: np.ndarray) -> np.ndarray:
    """Log-parameters (link values: the logit of a bounded one, see
    :func:`~.form.theta_from_link`) of rows whose columns are ``cols`` (n, n_slots): the sum
    of their columns' values per parameter."""
    K = len(PARAMETER_NAMES)
    onehot = np.zeros((len(slot_param), K))
    onehot[np.arange(len(slot_param)), slot_param] = 1.0
    return z[cols] @ onehot


def _link(chunk: Chunk, z: np.ndarray) -> np.ndarray:
    """Each row's link values."""
    return np.repeat(row_log_theta(z, chunk.cell_cols, chunk.slot_param), chunk.counts, axis=0)


def _theta(chunk: Chunk, z: np.ndarray) -> np.ndarray:
    return theta_from_link(_link(chunk, z))


def chunk_cost(chunk: Chunk, z: np.ndarray, sigma: float, z_ref: np.ndarray | None = None):
    """Sum of squared residuals ``(log y - log E) / sigma`` over the chunk's rows, and the
    largest change of a row's log energy from ``z_ref`` (0 without one)."""
    with np.errstate(all="ignore"):
        logE = np.log(energy_kernel(chunk.V, _theta(chunk, z), chunk.terms))
        r = (chunk.ly - logE) / sigma
        moved = 0.0
        if z_ref is not None and len(logE):
            ref = np.log(energy_kernel(chunk.V, _theta(chunk, z_ref), chunk.terms))
            moved = float(np.max(np.abs(logE - ref)))
    return float(r @ r), moved


def chunk_system(chunk: Chunk, z: np.ndarray, sigma: float) -> SystemPart:
    """The chunk's normal equations at ``z`` (Gauss-Newton: ``J'J`` and ``J'r``).

    Examples
    --------
    >>> from energylens.models.hierarchical import HierarchicalEnergyModel, form_table
    >>> t, _ = form_table(["Llama-3.1-8B"], ["H100-SXM", "A100-80GB"], rows_per_group=5)
    >>> m = HierarchicalEnergyModel().fit(t)
    >>> m.converged_  # its normal equations, solved through the Schur complement
    True
    """
    LT = _link(chunk, z)
    logE, D = energy_jacobian(chunk.V, theta_from_link(LT), chunk.terms)
    D = D * link_slope(LT)  # derivatives in the link values (the logit of a bounded one)
    r = (chunk.ly - logE) / sigma
    Dn = (D[:, chunk.active] / sigma).T  # (active parameters, rows)
    st, ka = chunk.cell_start, len(chunk.active)
    # per cell, in (parameter pair, cell) layout: sum of Dn Dn' and of Dn r over its rows
    Q = np.add.reduceat((Dn[:, None, :] * Dn[None, :, :]).reshape(ka * ka, len(r)), st, axis=1)
    q = np.add.reduceat(Dn * r[None, :], st, axis=1)
    ix, P = chunk.index, chunk.n_global
    Qg = np.add.reduceat(Q[:, ix["gorder"]], ix["gstart"], axis=1)
    qg = np.add.reduceat(q[:, ix["gorder"]], ix["gstart"], axis=1)
    HGG = np.bincount(ix["GG"], Qg[ix["qGG"]].ravel(), minlength=P * P).reshape(P, P)
    bG = np.bincount(ix["bG"], qg[ix["pg"]].ravel(), minlength=P)
    G, c, t = chunk.n_groups, chunk.cmax, chunk.tmax
    if "LL" in ix:
        HLL = np.bincount(ix["LL"], Q[ix["qLL"]].ravel(), minlength=G * c * c).reshape(G, c, c)
        HLG = np.bincount(ix["LG"], Q[ix["qLG"]].ravel(), minlength=G * c * t).reshape(G, c, t)
        bL = np.bincount(ix["bL"], q[ix["pl"]].ravel(), minlength=G * c).reshape(G, c)
    else:
        HLL, HLG, bL = np.zeros((G, c, c)), np.zeros((G, c, t)), np.zeros((G, c))
    return SystemPart(float(r @ r), HGG, bG, HLL, HLG, bL)


def local_columns(design) -> np.ndarray:
    """Each group's local columns, one row per group, padded with -1 to the largest block."""
    G = len(design.groups)
    local = np.full((G, int(max(design.block_size.max(initial=0), 1))), -1, dtype=np.int64)
    for g in range(G):
        local[g, :design.block_size[g]] = design.block_start[g] + np.arange(design.block_size[g])
    return local
