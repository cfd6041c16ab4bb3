"""From a table's own headers to canonical column names, in canonical units.

Headers are matched case-insensitively, ignoring punctuation, through
:data:`~energylens.tables.columns.ALIASES`; a unit suffix (``energy_kwh``,
``Energy (Wh)``, ``latency_ms``, ``run_energy_mj``) converts the values, its prefix read by
its case where that changes the meaning (``Energy (MJ)`` megajoules, ``energy_mJ`` and
``energy_mj`` millijoules; ``ENERGY_MJ``, all in capitals, is refused as ambiguous unless
``units=`` names its unit). ``columns=``
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

from ..exceptions import SchemaError
from .columns import (
    ALIASES,
    CAP_ALIASES,
    COLUMNS,
    DIMENSION,
    MEGA,
    normalise_header,
    read_unit,
    unit_spellings,
)
from .problems import file_error
from .values import to_numeric

__all__ = ["resolve_header", "header_column", "unit_factor", "canonical_frame"]


def _unit_token(header: object) -> tuple[str, bool]:
    """The last word of a header in its own case (its unit, where it has one), and whether
    the header is written all in capitals (where the case of a prefix tells nothing)."""
    text = str(header).strip().replace("\u00b5", "u").replace("\u03bc", "u")
    words = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_")
    return words.rsplit("_", 1)[-1], words.isupper()


def _resolve(header: object) -> tuple[str | None, float, bool, str]:
    """:func:`resolve_header`, with the reason its unit is ambiguous ('' where it is not)
    in place of raising; the factor of an ambiguous unit is 1."""
    key = normalise_header(header)
    if key in COLUMNS:
        return key, 1.0, False, ""
    if key in ALIASES:
        return ALIASES[key], 1.0, key in CAP_ALIASES, ""
    # "<stem>_<unit>" such as energy_kwh, latency_ms, Energy (Wh), energy_per_req_mj.
    m = re.fullmatch(r"(.+?)_([a-z]+)", key)
    if m:
        stem, unit = m.groups()
        canon = ALIASES.get(stem)
        dim = DIMENSION.get(canon[-2:]) if canon is not None else None
        if dim is not None:
            token, shouted = _unit_token(header)
            try:
                factor = read_unit(dim, token if token.lower() == unit else unit,
                                   shouted=shouted)
            except ValueError as exc:
                return canon, 1.0, False, str(exc)
            if factor is not None:
                return canon, factor, False, ""
    return None, 1.0, False, ""


def header_column(header: object) -> str | None:
    """The canonical column ``header`` names (None if none), whether or not its unit is
    ambiguous (:func:`resolve_header` raises for that).

    >>> header_column("ENERGY_MJ"), header_column("comment")
    ('energy_j', None)
    """
    return _resolve(header)[0]


def resolve_header(header: object) -> tuple[str | None, float, bool]:
    """Map one header to ``(canonical, unit factor, is_cap)``; canonical None if unknown.

    A unit's prefix is read by its case where that changes the meaning (``Energy (MJ)``
    megajoules, ``energy_mJ`` and ``energy_mj`` millijoules; see
    :func:`~energylens.tables.columns.read_unit`).

    Raises
    ------
    ValueError
        A unit the header leaves ambiguous (``ENERGY_MJ``: mega or milli).

    Examples
    --------
    >>> resolve_header("Energy (Wh)")
    ('energy_j', 3600.0, False)
    >>> resolve_header("max_num_seqs")
    ('batch_size', 1.0, True)
    >>> resolve_header("Energy (MJ)"), resolve_header("energy_mj")
    (('energy_j', 1000000.0, False), ('energy_j', 0.001, False))
    """
    canon, factor, is_cap, ambiguous = _resolve(header)
    if ambiguous:
        raise ValueError(f"header '{header}': {ambiguous}")
    return canon, factor, is_cap


def unit_factor(canonical: str, unit: str, where: str) -> float:
    """Factor from ``unit`` to the canonical unit of ``canonical`` (an error if none)."""
    dim = DIMENSION.get(canonical[-2:])
    if dim is None:
        raise file_error(where, f"column '{canonical}' has no physical unit, so units= cannot "
                                f"convert it (got unit '{unit}')", code="option")
    text = str(unit).strip().replace("\u00b5", "u").replace("\u03bc", "u")
    factor = read_unit(dim, re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_"))
    if factor is None:
        case = " (M is mega and m milli)" if MEGA[dim] else ""
        raise file_error(where, f"unknown {dim} unit '{unit}' for column '{canonical}'; "
                                f"expected one of {unit_spellings(dim)}{case}", code="option")
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
    """``(renamed, factors, cap_columns, ambiguous)``: the canonical name of each header
    mapped, each column's unit factor, the batch-cap columns, and per column whose header
    leaves its unit ambiguous, why."""
    renamed: dict[object, str] = {}
    factors: dict[str, float] = {}
    cap_columns: set[str] = set()
    seen: dict[str, object] = {}
    ambiguous: dict[str, str] = {}
    for header in raw.columns:
        if header in columns:
            canon, factor, is_cap, why = columns[header], 1.0, False, ""
        else:
            canon, factor, is_cap, why = _resolve(header)
        if why:
            ambiguous[canon] = why
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
    return renamed, factors, cap_columns, ambiguous


def _ambiguous_unit(where: str, canon: str, header: object, why: str) -> SchemaError:
    """The error for a header whose unit reads two ways, with the ``units=`` that settle it."""
    dim = DIMENSION[canon[-2:]]
    token = _unit_token(header)[0].lower()
    mega = next(k for k in MEGA[dim] if k.lower() == token)
    milli = "m" + mega[1:]
    return file_error(
        where, f"{why}. Declare it with units={{'{header}': '{mega}'}} or "
               f"units={{'{header}': '{milli}'}}, or write the unit in its own case in the "
               f"header (accepted {dim} units: {', '.join(unit_spellings(dim))}; M is mega, m "
               "milli)", code="ambiguous_unit", column=str(header))


def canonical_frame(raw: pd.DataFrame, where: str, columns: Mapping[str, str] | None = None,
                    units: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Rename ``raw``'s headers to canonical names and convert units; ``raw`` is unchanged.

    Unknown headers are kept under their own names.

    Raises
    ------
    SchemaError
        For a repeated header, two headers meaning one column, a bad ``columns=`` or
        ``units=``, or a unit a header leaves ambiguous (``ENERGY_MJ``: mega or milli) that
        ``units=`` does not name.
    """
    columns = dict(columns or {})
    units = dict(units or {})
    _check_options(raw, where, columns)
    renamed, factors, cap_columns, ambiguous = _map_headers(raw, where, columns)
    for key, unit in units.items():
        canon = renamed.get(key, key if key in COLUMNS else None)
        if canon is None:
            canon = _resolve(key)[0]
        if canon is None or canon not in factors:
            raise file_error(where, f"invalid units=: no column '{key}' in the table; "
                                    f"columns are {list(map(str, raw.columns))}", code="option")
        factors[canon] = unit_factor(canon, unit, where)
        ambiguous.pop(canon, None)  # units= settles what the header leaves open
    for canon, why in ambiguous.items():
        header = next(h for h, c in renamed.items() if c == canon)
        raise _ambiguous_unit(where, canon, header, why)

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
