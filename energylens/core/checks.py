"""Checks of single table columns, with errors that name the column, the rows and the values.

The lowest layer of the package's input checks: every module that reads a column a user
gave (the variable mapper, the batch rules, the models' own columns) reports a bad value
the same way: the owner, the column, how many rows, the first rows (the table's own index
labels) and their values as given.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["plain", "missing_mask", "check_positive_column", "measured_column", "flag_column",
           "TRUE_WORDS", "FALSE_WORDS"]

#: Spellings a flag column may use for set and unset (case and spaces ignored).
TRUE_WORDS: frozenset[str] = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_WORDS: frozenset[str] = frozenset({"false", "f", "no", "n", "0", "0.0"})


def plain(v: object) -> object:
    """A numpy scalar as the Python value it holds (for messages)."""
    return v.item() if isinstance(v, np.generic) else v


def missing_mask(s: pd.Series) -> np.ndarray:
    """Cells that are missing: NaN, None, or a string of only whitespace.

    >>> missing_mask(pd.Series([1.0, None, " ", "x"], dtype=object)).tolist()
    [False, True, True, False]
    """
    m = s.isna().to_numpy(dtype=bool, copy=True)
    dtype = s.dtype
    if pd.api.types.is_object_dtype(dtype):
        blank = np.fromiter((isinstance(v, str) and not v.strip() for v in s.to_numpy()),
                            dtype=bool, count=len(s))
        m = m | blank
    elif pd.api.types.is_string_dtype(dtype):
        m = m | s.str.strip().eq("").fillna(False).to_numpy(dtype=bool)
    return m


def _bad_rows(X: pd.DataFrame, col: str, bad: np.ndarray, values=None) -> str:
    first = np.flatnonzero(bad)[:5]
    given = X[col] if col in X.columns else pd.Series(values)
    return (f"{int(bad.sum())} row(s) are not (rows {[plain(X.index[i]) for i in first]}, "
            f"values {[plain(given.iloc[i]) for i in first]})")


def check_positive_column(values: np.ndarray, X: pd.DataFrame, col: str, owner: str) -> None:
    """``ValueError`` naming ``owner``, the column, the first rows (``X``'s index) and their
    values as given, where ``values`` (``X[col]`` read as numbers) is not a finite number > 0.

    Examples
    --------
    >>> X = pd.DataFrame({"batch_size": [8, 0, "abc"]}, index=[10, 11, 12])
    >>> check_positive_column(np.array([8.0, 0.0, np.nan]), X, "batch_size", "owner")
    Traceback (most recent call last):
    ...
    ValueError: owner: column 'batch_size' must be a number > 0; 2 row(s) are not (rows [11, 12], values [0, 'abc']).
    """
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        raise ValueError(f"{owner}: column {col!r} must be a number > 0; "
                         f"{_bad_rows(X, col, bad, values)}.")


def measured_column(X: pd.DataFrame, col: str, owner: str) -> np.ndarray | None:
    """An optional measured column (``running_batch``, ``n_requests``, ...) as floats.

    None where the table has no such column. A missing value (empty, NaN, None) is NaN: the
    row did not measure it, and whoever reads the column falls back for that row. A value
    that is given must be a finite number > 0.

    Raises
    ------
    ValueError
        Naming ``owner``, the column, the rows and their values, where a given value is not
        a number, not finite or not positive.

    Examples
    --------
    >>> X = pd.DataFrame({"running_batch": [7.5, None, " ", -2, "n/a"]})
    >>> measured_column(X.iloc[:3], "running_batch", "owner").tolist()
    [7.5, nan, nan]
    >>> measured_column(X, "running_batch", "owner")
    Traceback (most recent call last):
    ...
    ValueError: owner: column 'running_batch' must be a number > 0 where it is given (leave a cell empty where it was not measured); 2 row(s) are not (rows [3, 4], values [-2, 'n/a']).
    """
    if col not in X.columns:
        return None
    s = X[col]
    if s.dtype.kind in "fiu":
        values = s.to_numpy(dtype=float)
        given = ~np.isnan(values)
    else:
        values = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        given = ~missing_mask(s)
    bad = given & ~(np.isfinite(values) & (values > 0))
    if bad.any():
        raise ValueError(f"{owner}: column {col!r} must be a number > 0 where it is given "
                         f"(leave a cell empty where it was not measured); "
                         f"{_bad_rows(X, col, bad)}.")
    return values


def flag_column(X: pd.DataFrame, col: str, owner: str, *, missing: bool | None = False
                ) -> np.ndarray:
    """A yes/no column (such as ``input_tokens_assumed``) as booleans; all ``missing`` where
    absent.

    Booleans, 0/1 and the words of :data:`TRUE_WORDS` / :data:`FALSE_WORDS` (any case) are
    read; a missing value is ``missing`` (False: not flagged), or an error where ``missing``
    is None (a flag every row must state, such as ``feasible``).

    Raises
    ------
    ValueError
        Naming ``owner``, the column, the rows and their values, for any other value.

    Examples
    --------
    >>> X = pd.DataFrame({"input_tokens_assumed": [True, "False", "yes", None, 0, ""]})
    >>> flag_column(X, "input_tokens_assumed", "owner").tolist()
    [True, False, True, False, False, False]
    >>> flag_column(pd.DataFrame({"f": [None]}), "f", "owner", missing=None)
    Traceback (most recent call last):
    ...
    ValueError: owner: column 'f' must be a yes/no flag (True/False, 1/0, yes/no), in every row; 1 row(s) are not (rows [0], values [None]).
    >>> flag_column(pd.DataFrame({"f": ["maybe"]}), "f", "owner")
    Traceback (most recent call last):
    ...
    ValueError: owner: column 'f' must be a yes/no flag (True/False, 1/0, yes/no); 1 row(s) are not (rows [0], values ['maybe']).
    """
    if col not in X.columns:
        return np.full(len(X), bool(missing))
    s = X[col]
    if s.dtype.kind == "b" and not s.hasnans:
        return s.to_numpy(dtype=bool, copy=True)
    blank = missing_mask(s)
    words = s.astype(str).str.strip().str.lower().to_numpy(dtype=object)
    on = np.isin(words, list(TRUE_WORDS)) & ~blank
    off = np.isin(words, list(FALSE_WORDS)) & ~blank
    bad = ~(on | off | (blank if missing is not None else False))
    if bad.any():
        need = "" if missing is not None else ", in every row"
        raise ValueError(f"{owner}: column {col!r} must be a yes/no flag (True/False, 1/0, "
                         f"yes/no){need}; {_bad_rows(X, col, bad)}.")
    return on | (blank & bool(missing))
