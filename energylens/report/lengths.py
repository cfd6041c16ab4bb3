"""Sweet spots of the report: the SweetSpot length model per configuration whose lengths
were swept.

A group holds every setting but the lengths fixed (the settings
:class:`~energylens.SweetSpotModel` checks, the batch kind and the request pool). The
reported best output length is the model's closed-form optimum at the group's median input
length (:meth:`~energylens.SweetSpotModel.optimum`), the same point the plot marks, with what
kind of optimum it is (determined by the data or not, or none: longer or shorter is better),
its interval and the efficiency there; an optimum outside the measured output lengths is
flagged as an extrapolation, and the best measured output at that input is given beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["SweetSpot", "sweet_spots", "sweep_groups", "caption"]

#: Most groups fitted (the rest are counted in the report).
MAX_GROUPS = 30


@dataclass
class SweetSpot:
    """One fitted length sweep."""

    key: dict
    rows: pd.DataFrame
    model: object
    input_tokens: float
    optimum: float
    extrapolated: bool
    mape: float
    #: The row of :meth:`~energylens.SweetSpotModel.optimum` at ``input_tokens``.
    detail: dict = field(default_factory=dict)


def sweep_groups(df: pd.DataFrame) -> tuple[list[str], list[tuple[tuple, pd.DataFrame]]]:
    """The group columns and the groups whose input and output lengths both vary (three
    values each, eight rows at least)."""
    from ..models.sweetspot import SETTINGS

    cols = [c for c in (*SETTINGS, "batch_kind", "n_requests") if c in df.columns]
    out = []
    for key, g in df.groupby(cols, sort=True, dropna=False):
        if g["input_tokens"].nunique() >= 3 and g["output_tokens"].nunique() >= 3 and len(g) >= 8:
            out.append((key if isinstance(key, tuple) else (key,), g))
    return cols, out


def caption(key: dict) -> str:
    """A group key in words: ``Llama-3.1-8B on H100-SXM, TP 1, batch 32, sweep workload``."""
    def ok(v):
        return v is not None and not (isinstance(v, float) and np.isnan(v))

    parts = []
    if ok(key.get("model")):
        parts.append(str(key["model"]) + (f" on {key['gpu']}" if ok(key.get("gpu")) else ""))
    for c, name in (("tp", "TP"), ("pp", "PP"), ("dp", "DP")):
        if ok(key.get(c)) and (c == "tp" or key[c] != 1):
            parts.append(f"{name} {int(key[c])}")
    if ok(key.get("batch_size")):
        parts.append(f"batch {key['batch_size']:g}" + (" (cap)" if key.get("batch_kind") == "cap"
                                                        else ""))
    if ok(key.get("workload")):
        parts.append(f"{key['workload']} workload")
    if ok(key.get("precision")):
        parts.append(str(key["precision"]))
    if ok(key.get("n_requests")):
        parts.append(f"{key['n_requests']:g} requests")
    return ", ".join(parts)


def _fit(g: pd.DataFrame, cols: list[str], key: tuple) -> SweetSpot:
    from ..models import SweetSpotModel

    m = SweetSpotModel().fit(g)
    measured = np.sort(g["input_tokens"].unique())
    si = float(measured[(len(measured) - 1) // 2])  # the lower median: a measured input
    row = m.optimum(si).iloc[0].to_dict()
    return SweetSpot(dict(zip(cols, key)), g, m, si, float(row["optimal_output_tokens"]),
                     bool(row["extrapolated"]), m.fit_stats_["mape_pct"], row)


def sweet_spots(df: pd.DataFrame, *, show_progress: bool | None = None
                ) -> tuple[list[SweetSpot], pd.DataFrame, int]:
    """``(fits, table, n_groups)``: the fitted sweeps (at most :data:`MAX_GROUPS`), one table
    row per fit, and how many sweep groups the table has."""
    from ..core.progress import progress

    cols, groups = sweep_groups(df)
    fits = [_fit(g, cols, key) for key, g in progress(groups[:MAX_GROUPS], desc="sweet spots",
                                                      unit="fit", enabled=show_progress)]
    # Figures show the first fits: one with an optimum outside the data first, if any.
    fits.sort(key=lambda s: (not (s.extrapolated and np.isfinite(s.optimum)),
                             not np.isfinite(s.optimum)))
    rows = []
    for s in fits:
        at = s.rows[np.isclose(s.rows["input_tokens"], s.input_tokens)]
        at = at if len(at) else s.rows
        best = at.loc[at["energy_per_output_token_j"].idxmin()]
        d = s.detail
        rows.append({"configuration": caption(s.key), "rows": len(s.rows), "MAPE (%)": s.mape,
                     "at input (tokens)": s.input_tokens, "status": d["status"],
                     "optimal output (tokens)": s.optimum,
                     "90% interval low (tokens)": d["optimal_output_lower"],
                     "90% interval high (tokens)": d["optimal_output_upper"],
                     "optimum": d["note"],
                     "tokens/J at optimum": d["tokens_per_joule_at_optimum"],
                     "best measured output (tokens)": float(best["output_tokens"]),
                     "best measured (J/token)": float(best["energy_per_output_token_j"])})
    return fits, pd.DataFrame(rows), len(groups)
