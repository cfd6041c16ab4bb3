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


def _memory_reason(model: str, gpu: str, t: int, p: int, b: float, si: float, so: float,
                   params_b: float, bytes_per_param: float = 2.0,
                   kv_bytes_per_token: float | None = None) -> str | None:
    """Why a configuration does not fit in GPU memory ('' when it fits, None when unknown).

    Weights (``bytes_per_param`` per parameter) plus the KV cache of ``b`` sequences of
    ``si + so`` tokens, split over the ``t * p`` GPUs of a replica, must fit in 90% of one
    GPU's memory.
    """
    from .simulate import MODEL_SPECS

    mem = _gpu_memory_gb(gpu)
    if mem is None or not np.isfinite(params_b):
        return None
    spec = MODEL_SPECS.get(model)
    kvb = kv_bytes_per_token
    if kvb is None:
        kvb = (2 * spec.layers * spec.kv_heads * spec.head_dim * bytes_per_param) if spec else 0.0
    need = (params_b * 1e9 * bytes_per_param + b * (si + so) * kvb) / (t * p) / 1e9
    if need > 0.9 * mem:
        return f"needs {need:.1f} GB per GPU, {mem:g} GB available"
    return ""


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

    Examples
    --------
    >>> from energylens import candidate_grid
    >>> c = candidate_grid(model="Llama-3.1-70B", gpu="H100-SXM", tp=(1, 4), dp=(1, 2),
    ...                    batch_size=(32,), gpus_available=4)
    >>> c[["tp", "dp", "n_gpus", "feasible"]].values.tolist()
    [[1, 1, 1, False], [1, 2, 2, False], [4, 1, 4, True], [4, 2, 8, False]]
    >>> c.loc[3, "reason"]
    'needs 8 GPUs (tp*pp*dp), 4 available'
    """
    from .simulate import MODEL_SPECS

    rows = []
    for m, g, t, p, d, b, si, so in itertools.product(
            _as_seq(model), _as_seq(gpu), _as_seq(tp), _as_seq(pp), _as_seq(dp), _as_seq(batch_size),
            _as_seq(input_tokens), _as_seq(output_tokens)):
        t, p, d = int(t), int(p), int(d)
        if min(t, p, d) < 1:
            raise ValueError(f"candidate_grid: tp, pp and dp must be >= 1; got tp={t}, pp={p}, dp={d}.")
        spec = MODEL_SPECS.get(m)
        size = params_b if params_b is not None else (spec.params_b if spec else np.nan)
        reasons = []
        n_gpus = t * p * d
        if gpus_available is not None and n_gpus > gpus_available:
            reasons.append(f"needs {n_gpus} GPUs (tp*pp*dp), {gpus_available} available")
        if spec is not None and (spec.kv_heads % t or spec.heads % t):
            reasons.append(f"tp={t} does not divide the model's {spec.kv_heads} KV heads")
        if check_memory:
            msg = _memory_reason(m, g, t, p, float(b), float(si), float(so), size, bytes_per_param,
                                 kv_bytes_per_token)
            if msg:
                reasons.append(msg)
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
        What to minimise: energy per request, or per generated token (the same ranking
        within a scenario of fixed lengths; they differ when candidates mix lengths).
        Energy per request already counts every GPU of every replica, so there is no
        per-GPU objective: dividing by the GPU count would favour the largest setups.
    constraints : dict, optional
        Bounds: ``{"ttft_s": 0.5, "tpot_s": 0.05, "latency_s": 10, "max_gpus": 8,
        "gpu_memory": True}``. Latency bounds (seconds, upper) need the matching latency
        model (or a column of that name in the candidates, e.g. measured ``tpot_s``);
        ``max_gpus`` bounds ``tp * pp * dp``; ``gpu_memory=True`` requires weights and KV
        cache to fit (as in :func:`candidate_grid`).
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

    Examples
    --------
    >>> import warnings
    >>> from energylens import EnergyLensModel, candidate_grid, select_config, simulate_profiles
    >>> table = simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"], noise=0.0)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     model = EnergyLensModel().fit(table)
    >>> cand = candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(1, 2, 4), batch_size=(8, 128),
    ...                       input_tokens=1024, output_tokens=512)
    >>> ranked = select_config(model, cand, constraints={"max_gpus": 2})
    >>> ranked[["rank", "tp", "batch_size"]].head(2).values.tolist()
    [[1.0, 1.0, 128.0], [2.0, 2.0, 128.0]]
    >>> ranked["reason"].iloc[-1]
    'GPUs 4 > 2'
    """
    if objective not in ("energy_j", "energy_per_output_token_j"):
        raise ValueError("The 'objective' parameter of select_config must be 'energy_j' or "
                         f"'energy_per_output_token_j'. Got {objective!r} instead.")
    if not isinstance(candidates, pd.DataFrame) or candidates.empty:
        raise ValueError("select_config needs a non-empty DataFrame of candidates.")
    constraints = dict(constraints or {})
    known = [*_LATENCY, "max_gpus", "gpu_memory"]
    unknown = set(constraints) - set(known)
    if unknown:
        raise ValueError(f"Unknown constraint(s) {sorted(unknown)}; use {known}.")
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
        if key == "gpu_memory":
            if not bound:
                continue
            need = [c for c in ("model", "gpu", "batch_size", "input_tokens", "output_tokens", "params_b")
                    if c not in cand]
            if need:
                raise ValueError(f"The gpu_memory constraint needs candidate columns {need}.")
            msgs = [_memory_reason(r.model, r.gpu, int(r.tp), int(r.pp), float(r.batch_size),
                                   float(r.input_tokens), float(r.output_tokens), float(r.params_b))
                    for r in cand.itertuples()]
            unknown_rows = [i for i, m in enumerate(msgs) if m is None]
            if unknown_rows:
                raise ValueError(
                    f"The gpu_memory constraint cannot be checked for rows {unknown_rows[:5]} "
                    f"(GPU {cand['gpu'].iloc[unknown_rows[0]]!r} has no known memory size, or params_b "
                    "is missing); name GPUs as in energylens.simulate.GPU_SPECS or like 'X-80GB'.")
            bad = np.array([bool(m) for m in msgs])
            for i in np.flatnonzero(bad):
                if msgs[i] not in reasons[i]:
                    reasons[i].append(msgs[i])
            violated[key] = int(bad.sum())
            feasible &= ~bad
            continue
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

    Examples
    --------
    >>> import pandas as pd
    >>> from energylens import pareto_front
    >>> t = pd.DataFrame({"latency_s": [1.0, 2.0, 3.0, 2.0], "energy_j": [9.0, 5.0, 6.0, 5.0]})
    >>> pareto_front(t)["pareto"].tolist()
    [True, True, True, False]
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


def _labels(df: pd.DataFrame, cols: Sequence[str]) -> np.ndarray:
    if not cols:
        return np.full(len(df), "all", dtype=object)
    return df[list(cols)].astype(str).agg("|".join, axis=1).to_numpy(dtype=object)


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
        its scenario (rows sharing the ``scenario`` columns) under the predictive
        distribution (log-normal with the interval's spread, independent across
        candidates), estimated by Monte Carlo; where ``measured`` carries ``energy_j``,
        the best measured energy of the scenario is an incumbent to beat. Measuring those
        settles the choice fastest.
    measured : DataFrame, optional
        Configurations already measured (excluded), matched on the configuration columns.
    scenario : sequence of str
        Columns that define a selection problem (``"selection"`` only).
    level : float
        Coverage of the interval that sets the predictive spread.
    random_state : int, optional
        Seed of the Monte Carlo draws and of the tie-breaking.

    Returns
    -------
    DataFrame
        ``k`` distinct candidate rows with ``score`` and ``reason``, highest score first.

    Examples
    --------
    >>> import warnings
    >>> from energylens import EnergyLensModel, simulate_profiles, suggest_next
    >>> table = simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"])
    >>> measured = table.sample(16, random_state=0)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     model = EnergyLensModel().fit(measured)
    >>> nxt = suggest_next(model, table.drop(columns="energy_j"), k=3, measured=measured)
    >>> len(nxt), bool(set(nxt.index) & set(measured.index))
    (3, False)
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
        labels = _labels(cand, cols)
        incumbent: dict[str, float] = {}
        if measured is not None and len(measured) and "energy_j" in measured.columns:
            mlabels = _labels(measured, cols)
            for lab, e in zip(mlabels, measured["energy_j"].to_numpy(dtype=float)):
                if np.isfinite(e):
                    incumbent[lab] = min(e, incumbent.get(lab, np.inf))
        score = np.zeros(len(cand))
        draws = 4000
        for lab in pd.unique(labels):
            idx = np.flatnonzero(labels == lab)
            sims = np.log(f[idx])[None, :] + rng.normal(size=(draws, len(idx))) * rel_sd[idx][None, :]
            best = np.argmin(sims, axis=1)
            won = np.ones(draws, dtype=bool)
            if lab in incumbent:
                won = sims[np.arange(draws), best] < np.log(incumbent[lab])
            score[idx] = np.bincount(best[won], minlength=len(idx)) / draws
        reason = [f"P(optimum of its scenario) = {s:.3f}" for s in score]
    jitter = rng.uniform(0, 1e-12, len(score))
    order = np.argsort(-(score + jitter), kind="mergesort")[:k]
    out = cand.iloc[order].copy()
    out["score"] = np.asarray(score)[order]
    out["reason"] = np.asarray(reason, dtype=object)[order]
    return out
