"""Features for structure discovery: canonical columns, the effective batch and transforms.

Every variable of a discovered formula has a short name that maps to a canonical column
(the names of the kernel variables of :mod:`energylens.models.base`):

========  ==========================  =====================================
name      column                      meaning
========  ==========================  =====================================
``t``     ``tp``                      tensor-parallel degree
``p``     ``pp``                      pipeline-parallel degree
``B``     ``batch_size``              effective running batch (batch rule)
``si``    ``input_tokens``            prompt length (tokens)
``so``    ``output_tokens``           answer length (tokens)
``N``     ``params_b``                model size (billions of parameters)
========  ==========================  =====================================

and the transforms are formulas in those names (:data:`TRANSFORMS`): ``inv_B = 1/B``,
``t_m1 = t - 1``, ``p_m1 = p - 1``, ``tp_prod = t*p``, ``ctx = si + so/2`` (the mean
context length during decode) and ``inv_so = 1/so`` (added for targets per output token). A search sees the transforms as input columns; every
formula it returns is rewritten in the short names, so that it can be evaluated on any
canonical table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import sympy

from ..models.base import VARIABLE_COLUMNS
from ..models.batch import effective_batch, resolve_batch_rule
from .sympy_tools import symbol

__all__ = [
    "BASE_VARIABLES",
    "TRANSFORMS",
    "TargetKind",
    "canonical_variable",
    "transform_expression",
    "feature_table",
    "table_variables",
    "target_values",
    "default_features",
]

#: Short variable name -> canonical column.
BASE_VARIABLES: dict[str, str] = dict(VARIABLE_COLUMNS)
_COLUMN_TO_VAR = {c: v for v, c in BASE_VARIABLES.items()}

#: Transform name -> (formula text in the short names, the variables it needs).
TRANSFORMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "inv_B": ("1/B", ("B",)),
    "t_m1": ("t - 1", ("t",)),
    "p_m1": ("p - 1", ("p",)),
    "tp_prod": ("t*p", ("t", "p")),
    "ctx": ("si + so/2", ("si", "so")),
    "inv_so": ("1/so", ("so",)),
}
#: Aliases accepted for transform names (as written in the documentation).
_TRANSFORM_ALIASES = {"1/B": "inv_B", "t-1": "t_m1", "p-1": "p_m1", "t*p": "tp_prod",
                      "si+so/2": "ctx", "context": "ctx"}

TargetKind = Literal["request", "token"]


def canonical_variable(name: str) -> str:
    """Short variable name of a feature given as short name or canonical column.

    Other names are returned unchanged (they are read from the column of that name).

    Examples
    --------
    >>> canonical_variable("input_tokens"), canonical_variable("B")
    ('si', 'B')
    """
    if name in BASE_VARIABLES:
        return name
    if name in _COLUMN_TO_VAR:
        return _COLUMN_TO_VAR[name]
    if name == "running_batch":
        return "B"
    return name


def _transform_name(name: str) -> str:
    key = name.replace(" ", "")
    return _TRANSFORM_ALIASES.get(key, name)


def transform_expression(name: str) -> sympy.Expr:
    """The sympy formula of a transform in the short variable names.

    Examples
    --------
    >>> transform_expression("ctx")
    si + so/2
    """
    name = _transform_name(name)
    if name not in TRANSFORMS:
        raise ValueError(
            f"Unknown transform {name!r}; transforms are {sorted(TRANSFORMS)} "
            f"(or {sorted(_TRANSFORM_ALIASES)})."
        )
    text, needs = TRANSFORMS[name]
    from .sympy_tools import parse_expression

    return parse_expression(text, needs)


def default_features(df: pd.DataFrame) -> list[str]:
    """Short names of the configuration columns of ``df`` that vary (t, p, B, si, so, N)."""
    out = []
    for v, col in BASE_VARIABLES.items():
        if col in df.columns:
            a = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
            if v == "B":
                rule = resolve_batch_rule(df, "auto")
                a = effective_batch(df, rule, k=1.0 if rule == "saturating" else None)
            if np.all(np.isfinite(a)) and np.ptp(a) > 0:
                out.append(v)
    return out


def _column_values(df: pd.DataFrame, var: str, batch_rule: str, batch_k: float | None) -> np.ndarray:
    if var == "B":
        return effective_batch(df, batch_rule, k=batch_k)
    col = BASE_VARIABLES.get(var, var)
    if col not in df.columns:
        if var == "p":
            return np.ones(len(df))
        raise ValueError(f"discovery needs the column '{col}' (feature '{var}'); the table has "
                         f"columns {list(map(str, df.columns))}.")
    a = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(a)
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise ValueError(f"Column '{col}' has {int(bad.sum())} missing or non-numeric value(s) "
                         f"(first rows {rows}); discovery needs finite numbers.")
    return a


def table_variables(
    df: pd.DataFrame, variables: Sequence[str], *, batch_rule: str = "auto",
    batch_k: float | None = None,
) -> dict[str, np.ndarray]:
    """Arrays of the short-named variables from a canonical table."""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"expected a canonical profiling table (DataFrame); got {type(df).__name__}.")
    return {v: np.array(_column_values(df, v, batch_rule, batch_k), dtype=float) for v in variables}


def feature_table(
    df: pd.DataFrame,
    features: Sequence[str],
    transforms: Sequence[str] = (),
    *,
    batch_rule: str = "auto",
    batch_k: float | None = 1.0,
) -> tuple[pd.DataFrame, dict[str, sympy.Expr], str]:
    """Columns a search sees: the features and the transforms, named by short names.

    Parameters
    ----------
    df : DataFrame
        Canonical profiling table.
    features : sequence of str
        Short names or canonical columns (``"tp"``, ``"batch_size"``, ...).
    transforms : sequence of str
        Names from :data:`TRANSFORMS` (or their aliases ``"1/B"``, ``"t-1"``, ...);
        a transform is added only when the variables it needs are among the features.
    batch_rule : str
        Effective-batch rule (``"auto"`` resolves on this table).
    batch_k : float
        Saturation constant when the rule is ``"saturating"``.

    Returns
    -------
    table : DataFrame
        One column per feature and transform.
    definitions : dict
        Name -> sympy formula in the short names (identity for plain features).
    rule : str
        The concrete batch rule used.
    """
    vars_ = []
    for f in features:
        v = canonical_variable(f)
        if v in vars_:
            raise ValueError(f"feature {f!r} is given twice.")
        vars_.append(v)
    rule = "cap"
    if "B" in vars_:
        if "batch_size" not in df.columns:
            raise ValueError("feature 'B' (effective batch) needs a 'batch_size' column.")
        rule = resolve_batch_rule(df, batch_rule)
    V = table_variables(df, vars_, batch_rule=rule, batch_k=batch_k)
    defs: dict[str, sympy.Expr] = {v: symbol(v) for v in vars_}
    cols = dict(V)
    for tname in transforms:
        name = _transform_name(tname)
        expr = transform_expression(name)
        needs = TRANSFORMS[name][1]
        if not all(n in vars_ for n in needs):
            continue
        fn = sympy.lambdify([symbol(n) for n in needs], expr, "numpy")
        cols[name] = np.broadcast_to(np.asarray(fn(*[V[n] for n in needs]), float), len(df)).copy()
        defs[name] = expr
    return pd.DataFrame(cols, index=df.index), defs, rule


def target_values(
    df: pd.DataFrame, target: str = "energy_j", *, per: TargetKind = "request", log: bool = False,
) -> np.ndarray:
    """The quantity a search models: energy per request or per output token, optionally log."""
    if target not in df.columns:
        raise ValueError(f"target column '{target}' is not in the table (columns "
                         f"{list(map(str, df.columns))}).")
    y = pd.to_numeric(df[target], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(y) | (y <= 0)
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise ValueError(f"Column '{target}' must hold finite values > 0; {int(bad.sum())} row(s) do "
                         f"not (first rows {rows}).")
    if per not in ("request", "token"):
        raise ValueError(f"The 'per' parameter must be a str among {{'request', 'token'}}. Got {per!r} instead.")
    if per == "token":
        so = _column_values(df, "so", "cap", None)
        if np.any(so <= 0):
            raise ValueError("per='token' needs output_tokens > 0 in every row.")
        y = y / so
    return np.log(y) if log else y
