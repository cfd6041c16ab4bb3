"""Checks of the arguments of the evaluation protocols, made before any draw.

Each error names the protocol, the argument or column, and (for values) the first rows by
the table's own index labels and their values as given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.checks import check_positive_column, plain

__all__ = ["check_inputs", "check_target", "check_values_given"]

_DEFAULT_SCENARIO = ("model", "gpu", "workload")


def check_inputs(owner: str, models: Mapping, df: pd.DataFrame, *, scenario: Sequence[str],
                 target: str, columns: dict[str, Sequence[str] | None]) -> None:
    """The arguments a protocol reads, checked before any draw: models to compare, a unique
    index, the target column, and every named column (a scenario column the table lacks is
    an error unless the scenario is the default one, whose absent columns are skipped, as a
    table of one workload has no ``workload``)."""
    if not isinstance(models, Mapping) or not models:
        raise ValueError(f"{owner}: models must be a non-empty dict of name -> estimator; got "
                         f"{models!r}.")
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise ValueError(f"{owner} needs a non-empty table (DataFrame).")
    if not df.index.is_unique:
        raise ValueError("df must have a unique index (use df.reset_index(drop=True)).")
    if target not in df.columns:
        raise ValueError(f"{owner}: target {target!r} is not a column of the table; columns are "
                         f"{list(map(str, df.columns))}.")
    check_target(owner, df, target)
    named = dict(columns)
    if tuple(scenario) != _DEFAULT_SCENARIO:
        named["scenario"] = scenario
    for arg, cols in named.items():
        missing = [c for c in (cols or ()) if c not in df.columns]
        if missing:
            from ..core.options import missing_columns_hint

            raise ValueError(f"{owner}: {arg}={list(cols)} names column(s) {missing} that the "
                             f"table lacks{missing_columns_hint(missing, df.columns)}.")


def check_target(owner: str, df: pd.DataFrame, target: str) -> None:
    """``ValueError`` naming the target column, its first bad rows (index labels) and their
    values as given, where a value is not a finite number > 0 (an energy): the one check of
    :func:`~energylens.core.checks.check_positive_column`, with what to do about it.

    Examples
    --------
    >>> df = pd.DataFrame({"energy_j": [5.0, float("nan"), 0.0]}, index=[10, 11, 12])
    >>> check_target("owner", df, "energy_j")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: owner: column 'energy_j' must be a number > 0; 2 row(s) are not (rows [11, 12], values [nan, 0.0]). Every row ...
    """
    values = pd.to_numeric(df[target], errors="coerce").to_numpy(dtype=float)
    try:
        check_positive_column(values, df, target, owner)
    except ValueError as exc:
        raise ValueError(f"{exc} Every row may be held out, and the metrics divide by the "
                         f"target: drop such rows first, e.g. "
                         f"df[pd.to_numeric(df[{target!r}], errors='coerce') > 0].") from None


def check_values_given(owner: str, df: pd.DataFrame, col: str, what: str) -> None:
    """``ValueError`` naming ``col`` and its first rows without a value, where it has any."""
    missing = df[col].isna().to_numpy()
    if missing.any():
        first = np.flatnonzero(missing)[:5]
        raise ValueError(f"{owner}: {what} reads the column {col!r}, which has "
                         f"{int(missing.sum())} missing value(s) (rows "
                         f"{[plain(df.index[i]) for i in first]}); fill or drop those rows first.")
