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

from ..core.checks import flag_column
from ..exceptions import ExtrapolationWarning
from .fitting import fitted_groups_mask

__all__ = ["CONFIG_COLUMNS", "scenario_columns", "scenario_words", "designed_lengths",
           "gpu_is_choice", "recommendations", "next_measurements", "best_per_scenario",
           "energy_latency_front", "ASSUMED", "ASSUMED_COLUMN", "inputs_assumed", "input_text"]

#: The latency columns the energy-latency front can use, in order of preference, with what
#: each one is in words and for short (what the report calls the quantity and its limit).
LATENCIES = {"latency_s": ("request latency", "latency"),
             "tpot_s": ("time per output token (TPOT)", "TPOT")}

#: Columns that make one configuration of a scenario.
CONFIG_COLUMNS = ("gpu", "tp", "pp", "dp", "ep", "batch_size", "batch_kind", "precision",
                  "n_requests", "engine")
LENGTHS = ("input_tokens", "output_tokens")
#: The column where a reader flags a prompt length it filled in (a nominal value per task,
#: as for ML.ENERGY's tables) rather than read from the measurements.
ASSUMED_COLUMN = "input_tokens_assumed"
#: How the report marks such a length wherever it shows one.
ASSUMED = "(assumed)"


def inputs_assumed(rows: pd.DataFrame) -> np.ndarray:
    """Per row, whether its input length is assumed (:data:`ASSUMED_COLUMN`), not measured.

    Examples
    --------
    >>> inputs_assumed(pd.DataFrame({"input_tokens_assumed": [True, None]})).tolist()
    [True, False]
    >>> inputs_assumed(pd.DataFrame({"input_tokens": [256.0]})).tolist()
    [False]
    >>> inputs_assumed(pd.DataFrame({"input_tokens_assumed": ["False", "yes"]})).tolist()
    [False, True]
    """
    return flag_column(rows, ASSUMED_COLUMN, "report")


def _is_true(v) -> bool:
    """One row's flag (see :func:`inputs_assumed`); a missing value is not set."""
    return bool(inputs_assumed(pd.DataFrame({ASSUMED_COLUMN: [v]}, dtype=object))[0])


def input_text(value: float, assumed: bool) -> str:
    """An input length as the report shows it, marked where it is assumed.

    >>> input_text(256.0, True), input_text(512.0, False)
    ('256 (assumed)', '512')
    """
    return f"{value:g}" + (f" {ASSUMED}" if assumed else "")


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
    """Length columns that are design factors rather than measured per run.

    A length is designed where its values repeat: it takes few values (at most a third as
    many as the rows), or each of its values was measured, exactly, on two or more
    configurations (:func:`_shared_by_configurations`: four output lengths on two TP
    degrees, however small the table). A length measured per run (a realised mean answer)
    varies from one configuration to the next and is neither.

    Examples
    --------
    >>> designed_lengths(pd.DataFrame({"input_tokens": [256.0] * 4,
    ...                                "output_tokens": [391.2, 394.6, 402.0, 388.8]}))
    ['input_tokens']
    >>> designed_lengths(pd.DataFrame({"tp": [1] * 4 + [2] * 4, "input_tokens": [512.0] * 8,
    ...                                "output_tokens": [64.0, 128.0, 256.0, 512.0] * 2}))
    ['input_tokens', 'output_tokens']
    """
    return [c for c in LENGTHS if c in df.columns and (
        df[c].nunique() <= max(1, len(df) // 3) or _shared_by_configurations(df, c))]


def _shared_by_configurations(df: pd.DataFrame, col: str) -> bool:
    """Whether every value of ``col`` was measured on two or more configurations (rows
    apart in the model, the workload or a setting of :data:`CONFIG_COLUMNS`; rows apart at
    all where the table has none of those), and some value repeats.

    >>> t = pd.DataFrame({"tp": [1, 1, 2, 2], "output_tokens": [64.0, 128.0, 64.0, 128.0]})
    >>> _shared_by_configurations(t, "output_tokens")
    True
    >>> _shared_by_configurations(t.assign(tp=1), "output_tokens")  # repeats of one setting
    False
    """
    who = [c for c in ("model", "workload", *CONFIG_COLUMNS) if c in df.columns]
    rows = df.loc[df[col].notna(), [col, *who]]
    if len(rows) < 2:
        return False
    counts = (rows.drop_duplicates() if who else rows)[col].value_counts()
    return bool(len(counts) < len(rows) and counts.min() >= 2)


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
    assumed = _is_true(row.get(ASSUMED_COLUMN))
    parts += [f"{row[c]:.4g} {c.split('_')[0]} tokens"
              + (f" {ASSUMED}" if c == "input_tokens" and assumed else "") for c in realised]
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
            "input tokens": top["input_tokens"],
            "input tokens assumed": _is_true(top.get(ASSUMED_COLUMN)),
            "output tokens": top["output_tokens"],
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


def _group_grid(g: pd.DataFrame, designed: list[str]) -> pd.DataFrame:
    """:func:`energylens.candidate_grid` over the tp, pp, dp and batch values one group
    measured, at its usual lengths, with its other settings: ``feasible`` and ``reason``
    by the rule ``energylens grid`` applies (heads, layers, weights and one sequence's KV cache
    in memory; ``running_batch`` and ``memory_limited`` for a cap the KV memory cannot hold)."""
    from ..selection import candidate_grid

    base = g.iloc[0]
    size = float(base["params_b"]) if "params_b" in g and pd.notna(base["params_b"]) else None
    extra = {c: base[c] for c in g.columns if c not in _NOT_SETTINGS
             and not (c == "ep" and pd.isna(base[c]))}  # an unrecorded ep: none
    lengths = {c: _mode(g[c]) if c in designed else float(g[c].median()) for c in LENGTHS}
    knobs = {c: sorted(g[c].dropna().unique()) if c in g else [1] for c in _KNOBS}
    return candidate_grid(model=base["model"], gpu=base["gpu"], **knobs, **lengths,
                          params_b=size if size and size > 0 else None, **extra)


#: The grid's knobs: every combination of the values a group measured is a candidate.
_KNOBS = ("tp", "pp", "dp", "batch_size")
#: Columns that are no setting of a candidate (measurements, or what the grid sets itself).
_NOT_SETTINGS = {"model", "gpu", *_KNOBS, *LENGTHS, "params_b", "n_gpus", "energy_j",
                 "running_batch", "latency_s", "ttft_s", "tpot_s", "power_w", "prefill_energy_j",
                 "decode_energy_j", "run_energy_j", "duration_s", "energy_per_output_token_j",
                 "file", "feasible", "reason", "memory_limited"}


def _unmeasured_grid(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group (``by`` and the workload), every combination of the tp, pp, dp and batch
    values it measured, at its usual lengths, with the group's other settings (:func:`_group_grid`),
    with ``feasible``, ``reason`` and ``measured``: whether the table has the configuration
    (same group, knobs and designed lengths; a length measured per run is no setting)."""
    designed = designed_lengths(df)
    keys = [*by, *(["workload"] if "workload" in df.columns and "workload" not in by else [])]
    groups = df.groupby(keys, sort=True, dropna=False) if keys else [((), df)]
    parts, said = [], []
    for _, g in groups:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            parts.append(_group_grid(g, designed))
        said.append(caught)
    if not parts:
        return pd.DataFrame()
    match = [c for c in (*keys, *_KNOBS, *designed) if c in df.columns]
    seen = pd.MultiIndex.from_frame(df[match].astype(str))
    for part, caught in zip(parts, said):
        part["measured"] = pd.MultiIndex.from_frame(part[match].astype(str)).isin(seen)
        if not part["measured"].all():  # what the grid says of a group with a candidate left
            for w in caught:
                warnings.warn(w.message, w.category, stacklevel=2)
    return pd.concat(parts, ignore_index=True)


def _left_out(grid: pd.DataFrame, *, none_left: bool) -> str:
    """What the grid leaves out, in words: the measured combinations, and those that cannot
    run with the first one's reason (``none_left``: said of all of them)."""
    measured, bad = int(grid["measured"].sum()), grid[~grid["measured"] & ~grid["feasible"]]
    parts = [f"{measured} {'are ' if none_left else ''}already measured"] if measured else []
    if len(bad):
        first = bad.iloc[0]
        parts.append(f"{len(bad)} {'' if none_left else 'that '}cannot run (e.g. {first['model']} "
                     f"on {first['gpu']}, {_describe(first, gpu=False)}: {first['reason']})")
    return " and ".join(parts)


#: The candidates of what to measure next, in words.
_COMBINATIONS = "combinations of the tp, pp, dp and batch values each model, GPU and workload measured"


def next_measurements(model, df: pd.DataFrame, by: list[str], *, k: int = 5) -> tuple[pd.DataFrame, str]:
    """``(table, note)``: the ``k`` unmeasured configurations most likely to be a
    scenario's optimum (:func:`energylens.suggest_next`, ``strategy="selection"``), among
    the combinations of the values each group (``by`` and the workload) measured that the
    table does not have and that can run (:func:`energylens.candidate_grid`'s feasibility,
    as ``energylens grid`` shows it)."""
    from ..selection import suggest_next
    from ..selection.rank import as_served

    grid = _unmeasured_grid(df, by)
    if grid.empty:
        return pd.DataFrame(), "no candidate configurations could be formed"
    grid = grid[fitted_groups_mask(model, grid)]
    if grid.empty:
        return pd.DataFrame(), "no group the model fitted has a configuration left to measure"
    cand = grid[grid["feasible"] & ~grid["measured"]].drop(columns=["feasible", "reason",
                                                                      "measured"])
    if cand.empty:
        return pd.DataFrame(), (f"none; of the {len(grid)} {_COMBINATIONS}, "
                                + _left_out(grid, none_left=True))
    with warnings.catch_warnings():
        # Combinations at the edge of what was measured are flagged in their own column.
        warnings.simplefilter("ignore", ExtrapolationWarning)
        nxt = suggest_next(model, cand, k=k, strategy="selection", measured=df,
                           scenario=scenario_columns(df))
        pi = model.predict_interval(as_served(nxt))
        nxt["outside the data"] = pi["extrapolated_by"].to_numpy()
    limited = (cand["memory_limited"].astype(bool) if "memory_limited" in cand
               else pd.Series(False, index=cand.index))
    from ..selection.active import collapse_served

    alike = len(cand) - len(collapse_served(cand)[0])  # caps that run as another does
    shown = limited.loc[nxt.index].any()  # a suggestion runs fewer than its cap: say how many
    cols = [c for c in (*by, "workload", "tp", "pp", "dp", "batch_size",
                        *(["running_batch"] if shown else []), "input_tokens",
                        ASSUMED_COLUMN, "output_tokens", "score", "reason", "outside the data")
            if c in nxt.columns]
    return nxt[cols].reset_index(drop=True), (
        f"among {len(cand)} unmeasured {_COMBINATIONS}, each of which can run by the rule "
        "energylens grid applies (tp dividing the heads, weights and one sequence's KV cache in "
        "GPU memory)"
        + (f", {int(limited.sum())} of them memory-limited (the KV cache holds fewer sequences "
           "than the cap: predicted at the running batch it holds)" if limited.any() else "")
        + (f"; {alike} of them run exactly as a smaller cap does (the same running batch) and "
           "are scored once, at the smallest cap" if alike else "")
        + (f"; left out: {_left_out(grid, none_left=False)}" if len(cand) < len(grid) else ""))


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
        if "input_tokens" in row and ASSUMED_COLUMN in g.columns:
            row[ASSUMED_COLUMN] = bool(inputs_assumed(g).any())
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
