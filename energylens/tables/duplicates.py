"""Rows that repeat a configuration: merge, average, keep, or explain why not.

A configuration is identified by the columns of
:data:`~energylens.tables.columns.CONFIG_COLUMNS` the table has. Rows that share one:

* and agree in energy and in every other non-measurement column: the same measurement
  written twice; merged (their other measurements averaged), with a warning saying how
  many rows were merged;
* but differ in a column the schema does not key on (a ``run_id``, a ``power_cap``, a
  reader's ``file``): maybe different experiments, so averaging is not offered; the error
  names the column that differs;
* and differ in energy only: repeated measurements; with ``duplicates="raise"`` an error
  that suggests ``duplicates="mean"`` (average) or ``duplicates="keep"``.

``duplicates="mean"`` averages rows that differ in an unkeyed column too (repeated runs
told apart by a run id), but leaves that column blank in the merged row, with a warning:
one row's label would misdescribe the average.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..core.progress import logger
from ..exceptions import EnergyLensWarning
from .columns import COLUMNS, config_key
from .problems import Problems

__all__ = ["handle_duplicates"]

_ADVICE = [{"option": "duplicates", "value": "mean", "effect": "to average repeats"},
           {"option": "duplicates", "value": "keep", "effect": "to keep every row"}]


def _varies(sub: pd.DataFrame, gid: np.ndarray, column: str) -> np.ndarray:
    """Per group: whether ``column`` takes more than one value (NaN counts as a value)."""
    s = sub[column]
    try:
        n = s.groupby(gid, sort=True).nunique(dropna=False)
    except TypeError:  # unhashable cells (lists from JSON): compare their text
        n = s.astype(str).groupby(gid, sort=True).nunique(dropna=False)
    return n.to_numpy() > 1


def _repeated_rows(out: pd.DataFrame, key: list[str]) -> np.ndarray:
    """Positions of rows whose configuration appears more than once.

    Row hashes find the candidates in one pass over the key columns; the exact comparison
    then runs on the candidates only, so a hash collision never merges two rows.
    """
    try:
        h = pd.util.hash_pandas_object(out[key], index=False).to_numpy()
    except TypeError:  # unhashable cells (lists from JSON)
        return np.flatnonzero(out[key].astype(str).duplicated(keep=False).to_numpy())
    cand = np.flatnonzero(pd.Series(h).duplicated(keep=False).to_numpy())
    if not len(cand):
        return cand
    exact = out.iloc[cand].duplicated(subset=key, keep=False).to_numpy()
    return cand[exact]


def _merge(out: pd.DataFrame, pos: np.ndarray, gid: np.ndarray, measures: list[str]
           ) -> pd.DataFrame:
    """Keep the first row of each group, with its numeric measurements averaged."""
    first = ~pd.Series(gid).duplicated().to_numpy()
    res = out.copy(deep=False)
    sub = out.iloc[pos]
    numeric = [c for c in measures if pd.api.types.is_numeric_dtype(out[c])]
    if numeric:
        means = sub[numeric].groupby(gid, sort=True).mean()
        for c in numeric:
            col = res[c].to_numpy(dtype=float, copy=True)
            col[pos[first]] = means[c].to_numpy()
            res[c] = col
    keep = np.ones(len(out), dtype=bool)
    keep[pos[~first]] = False
    return res.iloc[keep].reset_index(drop=True)


def handle_duplicates(out: pd.DataFrame, problems: Problems, duplicates: str) -> pd.DataFrame:
    """Apply the ``duplicates=`` policy to a checked table (see the module docstring)."""
    key = config_key(out)
    if duplicates == "keep" or not key or "energy_j" not in out.columns:
        return out
    pos = _repeated_rows(out, key)
    if not len(pos):
        return out
    sub = out.iloc[pos]
    gid = sub.groupby(key, dropna=False, sort=False).ngroup().to_numpy()
    measures = [c for c in out.columns if c in COLUMNS and COLUMNS[c].role == "measurement"
                and c not in key]
    others = [c for c in out.columns if c not in key and c not in measures
              and (c not in COLUMNS or COLUMNS[c].role == "config")]
    n_groups = int(gid.max()) + 1
    if duplicates == "raise":
        varying = {c: v for c in others if (v := _varies(sub, gid, c)).any()}
        if varying:
            names = list(varying)
            bad_groups = np.logical_or.reduce(list(varying.values()))
            mask = np.zeros(len(out), dtype=bool)
            mask[pos[bad_groups[gid]]] = True
            problems.add(
                names[0], f"rows share a configuration but differ in {names}, which "
                          "energylens does not count as part of a configuration", mask,
                out[names[0]],
                f"A configuration is identified by {key}. If {names[0]!r} tells experiments "
                "apart, read them separately (filter the table on it); if it does not matter, "
                "drop the column. Averaging these rows could mix different experiments.",
                code="duplicate_unkeyed")
            problems.raise_if_any()
        e = sub["energy_j"].to_numpy(dtype=float)
        lo = pd.Series(e).groupby(gid, sort=True).min().to_numpy()
        hi = pd.Series(e).groupby(gid, sort=True).max().to_numpy()
        conflicting = ~np.isclose(lo, hi, rtol=1e-9)
        if conflicting.any():
            mask = np.zeros(len(out), dtype=bool)
            mask[pos[conflicting[gid]]] = True
            problems.add("energy_j", "duplicated configurations with conflicting energies",
                         mask, out["energy_j"],
                         f"{int(conflicting.sum())} configuration(s) over columns {key} are "
                         "measured more than once.", code="duplicate_conflict", advice=_ADVICE)
            problems.raise_if_any()
        warnings.warn(
            f"Profiling table {problems.where}: {len(pos)} rows repeat {n_groups} "
            f"configuration(s) with the same energy; merged them into {n_groups} row(s) "
            f"({len(pos) - n_groups} row(s) fewer; other measurements averaged). Pass "
            "duplicates='keep' to keep every row.", EnergyLensWarning, stacklevel=4)
        return _merge(out, pos, gid, measures)
    logger.info("%s: averaged %d rows into %d configuration(s)", problems.where, len(pos),
                n_groups)
    varying = {c: v for c in others if (v := _varies(sub, gid, c)).any()}
    res = _merge(out, pos, gid, measures)
    if varying:
        blank = _blank_varying(res, out, pos, gid, varying)
        warnings.warn(
            f"Profiling table {problems.where}: duplicates='mean' averaged "
            f"{int(np.logical_or.reduce(list(varying.values())).sum())} configuration(s) whose "
            f"rows differ in {list(varying)}, which energylens does not count as part of a "
            f"configuration; {blank} merged row(s) leave these columns blank rather than "
            "show one row's value. If a column tells experiments apart, read them "
            "separately.", EnergyLensWarning, stacklevel=4)
    return res


def _blank_varying(res: pd.DataFrame, out: pd.DataFrame, pos: np.ndarray, gid: np.ndarray,
                   varying: dict[str, np.ndarray]) -> int:
    """Blank, in the merged table ``res``, the columns that differ within a merged group
    (they would otherwise show the first row's value); the number of rows blanked."""
    first = ~pd.Series(gid).duplicated().to_numpy()
    kept = np.ones(len(out), dtype=bool)
    kept[pos[~first]] = False
    at = np.cumsum(kept) - 1  # position in res of each kept row of out
    rows = set()
    for c, v in varying.items():
        idx = at[pos[first][v[gid[first]]]]
        rows.update(idx.tolist())
        if pd.api.types.is_numeric_dtype(res[c]) and not pd.api.types.is_bool_dtype(res[c]):
            col = res[c].to_numpy(dtype=float, copy=True)
            col[idx] = np.nan
        else:
            col = res[c].astype(object).to_numpy(copy=True)
            col[idx] = None
        res[c] = col
    return len(rows)
