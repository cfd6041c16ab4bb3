"""Choosing a configuration: candidate grids, ranking, energy-latency fronts, what to measure next.

- :func:`candidate_grid` builds the configurations to consider, with feasibility (GPU
  memory, GPUs available) and the reason when one is infeasible;
- :func:`select_config` ranks candidates by predicted energy, with its interval and, where
  latency models are given, predicted latency under bounds;
- :func:`pareto_front` marks the energy-latency trade-off;
- :func:`suggest_next` proposes which configurations to measure next (active profiling).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from .exceptions import InfeasibleError

__all__ = ["candidate_grid", "select_config", "pareto_front", "suggest_next"]

_LATENCY = ("latency_s", "ttft_s", "tpot_s")


def _as_seq(v) -> list:
    if v is None:
        return [None]
    if isinstance(v, (str, bytes)) or np.isscalar(v):
        return [v]
    return list(v)


def _gpu_memory_gb(gpu: str) -> float | None:
    from .simulate import GPU_SPECS

    if gpu in GPU_SPECS:
        return GPU_SPECS[gpu].memory_gb
    for token in str(gpu).replace("_", "-").split("-"):
        if token.upper().endswith("GB") and token[:-2].isdigit():
            return float(token[:-2])
    return None


def candidate_grid(
    *,
    model: str | Sequence[str],
    gpu: str | Sequence[str],
    tp: Sequence[int] = (1, 2, 4, 8),
    pp: Sequence[int] = (1,),
    dp: Sequence[int] = (1,),
    batch_size: Sequence[float] = (1, 8, 32, 128),
    input_tokens: float | Sequence[float] = 512,
    output_tokens: float | Sequence[float] = 256,
    params_b: float | None = None,
    gpus_available: int | None = None,
    check_memory: bool = True,
    bytes_per_param: float = 2.0,
    kv_bytes_per_token: float | None = None,
    drop_infeasible: bool = False,
    **extra,
) -> pd.DataFrame:
    """The cartesian grid of candidate configurations, in canonical columns, with feasibility.

    Parameters
    ----------
    model, gpu : str or sequence of str
        Model and GPU names (GPU memory is read from :data:`energylens.simulate.GPU_SPECS`
        or from a ``...-80GB`` style name).
    tp, pp, dp : sequence of int
        Parallel degrees; a configuration uses ``tp * pp * dp`` GPUs.
    batch_size, input_tokens, output_tokens : float or sequence
        Batch (intended running batch) and lengths.
    params_b : float, optional
        Model size in billions of parameters; needed for the memory check (looked up in
        :data:`energylens.simulate.MODEL_SPECS` when omitted).
    gpus_available : int, optional
        GPUs at hand: configurations needing more are infeasible.
    check_memory : bool
        Check that weights (``bytes_per_param`` each) plus the KV cache of a full batch fit in
        90% of one GPU's memory (per GPU: divided over ``tp * pp``).
    kv_bytes_per_token : float, optional
        KV-cache bytes per token (from the model's architecture when it is in
        ``MODEL_SPECS``; 0 otherwise, so only weights are checked).
    drop_infeasible : bool
        Drop infeasible rows instead of flagging them.
    **extra
        Further constant columns (e.g. ``workload="chat"``).

    Returns
    -------
    DataFrame
        Candidates with ``n_gpus``, ``feasible`` and ``reason`` (empty when feasible).
    """
    from .simulate import MODEL_SPECS

    rows = []
    for m, g, t, p, d, b, si, so in itertools.product(
            _as_seq(model), _as_seq(gpu), _as_seq(tp), _as_seq(pp), _as_seq(dp), _as_seq(batch_size),
            _as_seq(input_tokens), _as_seq(output_tokens)):
        t, p, d = int(t), int(p), int(d)
        spec = MODEL_SPECS.get(m)
        size = params_b if params_b is not None else (spec.params_b if spec else np.nan)
        kvb = kv_bytes_per_token
        if kvb is None:
            kvb = (2 * spec.layers * spec.kv_heads * spec.head_dim * bytes_per_param) if spec else 0.0
        reasons = []
        n_gpus = t * p * d
        if gpus_available is not None and n_gpus > gpus_available:
            reasons.append(f"needs {n_gpus} GPUs (tp*pp*dp), {gpus_available} available")
        if spec is not None and (spec.kv_heads % t or spec.heads % t):
            reasons.append(f"tp={t} does not divide the model's {spec.kv_heads} KV heads")
        if check_memory:
            mem = _gpu_memory_gb(g)
            if mem is not None and np.isfinite(size):
                need = (size * 1e9 * bytes_per_param + float(b) * (float(si) + float(so)) * kvb) / (t * p) / 1e9
                if need > 0.9 * mem:
                    reasons.append(f"needs {need:.1f} GB per GPU, {mem:g} GB available")
        rows.append({"model": m, "gpu": g, "tp": t, "pp": p, "dp": d, "batch_size": float(b),
                     "input_tokens": float(si), "output_tokens": float(so), "params_b": size,
                     "n_gpus": n_gpus, "feasible": not reasons, "reason": "; ".join(reasons), **extra})
    df = pd.DataFrame(rows)
    if drop_infeasible:
        df = df[df["feasible"]].reset_index(drop=True)
    return df


def _predict_with_interval(model, X: pd.DataFrame, level: float) -> pd.DataFrame:
    if hasattr(model, "predict_interval"):
        pi = model.predict_interval(X, level=level)
        return pd.DataFrame({"energy_j": pi["energy_j"].to_numpy(), "energy_lower_j": pi["lower"].to_numpy(),
                             "energy_upper_j": pi["upper"].to_numpy()}, index=X.index)
    pred = np.asarray(model.predict(X), dtype=float)
    return pd.DataFrame({"energy_j": pred, "energy_lower_j": np.nan, "energy_upper_j": np.nan},
                        index=X.index)


def select_config(
    model,
    candidates: pd.DataFrame,
    *,
    objective: Literal["energy_j", "energy_per_output_token_j"] = "energy_j",
    constraints: Mapping[str, float | bool] | None = None,
    latency_model=None,
    level: float = 0.9,
    top: int | None = None,
    include_infeasible: bool = True,
) -> pd.DataFrame:
    """Rank candidate configurations by predicted energy, best first.

    Parameters
    ----------
    model : estimator
        A fitted energy model (``predict`` in joules per request; ``predict_interval`` is used
        where it exists).
    candidates : DataFrame
        Configurations in canonical columns (e.g. from :func:`candidate_grid`; a ``feasible``
        and ``reason`` column from there are respected).
    objective : {"energy_j", "energy_per_output_token_j"}
        What to minimise: energy per request, or per generated token.
    constraints : dict, optional
        Bounds: ``{"ttft_s": 0.5, "tpot_s": 0.05, "latency_s": 10, "max_gpus": 8}``.
        Latency bounds need the matching latency model (or a column of that name in the
        candidates).
    latency_model : estimator or dict, optional
        A latency model (its ``target`` says which column it predicts) or a dict
        ``{"tpot_s": m1, "ttft_s": m2}``.
    level : float
        Coverage of the energy interval.
    top : int, optional
        Return only the best ``top`` feasible rows (infeasible rows are still appended when
        ``include_infeasible``).
    include_infeasible : bool
        Keep infeasible candidates (ranked after the feasible ones, with the reason).

    Returns
    -------
    DataFrame
        ``rank`` (1 = best; NaN for infeasible), the objective, ``energy_j`` with
        ``energy_lower_j``/``energy_upper_j``, predicted latency columns, ``feasible``,
        ``reason``, and the candidate's columns; indexed like ``candidates``.

    Raises
    ------
    InfeasibleError
        If no candidate satisfies the constraints (the message names the tightest one).
    """
    if objective not in ("energy_j", "energy_per_output_token_j"):
        raise ValueError("The 'objective' parameter of select_config must be 'energy_j' or "
                         f"'energy_per_output_token_j'. Got {objective!r} instead.")
    if not isinstance(candidates, pd.DataFrame) or candidates.empty:
        raise ValueError("select_config needs a non-empty DataFrame of candidates.")
    constraints = dict(constraints or {})
    unknown = set(constraints) - {*_LATENCY, "max_gpus"}
    if unknown:
        raise ValueError(f"Unknown constraint(s) {sorted(unknown)}; use {[*_LATENCY, 'max_gpus']}.")
    cand = candidates.copy()
    if "pp" not in cand:
        cand["pp"] = 1
    if "dp" not in cand:
        cand["dp"] = 1
    feasible = (np.array(cand["feasible"], dtype=bool) if "feasible" in cand
                else np.ones(len(cand), dtype=bool))
    reasons = [[r] if isinstance(r, str) and r else [] for r in
               (cand["reason"] if "reason" in cand else [""] * len(cand))]
    out = _predict_with_interval(model, cand, level)
    # Latency predictions.
    lat_models = {}
    if latency_model is not None:
        if isinstance(latency_model, Mapping):
            lat_models = dict(latency_model)
        else:
            lat_models = {getattr(latency_model, "target", "latency_s"): latency_model}
    for target, lm in lat_models.items():
        if target not in _LATENCY:
            raise ValueError(f"Latency model key {target!r} must be one of {_LATENCY}.")
        out[target] = np.asarray(lm.predict(cand), dtype=float)
    # Constraints.
    n_gpus = (cand["tp"] * cand["pp"] * cand["dp"]).to_numpy()
    violated: dict[str, int] = {}
    for key, bound in constraints.items():
        if key == "max_gpus":
            bad = n_gpus > bound
            vals = n_gpus
            label = "GPUs"
        else:
            if key in out:
                vals = out[key].to_numpy()
            elif key in cand:
                vals = cand[key].to_numpy(dtype=float)
            else:
                raise ValueError(f"Constraint on {key!r} needs a latency model for it "
                                 f"(latency_model={{'{key}': model}}) or a '{key}' column.")
            bad = vals > bound
            label = key
        violated[key] = int(bad.sum())
        for i in np.flatnonzero(bad):
            reasons[i].append(f"{label} {vals[i]:.4g} > {bound:g}")
        feasible &= ~bad
    out["energy_per_output_token_j"] = out["energy_j"] / cand["output_tokens"].to_numpy(dtype=float)
    out["feasible"] = feasible
    out["reason"] = ["; ".join(r) for r in reasons]
    for c in cand.columns:
        if c not in out.columns:
            out[c] = cand[c].to_numpy()
    if not feasible.any():
        tight = max(violated, key=violated.get) if violated else "feasibility"
        raise InfeasibleError(
            f"No candidate satisfies the constraints: {tight} excludes {violated.get(tight, len(cand))} "
            f"of {len(cand)} candidates (constraints {constraints}); first reasons: "
            + " | ".join(r for r in out["reason"].head(3)))
    ok = out[feasible].sort_values([objective, "energy_j"], kind="mergesort")
    ok.insert(0, "rank", np.arange(1, len(ok) + 1, dtype=float))
    if top is not None:
        ok = ok.head(top)
    parts = [ok]
    if include_infeasible:
        bad = out[~feasible].sort_values(objective, kind="mergesort")
        bad.insert(0, "rank", np.nan)
        parts.append(bad)
    return pd.concat(parts)


def pareto_front(table: pd.DataFrame, *, x: str = "latency_s", y: str = "energy_j") -> pd.DataFrame:
    """Mark the rows not dominated in (``x``, ``y``), both minimised.

    A row is dominated when another row is no worse in both and strictly better in one;
    exact duplicates of a front point are all on the front. Returns a copy with a boolean
    ``pareto`` column, sorted by ``x``.
    """
    for c in (x, y):
        if c not in table.columns:
            raise ValueError(f"pareto_front needs a column {c!r}; columns are {list(table.columns)}.")
    xs, ys = table[x].to_numpy(dtype=float), table[y].to_numpy(dtype=float)
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ValueError(f"Columns {x!r} and {y!r} must be finite for a Pareto front.")
    le = (xs[None, :] <= xs[:, None]) & (ys[None, :] <= ys[:, None])
    lt = (xs[None, :] < xs[:, None]) | (ys[None, :] < ys[:, None])
    dominated = np.any(le & lt, axis=1)
    out = table.copy()
    out["pareto"] = ~dominated
    return out.sort_values(x, kind="mergesort")


def suggest_next(
    model,
    candidates: pd.DataFrame,
    k: int = 5,
    *,
    strategy: Literal["uncertainty", "selection"] = "uncertainty",
    measured: pd.DataFrame | None = None,
    scenario: Sequence[str] = ("model", "gpu", "workload"),
    level: float = 0.9,
    random_state: int | None = 0,
) -> pd.DataFrame:
    """Propose the ``k`` configurations to measure next (active profiling).

    Parameters
    ----------
    model : estimator
        A fitted model with ``predict_interval``.
    candidates : DataFrame
        Configurations that could be measured.
    k : int
        How many to propose.
    strategy : {"uncertainty", "selection"}
        ``"uncertainty"``: the widest relative prediction intervals (learn the model where
        it knows least). ``"selection"``: the highest probability of being the optimum of
        its scenario under the predictive distribution (log-normal with the interval's
        spread), estimated by Monte Carlo; measuring those settles the choice fastest.
    measured : DataFrame, optional
        Configurations already measured (excluded), matched on the configuration columns.
    random_state : int, optional
        Seed of the Monte Carlo draws and of the tie-breaking.

    Returns
    -------
    DataFrame
        ``k`` distinct candidate rows with ``score`` and ``reason``, highest score first.
    """
    if strategy not in ("uncertainty", "selection"):
        raise ValueError(f"strategy must be 'uncertainty' or 'selection'; got {strategy!r}.")
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k!r}.")
    cand = candidates
    if measured is not None and len(measured):
        keys = [c for c in ("model", "gpu", "workload", "tp", "pp", "dp", "batch_size", "input_tokens",
                            "output_tokens") if c in cand.columns and c in measured.columns]
        seen = set(map(tuple, measured[keys].astype(str).to_numpy()))
        mask = np.array([tuple(r) not in seen for r in cand[keys].astype(str).to_numpy()])
        cand = cand[mask]
    if cand.empty:
        raise ValueError("No unmeasured candidate left to suggest.")
    rng = np.random.default_rng(random_state)
    pi = model.predict_interval(cand, level=level)
    f = pi["energy_j"].to_numpy()
    z = stats.norm.ppf(0.5 + level / 2)
    rel_sd = np.maximum((pi["upper"] - pi["lower"]).to_numpy() / (2 * z * np.maximum(f, 1e-300)), 1e-9)
    if strategy == "uncertainty":
        score = rel_sd
        reason = [f"relative predictive sd {s:.1%}" for s in score]
    else:
        cols = [c for c in scenario if c in cand.columns]
        labels = cand[cols].astype(str).agg("|".join, axis=1).to_numpy() if cols else np.zeros(len(cand))
        score = np.zeros(len(cand))
        draws = 2000
        for lab in pd.unique(labels):
            idx = np.flatnonzero(labels == lab)
            sims = np.log(f[idx])[None, :] + rng.normal(size=(draws, len(idx))) * rel_sd[idx][None, :]
            wins = np.bincount(np.argmin(sims, axis=1), minlength=len(idx))
            score[idx] = wins / draws
        # Already-certain optima teach nothing: weight by the chance of being wrong about them.
        score = score * (1 - score) + 1e-12 * rel_sd
        reason = [f"uncertain optimum (P(best) x P(not best) = {s:.3f})" for s in score]
    jitter = rng.uniform(0, 1e-12, len(score))
    order = np.argsort(-(score + jitter), kind="mergesort")[:k]
    out = cand.iloc[order].copy()
    out["score"] = np.asarray(score)[order]
    out["reason"] = np.asarray(reason, dtype=object)[order]
    return out
