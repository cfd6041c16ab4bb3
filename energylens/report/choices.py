"""Choosing configurations: the headline's recommendation per scenario, what to measure
next, the in-sample check of the choice per scenario, and the energy-latency front.

A *scenario* is the rows that serve the same requests (:func:`scenario_columns`, shared by
every section of the report and by its comparison's Top-1): one model, one workload, one
pair of designed lengths, on one GPU, as the evaluation protocols define a selection
scenario (:func:`energylens.evaluation.sample_efficiency`, ``scenario``), with the lengths
that the table sets by design added, so that a request of another length is never a
candidate. Its *candidates* are the configurations measured for it (parallel degrees,
batch, precision). The GPU is the choice instead only where it is the one thing the table
varies for the same requests (one setting per GPU, as in Wilkins et al.). A length measured
per run (the realised mean answer of a leaderboard) is each configuration's own, and
candidates are compared by energy per output token.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..exceptions import ExtrapolationWarning
from .fitting import fitted_groups_mask

__all__ = ["CONFIG_COLUMNS", "scenario_columns", "scenario_words", "designed_lengths",
           "gpu_is_choice", "recommendations", "next_measurements", "best_per_scenario",
           "energy_latency_front"]

#: The latency columns the energy-latency front can use, in order of preference, with what
#: each one is in words and for short (what the report calls the quantity and its limit).
LATENCIES = {"latency_s": ("request latency", "latency"),
             "tpot_s": ("time per output token (TPOT)", "TPOT")}

#: Columns that make one configuration of a scenario.
CONFIG_COLUMNS = ("gpu", "tp", "pp", "dp", "ep", "batch_size", "batch_kind", "precision",
                  "n_requests", "engine")
LENGTHS = ("input_tokens", "output_tokens")


def _served(df: pd.DataFrame) -> list[str]:
    """What is served: model, workload and the designed lengths (those present)."""
    return [c for c in ("model", "workload", *designed_lengths(df)) if c in df.columns]


def gpu_is_choice(df: pd.DataFrame) -> bool:
    """Whether the GPU is what the table chooses between: no GPU has two configurations
    for the same requests, and some requests were served on two or more GPUs.

    Examples
    --------
    >>> hosts = pd.DataFrame({"model": ["m"] * 6, "gpu": ["A", "B", "C"] * 2,
    ...                       "input_tokens": [8.0] * 3 + [64.0] * 3})
    >>> gpu_is_choice(hosts), gpu_is_choice(hosts.assign(gpu="A", tp=[1, 2, 4] * 2))
    (True, False)
    """
    if "gpu" not in df.columns or df.empty:
        return False
    served = _served(df)
    if not served:
        return df["gpu"].nunique() >= 2 and not df["gpu"].duplicated().any()
    if df.groupby([*served, "gpu"], dropna=False).size().max() >= 2:
        return False
    return bool(df.groupby(served, dropna=False)["gpu"].nunique().max() >= 2)


def scenario_columns(df: pd.DataFrame) -> list[str]:
    """The columns whose values make one scenario, the rows that serve the same requests:
    model, GPU (unless it is the choice, :func:`gpu_is_choice`), workload and the designed
    lengths (:func:`designed_lengths`), those present.

    Every section of the report groups by these columns, and its comparison passes them to
    :func:`energylens.evaluation.sample_efficiency` as the scenarios of Top-1 and regret.

    Examples
    --------
    >>> sweep = pd.DataFrame({"model": ["m"] * 9, "gpu": ["g"] * 9, "workload": ["w"] * 9,
    ...                       "tp": [1, 2, 4] * 3, "input_tokens": [64.0] * 9,
    ...                       "output_tokens": [16.0] * 3 + [64.0] * 3 + [256.0] * 3})
    >>> scenario_columns(sweep)
    ['model', 'gpu', 'workload', 'input_tokens', 'output_tokens']
    """
    served = _served(df)
    gpu = ["gpu"] if "gpu" in df.columns and not gpu_is_choice(df) else []
    model = [c for c in served if c == "model"]
    return [*model, *gpu, *(c for c in served if c != "model")]


def scenario_words(columns: Sequence[str]) -> str:
    """Scenario columns in words: ``model, GPU, workload, input and output length``."""
    names = {"model": "model", "gpu": "GPU", "workload": "workload"}
    words = [names[c] for c in columns if c in names]
    lengths = [c.split("_")[0] for c in columns if c in LENGTHS]
    if lengths:
        words.append(" and ".join(lengths) + (" lengths" if len(lengths) > 1 else " length"))
    return ", ".join(words) or "the whole table"


def designed_lengths(df: pd.DataFrame) -> list[str]:
    """Length columns that are design factors (values repeat) rather than measured per run.

    Examples
    --------
    >>> designed_lengths(pd.DataFrame({"input_tokens": [256.0] * 4,
    ...                                "output_tokens": [391.2, 394.6, 402.0, 388.8]}))
    ['input_tokens']
    """
    return [c for c in LENGTHS if c in df.columns and df[c].nunique() <= max(1, len(df) // 3)]


def _mode(s: pd.Series) -> float:
    counts = s.value_counts()
    top = counts[counts == counts.max()].index.to_numpy(dtype=float)
    return float(top[np.argmin(np.abs(top - s.median()))])


def _config_cols(df: pd.DataFrame) -> list[str]:
    return [c for c in CONFIG_COLUMNS if c in df.columns]


def _lengths(df: pd.DataFrame) -> list[str]:
    return [c for c in LENGTHS if c in df.columns]


def _measured(rows: pd.DataFrame, choice: pd.Series) -> float:
    cols = [*_config_cols(rows), *_lengths(rows)]
    match = np.ones(len(rows), dtype=bool)
    for c in cols:  # a missing setting (no request pool recorded) matches a missing one
        v = choice[c]
        match &= (rows[c].isna() if pd.isna(v) else rows[c] == v).to_numpy(dtype=bool)
    hit = rows[match]
    return float(hit["energy_j"].mean()) if len(hit) and "energy_j" in hit else np.nan


def _describe(row: pd.Series, gpu: bool = True, realised: Sequence[str] = ()) -> str:
    """A configuration in words; ``realised`` lengths (measured per run) are named too,
    since they tell apart runs of one setting."""
    parts = [str(row["gpu"])] if gpu and "gpu" in row else []
    for c, name in (("tp", "TP"), ("pp", "PP"), ("dp", "DP"), ("ep", "EP")):
        if c in row and pd.notna(row[c]) and (c == "tp" or row[c] != 1):
            parts.append(f"{name} {int(row[c])}")
    if "batch_size" in row:
        cap = " (cap)" if row.get("batch_kind") == "cap" else ""
        parts.append(f"batch {row['batch_size']:g}{cap}")
    if "precision" in row and isinstance(row["precision"], str):
        parts.append(row["precision"])
    if "engine" in row and isinstance(row["engine"], str):
        parts.append(row["engine"])
    if "n_requests" in row and pd.notna(row["n_requests"]):
        parts.append(f"{row['n_requests']:g} requests")
    parts += [f"{row[c]:.4g} {c.split('_')[0]} tokens" for c in realised]
    return ", ".join(parts)


def _predict(model, cand: pd.DataFrame, level: float) -> pd.DataFrame:
    pi = model.predict_interval(cand, level=level)
    out = cand.copy()
    out["pred_j"] = pi["energy_j"].to_numpy()
    out["lower_j"] = pi["lower"].to_numpy()
    out["upper_j"] = pi["upper"].to_numpy()
    out["extrapolated"] = pi["extrapolated"].to_numpy() if "extrapolated" in pi else False
    out["pred_j_per_token"] = out["pred_j"] / out["output_tokens"].to_numpy(dtype=float)
    return out


def recommendations(model, df: pd.DataFrame, *, level: float = 0.9) -> pd.DataFrame:
    """The lowest predicted energy per output token among each scenario's measured
    configurations (:func:`scenario_columns`), with its predicted energy per request and
    interval."""
    scen, designed = scenario_columns(df), designed_lengths(df)
    realised = [c for c in _lengths(df) if c not in designed]
    rows_out = []
    groups = df.groupby(scen, sort=True, dropna=False) if scen else [((), df)]
    for key, rows in groups:
        rows = rows[fitted_groups_mask(model, rows)]
        if rows.empty:
            continue
        cand = rows.drop_duplicates(subset=[*_config_cols(rows), *_lengths(rows)])
        if len(cand) < 2:
            continue
        pred = _predict(model, cand, level).sort_values(["pred_j_per_token", "pred_j"],
                                                       kind="mergesort")
        top, gpu = pred.iloc[0], "gpu" not in scen
        row = dict(zip(scen, key if isinstance(key, tuple) else (key,)))
        row.update({
            "input tokens": top["input_tokens"], "output tokens": top["output_tokens"],
            "candidates": len(cand), "recommended": _describe(top, gpu, realised),
            "predicted energy (J/request)": top["pred_j"], "interval low (J)": top["lower_j"],
            "interval high (J)": top["upper_j"], "predicted J/output token": top["pred_j_per_token"],
            "measured energy (J/request)": _measured(rows, top),
            "extrapolated": bool(top["extrapolated"]),
            "runner-up": _describe(pred.iloc[1], gpu, realised),
            "runner-up costs (%)": 100 * (pred.iloc[1]["pred_j_per_token"] / top["pred_j_per_token"] - 1),
        })
        rows_out.append(row)
    return pd.DataFrame(rows_out)


def _unmeasured_grid(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group, every combination of the tp, pp, dp and batch values it measured, at its
    usual lengths, with the group's other settings."""
    designed = designed_lengths(df)
    knobs = [c for c in ("tp", "pp", "dp", "batch_size") if c in df.columns]
    drop = {"energy_j", "running_batch", "latency_s", "ttft_s", "tpot_s", "power_w",
            "prefill_energy_j", "decode_energy_j", "run_energy_j", "duration_s",
            "energy_per_output_token_j", "n_gpus", "file"}
    parts = []
    for _, g in (df.groupby(by, sort=True) if by else [((), df)]):
        base = g.iloc[[0]].drop(columns=[c for c in drop if c in g.columns])
        for c in LENGTHS:
            if c in base:
                base[c] = _mode(g[c]) if c in designed else float(g[c].median())
        grid = pd.MultiIndex.from_product([sorted(g[c].unique()) for c in knobs],
                                          names=knobs).to_frame(index=False)
        parts.append(grid.merge(base.drop(columns=knobs), how="cross"))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if {"tp", "pp"} <= set(out.columns):
        out["n_gpus"] = out["tp"] * out["pp"] * (out["dp"] if "dp" in out else 1)
    return out


def next_measurements(model, df: pd.DataFrame, by: list[str], *, k: int = 5) -> tuple[pd.DataFrame, str]:
    """``(table, note)``: the ``k`` unmeasured configurations most likely to be a
    scenario's optimum (:func:`energylens.suggest_next`, ``strategy="selection"``), among
    the combinations of the values each group measured."""
    from ..selection import suggest_next

    cand = _unmeasured_grid(df, by)
    if cand.empty:
        return pd.DataFrame(), "no candidate configurations could be formed"
    cand = cand[fitted_groups_mask(model, cand)]
    if cand.empty:
        return pd.DataFrame(), "no group the model fitted has a configuration left to measure"
    with warnings.catch_warnings():
        # Combinations at the edge of what was measured are flagged in their own column.
        warnings.simplefilter("ignore", ExtrapolationWarning)
        nxt = suggest_next(model, cand, k=k, strategy="selection", measured=df,
                           scenario=scenario_columns(df))
        nxt["outside the data"] = model.predict_interval(nxt)["extrapolated_by"].to_numpy()
    cols = [c for c in (*by, "workload", "tp", "pp", "dp", "batch_size", "input_tokens",
                        "output_tokens", "score", "reason", "outside the data") if c in nxt.columns]
    return nxt[cols].reset_index(drop=True), (
        f"among {len(cand)} unmeasured combinations of the tp, pp and batch values each group "
        "measured")


def best_per_scenario(model, df: pd.DataFrame) -> pd.DataFrame:
    """In-sample check: per scenario (:func:`scenario_columns`), the measured configuration
    the model ranks first against the measured optimum (energy per output token)."""
    scen = scenario_columns(df)
    rows = df[fitted_groups_mask(model, df)]
    if rows.empty:
        return pd.DataFrame()
    pred = model.predict(rows) / rows["output_tokens"].to_numpy(dtype=float)
    rows = rows.assign(_pred=pred, _true=rows["energy_per_output_token_j"])
    out = []
    gpu = "gpu" not in scen
    for key, g in (rows.groupby(scen, sort=True, dropna=False) if scen else [((), rows)]):
        if len(g) < 2:
            continue
        pick, best = g.loc[g["_pred"].idxmin()], g.loc[g["_true"].idxmin()]
        row = dict(zip(scen, key if isinstance(key, tuple) else (key,)))
        row.update({"candidates": len(g), "chosen": _describe(pick, gpu=gpu),
                    "best measured": _describe(best, gpu=gpu),
                    "chosen measured (J/token)": pick["_true"], "best measured (J/token)": best["_true"],
                    "regret (%)": 100 * (pick["_true"] / best["_true"] - 1)})
        out.append(row)
    return pd.DataFrame(out)


def energy_latency_front(df: pd.DataFrame, max_latency_s: float | None = None) -> dict | None:
    """The measured configurations of the scenario (:func:`scenario_columns`) with the most
    of them, their energy-latency front, and the least-energy one within a latency limit.

    The latency is the request latency where the table records it, else the time per output
    token (TPOT; ML.ENERGY's tables record no request latency); ``x`` names the column,
    ``quantity`` and ``short`` the quantity in words (:data:`LATENCIES`), and the limit
    (``max_latency_s``, default twice the fastest measured) applies to it."""
    from ..selection import pareto_front

    x = next((c for c in LATENCIES if c in df.columns and df[c].notna().any()), None)
    if x is None:
        return None
    y = "energy_j" if "output_tokens" in designed_lengths(df) else "energy_per_output_token_j"
    scen = scenario_columns(df)
    data = df[df[x].notna()]
    sizes = data.groupby(scen, dropna=False).size() if scen else pd.Series([len(data)])
    if sizes.empty or sizes.max() < 3:
        return None
    key = sizes.idxmax()
    one = data.groupby(scen, dropna=False).get_group(key) if scen else data
    fastest = float(one[x].min())
    limit = float(max_latency_s) if max_latency_s is not None else 2 * fastest
    ok = one[one[x] <= limit]
    chosen = ok[y].idxmin() if len(ok) else None
    key = key if isinstance(key, tuple) else (key,)
    return {"table": one, "x": x, "y": y, "quantity": LATENCIES[x][0], "short": LATENCIES[x][1],
            "limit": limit, "limit_given": max_latency_s is not None,
            "fastest": fastest, "chosen": chosen, "front": pareto_front(one, x=x, y=y)["pareto"],
            "scenario": dict(zip(scen, key)), "n_within": len(ok)}
