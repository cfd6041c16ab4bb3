"""The canonical profiling table: columns, units, aliases and validation.

One row of a profiling table is one measured serving configuration. Every reader in
energylens ends by calling :func:`validate`, so that the rest of the library can rely on
the columns below, in the units below.

Columns
-------
The table :data:`COLUMNS` lists every canonical column with its dtype, unit, bounds and
meaning; :func:`describe_schema` returns it as a DataFrame.

Headers are matched to canonical names case-insensitively, ignoring punctuation, through
:data:`ALIASES` (``TP``, ``tensor_parallel``, ``prompt_tokens``, ``max_num_seqs`` ...).
A unit suffix converts the values: ``energy_kwh``, ``Energy (Wh)``, ``latency_ms``,
``run_energy_mj`` are read into ``energy_j``, ``latency_s`` and ``run_energy_j``.

Batch columns
-------------
``batch_size`` is what the source calls its batch, per replica; ``batch_kind`` says what it
means: ``"running"`` (the default) for a measured mean concurrency, ``"cap"`` for a
configured maximum. A header that names a cap (``max_num_seqs``, ``max_batch_size``,
``Max BS (reqs)`` ...) is read into ``batch_size`` and sets ``batch_kind="cap"`` unless the
table has its own ``batch_kind`` column. ``running_batch`` (``Avg BS (reqs)``) is the
measured mean concurrency per replica and is kept beside ``batch_size``, never merged
into it. Rules:

* a table with both ``batch_size`` and ``running_batch`` keeps both as given; models that
  need the real concurrency read ``running_batch`` first;
* where ``batch_kind == "cap"``, ``running_batch`` may not exceed ``batch_size`` (a
  concurrency per replica above the cap is a whole-run figure or a mislabelled column),
  which is a :class:`~energylens.SchemaError`;
* a table with two headers for one canonical column (``tp`` and ``TP``, ``batch_size`` and
  ``max_num_seqs``, ``energy_j`` and ``energy_kwh``) is rejected, naming both headers:
  nothing is dropped silently. Rename one (a measured concurrency to ``running_batch``), or
  map the headers explicitly with ``columns=``.

Derived columns (``n_gpus``, ``energy_per_output_token_j``) are always recomputed; values a
source gives for them are replaced.
"""

from __future__ import annotations

import difflib
import gzip
import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from .exceptions import ImplausibleValueWarning, SchemaError

__all__ = [
    "Column",
    "COLUMNS",
    "ALIASES",
    "UNITS",
    "CONFIG_COLUMNS",
    "REQUIRED_COLUMNS",
    "describe_schema",
    "read_profiles",
    "read_candidates",
    "validate",
    "config_key",
]


@dataclass(frozen=True)
class Column:
    """One canonical column.

    Attributes
    ----------
    name : str
        Canonical name (units live in the name: ``_j`` joules, ``_s`` seconds, ``_w`` watts).
    dtype : {"str", "int", "float", "bool"}
        Value type after validation.
    unit : str
        Physical unit, ``""`` for labels and counts.
    meaning : str
        One sentence on what the column holds.
    role : {"config", "measurement", "derived"}
        Configuration variable, measured quantity, or computed by :func:`validate`.
    required : bool
        Whether a table must provide it (``energy_j`` may instead be derived).
    lower : float or None
        Lower bound; ``lower_strict`` says whether it is ``>`` or ``>=``.
    integer : bool
        Whether values must be whole numbers.
    default : object
        Value filled in when the column is absent (``None``: left absent).
    """

    name: str
    dtype: Literal["str", "int", "float", "bool"]
    unit: str
    meaning: str
    role: Literal["config", "measurement", "derived"] = "config"
    required: bool = False
    lower: float | None = None
    lower_strict: bool = True
    integer: bool = False
    default: Any = None


_C = Column
COLUMNS: dict[str, Column] = {
    c.name: c
    for c in [
        # ---- configuration -------------------------------------------------
        _C("model", "str", "", "Model name, e.g. 'meta-llama/Llama-3.1-8B'.", required=True),
        _C("gpu", "str", "", "Accelerator name, e.g. 'H100-SXM'.", required=True),
        _C("tp", "int", "", "Tensor-parallel degree (GPUs per layer).", required=True,
           lower=1, lower_strict=False, integer=True),
        _C("pp", "int", "", "Pipeline-parallel degree (stages).", lower=1, lower_strict=False,
           integer=True, default=1),
        _C("dp", "int", "", "Data-parallel replicas; GPUs of a configuration = tp * pp * dp.",
           lower=1, lower_strict=False, integer=True, default=1),
        _C("ep", "int", "", "Expert-parallel degree, where the source records it.",
           lower=1, lower_strict=False, integer=True),
        _C("batch_size", "float", "requests",
           "Mean concurrent requests per replica, or the batch cap (max_num_seqs) where that is "
           "all the source gives; `batch_kind` says which.", required=True, lower=0),
        _C("batch_kind", "str", "",
           "'running' when batch_size is the measured mean concurrency, 'cap' when it is the "
           "configured maximum.", default="running"),
        _C("input_tokens", "float", "tokens", "Mean prompt length per request.", required=True,
           lower=0),
        _C("output_tokens", "float", "tokens", "Mean generated tokens per request.",
           required=True, lower=0),
        _C("precision", "str", "", "Numeric precision of weights, e.g. 'bf16', 'fp8'."),
        _C("workload", "str", "", "Scenario label (dataset or task), e.g. 'chat'."),
        _C("params_b", "float", "1e9 parameters", "Model parameters in billions.", lower=0),
        _C("active_params_b", "float", "1e9 parameters",
           "Parameters active per token in billions (mixture-of-experts models).", lower=0),
        _C("source", "str", "", "Where the row comes from (reader or file)."),
        # ---- measurements --------------------------------------------------
        _C("energy_j", "float", "J", "Energy per request (all GPUs of the configuration).",
           role="measurement", required=True, lower=0),
        _C("prefill_energy_j", "float", "J", "Prefill part of the energy per request.",
           role="measurement", lower=0, lower_strict=False),
        _C("decode_energy_j", "float", "J", "Decode part of the energy per request.",
           role="measurement", lower=0, lower_strict=False),
        _C("latency_s", "float", "s", "Mean end-to-end latency per request.",
           role="measurement", lower=0),
        _C("ttft_s", "float", "s", "Mean time to first token.", role="measurement", lower=0),
        _C("tpot_s", "float", "s", "Mean time per output token (decode step time).",
           role="measurement", lower=0),
        _C("power_w", "float", "W", "Mean power of all GPUs of the configuration.",
           role="measurement", lower=0),
        _C("n_requests", "float", "requests",
           "Requests served in the whole run (all replicas); per replica: n_requests / dp.",
           role="measurement", lower=0),
        _C("run_energy_j", "float", "J", "Energy of the whole run (all requests, all GPUs).",
           role="measurement", lower=0),
        _C("running_batch", "float", "requests",
           "Measured mean concurrency per replica (e.g. ML.ENERGY's 'Avg BS (reqs)').",
           role="measurement", lower=0),
        _C("duration_s", "float", "s", "Wall-clock time of the run.", role="measurement",
           lower=0),
        # ---- derived -------------------------------------------------------
        _C("n_gpus", "int", "", "GPUs of the configuration: tp * pp * dp.", role="derived"),
        _C("energy_per_output_token_j", "float", "J/token", "energy_j / output_tokens.",
           role="derived"),
    ]
}
del _C

REQUIRED_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS.values() if c.required)
#: Columns that identify one configuration (used for duplicate detection and scenarios).
#: ``n_requests`` is part of it: runs over different request pools are different
#: experiments (a small pool leaves the batch cap under-used).
CONFIG_COLUMNS: tuple[str, ...] = (
    "source", "model", "gpu", "precision", "workload", "tp", "pp", "dp", "ep", "batch_size",
    "batch_kind", "input_tokens", "output_tokens", "n_requests",
)

#: Unit factors to the canonical unit, per dimension. Keys are lower-case unit spellings.
UNITS: dict[str, dict[str, float]] = {
    "energy": {"j": 1.0, "joule": 1.0, "joules": 1.0, "mj": 1e-3, "kj": 1e3, "wh": 3600.0,
               "kwh": 3.6e6, "uj": 1e-6},
    "time": {"s": 1.0, "sec": 1.0, "secs": 1.0, "seconds": 1.0, "ms": 1e-3, "us": 1e-6,
             "min": 60.0, "h": 3600.0},
    "power": {"w": 1.0, "watt": 1.0, "watts": 1.0, "mw": 1e-3, "kw": 1e3},
}
_DIMENSION = {"_j": "energy", "_s": "time", "_w": "power"}

# Alias spellings (normalised: lower case, non-alphanumerics -> "_") -> canonical name.
# Names with a unit suffix are listed by stem (e.g. "energy" -> energy_j), and the unit is
# then read from the header's own suffix.
_ALIAS_LIST: dict[str, list[str]] = {
    "model": ["model_name", "llm", "model_id", "checkpoint"],
    "gpu": ["gpu_name", "gpu_type", "device", "hardware", "accelerator", "system"],
    "tp": ["tensor_parallel", "tensor_parallel_size", "tp_size", "tp_degree", "tensor_parallelism"],
    "pp": ["pipeline_parallel", "pipeline_parallel_size", "pp_size", "pp_degree",
           "pipeline_parallelism"],
    "dp": ["data_parallel", "data_parallel_size", "dp_size", "replicas", "num_replicas"],
    "ep": ["expert_parallel", "expert_parallel_size", "ep_size"],
    "batch_size": ["batch", "bs", "concurrency", "avg_batch_size", "mean_batch_size"],
    "input_tokens": ["prompt_tokens", "input_len", "input_length", "prompt_len", "prompt_length",
                     "n_input_tokens", "num_input_tokens", "number_of_input_tokens", "isl",
                     "prompt_size"],
    "output_tokens": ["completion_tokens", "output_len", "output_length", "generated_tokens",
                      "n_output_tokens", "num_output_tokens", "number_of_output_tokens", "osl",
                      "avg_output_tokens", "token_size"],
    "params_b": ["parameters_b", "params_billion", "n_params_b", "model_size_b"],
    "active_params_b": ["active_parameters_b"],
    "energy_j": ["energy", "energy_per_request", "energy_req", "energy_per_req",
                 "request_energy", "gpu_energy_per_request"],
    "prefill_energy_j": ["prefill_energy", "prompt_energy"],
    "decode_energy_j": ["decode_energy", "generation_energy"],
    "latency_s": ["latency", "e2e_latency", "e2e_time", "end_to_end_latency", "request_latency"],
    "ttft_s": ["ttft", "time_to_first_token", "prompt_time"],
    "tpot_s": ["tpot", "time_per_output_token", "avg_tpot", "itl", "token_time"],
    "power_w": ["power", "avg_power", "gpu_power", "mean_power"],
    "n_requests": ["num_requests", "requests", "n_reqs", "num_prompts", "responses"],
    "run_energy_j": ["run_energy", "total_energy", "gpu_energy"],
    "running_batch": ["avg_bs_reqs", "avg_bs", "running_batch_size", "mean_running_batch"],
    "duration_s": ["duration", "wall_time", "run_time", "elapsed"],
}
#: Aliases that mean the configured batch cap rather than the measured concurrency.
_CAP_ALIASES = ("max_num_seqs", "max_batch_size", "batch_cap", "max_bs", "max_bs_reqs")

# Whole-number columns are parallel degrees (GPU counts). A bound keeps n_gpus = tp*pp*dp
# exact in int64 and catches unit mix-ups; the largest clusters have about 1e5 GPUs.
_MAX_DEGREE = 100_000


def _norm(name: object) -> str:
    s = re.sub(r"[^0-9a-zA-Z]+", "_", str(name).strip().lower())
    return s.strip("_")


def _stem(canonical: str) -> str:
    for suffix in _DIMENSION:
        if canonical.endswith(suffix):
            return canonical[: -len(suffix)]
    return canonical


ALIASES: dict[str, str] = {}
for _canon, _spellings in _ALIAS_LIST.items():
    for _sp in [_canon, _stem(_canon), *_spellings]:
        ALIASES[_norm(_sp)] = _canon
for _sp in _CAP_ALIASES:
    ALIASES[_sp] = "batch_size"


def _resolve_header(header: object) -> tuple[str | None, float, bool]:
    """Map one header to ``(canonical, unit factor, is_cap)``; canonical None if unknown."""
    key = _norm(header)
    if key in COLUMNS:
        return key, 1.0, False
    if key in ALIASES:
        return ALIASES[key], 1.0, key in _CAP_ALIASES
    # "<stem>_<unit>" such as energy_kwh, latency_ms, Energy (Wh), energy_per_req_mj.
    m = re.fullmatch(r"(.+?)_([a-z]+)", key)
    if m:
        stem, unit = m.groups()
        canon = ALIASES.get(stem)
        dim = _DIMENSION.get(canon[-2:]) if canon is not None else None
        if dim is not None and unit in UNITS[dim]:
            return canon, UNITS[dim][unit], False
    return None, 1.0, False


def _unit_factor(canonical: str, unit: str, where: str) -> float:
    dim = _DIMENSION.get(canonical[-2:])
    if dim is None:
        raise SchemaError(
            f"{where}: column '{canonical}' has no physical unit, so units= cannot convert it "
            f"(got unit '{unit}')."
        )
    factor = UNITS[dim].get(_norm(unit))
    if factor is None:
        raise SchemaError(
            f"{where}: unknown {dim} unit '{unit}' for column '{canonical}'; expected one of "
            f"{sorted(UNITS[dim])}."
        )
    return factor


def describe_schema() -> pd.DataFrame:
    """Return the canonical schema as a DataFrame (one row per column).

    Examples
    --------
    >>> import energylens
    >>> energylens.schema.describe_schema().loc["energy_j", "unit"]
    'J'
    """
    rows = []
    for c in COLUMNS.values():
        bound = "" if c.lower is None else (">" if c.lower_strict else ">=") + f" {c.lower:g}"
        rows.append({"column": c.name, "dtype": c.dtype, "unit": c.unit, "bounds": bound,
                     "role": c.role, "required": c.required, "meaning": c.meaning})
    return pd.DataFrame(rows).set_index("column")


def config_key(df: pd.DataFrame) -> list[str]:
    """Columns of ``df`` that identify a configuration (see :data:`CONFIG_COLUMNS`)."""
    return [c for c in CONFIG_COLUMNS if c in df.columns]


# ---------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------
class _Problems:
    """Collects every problem of one table before one SchemaError is raised."""

    def __init__(self, where: str, lines: Sequence[int] | None):
        self.where = where
        self.lines = lines  # source line of each row position, where known
        self.items: list[dict] = []

    def add(self, column: str, rule: str, mask: np.ndarray | None = None,
            values: pd.Series | None = None, detail: str = "", index: pd.Index | None = None):
        rows: list = []
        bad: list = []
        count = 0
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            count = int(mask.sum())
            if count == 0:
                return
            pos = np.flatnonzero(mask)[:5]
            rows = [index[p] for p in pos] if index is not None else pos.tolist()
            if values is not None:
                bad = [_scalar(values.iloc[p]) for p in pos]
        self.items.append({"column": column, "rule": rule, "rows": rows, "values": bad,
                           "count": count, "positions": [] if mask is None else pos.tolist(),
                           "detail": detail})

    def raise_if_any(self):
        if not self.items:
            return
        n = len(self.items)
        lines = [f"Invalid profiling table {self.where}: {n} problem{'s' * (n > 1)}."]
        for p in self.items:
            text = f"  - column '{p['column']}': {p['rule']}"
            if p["count"]:
                shown = ", ".join(
                    f"row {r} (value {v!r})" if p["values"] else f"row {r}"
                    for r, v in zip(p["rows"], p["values"] or [None] * len(p["rows"]))
                )
                more = f" and {p['count'] - len(p['rows'])} more" if p["count"] > 5 else ""
                text += f"; {p['count']} offending row{'s' * (p['count'] > 1)}: {shown}{more}"
                if self.lines is not None:
                    lines_ = ", ".join(str(self.lines[q]) for q in p["positions"])
                    text += f" (file line{'s' * (len(p['positions']) > 1)} {lines_})"
            if p["detail"]:
                text += f". {p['detail']}"
            lines.append(text)
        raise SchemaError("\n".join(lines), problems=self.items)


def _scalar(v: object) -> object:
    """Plain Python value for messages (``2.5`` rather than ``np.float64(2.5)``)."""
    return v.item() if isinstance(v, np.generic) else v


def _to_numeric(s: pd.Series) -> pd.Series:
    """Numeric view of a column; entries that are not numbers become NaN."""
    if pd.api.types.is_bool_dtype(s):
        return pd.Series(np.nan, index=s.index, dtype=float)
    if pd.api.types.is_numeric_dtype(s):
        return pd.to_numeric(s, errors="coerce").astype(float)
    out = pd.to_numeric(s.map(lambda v: v.strip() if isinstance(v, str) else v), errors="coerce")
    # Booleans inside object columns are not numbers.
    is_bool = s.map(lambda v: isinstance(v, (bool, np.bool_)))
    out = out.astype(float)
    out[is_bool.to_numpy(dtype=bool)] = np.nan
    return out


def _missing(s: pd.Series) -> np.ndarray:
    m = np.array(s.isna().to_numpy(dtype=bool), copy=True)
    if s.dtype == object or pd.api.types.is_string_dtype(s):
        m |= s.map(lambda v: isinstance(v, str) and v.strip() == "").to_numpy(dtype=bool)
    return m


def validate(
    df: pd.DataFrame,
    *,
    where: str = "<DataFrame>",
    duplicates: Literal["raise", "mean", "keep"] = "raise",
    line_offset: int | Sequence[int] | None = None,
    measurements: bool = True,
) -> pd.DataFrame:
    """Validate a table whose headers are already canonical; return the clean copy.

    Collects every problem and raises one :class:`~energylens.SchemaError`. Fills
    defaults (``pp = dp = 1``, ``batch_kind = 'running'``), derives ``energy_j`` from
    ``run_energy_j / n_requests`` or ``prefill_energy_j + decode_energy_j`` where it is
    absent, and adds ``n_gpus`` and ``energy_per_output_token_j``.

    Parameters
    ----------
    df : DataFrame
        Table with canonical column names (see :func:`read_profiles` for raw tables).
    where : str
        How to name the table in messages (a file path or ``<DataFrame>``).
    duplicates : {"raise", "mean", "keep"}
        What to do with rows that share a configuration but differ in energy: raise, average
        their numeric measurements, or keep them all (repeated measurements).
    line_offset : int or sequence of int, optional
        Where the rows lie in the source file, for messages: an int is added to a row's
        position (a CSV without blank lines: 2), a sequence gives each row's line.
    measurements : bool, default=True
        False for candidate configurations (see :func:`read_candidates`): energy and the
        ``model`` and ``gpu`` labels are not required, repeated configurations are kept,
        and no energy is derived. Columns that are present are checked as usual.

    Returns
    -------
    DataFrame
        A new, validated table; the input is never modified.

    Raises
    ------
    SchemaError
        With every problem at once: column, up to five rows, rule and bad value.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"model": ["m"], "gpu": ["H100"], "tp": [2], "batch_size": [8],
    ...                    "input_tokens": [512], "output_tokens": [128], "energy_j": [40.0]})
    >>> out = validate(df)
    >>> int(out["n_gpus"].iloc[0]), float(out["energy_per_output_token_j"].iloc[0])
    (2, 0.3125)
    >>> validate(df.assign(tp=0))
    Traceback (most recent call last):
    ...
    energylens.exceptions.SchemaError: Invalid profiling table <DataFrame>: 1 problem.
      - column 'tp': must be >= 1; 1 offending row: row 0 (value 0)
    """
    if duplicates not in ("raise", "mean", "keep"):
        raise ValueError(
            "The 'duplicates' parameter of read_profiles must be a str among "
            f"{{'raise', 'mean', 'keep'}}. Got {duplicates!r} instead."
        )
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"Invalid profiling table {where}: expected a DataFrame, got "
                          f"{type(df).__name__}.")
    if line_offset is None or isinstance(line_offset, (int, np.integer)):
        lines = None if line_offset is None else [int(line_offset) + i for i in range(len(df))]
    else:
        lines = [int(v) for v in line_offset]
        if len(lines) != len(df):
            raise ValueError(f"line_offset holds {len(lines)} line numbers for {len(df)} rows.")
    problems = _Problems(where, lines)
    if len(df.columns) != len(set(map(str, df.columns))):
        dup = sorted({str(c) for c in df.columns if list(map(str, df.columns)).count(str(c)) > 1})
        raise SchemaError(f"Invalid profiling table {where}: column(s) {dup} appear more than "
                          "once (after alias resolution); keep one of each.")
    out = df.copy()
    out.columns = [str(c) for c in out.columns]
    if len(out) == 0:
        raise SchemaError(f"Invalid profiling table {where}: the table is empty (no rows); "
                          "a profiling table needs at least one measured configuration.")
    index = out.index

    # ---- derive energy_j where only totals or phases are given ------------------------
    if measurements and "energy_j" not in out.columns:
        if {"run_energy_j", "n_requests"} <= set(out.columns):
            out["energy_j"] = _to_numeric(out["run_energy_j"]) / _to_numeric(out["n_requests"])
        elif {"prefill_energy_j", "decode_energy_j"} <= set(out.columns):
            out["energy_j"] = (_to_numeric(out["prefill_energy_j"])
                               + _to_numeric(out["decode_energy_j"]))

    # ---- required columns ---------------------------------------------------------------
    present = set(out.columns)
    required = REQUIRED_COLUMNS if measurements else tuple(
        c for c in REQUIRED_COLUMNS if c not in ("model", "gpu", "energy_j"))
    for name in required:
        if name in present:
            continue
        candidates = list(present)
        close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
        close += [c for c in candidates if _resolve_header(c)[0] is None and name in _norm(c)
                  and c not in close]
        hint = f"Did you mean {', '.join(repr(c) for c in close[:3])}?" if close else ""
        if name == "energy_j":
            hint = ("Give energy per request as 'energy_j' (or an alias such as 'energy', "
                    "'energy_kwh'), or the run total 'run_energy_j' with 'n_requests', or "
                    "'prefill_energy_j' with 'decode_energy_j'. " + hint).strip()
        problems.add(name, "required column is missing", detail=hint)

    # ---- defaults -----------------------------------------------------------------------
    for c in COLUMNS.values():
        if c.default is not None and c.name not in out.columns and c.role == "config":
            out[c.name] = c.default

    # ---- per-column type and bound checks -----------------------------------------------
    clean: dict[str, pd.Series] = {}
    for name, col in COLUMNS.items():
        if name not in out.columns or col.role == "derived":
            continue
        s = out[name]
        miss = _missing(s)
        if col.dtype == "str":
            if col.required or name == "batch_kind":
                problems.add(name, "missing value (NaN or empty) where a label is required",
                             miss, s, index=index)
            val = s.astype(object).where(~miss, None)
            val = val.map(lambda v: v if v is None else str(v).strip())
            if name == "batch_kind":
                bad = ~miss & ~val.isin(["running", "cap"]).to_numpy(dtype=bool)
                problems.add(name, "must be 'running' or 'cap'", bad, s, index=index)
            clean[name] = val
            continue
        num = _to_numeric(s)
        not_num = ~miss & num.isna().to_numpy(dtype=bool)
        problems.add(name, "non-numeric value where a number is expected", not_num, s,
                     index=index)
        if col.required or (col.integer and col.default is not None):
            problems.add(name, "missing value (NaN or empty)", miss, s, index=index)
        finite = num.notna().to_numpy(dtype=bool)
        inf = finite & ~np.isfinite(num.to_numpy())
        problems.add(name, "infinite value", inf, s, index=index)
        ok = finite & ~inf
        if col.lower is not None:
            v = np.asarray(num.to_numpy(), dtype=float)
            with np.errstate(invalid="ignore"):
                below = ok & ((v <= col.lower) if col.lower_strict else (v < col.lower))
            rule = f"must be {'>' if col.lower_strict else '>='} {col.lower:g}"
            if name == "energy_j":
                rule += " (zero or negative energy per request)"
            problems.add(name, rule, below, s, index=index)
        if col.integer:
            v = np.asarray(num.to_numpy(), dtype=float)
            with np.errstate(invalid="ignore"):
                frac = ok & (np.abs(v - np.round(v)) > 1e-9)
            problems.add(name, "must be a whole number (a positive integer)", frac, s,
                         index=index)
            with np.errstate(invalid="ignore"):
                huge = ok & ~frac & (np.abs(v) > _MAX_DEGREE)
            problems.add(name, f"implausibly large for a parallel degree (at most {_MAX_DEGREE})",
                         huge, s, index=index)
        clean[name] = num
    if {"running_batch", "batch_size", "batch_kind"} <= clean.keys():
        rb, cap = clean["running_batch"].to_numpy(), clean["batch_size"].to_numpy()
        with np.errstate(invalid="ignore"):
            over = ((clean["batch_kind"] == "cap").to_numpy(dtype=bool)
                    & (rb > cap * (1 + 1e-6)))
        problems.add("running_batch",
                     "must not exceed batch_size where batch_kind is 'cap' (mean concurrency "
                     "per replica above the batch cap)", over, out["running_batch"],
                     index=index,
                     detail="Give running_batch per replica (a whole-run concurrency is dp "
                            "times larger), or set batch_kind='running' if batch_size is not "
                            "a cap.")
    problems.raise_if_any()

    # ---- write back typed columns -------------------------------------------------------
    for name, s in clean.items():
        col = COLUMNS[name]
        if col.dtype == "int":
            if s.isna().any():
                out[name] = s.round().astype("Int64")
            else:
                out[name] = s.round().astype(np.int64)
        elif col.dtype == "float":
            out[name] = s.astype(float)
        else:
            out[name] = s.astype(object)

    # ---- duplicated configurations -------------------------------------------------------
    key = config_key(out)
    if measurements and duplicates != "keep" and len(key) > 0:
        keyframe = out[key].astype(object).where(out[key].notna(), "<NA>")
        dup_mask = keyframe.duplicated(keep=False).to_numpy()
        if dup_mask.any():
            groups = keyframe[dup_mask].apply(tuple, axis=1)
            energies = out.loc[dup_mask, "energy_j"].groupby(groups.to_numpy()).agg(["min", "max"])
            conflicting = energies[~np.isclose(energies["min"], energies["max"], rtol=1e-9)]
            if duplicates == "raise" and len(conflicting):
                bad = groups.isin(set(conflicting.index)).reindex(out.index, fill_value=False)
                problems.add(
                    "energy_j",
                    "duplicated configurations with conflicting energies",
                    bad.to_numpy(dtype=bool), out["energy_j"], index=index,
                    detail=(f"{len(conflicting)} configuration(s) over columns {key} are "
                            "measured more than once. Pass duplicates='mean' to average "
                            "repeats or duplicates='keep' to keep every row."),
                )
                problems.raise_if_any()
            if duplicates == "mean" or not len(conflicting):
                out = _aggregate_duplicates(out, key)

    # ---- derived columns ----------------------------------------------------------------
    out["n_gpus"] = (out["tp"] * out["pp"] * out["dp"]).astype(np.int64)
    ept = np.array([])
    if "energy_j" in out.columns:  # absent only for candidates (measurements=False)
        out["energy_per_output_token_j"] = out["energy_j"] / out["output_tokens"]
        ept = out["energy_per_output_token_j"].to_numpy()
    odd = (ept < 1e-4) | (ept > 1e3)
    if odd.any():
        pos = np.flatnonzero(odd)[:5]
        warnings.warn(
            f"Profiling table {where}: {int(odd.sum())} row(s) have an implausible energy per "
            f"output token (outside 1e-4 to 1e3 J/token), rows {[out.index[p] for p in pos]} "
            f"with values {[float(f'{ept[p]:.3g}') for p in pos]}. This is the signature of a "
            "unit mistake: check that energy is in joules per request (not per run, not Wh).",
            ImplausibleValueWarning,
            stacklevel=3,
        )

    order = [c for c in COLUMNS if c in out.columns]
    extra = [c for c in out.columns if c not in COLUMNS]
    return out[order + extra]


def _aggregate_duplicates(out: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Average numeric measurements over rows sharing a configuration (first label kept)."""
    if not out[key].astype(object).where(out[key].notna(), "<NA>").duplicated().any():
        return out
    filled = out.copy()
    tmp_key = [f"__key_{k}" for k in key]
    for k, t in zip(key, tmp_key):
        filled[t] = filled[k].astype(object).where(filled[k].notna(), "<NA>")
    numeric = [c for c in out.columns
               if c not in key and pd.api.types.is_numeric_dtype(out[c])
               and COLUMNS.get(c, None) is not None and COLUMNS[c].role == "measurement"]
    agg = {c: "mean" for c in numeric}
    agg.update({c: "first" for c in out.columns if c not in numeric and c not in key})
    agg.update({k: "first" for k in key})
    res = filled.groupby(tmp_key, sort=False, dropna=False).agg(agg)
    res = res.reset_index(drop=True)
    for c in out.columns:
        if c in res.columns and pd.api.types.is_integer_dtype(out[c]):
            res[c] = res[c].astype(out[c].dtype)
    return res[list(out.columns)]


# ---------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------
def _open_text(path: Path, errors: str = "strict"):
    """Open a (possibly gzip-compressed) UTF-8 text file for reading."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    return opener(path, "rt", encoding="utf-8", errors=errors)


def _data_lines(path: Path, n_rows: int, *, header: bool) -> list[int] | None:
    """File line (1-based) of each data row: blank lines are skipped, as the parsers do.

    None where the count does not match the parsed rows (quoted line breaks, say), so that
    messages never give a wrong line.
    """
    try:
        with _open_text(path, errors="replace") as fh:
            lines = [i for i, text in enumerate(fh, start=1) if text.strip()]
    except OSError:
        return None
    lines = lines[1:] if header else lines
    return lines if len(lines) == n_rows else None


def _read_json_lines(path: Path) -> tuple[pd.DataFrame, list[int]]:
    """One JSON object a line; values are kept as written (``true`` stays a boolean)."""
    records, lines = [], []
    with _open_text(path) as fh:
        for i, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                rec = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"line {i} is not valid JSON ({exc.msg})") from exc
            if not isinstance(rec, dict):
                raise ValueError(f"line {i} holds a JSON {type(rec).__name__}, not an object")
            records.append(rec)
            lines.append(i)
    return pd.DataFrame.from_records(records), lines


def _read_file(path: Path) -> tuple[pd.DataFrame, list[int] | None]:
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    where = f"'{path}'"
    if not path.exists():
        raise SchemaError(f"Cannot read profiling table {where}: no such file.")
    try:
        if suffix in (".csv", ".csv.gz", ".txt", ".tsv"):
            sep = "\t" if suffix == ".tsv" else ","
            df = pd.read_csv(path, sep=sep)
            return df, _data_lines(path, len(df), header=True)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path), None
        if suffix in (".jsonl", ".ndjson", ".jsonl.gz"):
            return _read_json_lines(path)
        if suffix == ".json":
            try:
                return _read_json_lines(path)
            except ValueError:
                return pd.read_json(path), None
    except (ValueError, OSError, UnicodeDecodeError, ImportError) as exc:
        if isinstance(exc, pd.errors.EmptyDataError):
            raise SchemaError(f"Invalid profiling table {where}: the file is empty (no header, "
                              "no rows).") from exc
        raise SchemaError(f"Cannot parse profiling table {where} as {suffix or 'text'}: "
                          f"{exc}") from exc
    raise SchemaError(f"Cannot read profiling table {where}: unknown file type '{suffix}'; "
                      "expected .csv, .tsv, .parquet, .jsonl or .json.")


def read_profiles(
    source: str | os.PathLike | pd.DataFrame,
    *,
    columns: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
    duplicates: Literal["raise", "mean", "keep"] = "raise",
) -> pd.DataFrame:
    """Read a profiling table into the canonical, validated form.

    Parameters
    ----------
    source : path or DataFrame
        A CSV (``.csv``, ``.tsv``), parquet or JSON-lines file, or a DataFrame (which is
        never modified in place).
    columns : mapping, optional
        Explicit header -> canonical name mapping for headers the aliases do not know,
        e.g. ``{"E_total": "energy_j"}``.
    units : mapping, optional
        Unit of a column in the source, keyed by header or canonical name, e.g.
        ``{"energy_j": "kWh", "latency": "ms"}``; overrides a unit read from a suffix.
    duplicates : {"raise", "mean", "keep"}
        Rows with the same configuration and different energies: raise (default), average
        them, or keep them as repeated measurements.

    Returns
    -------
    DataFrame
        Canonical columns in schema order, then any extra columns of the source (kept
        under their own names).

    Notes
    -----
    Headers are resolved case-insensitively through :data:`ALIASES` and unit suffixes
    (``Energy (Wh)``, ``Latency (ms)``, ``energy_per_req_mj``); two headers that resolve to
    one canonical column are an error, never a silent choice. A batch-cap header such as
    ``max_num_seqs`` sets ``batch_kind="cap"``; ``running_batch`` is kept beside
    ``batch_size`` and may not exceed a cap (see the module docstring). Messages about a
    CSV or JSON-lines file give each offending row's line in the file.

    Raises
    ------
    SchemaError
        With every problem at once: file, column, up to five rows, rule and bad value.

    Examples
    --------
    >>> import pandas as pd, energylens
    >>> raw = pd.DataFrame({"model": ["m"], "gpu": ["H100"], "TP": [2], "batch": [8],
    ...                     "prompt_tokens": [512], "output_tokens": [128],
    ...                     "energy_kwh": [1e-5]})
    >>> float(energylens.read_profiles(raw)["energy_j"].iloc[0])
    36.0
    """
    df, where, line_offset = _canonical_frame(source, columns, units, "read_profiles")
    return validate(df, where=where, duplicates=duplicates, line_offset=line_offset)


def read_candidates(
    source: str | os.PathLike | pd.DataFrame,
    *,
    columns: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Read candidate configurations (a table without measurements) into canonical form.

    Headers, aliases, unit suffixes and ``columns=``/``units=`` work as in
    :func:`read_profiles`, and every column present is checked against the schema; only
    ``tp``, ``batch_size``, ``input_tokens`` and ``output_tokens`` are required (``pp`` and
    ``dp`` default to 1). Energy columns, when present, are checked but not required, and
    repeated configurations are kept.

    Raises
    ------
    SchemaError
        With every problem at once: file, column, up to five rows, rule and bad value.

    Examples
    --------
    >>> import pandas as pd, energylens
    >>> raw = pd.DataFrame({"TP": [1, 2], "max_num_seqs": [64, 64],
    ...                     "prompt_tokens": [512, 512], "output_tokens": [128, 128]})
    >>> c = energylens.read_candidates(raw)
    >>> c[["tp", "pp", "batch_size", "batch_kind", "n_gpus"]].values.tolist()
    [[1, 1, 64.0, 'cap', 1], [2, 1, 64.0, 'cap', 2]]
    """
    df, where, line_offset = _canonical_frame(source, columns, units, "read_candidates")
    return validate(df, where=where, duplicates="keep", line_offset=line_offset,
                    measurements=False)


def _canonical_frame(source, columns, units, caller: str) -> tuple[pd.DataFrame, str, object]:
    """Read ``source`` and map its headers (aliases, unit suffixes, ``columns=``, ``units=``)
    to canonical names, converting units; returns the table, its name and its line map."""
    if isinstance(source, pd.DataFrame):
        raw, where, line_offset = source, "<DataFrame>", None
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        raw, line_offset = _read_file(path)
        where = f"'{path}'"
    else:
        raise TypeError(f"{caller} expects a path or a DataFrame, got "
                        f"{type(source).__name__}.")

    columns = dict(columns or {})
    units = dict(units or {})
    bad_targets = [v for v in columns.values() if v not in COLUMNS]
    if bad_targets:
        raise SchemaError(f"Invalid columns= for {where}: {bad_targets} are not canonical "
                          f"column names; expected names among {list(COLUMNS)}.")
    absent = [k for k in columns if k not in raw.columns]
    if absent:
        raise SchemaError(f"Invalid columns= for {where}: no column {absent} in the table; "
                          f"columns are {list(map(str, raw.columns))}.")

    renamed: dict[str, str] = {}
    factors: dict[str, float] = {}
    cap_columns: set[str] = set()
    seen: dict[str, str] = {}
    for header in raw.columns:
        if header in columns:
            canon, factor, is_cap = columns[header], 1.0, False
        else:
            canon, factor, is_cap = _resolve_header(header)
        if canon is None:
            continue
        if canon in seen:
            hint = ("Drop or rename one of them, or map headers explicitly with "
                    "columns={...}.")
            if canon == "batch_size" and (is_cap or "batch_size" in cap_columns):
                hint = ("One is a batch cap: if the other is the measured mean concurrency, "
                        "rename it to 'running_batch'. " + hint)
            raise SchemaError(
                f"Invalid profiling table {where}: column '{canon}' is given twice, as "
                f"'{seen[canon]}' and '{header}' (columns '{seen[canon]}' and '{header}' both "
                f"mean '{canon}'). {hint}"
            )
        seen[canon] = header
        renamed[header] = canon
        factors[canon] = factor
        if is_cap:
            cap_columns.add(canon)
    for key, unit in units.items():
        canon = renamed.get(key, key if key in COLUMNS else None)
        if canon is None:
            canon, _, _ = _resolve_header(key)
        if canon is None or canon not in factors:
            raise SchemaError(f"Invalid units= for {where}: no column '{key}' in the table; "
                              f"columns are {list(map(str, raw.columns))}.")
        factors[canon] = _unit_factor(canon, unit, f"Invalid units= for {where}")

    df = raw.rename(columns=renamed)  # unknown columns are kept under their own names
    for canon, factor in factors.items():
        if factor != 1.0:
            num = _to_numeric(df[canon])
            if int(num.notna().sum()) == int(df[canon].notna().sum()):
                df[canon] = num * factor
            else:  # keep non-numeric entries as they are, so validation can name them
                df[canon] = df[canon].astype(object).where(num.isna(), num * factor)
    if "batch_size" in cap_columns and "batch_kind" not in df.columns:
        df["batch_kind"] = "cap"
    return df, where, line_offset
