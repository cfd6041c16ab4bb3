"""From a table's own headers to canonical column names, in canonical units.

Headers are matched case-insensitively, ignoring punctuation, through
:data:`~energylens.tables.columns.ALIASES`; a unit suffix (``energy_kwh``,
``Energy (Wh)``, ``latency_ms``, ``run_energy_mj``) converts the values. ``columns=``
maps headers the aliases do not know, ``units=`` gives or overrides a column's unit. A
batch-cap header (``max_num_seqs``) sets ``batch_kind="cap"`` unless the table has its own
``batch_kind``. Two headers that mean one canonical column are an error naming both:
nothing is dropped silently.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping

import pandas as pd

from .columns import ALIASES, CAP_ALIASES, COLUMNS, DIMENSION, UNITS, normalise_header
from .problems import file_error
from .values import to_numeric

__all__ = ["resolve_header", "unit_factor", "canonical_frame"]


def resolve_header(header: object) -> tuple[str | None, float, bool]:
    """Map one header to ``(canonical, unit factor, is_cap)``; canonical None if unknown.

    Examples
    --------
    >>> resolve_header("Energy (Wh)")
    ('energy_j', 3600.0, False)
    >>> resolve_header("max_num_seqs")
    ('batch_size', 1.0, True)
    """
    key = normalise_header(header)
    if key in COLUMNS:
        return key, 1.0, False
    if key in ALIASES:
        return ALIASES[key], 1.0, key in CAP_ALIASES
    # "<stem>_<unit>" such as energy_kwh, latency_ms, Energy (Wh), energy_per_req_mj.
    m = re.fullmatch(r"(.+?)_([a-z]+)", key)
    if m:
        stem, unit = m.groups()
        canon = ALIASES.get(stem)
        dim = DIMENSION.get(canon[-2:]) if canon is not None else None
        if dim is not None and unit in UNITS[dim]:
            return canon, UNITS[dim][unit], False
    return None, 1.0, False


def unit_factor(canonical: str, unit: str, where: str) -> float:
    """Factor from ``unit`` to the canonical unit of ``canonical`` (an error if none)."""
    dim = DIMENSION.get(canonical[-2:])
    if dim is None:
        raise file_error(where, f"column '{canonical}' has no physical unit, so units= cannot "
                                f"convert it (got unit '{unit}')", code="option")
    factor = UNITS[dim].get(normalise_header(unit))
    if factor is None:
        raise file_error(where, f"unknown {dim} unit '{unit}' for column '{canonical}'; "
                                f"expected one of {sorted(UNITS[dim])}", code="option")
    return factor


def _check_options(raw: pd.DataFrame, where: str, columns: dict) -> None:
    bad_targets = [v for v in columns.values() if v not in COLUMNS]
    if bad_targets:
        raise file_error(where, f"invalid columns=: {bad_targets} are not canonical column "
                                f"names; expected names among {list(COLUMNS)}", code="option")
    absent = [k for k in columns if k not in raw.columns]
    if absent:
        raise file_error(where, f"invalid columns=: no column {absent} in the table; columns "
                                f"are {list(map(str, raw.columns))}", code="option")
    counts = Counter(map(str, raw.columns))
    repeated = sorted(c for c, n in counts.items() if n > 1)
    if repeated:
        raise file_error(where, f"the header names {repeated} more than once; every column "
                                "needs its own name", code="duplicate_header",
                         detail="Rename or drop the repeated columns.")


def _map_headers(raw: pd.DataFrame, where: str, columns: dict):
    renamed: dict[object, str] = {}
    factors: dict[str, float] = {}
    cap_columns: set[str] = set()
    seen: dict[str, object] = {}
    for header in raw.columns:
        if header in columns:
            canon, factor, is_cap = columns[header], 1.0, False
        else:
            canon, factor, is_cap = resolve_header(header)
        if canon is None:
            continue
        if canon in seen:
            hint = "Drop or rename one of them, or map headers explicitly with columns={...}."
            if canon == "batch_size" and (is_cap or "batch_size" in cap_columns):
                hint = ("One is a batch cap: if the other is the measured mean concurrency, "
                        "rename it to 'running_batch'. " + hint)
            raise file_error(where, f"given twice, as '{seen[canon]}' and '{header}' (columns "
                                    f"'{seen[canon]}' and '{header}' both mean '{canon}')",
                             code="header_collision", column=canon, detail=hint)
        seen[canon] = header
        renamed[header] = canon
        factors[canon] = factor
        if is_cap:
            cap_columns.add(canon)
    return renamed, factors, cap_columns


def canonical_frame(raw: pd.DataFrame, where: str, columns: Mapping[str, str] | None = None,
                    units: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Rename ``raw``'s headers to canonical names and convert units; ``raw`` is unchanged.

    Unknown headers are kept under their own names.

    Raises
    ------
    SchemaError
        For a repeated header, two headers meaning one column, or a bad ``columns=`` or
        ``units=``.
    """
    columns = dict(columns or {})
    units = dict(units or {})
    _check_options(raw, where, columns)
    renamed, factors, cap_columns = _map_headers(raw, where, columns)
    for key, unit in units.items():
        canon = renamed.get(key, key if key in COLUMNS else None)
        if canon is None:
            canon, _, _ = resolve_header(key)
        if canon is None or canon not in factors:
            raise file_error(where, f"invalid units=: no column '{key}' in the table; "
                                    f"columns are {list(map(str, raw.columns))}", code="option")
        factors[canon] = unit_factor(canon, unit, where)

    df = raw.rename(columns=renamed) if renamed else raw.copy(deep=False)
    for canon, factor in factors.items():
        if factor == 1.0:
            continue
        num = to_numeric(df[canon])
        numeric = ~pd.isna(num)
        if int(numeric.sum()) == int(df[canon].notna().sum()):
            df[canon] = num * factor
        else:  # keep non-numeric entries as they are, so validation can name them
            df[canon] = df[canon].astype(object).where(~numeric, pd.Series(num * factor,
                                                                             index=df.index))
    if "batch_size" in cap_columns and "batch_kind" not in df.columns:
        df["batch_kind"] = "cap"
    return df
