"""Catalogue rows a user registers: read, and checked before anything is registered."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ...exceptions import CatalogueError

__all__ = ["GPU_NUMERIC", "MODEL_NUMERIC", "check_order"]

#: Numeric columns of the GPU and model tables (counts from ``layers`` on are integers).
GPU_NUMERIC = ("memory_gb", "memory_bw_bytes_s", "bf16_flop_s", "fp16_flop_s", "fp8_flop_s",
               "tdp_w", "link_bw_bytes_s", "idle_w", "link_latency_s")
MODEL_NUMERIC = ("params_b", "active_params_b", "layers", "attn_layers", "hidden",
                 "intermediate", "heads", "kv_heads", "head_dim", "kv_dim", "vocab", "experts",
                 "active_experts", "full_attn_layers", "state_values")
_TEXT = ("aliases", "vendor", "interconnect", "assumed", "source", "note", "hf_id",
         "architecture", "precision")


def _to_float(v) -> float | None:
    """A number, NaN for an empty cell, None for anything else."""
    if v is None or (isinstance(v, str) and not v.strip()):
        return float("nan")
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


#: Columns whose values must be > 0 where given: a GPU without memory, bandwidth or
#: throughput, or a model without layers or heads, divides by zero downstream.
_POSITIVE = frozenset({
    "memory_gb", "memory_bw_bytes_s", "bf16_flop_s", "fp16_flop_s", "fp8_flop_s", "tdp_w",
    "link_bw_bytes_s", "params_b", "active_params_b", "layers", "attn_layers", "hidden",
    "intermediate", "heads", "kv_heads", "head_dim", "kv_dim", "vocab", "experts",
    "active_experts"})
#: Pairs of columns of one row: the first may not exceed the second (strictly below where
#: True): idle power is below the TDP, a part is at most its whole.
_ORDERED = {
    "GPU": (("idle_w", "tdp_w", True),),
    "model": (("kv_heads", "heads", False), ("active_params_b", "params_b", False),
              ("attn_layers", "layers", False), ("full_attn_layers", "layers", False),
              ("active_experts", "experts", False)),
}


def _check_numeric(df: pd.DataFrame, c: str, lines: bool, problems: list[str]) -> None:
    vals = [_to_float(v) for v in df[c]]
    positive = c in _POSITIVE
    bad = [i for i, v in enumerate(vals) if v is None or np.isinf(v)
           or (v <= 0 if positive else v < 0)
           or (c in MODEL_NUMERIC[2:] and v == v and v != int(v))]
    if bad:
        kind = ("integers >= 1" if c in _POSITIVE else "integers >= 0") \
            if c in MODEL_NUMERIC[2:] else ("numbers > 0" if c in _POSITIVE else "numbers >= 0")
        at = f"lines {[i + 2 for i in bad[:5]]}" if lines else f"rows {bad[:5]}"
        shown = [v.item() if isinstance(v, np.generic) else v for v in df[c].iloc[bad[:5]]]
        problems.append(f"column {c!r}, {at} (values {shown}): "
                        f"expected {kind} or an empty cell")
    df[c] = np.array([np.nan if v is None else v for v in vals], dtype=float)


def _read_rows(rows, kind: str, numeric: tuple[str, ...]) -> pd.DataFrame:
    """Read and check catalogue rows from a CSV path or a DataFrame (all problems at once)."""
    if isinstance(rows, (str, os.PathLike)):
        where = str(rows)
        try:
            df = pd.read_csv(rows, dtype=str, keep_default_na=False)
        except (OSError, ValueError) as e:
            raise CatalogueError(f"Cannot read {kind} catalogue rows from {where!r}: {e}") from e
    elif isinstance(rows, pd.DataFrame):
        where, df = "<DataFrame>", rows.reset_index(drop=True).copy()
    else:
        raise CatalogueError(f"{kind} catalogue rows must be a DataFrame or a CSV path; got "
                             f"{type(rows).__name__}.")
    if "name" not in df.columns:
        raise CatalogueError(f"{where}: {kind} catalogue rows need a 'name' column; columns "
                             f"are {list(df.columns)}.")
    problems: list[str] = []
    df["name"] = [v.strip() if isinstance(v, str) else v for v in df["name"]]
    bad = [i for i, v in enumerate(df["name"]) if not isinstance(v, str) or not v]
    if bad:
        problems.append(f"column 'name', rows {bad[:5]}: expected a non-empty name")
    dup = df["name"][df["name"].duplicated(keep=False)]
    if len(dup):
        problems.append(f"column 'name', rows {list(dup.index[:5])}: repeated {sorted(set(dup))[:5]}")
    for c in df.columns:
        if c in numeric:
            _check_numeric(df, c, where != "<DataFrame>", problems)
        elif c in _TEXT:
            df[c] = ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()
                     for v in df[c]]
        elif c != "name" and not pd.api.types.is_numeric_dtype(df[c]):
            vals = [_to_float(v) for v in df[c]]
            if all(v is not None for v in vals) and not all(np.isnan(v) for v in vals):
                df[c] = np.array(vals, dtype=float)  # a user's numeric column from a CSV
    if problems:
        raise CatalogueError(f"{where}: bad {kind} catalogue rows: " + "; ".join(problems) + ".")
    df.attrs.update(where=where, lines=where != "<DataFrame>")
    return df


def _at(df: pd.DataFrame, rows: list[int]) -> str:
    """Rows of user rows ``df`` as the user sees them: CSV lines, or DataFrame rows."""
    return f"lines {[i + 2 for i in rows]}" if df.attrs.get("lines") else f"rows {rows}"


def check_order(merged: pd.DataFrame, new: pd.DataFrame, kind: str, problems: list[str]) -> None:
    """Values that contradict each other in a row as registered (``merged``: the catalogue
    with ``new`` merged in, so an updated entry counts the values it keeps): idle power at or
    above the TDP, a part larger than its whole."""
    for small, large, strict in _ORDERED[kind]:
        if small not in merged.columns or large not in merged.columns:
            continue
        for i, name in enumerate(new["name"]):
            a, b = merged.at[name, small], merged.at[name, large]
            if pd.notna(a) and pd.notna(b) and (a >= b if strict else a > b):
                problems.append(
                    f"columns {small!r} and {large!r}, {_at(new, [i])} ({name!r}): "
                    f"{small}={a:g} is {'not below' if strict else 'above'} {large}={b:g}")
