"""Cell-level conversions shared by header mapping and validation.

Every function here is vectorised where pandas allows it and falls back to a per-cell
loop only for ``object`` columns (mixed Python values), so that a 1M-row table of
numbers or strings is converted in C.
"""

from __future__ import annotations

import math
from decimal import Decimal
from numbers import Integral, Real

import numpy as np
import pandas as pd

from ..core.checks import missing_mask, plain

__all__ = ["LABEL_DTYPE", "MISSING_TEXT", "to_numeric", "missing_mask", "clean_labels", "plain",
           "show"]

try:  # pandas >= 2.3: the string dtype that pandas 3 uses for text columns
    LABEL_DTYPE: object = pd.StringDtype(na_value=np.nan)
except TypeError:  # pragma: no cover - older pandas
    LABEL_DTYPE = object

#: How a missing cell (a blank label, an unknown number) is shown in text: an en dash.
MISSING_TEXT = "\u2013"


def pa_types_decimal(dtype) -> bool:
    """Whether an Arrow-backed pandas dtype holds decimals (parquet's exact numbers)."""
    import pyarrow as pa

    return pa.types.is_decimal(dtype.pyarrow_dtype)


def _cell_number(v: object) -> float:
    """One cell as a float; NaN where it is not a number (booleans are not numbers)."""
    if v is None or isinstance(v, (bool, np.bool_)):
        return math.nan
    if isinstance(v, Integral):
        try:
            return float(v)
        except OverflowError:  # an integer beyond the float range: infinite
            return math.inf if v > 0 else -math.inf
    if isinstance(v, (Real, Decimal)):  # Decimal: exact decimals from databases and parquet
        return float(v)
    if isinstance(v, str):
        if "_" in v:  # Python reads "1_000"; no spreadsheet or parser of tables does
            return math.nan
        try:
            return float(v.strip())
        except ValueError:
            return math.nan
    return math.nan


def to_numeric(s: pd.Series) -> np.ndarray:
    """Float view of a column; entries that are not numbers become NaN.

    Booleans are not numbers; integers too large for a float become ``inf``; strings are
    stripped before parsing.

    Examples
    --------
    >>> to_numeric(pd.Series([" 2", "x", True, 10**400], dtype=object)).tolist()
    [2.0, nan, nan, inf]
    """
    dtype = s.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return np.full(len(s), np.nan)
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        return s.to_numpy(dtype=float)  # no copy for float64
    if isinstance(dtype, np.dtype) and dtype.kind == "c":  # complex: not a measurement
        return np.full(len(s), np.nan)
    if isinstance(dtype, pd.ArrowDtype) and pa_types_decimal(dtype):
        return s.astype(float).to_numpy(dtype=float, na_value=np.nan)
    if pd.api.types.is_numeric_dtype(dtype):
        return s.to_numpy(dtype=float, na_value=np.nan)
    if not pd.api.types.is_object_dtype(dtype) and pd.api.types.is_string_dtype(dtype):
        return pd.to_numeric(s.str.strip(), errors="coerce").to_numpy(dtype=float,
                                                                     na_value=np.nan)
    return np.fromiter((_cell_number(v) for v in s.to_numpy(dtype=object)), dtype=float,
                       count=len(s))


def clean_labels(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Labels as stripped strings (:data:`LABEL_DTYPE`) and the mask of missing cells.

    Missing cells (NaN, None, blank strings) come back as NaN. A column of strings is
    checked through its distinct values, so a clean 1M-row column is kept as it is.

    Examples
    --------
    >>> labels, miss = clean_labels(pd.Series([" a", "b", None, " "], dtype=object))
    >>> labels.tolist(), miss.tolist()
    (['a', 'b', nan, nan], [False, False, True, True])
    """
    if pd.api.types.is_object_dtype(s.dtype) or not pd.api.types.is_string_dtype(s.dtype):
        miss = missing_mask(s)
        text = s.astype(object).where(~miss, None).astype(LABEL_DTYPE).str.strip()
        return text.astype(LABEL_DTYPE), miss
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    stripped = [u.strip() for u in uniques]
    blank = np.array([not u for u in stripped] + [True], dtype=bool)  # [-1]: NaN
    miss = blank[codes]
    if s.dtype == LABEL_DTYPE and all(a == b for a, b in zip(uniques, stripped)) \
            and not blank[:-1].any():
        return s, miss
    values = pd.array([u if u else None for u in stripped], dtype=LABEL_DTYPE)
    return pd.Series(values.take(codes, allow_fill=True), index=s.index), miss


def show(v: object, width: int = 40) -> str:
    """``repr`` of a value for messages, shortened when long (a 400-digit number).

    Examples
    --------
    >>> show(np.int64(1013)), show(10**400)
    ('1013', '1000000000...0000000000 (401 digits)')
    """
    v = plain(v)
    if isinstance(v, Integral) and not isinstance(v, bool):
        if abs(v).bit_length() > 10_000:  # str() would hit Python's digit limit
            return f"<an integer of about {int(abs(v).bit_length() * 0.30103)} digits>"
        text = str(v)
        digits = len(text.lstrip("-"))
        return text if digits <= width else f"{text[:10]}...{text[-10:]} ({digits} digits)"
    text = repr(v)
    return text if len(text) <= width else f"{text[: width - 3]}..."
