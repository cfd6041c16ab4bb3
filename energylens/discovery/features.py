"""What a search sees: the configuration variables, their transforms and the target.

Variables are read through the one mapper of the library,
:func:`energylens.core.variables.table_variables` (short names ``t, p, B, si, so, N`` ...
for the canonical columns ``tp, pp, batch_size, input_tokens, output_tokens, params_b``;
``B`` is the effective batch of the batch rule). A variable whose column is absent is an
error naming the column, never a silent default.

The transforms are formulas in those names (:data:`energylens.core.variables.TRANSFORMS`):
``inv_B = 1/B``, ``t_m1 = t - 1``, ``p_m1 = p - 1``, ``tp_prod = t*p``, ``ctx = si + so/2``
(the mean context length during decode) and ``inv_so = 1/so`` (added for targets per output
token). A search sees the transforms as input columns; every formula it returns is
rewritten in the short names, so that it can be evaluated on any canonical table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import sympy

from ..core.batch import effective_batch, resolve_batch_rule
from ..core.expressions import parse_expression, symbol
from ..core.options import check_str_option
from ..core.variables import (
    TRANSFORM_ALIASES,
    TRANSFORMS,
    VARIABLE_COLUMNS,
    check_variables,
    table_variables,
    variable_name,
)

__all__ = [
    "DEFAULT_VARIABLES",
    "TRANSFORMS",
    "TargetKind",
    "transform_expression",
    "feature_table",
    "table_variables",
    "target_values",
    "default_features",
]

#: Variables a search uses by default, where their column varies.
DEFAULT_VARIABLES: tuple[str, ...] = ("t", "p", "B", "si", "so", "N")

TargetKind = Literal["request", "token"]


def _transform_name(name: str) -> str:
    return TRANSFORM_ALIASES.get(name.replace(" ", ""), name)


def transform_expression(name: str) -> sympy.Expr:
    """The sympy formula of a transform in the short variable names.

    Examples
    --------
    >>> transform_expression("ctx")
    si + so/2
    """
    name = _transform_name(name)
    if name not in TRANSFORMS:
        raise ValueError(f"Unknown transform {name!r}; transforms are {sorted(TRANSFORMS)} "
                         f"(or {sorted(TRANSFORM_ALIASES)}).")
    text, needs = TRANSFORMS[name]
    return parse_expression(text, needs)


def default_features(df: pd.DataFrame) -> list[str]:
    """Short names of the :data:`DEFAULT_VARIABLES` whose column in ``df`` varies.

    A column without a single number counts as absent; one with some missing or infinite
    values is an error naming the column and rows (as for features named explicitly), never
    a variable silently left out of the search.

    Examples
    --------
    >>> default_features(pd.DataFrame({"tp": [1, 2], "input_tokens": [5.0, 5.0]}))
    ['t']
    >>> default_features(pd.DataFrame({"tp": [1.0, float("nan")]}))
    Traceback (most recent call last):
    ...
    ValueError: discover: column 'tp' has 1 missing, non-numeric or infinite value(s) (first at rows [1]).
    """
    out = []
    for v in DEFAULT_VARIABLES:
        col = VARIABLE_COLUMNS[v]
        if col not in df.columns:
            continue
        if v == "B":
            a = effective_batch(df, resolve_batch_rule(df, "auto"), k=1.0)
        else:
            a = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        finite = np.isfinite(a)
        if not finite.any():
            continue
        if not finite.all():
            check_variables({v: a}, df.index, "discover")
        if np.ptp(a) > 0:
            out.append(v)
    return out


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
        Short names or canonical columns (``"tp"``, ``"batch_size"``, ...), or other
        numeric columns of ``df``; one at least.
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
        The concrete batch rule used (``"cap"`` when ``B`` is not a feature).

    Raises
    ------
    ValueError
        ``features`` empty (or a single string), a feature given twice, or a feature
        column with values a search cannot use (naming the column and rows).

    Examples
    --------
    >>> df = pd.DataFrame({"batch_size": [1.0, 4.0], "input_tokens": [10.0, 20.0]})
    >>> F, defs, rule = feature_table(df, ["B", "si"], ["inv_B"])
    >>> list(F.columns), defs["inv_B"], rule
    (['B', 'si', 'inv_B'], 1/B, 'cap')
    """
    if isinstance(features, str) or not list(features):
        raise ValueError(f"discover: features={features!r} names no column to search over; "
                         "give a list of one or more columns (e.g. features=['si', 'so', 'B']), "
                         "or leave features out to search every configuration column that "
                         "varies in the table.")
    names: list[str] = []
    for f in features:
        v = variable_name(f)
        if v in names:
            raise ValueError(f"feature {f!r} is given twice.")
        names.append(v)
    rule = resolve_batch_rule(df, batch_rule) if "B" in names and "batch_size" in df.columns else "cap"
    V = table_variables(df, names, batch_rule=rule, batch_k=batch_k, owner="discover")
    defs: dict[str, sympy.Expr] = {v: symbol(v) for v in names}
    cols = dict(V)
    for tname in transforms:
        name = _transform_name(tname)
        expr = transform_expression(name)
        needs = TRANSFORMS[name][1]
        if not all(n in names for n in needs):
            continue
        fn = sympy.lambdify([symbol(n) for n in needs], expr, "numpy")
        cols[name] = np.broadcast_to(np.asarray(fn(*[V[n] for n in needs]), float), len(df)).copy()
        defs[name] = expr
    return pd.DataFrame(cols, index=df.index), defs, rule


def target_values(
    df: pd.DataFrame, target: str = "energy_j", *, per: TargetKind = "request", log: bool = False,
) -> np.ndarray:
    """The quantity a search models: energy per request or per output token, optionally log.

    Examples
    --------
    >>> df = pd.DataFrame({"energy_j": [10.0, 40.0], "output_tokens": [10, 20]})
    >>> target_values(df, per="token").tolist()
    [1.0, 2.0]
    """
    if target not in df.columns:
        raise ValueError(f"target column '{target}' is not in the table (columns "
                         f"{list(map(str, df.columns))}).")
    y = pd.to_numeric(df[target], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(y) | (y <= 0)
    if bad.any():
        rows = df.index[np.flatnonzero(bad)[:5]].tolist()
        raise ValueError(f"Column '{target}' must hold finite values > 0; {int(bad.sum())} row(s) do "
                         f"not (first rows {rows}).")
    check_str_option("target_values", "per", per, ("request", "token"))
    if per == "token":
        y = y / table_variables(df, ["so"], owner=f"discover(per='token') of '{target}'")["so"]
    return np.log(y) if log else y
