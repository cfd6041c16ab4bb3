"""Validating a table whose headers are canonical: types, bounds, defaults, derivations.

:func:`validate` collects every problem of a table and raises one
:class:`~energylens.SchemaError`; it never modifies its input. Each step is a small
function below: derive ``energy_j`` where only totals or phases are given, check the
required columns, fill defaults, check every column's type and bounds (the sign rule and
the physical range declared in :data:`~energylens.tables.columns.COLUMNS`), check a
running batch against its cap, handle repeated configurations
(:mod:`~energylens.tables.duplicates`), derive ``n_gpus`` and
``energy_per_output_token_j``, and warn once about implausible energies
(:mod:`~energylens.tables.plausibility`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from ..core.batch import RUNNING_OVER_CAP
from ..core.options import check_options
from .columns import COLUMNS, REQUIRED_COLUMNS, Column, normalise_header
from .duplicates import handle_duplicates
from .headers import header_column
from .plausibility import warn_implausible
from .problems import Problems, file_error
from .values import clean_labels, missing_mask, to_numeric

__all__ = ["validate", "DUPLICATES"]

#: What ``duplicates=`` accepts.
DUPLICATES = ("raise", "mean", "keep")
_DECIMAL_COMMA = re.compile(r"^\s*-?\d+,\d+\s*$")
_THOUSANDS = re.compile(r"^\s*-?\d{1,3}(,\d{3})+\s*$")
#: Relative difference above which two statements of one energy (energy_j and its phases,
#: or the run total per request) are an error: a rounding in the source, not a mistake.
ENERGY_RTOL = 0.05


def _line_map(line_offset, n: int):
    if line_offset is None or callable(line_offset):
        return line_offset
    if isinstance(line_offset, (int, np.integer)):
        base = int(line_offset)
        return lambda positions: [base + p for p in positions]
    lines = np.asarray(line_offset, dtype=np.int64)
    if len(lines) != n:
        raise ValueError(f"line_offset holds {len(lines)} line numbers for {n} rows.")
    return lines


def _derive_energy(out: pd.DataFrame) -> str | None:
    """Derive ``energy_j`` where the table lacks it; the source it came from (or None)."""
    if "energy_j" in out.columns:
        return None
    if {"run_energy_j", "n_requests"} <= set(out.columns):
        with np.errstate(divide="ignore", invalid="ignore"):  # a zero count is named later
            out["energy_j"] = to_numeric(out["run_energy_j"]) / to_numeric(out["n_requests"])
        return "run"
    if {"prefill_energy_j", "decode_energy_j"} <= set(out.columns):
        out["energy_j"] = to_numeric(out["prefill_energy_j"]) + to_numeric(out["decode_energy_j"])
        return "phases"
    return None


def _disagree(given: np.ndarray, implied: np.ndarray) -> np.ndarray:
    """Rows where two finite measurements of one energy differ by more than
    :data:`ENERGY_RTOL` (relative to the given one)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.isfinite(given) & np.isfinite(implied)
                & (np.abs(implied - given) > ENERGY_RTOL * np.abs(given)))


def _check_consistency(out: pd.DataFrame, clean: dict, derived: str | None,
                       problems: Problems) -> None:
    """Columns that state one quantity twice must agree: phases and run totals with the
    energy per request, a given GPU count and expert-parallel degree with the layout."""
    e = clean.get("energy_j")
    if e is not None and derived != "phases" and {"prefill_energy_j", "decode_energy_j"} <= clean.keys():
        implied = clean["prefill_energy_j"] + clean["decode_energy_j"]
        problems.add("energy_j", f"differs from prefill_energy_j + decode_energy_j by more than "
                                 f"{ENERGY_RTOL:.0%}", _disagree(e, implied), out["energy_j"],
                     "The phases are fitted as the two parts of energy_j, so they must add up "
                     "to it: check that all three columns have the same unit and count per "
                     "request, or drop the phase columns (or energy_j, which is then derived "
                     "from them).", code="inconsistent_energy")
    if e is not None and derived != "run" and {"run_energy_j", "n_requests"} <= clean.keys():
        with np.errstate(invalid="ignore", divide="ignore"):
            implied = clean["run_energy_j"] / clean["n_requests"]
        problems.add("energy_j", f"differs from run_energy_j / n_requests by more than "
                                 f"{ENERGY_RTOL:.0%}", _disagree(e, implied), out["energy_j"],
                     "run_energy_j is the energy of the whole run and n_requests the requests "
                     "it served (all replicas): check their units, or drop one of the two "
                     "descriptions.", code="inconsistent_energy")
    if not {"tp", "pp", "dp"} <= clean.keys():
        return
    n = clean["tp"] * clean["pp"] * clean["dp"]
    if "n_gpus" in out.columns:
        given = to_numeric(out["n_gpus"])
        with np.errstate(invalid="ignore"):
            bad = np.isfinite(given) & np.isfinite(n) & (given != n)
        problems.add("n_gpus", "must equal tp * pp * dp (the GPUs of the layout)", bad,
                     out["n_gpus"], "n_gpus is derived from the layout; give the degrees "
                     "that use these GPUs (a data-parallel degree dp for replicas), or drop "
                     "the column.", code="inconsistent_layout")
    if "ep" in clean:
        with np.errstate(invalid="ignore"):
            bad = np.isfinite(clean["ep"]) & np.isfinite(n) & (clean["ep"] > n)
        problems.add("ep", "must not exceed tp * pp * dp (experts are spread over the GPUs "
                           "of the layout)", bad, out["ep"],
                     "An expert-parallel group spans the tensor- and data-parallel GPUs (in "
                     "vLLM, ep = tp * dp): give tp and dp so that they hold ep GPUs.",
                     code="inconsistent_layout")


def _check_required(out: pd.DataFrame, problems: Problems, measurements: bool) -> None:
    present = [str(c) for c in out.columns]
    required = REQUIRED_COLUMNS if measurements else tuple(
        c for c in REQUIRED_COLUMNS if c not in ("model", "gpu", "energy_j"))
    for name in required:
        if name in present:
            continue
        close = difflib.get_close_matches(name, present, n=3, cutoff=0.5)
        close += [c for c in present if header_column(c) is None
                  and name in normalise_header(c) and c not in close]
        hint = f"Did you mean {', '.join(repr(c) for c in close[:3])}?" if close else ""
        if name == "energy_j":
            hint = ("Give energy per request as 'energy_j' (or an alias such as 'energy', "
                    "'energy_kwh'), or the run total 'run_energy_j' with 'n_requests', or "
                    "'prefill_energy_j' with 'decode_energy_j'. " + hint).strip()
        problems.add(name, "required column is missing", detail=hint, code="missing_column")


def _fill_defaults(out: pd.DataFrame) -> None:
    for c in COLUMNS.values():
        if c.default is not None and c.name not in out.columns and c.role == "config":
            out[c.name] = c.default


def _check_label(name: str, col: Column, s: pd.Series, problems: Problems) -> pd.Series:
    val, miss = clean_labels(s)
    if col.required or name == "batch_kind":
        problems.add(name, "missing value (NaN or empty) where a label is required", miss, s,
                     code="missing_value")
    if name == "batch_kind":
        bad = ~miss & ~val.isin(["running", "cap"]).to_numpy(dtype=bool)
        problems.add(name, "must be 'running' or 'cap'", bad, s, code="label")
    return val


def _not_numeric_hint(s: pd.Series, mask: np.ndarray) -> str:
    shown = [s.iloc[p] for p in np.flatnonzero(mask)[:5]]
    if any(isinstance(v, str) and _THOUSANDS.match(v) for v in shown):
        return ("Values such as '1,024' hold a thousands separator or a decimal comma: "
                "write 1024 (or 1.024 if the comma is a decimal point), or export the file "
                "without separators in numbers.")
    if any(isinstance(v, str) and _DECIMAL_COMMA.match(v) for v in shown):
        return ("Values such as '1,5' use a decimal comma: write 1.5 (export the file with "
                "'.' as the decimal separator).")
    return ""


def _check_number(name: str, col: Column, s: pd.Series, problems: Problems) -> np.ndarray:
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iu":  # parsed integers: no NaN
        num = s.to_numpy()
        ok = np.ones(len(num), dtype=bool)
    else:
        miss = missing_mask(s)
        num = to_numeric(s)
        nan = np.isnan(num)
        not_num = ~miss & nan
        if not_num.any():
            problems.add(name, "non-numeric value where a number is expected", not_num, s,
                         _not_numeric_hint(s, not_num), code="not_numeric")
        if col.required or (col.integer and col.default is not None):
            problems.add(name, "missing value (NaN or empty)", miss, s, code="missing_value")
        ok = np.isfinite(num)
        problems.add(name, "infinite value", ~nan & ~ok, s, code="infinite")
    good = ok.copy()
    with np.errstate(invalid="ignore"):
        if col.lower is not None:
            below = ok & ((num <= col.lower) if col.lower_strict else (num < col.lower))
            rule = f"must be {'>' if col.lower_strict else '>='} {col.lower:g}"
            if name == "energy_j":
                rule += " (zero or negative energy per request)"
            problems.add(name, rule, below, s, code="sign")
            good &= ~below
        if col.integer and num.dtype.kind == "f":
            frac = ok & (np.abs(num - np.round(num)) > 1e-9)
            problems.add(name, "must be a whole number (a positive integer)", frac, s,
                         code="integer")
            good &= ~frac
        unit = f" {col.unit}" if col.unit else ""
        if col.floor is not None:
            problems.add(name, f"implausibly small for {col.what} (below {col.floor:g}{unit})",
                         good & (num < col.floor), s, f"Physical range: {col.why}.",
                         code="bound")
        if col.ceiling is not None:
            problems.add(name, f"implausibly large for {col.what} (at most {col.ceiling:g}"
                               f"{unit})", good & (num > col.ceiling), s,
                         f"Physical range: {col.why}.", code="bound")
    return num


def _check_columns(out: pd.DataFrame, problems: Problems) -> dict[str, object]:
    clean: dict[str, object] = {}
    for name, col in COLUMNS.items():
        if name not in out.columns or col.role == "derived":
            continue
        if col.dtype == "str":
            clean[name] = _check_label(name, col, out[name], problems)
        else:
            clean[name] = _check_number(name, col, out[name], problems)
    if {"running_batch", "batch_size", "batch_kind"} <= clean.keys():
        rb, cap = clean["running_batch"], clean["batch_size"]
        with np.errstate(invalid="ignore"):
            over = ((clean["batch_kind"] == "cap").to_numpy(dtype=bool, na_value=False)
                    & (rb > cap * (1 + RUNNING_OVER_CAP)))
        problems.add("running_batch",
                     "must not exceed batch_size where batch_kind is 'cap' (mean concurrency "
                     "per replica above the batch cap)", over, out["running_batch"],
                     "Give running_batch per replica (a whole-run concurrency is dp times "
                     "larger), or set batch_kind='running' if batch_size is not a cap.",
                     code="running_over_cap")
    return clean


def _write_back(out: pd.DataFrame, clean: dict[str, object]) -> None:
    """Store the checked values with the schema's types (untouched where already so)."""
    for name, v in clean.items():
        col, dtype = COLUMNS[name], out[name].dtype
        if col.dtype == "int":
            if dtype == np.int64:
                continue
            if v.dtype.kind in "iu":
                out[name] = v.astype(np.int64)
                continue
            arr = np.round(v)
            out[name] = (pd.array(arr, dtype="Int64") if np.isnan(arr).any()
                         else arr.astype(np.int64))
        elif col.dtype == "float":
            if dtype != np.float64:
                out[name] = np.asarray(v, dtype=float)
        else:
            out[name] = v


def _prepare(df: object, where: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise file_error(where, f"expected a DataFrame, got {type(df).__name__}",
                         code="file.type")
    names = [str(c) for c in df.columns]
    if len(names) != len(set(names)):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise file_error(where, f"column(s) {dup} appear more than once (after alias "
                                "resolution); keep one of each", code="duplicate_header")
    if len(df) == 0:
        raise file_error(where, "the table is empty (no rows); a profiling table needs at "
                                "least one measured configuration", code="empty")
    out = df.copy(deep=False)
    if any(not isinstance(c, str) for c in df.columns):
        out.columns = names
    return out


def validate(
    df: pd.DataFrame,
    *,
    where: str = "<DataFrame>",
    duplicates: Literal["raise", "mean", "keep"] = "raise",
    line_offset: int | Sequence[int] | Callable[[list[int]], list[int] | None] | None = None,
    measurements: bool = True,
) -> pd.DataFrame:
    """Validate a table whose headers are already canonical; return the clean copy.

    Collects every problem and raises one :class:`~energylens.SchemaError`. Fills
    defaults (``pp = dp = 1``, ``batch_kind = 'running'``), derives ``energy_j`` from
    ``run_energy_j / n_requests`` or ``prefill_energy_j + decode_energy_j`` where it is
    absent, and adds ``n_gpus`` and ``energy_per_output_token_j``. Labels come back as
    strings, degrees as integers, quantities as floats; unknown columns are kept as they are.

    Parameters
    ----------
    df : DataFrame
        Table with canonical column names (see :func:`read_profiles` for raw tables).
    where : str
        How to name the table in messages (a file path or ``<DataFrame>``).
    duplicates : {"raise", "mean", "keep"}
        What to do with rows that share a configuration but differ in energy: raise, average
        their numeric measurements, or keep them all (repeated measurements). Rows that
        repeat a configuration with the same energy are merged, with a warning saying how
        many.
    line_offset : int, sequence of int or callable, optional
        Where the rows lie in the source file, for messages: an int is added to a row's
        position (a CSV without blank lines: 2), a sequence gives each row's line, a
        callable maps a list of positions to their lines (or None).
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
    check_options("validate", {"duplicates": [set(DUPLICATES)],
                               "measurements": ["boolean"]},
                  {"duplicates": duplicates, "measurements": measurements})
    out = _prepare(df, where)
    problems = Problems(where, _line_map(line_offset, len(out)), out.index)
    derived = _derive_energy(out) if measurements else None
    _check_required(out, problems, measurements)
    _fill_defaults(out)
    clean = _check_columns(out, problems)
    problems.raise_if_any()
    _check_consistency(out, clean, derived, problems)  # on values that are each valid
    problems.raise_if_any()
    _write_back(out, clean)
    if measurements:
        out = handle_duplicates(out, problems, duplicates)
    out["n_gpus"] = (out["tp"] * out["pp"] * out["dp"]).astype(np.int64)
    if "energy_j" in out.columns:  # absent only for candidates (measurements=False)
        out["energy_per_output_token_j"] = (out["energy_j"].to_numpy(dtype=float)
                                            / out["output_tokens"].to_numpy(dtype=float))
        warn_implausible(out, where)
    order = [c for c in COLUMNS if c in out.columns]
    extra = [c for c in out.columns if c not in COLUMNS]
    return out[order + extra]

