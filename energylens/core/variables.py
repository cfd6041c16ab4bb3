"""The one mapping from a canonical profiling table to the variables of the closed forms.

Every closed form, every discovery engine and every baseline reads the configuration
through :func:`table_variables`, so that a variable means the same thing everywhere:

========  ==========================  ===========================================
name      column                      meaning
========  ==========================  ===========================================
``t``     ``tp``                      tensor-parallel degree (GPUs per layer)
``p``     ``pp``                      pipeline-parallel degree (stages)
``d``     ``dp``                      data-parallel replicas
``e``     ``ep``                      expert-parallel degree
``B``     ``batch_size``              effective running batch per replica (batch rule)
``si``    ``input_tokens``            prompt length (tokens)
``so``    ``output_tokens``           answer length (tokens)
``N``     ``params_b``                model parameters (billions)
``Na``    ``active_params_b``         parameters active per token (billions)
========  ==========================  ===========================================

A column that is absent is an error, never silently filled: a caller that means a
default passes it in ``fill`` (models fill a variable only with the single value it took
in their training data, see :class:`~energylens.core.domain.Domain`).

:data:`TRANSFORMS` are formulas in these names that searches see as extra inputs
(``inv_B = 1/B``, ``t_m1 = t - 1``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .batch import effective_batch
from .checks import check_positive_column
from .checks import plain as _plain

__all__ = [
    "check_positive_column",
    "Variable",
    "VARIABLES",
    "VARIABLE_COLUMNS",
    "SCHEMA_DEFAULTS",
    "TRANSFORMS",
    "TRANSFORM_ALIASES",
    "variable_label",
    "variable_name",
    "table_variables",
    "check_variables",
    "array_variables",
    "legend",
]


@dataclass(frozen=True)
class Variable:
    """One variable of the closed forms.

    Attributes
    ----------
    name : str
        Short name used in formulas (``t``, ``B``, ``si`` ...).
    column : str
        Canonical column it is read from.
    label : str
        What it is, in words.
    unit : str
        Its unit.
    positive : bool
        Whether values must be > 0.
    whole : bool
        Whether values must be whole numbers >= 1 (counts of GPUs, stages, replicas).
    """

    name: str
    column: str
    label: str
    unit: str
    positive: bool = True
    whole: bool = False


VARIABLES: dict[str, Variable] = {v.name: v for v in [
    Variable("t", "tp", "tensor-parallel degree", "GPUs", whole=True),
    Variable("p", "pp", "pipeline-parallel degree", "stages", whole=True),
    Variable("d", "dp", "data-parallel replicas", "replicas", whole=True),
    Variable("e", "ep", "expert-parallel degree", "GPUs", whole=True),
    Variable("B", "batch_size", "effective running batch per replica", "requests"),
    Variable("si", "input_tokens", "input tokens per request", "tokens"),
    Variable("so", "output_tokens", "output tokens per request", "tokens"),
    Variable("N", "params_b", "model parameters", "1e9 parameters"),
    Variable("Na", "active_params_b", "parameters active per token", "1e9 parameters"),
]}
#: Short name -> canonical column.
VARIABLE_COLUMNS: dict[str, str] = {v.name: v.column for v in VARIABLES.values()}
_COLUMN_TO_NAME = {v.column: v.name for v in VARIABLES.values()}
#: The schema's default for columns a table may omit (the same defaults as read_profiles).
SCHEMA_DEFAULTS: dict[str, float] = {"p": 1.0, "d": 1.0, "e": 1.0}

#: Transform name -> (formula text in the short names, the variables it needs).
TRANSFORMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "inv_B": ("1/B", ("B",)),
    "t_m1": ("t - 1", ("t",)),
    "p_m1": ("p - 1", ("p",)),
    "tp_prod": ("t*p", ("t", "p")),
    "ctx": ("si + so/2", ("si", "so")),
    "inv_so": ("1/so", ("so",)),
}
#: Spellings accepted for transform names (as written in the documentation).
TRANSFORM_ALIASES: dict[str, str] = {"1/B": "inv_B", "t-1": "t_m1", "p-1": "p_m1",
                                     "t*p": "tp_prod", "si+so/2": "ctx", "context": "ctx"}


def variable_name(name: str) -> str:
    """Short name of a variable given as short name or canonical column (others unchanged).

    Examples
    --------
    >>> variable_name("input_tokens"), variable_name("B"), variable_name("running_batch")
    ('si', 'B', 'B')
    """
    if name in VARIABLES:
        return name
    if name == "running_batch":
        return "B"
    return _COLUMN_TO_NAME.get(name, name)


def variable_label(name: str) -> str:
    """Words for a variable (its column for names outside :data:`VARIABLES`)."""
    v = VARIABLES.get(name)
    return v.label if v is not None else name


def legend(names: Sequence[str]) -> str:
    """One line explaining the symbols of a formula.

    Examples
    --------
    >>> legend(["si", "B"])
    'si = input tokens per request; B = effective running batch per replica'
    """
    return "; ".join(f"{n} = {variable_label(n)}" for n in names)


def _column(X: pd.DataFrame, col: str) -> np.ndarray:
    s = X[col]
    if s.dtype.kind in "fiu":
        return s.to_numpy(dtype=float)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)


def check_variables(V: Mapping[str, np.ndarray], index, owner: str,
                    ranges: dict | None = None) -> None:
    """Raise ``ValueError`` for non-finite values, values <= 0 where a variable must be > 0,
    and values other than whole numbers >= 1 where it counts GPUs, stages or replicas.

    ``ranges``, when given, receives each variable's ``(min, max)`` (reused by domain checks).
    """
    for name, arr in V.items():
        if arr.size == 0:
            continue
        lo, hi = arr.min(), arr.max()  # NaN propagates: one pass each, no temporary arrays
        if ranges is not None:
            ranges[name] = (float(lo), float(hi))
        spec = VARIABLES.get(name)
        positive = spec is not None and spec.positive
        if np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or not positive):
            if spec is not None and spec.whole:
                _check_whole(arr, index, owner, VARIABLE_COLUMNS[name])
            continue
        col = VARIABLE_COLUMNS.get(name, name)
        bad = ~np.isfinite(arr)
        if bad.any():
            rows = [_plain(index[i]) for i in np.flatnonzero(bad)[:5]]
            hint = ""
            if name in SCHEMA_DEFAULTS:  # e.g. tables joined from sources that record ep or not
                hint = (f" Rows that do not record it run with {col} = "
                        f"{SCHEMA_DEFAULTS[name]:g}: fill them with "
                        f"X[{col!r}].fillna({SCHEMA_DEFAULTS[name]:g}).")
            raise ValueError(f"{owner}: column '{col}' has {int(bad.sum())} missing, non-numeric "
                             f"or infinite value(s) (first at rows {rows}).{hint}")
        low = arr <= 0
        rows = [_plain(index[i]) for i in np.flatnonzero(low)[:5]]
        raise ValueError(f"{owner}: '{col}' must be > 0; {int(low.sum())} row(s) are not "
                         f"(first at rows {rows}).")


def _check_whole(arr: np.ndarray, index, owner: str, col: str) -> None:
    bad = (arr < 1) | (arr != np.round(arr))
    if bad.any():
        first = np.flatnonzero(bad)[:5]
        raise ValueError(f"{owner}: '{col}' must be a whole number >= 1; {int(bad.sum())} row(s) "
                         f"are not (first at rows {[_plain(index[i]) for i in first]}, values "
                         f"{arr[first].tolist()}).")


def table_variables(
    X: pd.DataFrame,
    names: Sequence[str],
    *,
    batch_rule: str = "cap",
    batch_k: float | None = None,
    fill: Mapping[str, float] | None = None,
    owner: str = "energylens",
    ranges: dict | None = None,
    check: bool = True,
) -> dict[str, np.ndarray]:
    """Arrays of the named variables from a canonical table, checked.

    Parameters
    ----------
    X : DataFrame
        Canonical profiling table (or candidates).
    names : sequence of str
        Short names (:data:`VARIABLES`) or other numeric columns of ``X``.
    batch_rule : str
        Effective-batch rule for ``B`` (see :mod:`energylens.core.batch`).
    batch_k : float, optional
        Constant of the ``"saturating"`` rule.
    fill : mapping, optional
        Values for variables whose column is absent. Without an entry an absent column
        raises ``ValueError``.
    owner : str
        Who asks (named in messages).
    ranges : dict, optional
        Receives each variable's ``(min, max)``.
    check : bool, default=True
        Check the values (callers that check several variables at once pass False and call
        :func:`check_variables` themselves).

    Returns
    -------
    dict
        Name -> float array of ``len(X)``; finite, and > 0 for the variables that must be.

    Raises
    ------
    ValueError
        Naming the column, how many rows are bad and the first rows.

    Examples
    --------
    >>> df = pd.DataFrame({"tp": [1, 2], "batch_size": [8.0, 16.0]})
    >>> V = table_variables(df, ["t", "B", "p"], fill={"p": 1.0})
    >>> V["t"].tolist(), V["p"].tolist()
    ([1.0, 2.0], [1.0, 1.0])
    """
    if not isinstance(X, pd.DataFrame):
        raise ValueError(f"{owner} needs a canonical table (DataFrame); got {type(X).__name__}.")
    fill = fill or {}
    V: dict[str, np.ndarray] = {}
    missing: list[str] = []
    for name in names:
        col = VARIABLE_COLUMNS.get(name, name)
        if col not in X.columns:
            if name in fill:
                V[name] = np.full(len(X), float(fill[name]))
            else:
                missing.append(col)
            continue
        if name == "B":
            V[name] = effective_batch(X, batch_rule, k=batch_k)
        else:
            V[name] = _column(X, col)
    if missing:
        raise ValueError(f"{owner} needs the column(s) {missing}; the table has columns "
                         f"{list(map(str, X.columns))}.")
    if check:
        check_variables(V, X.index, owner, ranges)
    return V


def array_variables(arr, names: Sequence[str], *, owner: str = "energylens") -> dict[str, np.ndarray]:
    """Variables from a 2-D array whose columns are ``names`` in order (checked as above)."""
    from sklearn.utils.validation import check_array

    a = check_array(arr, dtype=np.float64, ensure_all_finite=False)
    if a.shape[1] != len(names):
        raise ValueError(
            f"X has n_features = {a.shape[1]}, but {owner} expects {len(names)} (columns "
            f"{[VARIABLE_COLUMNS.get(v, v) for v in names]}, in this order).")
    V = {v: a[:, i] for i, v in enumerate(names)}
    check_variables(V, np.arange(len(a)), owner)
    return V
