"""The physical term library of :func:`~energylens.discovery.derive.derive_model`, the
group offsets it takes out before a pooled search, and the energies it searches.

Candidate terms are products of a base (what the energy is spent on) and at most one factor
of the parallel layout (:data:`energylens.models.derived.BASE_TERMS`,
:data:`~energylens.models.derived.FACTORS`), built from the variables that vary in the
table; a candidate that is a linear combination of earlier ones on this table is dropped.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import sympy

from ..core.expressions import parse_expression, symbol
from ..core.options import StrOptions, check_options
from ..exceptions import EnergyLensWarning
from ..models.derived import term_info

__all__ = ["PHASE_BASES", "physical_library", "group_codes", "initial_offsets", "VARIABLES",
           "PHASE_TOLERANCE", "search_targets"]

#: Bases searched per phase (``"total"``: all of them); the constant comes from the engine.
PHASE_BASES: dict[str, tuple[str, ...]] = {
    "prefill": ("si", "si**2", "1/B", "1"),
    "decode": ("so", "so/B", "so*(si + so/2)"),
}
PHASE_BASES["total"] = PHASE_BASES["prefill"] + PHASE_BASES["decode"]
#: Factor order per base: overheads first for work terms, the per-GPU factor first for the
#: terms shared by the batch (static energy is drawn by every GPU of the replica).
_WORK_FACTORS = ("t - 1", "p - 1", "t*p", "d")
_SHARED_FACTORS = ("t*p", "t - 1", "p - 1", "d")
_FACTOR_NEEDS = {"t - 1": ("t",), "p - 1": ("p",), "t*p": ("t", "p"), "d": ("d",)}
VARIABLES = ("t", "p", "d", "B", "si", "so")
#: Largest relative difference between ``energy_j`` and ``prefill_energy_j + decode_energy_j``
#: of a row whose phases are searched (the tolerance of :func:`energylens.read_profiles`).
PHASE_TOLERANCE = 0.05
_PHASE_COLUMNS = {"prefill": "prefill_energy_j", "decode": "decode_energy_j"}

# ----------------------------------------------------------------------------- the library
def _varies(a: np.ndarray) -> bool:
    return a.size > 0 and float(np.ptp(a)) > 1e-12 * max(1.0, float(np.max(np.abs(a))))


def _candidates(V: Mapping[str, np.ndarray], phase: str) -> list[str]:
    """Candidate term texts in priority order (plain bases, then factors level by level)."""
    varying = {v for v, a in V.items() if _varies(a)}
    bases = []
    for b in PHASE_BASES[phase]:
        needs = {str(s) for s in parse_expression(b, {v: symbol(v) for v in VARIABLES}).free_symbols}
        if needs <= set(V) and (b == "1" or needs & varying):
            bases.append(b)
    out = [b for b in bases if b != "1"]
    for level in range(len(_WORK_FACTORS)):
        for b in bases:
            f = (_SHARED_FACTORS if "/B" in b or b == "1" else _WORK_FACTORS)[level]
            needs = set(_FACTOR_NEEDS[f])
            if needs <= set(V) and (needs <= varying or (f == "t*p" and needs & varying)):
                out.append(f if b == "1" else f"({b})*({f})")
    return out


def physical_library(V: Mapping[str, np.ndarray], phase: str = "total",
                     ) -> tuple[pd.DataFrame, dict[str, sympy.Expr]]:
    """Columns of the candidate terms of one phase, and each column's formula.

    Parameters
    ----------
    V : mapping
        Variable arrays (``t, p, d, B, si, so``; a variable absent or constant adds no term
        that needs it to vary).
    phase : {"total", "prefill", "decode"}

    Returns
    -------
    F : DataFrame
        One column per term, named after its parameter without the ``k_`` (``si``,
        ``so_per_B``, ``si_tm1``, ``tp_per_B``); terms that are linear combinations of
        earlier ones and the constant are left out.
    definitions : dict
        Column -> sympy formula in the short variable names.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> V = {"t": rng.choice([1.0, 2, 4], 30), "p": np.ones(30), "si": rng.uniform(50, 2000, 30),
    ...      "B": rng.choice([1.0, 8, 64], 30)}
    >>> F, defs = physical_library(V, "prefill")
    >>> list(F.columns)
    ['si', 'si2', 'per_B', 'si_tm1', 'si2_tm1', 'tp_per_B', 'tp']
    >>> defs["tp_per_B"]
    p*t/B
    """
    check_options("physical_library", {"phase": [StrOptions(set(PHASE_BASES))]}, {"phase": phase})
    n = len(next(iter(V.values())))
    names = {v: symbol(v) for v in VARIABLES}
    basis = [np.ones(n) / np.sqrt(n)]
    cols: dict[str, np.ndarray] = {}
    defs: dict[str, sympy.Expr] = {}
    for text in _candidates(V, phase):
        expr = sympy.sympify(parse_expression(text, names))
        info = term_info(str(expr))
        with np.errstate(all="ignore"):
            fn = sympy.lambdify([names[s] for s in info["variables"]], expr, "numpy")
            col = np.broadcast_to(np.asarray(fn(*[V[s] for s in info["variables"]]), float), (n,))
        norm = float(np.linalg.norm(col)) if np.all(np.isfinite(col)) else 0.0
        if norm <= 1e-300:
            continue
        u = col / norm
        r = u - np.column_stack(basis) @ (np.column_stack(basis).T @ u)
        if np.linalg.norm(r) < 1e-7:
            continue
        basis.append(r / np.linalg.norm(r))
        key = info["name"][2:]
        cols[key], defs[key] = col.copy(), expr
    return pd.DataFrame(cols), defs


# ----------------------------------------------------------------------------- groups
def group_codes(df: pd.DataFrame, by: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Group number of each row (the columns of ``by`` that ``df`` has, read as text), and
    one row per group: its key columns and ``n_rows``.

    Examples
    --------
    >>> df = pd.DataFrame({"model": ["a", "b", "a"], "gpu": ["x", "x", "x"]})
    >>> codes, table = group_codes(df, ["model", "gpu"])
    >>> codes.tolist(), table.to_dict("list")
    ([0, 1, 0], {'model': ['a', 'b'], 'gpu': ['x', 'x'], 'n_rows': [2, 1]})
    """
    cols = [c for c in by if c in df.columns]
    if not cols:
        return np.zeros(len(df), dtype=int), pd.DataFrame({"n_rows": [len(df)]})
    codes, keys = pd.MultiIndex.from_frame(df[cols].astype(str)).factorize()
    table = keys.to_frame(index=False)
    table.columns = cols
    table["n_rows"] = np.bincount(codes, minlength=len(keys))
    return np.asarray(codes), table


def initial_offsets(V: Mapping[str, np.ndarray], y: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per-group log intercepts of ``log y = a_g + sum_v b_v log v`` (varying variables)."""
    G = int(codes.max()) + 1
    X = [np.eye(G)[codes]] + [np.log(a)[:, None] for a in V.values() if _varies(a)]
    coef, *_ = np.linalg.lstsq(np.hstack(X), np.log(y), rcond=None)
    return coef[:G]


# ----------------------------------------------------------------------------- targets
def _positive(df: pd.DataFrame, column: str) -> np.ndarray | None:
    y = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
    return y if np.all(np.isfinite(y) & (y > 0)) else None


def _phase_mismatch(df: pd.DataFrame, y: np.ndarray) -> tuple[np.ndarray, str]:
    """Rows whose energy differs from prefill + decode by more than :data:`PHASE_TOLERANCE`,
    and a phrase naming the first of them."""
    parts = sum(pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
                for c in _PHASE_COLUMNS.values())
    with np.errstate(all="ignore"):
        rel = np.abs(parts - y) / y
    bad = ~(rel <= PHASE_TOLERANCE)
    idx = np.flatnonzero(bad)[:5]
    text = ", ".join(f"{df.index[i]!r} ({y[i]:.4g} J against {parts[i]:.4g} J)" for i in idx)
    return bad, f"{int(bad.sum())} row(s) (first: {text})"


def search_targets(df: pd.DataFrame, target: str, phases: bool | None) -> dict[str, np.ndarray]:
    """What :func:`~energylens.discovery.derive_model` searches: ``{"total": y}`` or
    ``{"prefill": ..., "decode": ...}``, checked (see its ``phases``)."""
    if not str(target).endswith("_j"):  # units in the name: energy columns end in _j
        raise ValueError(f"derive_model builds an energy model (J per request); the target "
                         f"'{target}' is not an energy column (its name does not end in '_j'). "
                         "For a latency use LatencyModel (on the command line: energylens fit "
                         f"--target {target}), or discover(df, target='{target}') for its formula.")
    if target not in df.columns:
        raise ValueError(f"derive_model: target column '{target}' is not in the table (columns "
                         f"{list(map(str, df.columns))}).")
    y = _positive(df, target)
    if y is None:
        bad = df.index[~(pd.to_numeric(df[target], errors="coerce") > 0)][:5].tolist()
        raise ValueError(f"derive_model: column '{target}' must hold finite energies > 0 (J); "
                         f"rows {bad} do not.")
    have = all(c in df.columns for c in _PHASE_COLUMNS.values()) and target == "energy_j"
    auto = phases is None
    if auto:
        phases = have and all(_positive(df, c) is not None for c in _PHASE_COLUMNS.values())
    if not phases:
        return {"total": y}
    if not have:
        raise ValueError("derive_model(phases=True) needs the target 'energy_j' and the columns "
                         f"{list(_PHASE_COLUMNS.values())}; the table has {list(map(str, df.columns))}.")
    out = {}
    for phase, col in _PHASE_COLUMNS.items():
        out[phase] = _positive(df, col)
        if out[phase] is None:
            raise ValueError(f"derive_model(phases=True): column '{col}' must hold finite "
                             "energies > 0 (J) in every row.")
    bad, rows = _phase_mismatch(df, y)
    if bad.any():
        # The terms would be searched on prefill and decode energy, the model fitted on energy_j.
        msg = (f"energy_j differs from prefill_energy_j + decode_energy_j by more than "
               f"{PHASE_TOLERANCE:.0%} in {rows}")
        if not auto:
            raise ValueError(f"derive_model(phases=True): {msg}; correct the table, or search "
                             "the total energy (phases=False).")
        warnings.warn(f"derive_model: {msg}; searching the total energy instead of the phases "
                      "(phases=False; phases=True refuses such a table).", EnergyLensWarning,
                      stacklevel=4)
        return {"total": y}
    return out
