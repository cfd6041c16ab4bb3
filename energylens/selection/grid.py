"""Candidate configurations, and the memory rule they share with the simulator: whether each
can run, and how many sequences a memory-limited cap runs at once."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core.catalogue import (
    BYTES_PER_VALUE,
    MemoryFit,
    ModelSpec,
    cache_bytes_per_value,
    expert_parallel_reason,
    gpu_memory_gb,
    layout_reason,
    memory_fit,
    model_spec,
    normalize_precision,
    replica_kv_bytes_per_token,
    replica_weight_bytes,
    whole_degree,
)
from ..core.options import Integral, Interval, Real, check_options
from ..exceptions import CatalogueError, EnergyLensWarning

__all__ = ["candidate_grid"]


def _as_seq(v) -> list:
    if v is None:
        return [None]
    if isinstance(v, (str, bytes)) or np.isscalar(v):
        return [v]
    return list(v)


def _spec(model) -> ModelSpec | None:
    try:
        return model_spec(model)
    except CatalogueError:
        return None


def _positive_number(v) -> bool:
    """A finite number above zero (text, None and booleans are not)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        return False
    return bool(np.isfinite(v) and v > 0)


def memory_fits(cand: pd.DataFrame, *, bytes_per_param: float | None = None,
                kv_bytes_per_token: float | None = None) -> list[MemoryFit | None]:
    """The catalogue's memory rule (:func:`~energylens.core.catalogue.memory_fit`) for every
    candidate row: whether it can run, and at what running batch (None: cannot be checked).

    The weights take ``bytes_per_param`` per parameter (default: the row's ``precision``,
    else the model name's precision suffix, else the checkpoint's precision), split over the
    row's ``tp``, ``pp`` and, where the candidates have it, ``ep`` as
    :func:`~energylens.core.catalogue.replica_weight_bytes` says; the KV cache takes
    ``kv_bytes_per_token`` (default: from the model's architecture, at the cache's
    precision, :func:`~energylens.core.catalogue.cache_bytes_per_value`;
    0 for a model the catalogue does not know or knows without KV descriptors, so only
    weights are checked). The parameter count is the row's ``params_b`` where given, else the
    catalogue's. A row whose GPU memory or parameter count is unknown gives None. A row's
    ``ep`` must be a whole number >= 1 and at most ``tp * dp`` (a missing one is 1), else its
    fit cannot run and says why; a ``precision`` the catalogue does not know raises a
    ValueError.
    """
    specs = {m: _spec(m) for m in pd.unique(cand["model"])}
    mems = {g: gpu_memory_gb(g) for g in pd.unique(cand["gpu"])}
    sizes = (pd.to_numeric(cand["params_b"], errors="coerce").to_numpy(dtype=float)
             if "params_b" in cand else np.full(len(cand), np.nan))
    precs = _row_precisions(cand)
    eps = cand["ep"].tolist() if "ep" in cand else [1] * len(cand)
    dps = (pd.to_numeric(cand["dp"], errors="coerce").to_numpy(dtype=float) if "dp" in cand
           else np.ones(len(cand)))
    out: list[MemoryFit | None] = []
    for i, r in enumerate(cand[["model", "gpu", "tp", "pp", "batch_size", "input_tokens",
                                "output_tokens"]].itertuples(index=False)):
        spec, mem = specs[r.model], mems[r.gpu]
        size = sizes[i] if np.isfinite(sizes[i]) else (spec.params_b if spec else np.nan)
        if mem is None or not np.isfinite(size):
            out.append(None)
            continue
        ep = eps[i]
        if ep is None or (isinstance(ep, float) and np.isnan(ep)):
            ep = 1  # not recorded: no expert parallelism
        ep_why = expert_parallel_reason(ep, r.tp, dps[i] if np.isfinite(dps[i]) else 1)
        if ep_why:  # an ep the layout cannot serve: no memory numbers to give
            out.append(MemoryFit(reason=ep_why, batch=float(r.batch_size), capacity=0.0,
                                 weights_gb=np.nan, full_batch_gb=np.nan,
                                 memory_gb=float(mem)))
            continue
        prec = precs[i] or (spec.precision if spec else "bf16")
        bpw = bytes_per_param if bytes_per_param is not None else BYTES_PER_VALUE[prec]
        kvb = kv_bytes_per_token
        if kvb is None:
            kvb = (replica_kv_bytes_per_token(spec, int(r.tp), cache_bytes_per_value(prec))
                   if spec else 0.0)
        weights = replica_weight_bytes(spec, size, bpw, int(r.tp), int(r.pp), int(float(ep)))
        out.append(memory_fit(weight_bytes=weights, kv_bytes_per_token=kvb,
                              batch=float(r.batch_size), input_tokens=float(r.input_tokens),
                              output_tokens=float(r.output_tokens), gpus=int(r.tp) * int(r.pp),
                              memory_gb=mem))
    return out


def _row_precisions(cand: pd.DataFrame) -> list[str | None]:
    """Each row's ``precision`` in the catalogue's words (None where the row gives none: the
    model's own); an unknown precision raises the ValueError :func:`candidate_grid` raises."""
    if "precision" not in cand:
        return [None] * len(cand)
    out, bad = [], []
    for v in cand["precision"].tolist():
        if v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str)
                                                                   and not v.strip()):
            out.append(None)
        elif (p := normalize_precision(v)) is None:
            bad.append(v)
        else:
            out.append(p)
    if bad:
        raise ValueError(f"unknown precision {bad[0]!r}; expected one of "
                         f"{sorted(BYTES_PER_VALUE)}.")
    return out


def kv_unchecked(models) -> list[str]:
    """Of ``models``, those the catalogue knows without KV descriptors (layers, KV heads,
    head dimension): the memory rule cannot size their KV cache and checks their weights
    only."""
    out = []
    for m in models:
        spec = _spec(m)
        if spec is not None and not np.isfinite(spec.kv_bytes_per_token(2.0)):
            out.append(m)
    return out


def _checked_ep(extra: dict) -> dict:
    """``extra`` with its ``ep`` (where given) checked, one whole number >= 1, as an int."""
    if "ep" not in extra:
        return extra
    ep = extra["ep"]
    if not np.isscalar(ep) or not whole_degree(ep):
        raise ValueError(f"candidate_grid: ep must be a whole number of GPUs >= 1 (one "
                         f"expert-parallel degree, at most tp*dp); got {ep!r}.")
    return {**extra, "ep": int(float(ep))}


def _warn_unchecked(df: pd.DataFrame, fits: list, kv_bytes_per_token) -> None:
    """Say which candidates the memory rule could not check, and whose KV cache it could not
    size (once each, naming them)."""
    unchecked = sorted({f"{m} on {g}" for (m, g), fit in zip(df[["model", "gpu"]].itertuples(
        index=False), fits) if fit is None})
    if unchecked:
        warnings.warn(f"candidate_grid: the memory rule could not be checked for {unchecked} "
                      "(the catalogue does not know the model's size or the GPU's memory; "
                      "pass params_b, or register the model or GPU): those candidates are "
                      "kept as feasible, at their full cap.", EnergyLensWarning, stacklevel=3)
    checked = {m for m, fit in zip(df["model"], fits) if fit is not None}
    no_kv = (kv_unchecked(m for m in pd.unique(df["model"]) if m in checked)
             if kv_bytes_per_token is None else [])
    if no_kv:
        warnings.warn(f"candidate_grid: the KV cache of {no_kv} was not checked (the "
                      "catalogue has no KV descriptors for them: layers, kv_heads, "
                      "head_dim): only their weights are checked, and their running batch is "
                      "the full cap; register the descriptors (or pass kv_bytes_per_token) "
                      "to check it.", EnergyLensWarning, stacklevel=3)


def memory_reasons(cand: pd.DataFrame, *, bytes_per_param: float | None = None,
                   kv_bytes_per_token: float | None = None) -> list[str | None]:
    """The catalogue's memory rule for every candidate row ('' fits, None cannot be checked):
    the reasons of :func:`memory_fits`. A cap larger than the KV memory holds fits (it runs
    memory-limited); only weights plus one sequence's KV cache that do not fit give a reason.
    """
    return [None if f is None else f.reason
            for f in memory_fits(cand, bytes_per_param=bytes_per_param,
                                 kv_bytes_per_token=kv_bytes_per_token)]


def served_batches(fits: Sequence[MemoryFit | None], cap: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(running_batch, memory_limited)`` of candidates from their memory fits: the
    sequences each runs at once (``min(cap, capacity)``; the cap where the memory could not
    be checked; NaN where it cannot run) and whether that is fewer than its cap."""
    cap = np.asarray(cap, dtype=float)
    run = np.array([c if f is None else f.running_batch for f, c in zip(fits, cap)], dtype=float)
    limited = np.array([f is not None and f.memory_limited for f in fits], dtype=bool)
    return run, limited


_GRID_OPTIONS = {
    "params_b": [Interval(Real, 0, None, closed="neither"), None],
    "gpus_available": [Interval(Integral, 1, None, closed="left"), None],
    "check_memory": ["boolean"],
    "bytes_per_param": [Interval(Real, 0, None, closed="neither"), None],
    "kv_bytes_per_token": [Interval(Real, 0, None, closed="left"), None],
    "drop_infeasible": ["boolean"],
}


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
    bytes_per_param: float | None = None,
    kv_bytes_per_token: float | None = None,
    drop_infeasible: bool = False,
    **extra,
) -> pd.DataFrame:
    """The cartesian grid of candidate configurations, in canonical columns, with feasibility.

    Parameters
    ----------
    model, gpu : str or sequence of str
        Model and GPU names, resolved by the catalogue (:mod:`energylens.core.catalogue`;
        a GPU it does not know may carry its memory in the name, ``"X-80GB"``). The names
        are kept as given.
    tp, pp, dp : sequence of int
        Parallel degrees; a configuration uses ``tp * pp * dp`` GPUs.
    batch_size, input_tokens, output_tokens : float or sequence
        Batch caps (the most sequences a replica runs at once, vLLM's ``max_num_seqs``; a
        saturated server runs its cap, or fewer where memory-limited) and mean lengths.
    params_b : float, optional
        Model size in billions of parameters (default: the catalogue's).
    gpus_available : int, optional
        GPUs at hand: configurations needing more are infeasible.
    check_memory : bool
        Apply the catalogue's memory rule (:func:`~energylens.core.catalogue.memory_fit`),
        over the ``tp * pp`` GPUs of a replica, within 90% of one GPU's memory: a candidate
        whose weights and one sequence's KV cache do not fit is infeasible; one whose cap
        needs more KV cache than is left beside the weights is feasible but memory-limited,
        and runs as many sequences as that memory holds at their mean context
        (``input_tokens + output_tokens / 2``).
    bytes_per_param : float, optional
        Bytes per weight (default: from the model's precision, e.g. 1 for a ``-FP8`` name).
    kv_bytes_per_token : float, optional
        KV-cache bytes per token (default: from the model's architecture; 0 for a model
        the catalogue does not know, so only weights are checked).
    drop_infeasible : bool
        Drop infeasible rows instead of flagging them.
    **extra
        Further constant columns (e.g. ``workload="chat"``); a ``precision`` must be one the
        catalogue knows, and the memory rule reads it (the weights' bytes). An ``ep``
        (expert-parallel degree) must be one whole number >= 1: a row whose ``tp * dp`` GPUs
        cannot hold it (``ep > tp * dp``; vLLM's expert-parallel group is the ``tp x dp``
        GPUs) is infeasible, and the memory rule splits the routed experts over ``ep`` GPUs.

    Returns
    -------
    DataFrame
        Candidates with ``params_b``, ``n_gpus``, ``feasible`` and ``reason`` (empty when
        feasible). Infeasible: more GPUs than available; ``ep`` above ``tp * dp``; ``tp``
        not dividing the attention
        or KV heads, or ``pp`` above the layer count (models the catalogue knows); the
        memory rule. With ``check_memory``, also ``running_batch``, the sequences each
        replica runs at once (``min(batch_size, KV capacity)``; the cap where the memory
        cannot be checked; NaN where the weights and one sequence do not fit), and
        ``memory_limited``, whether that is below the cap. A model that reads a running
        batch (:mod:`energylens.core.batch`) and :func:`select_config` predict a
        memory-limited candidate at its running batch.

    Examples
    --------
    >>> from energylens import candidate_grid
    >>> c = candidate_grid(model="Llama-3.1-70B", gpu="H100-SXM", tp=(1, 4), dp=(1, 2),
    ...                    batch_size=(32,), gpus_available=4)
    >>> c[["tp", "dp", "n_gpus", "feasible"]].values.tolist()
    [[1, 1, 1, False], [1, 2, 2, False], [4, 1, 4, True], [4, 2, 8, False]]
    >>> c.loc[3, "reason"]
    'needs 8 GPUs (tp*pp*dp), 4 available'

    A cap whose KV cache does not fit beside the weights runs memory-limited, fewer sequences
    at once:

    >>> big = candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(1, 8), batch_size=(512,),
    ...                      input_tokens=4096, output_tokens=1024)
    >>> big[["tp", "feasible", "memory_limited", "running_batch"]].values.tolist()
    [[1, True, True, 92.0], [8, True, False, 512.0]]
    """
    check_options("candidate_grid", _GRID_OPTIONS, locals())
    axes = {"model": model, "gpu": gpu, "tp": tp, "pp": pp, "dp": dp, "batch_size": batch_size,
            "input_tokens": input_tokens, "output_tokens": output_tokens}
    for name, values in axes.items():
        if not _as_seq(values):
            raise ValueError(f"candidate_grid: {name} holds no value; give at least one.")
    for name in ("model", "gpu"):
        bad = [v for v in _as_seq(axes[name]) if not (isinstance(v, str) and v.strip())]
        if bad:
            raise ValueError(f"candidate_grid: {name} must be names (non-empty text); got {bad}.")
    for name in ("batch_size", "input_tokens", "output_tokens"):
        bad = [v for v in _as_seq(axes[name]) if not _positive_number(v)]
        if bad:
            raise ValueError(f"candidate_grid: {name} must be finite and > 0; got {bad}.")
    clash = sorted({"running_batch", "memory_limited"} & set(extra)) if check_memory else []
    if clash:
        raise ValueError(f"candidate_grid: {clash} are set by the memory rule; leave them out "
                         "(or pass check_memory=False).")
    if "precision" in extra and normalize_precision(extra["precision"]) is None:
        raise ValueError(f"candidate_grid: unknown precision {extra['precision']!r}; expected one "
                         f"of {sorted(BYTES_PER_VALUE)}.")
    for name in ("tp", "pp", "dp"):
        bad = [v for v in _as_seq(axes[name]) if not whole_degree(v)]
        if bad:
            raise ValueError(f"candidate_grid: {name} must hold whole numbers of GPUs >= 1; got "
                             f"{bad}.")
    extra = _checked_ep(extra)
    rows = []
    for m, g, t, p, d, b, si, so in itertools.product(
            _as_seq(model), _as_seq(gpu), _as_seq(tp), _as_seq(pp), _as_seq(dp),
            _as_seq(batch_size), _as_seq(input_tokens), _as_seq(output_tokens)):
        t, p, d = int(t), int(p), int(d)
        rows.append({"model": m, "gpu": g, "tp": t, "pp": p, "dp": d, "batch_size": float(b),
                     "input_tokens": float(si), "output_tokens": float(so)})
    df = pd.DataFrame(rows)
    specs = {m: _spec(m) for m in pd.unique(df["model"])}
    df.insert(8, "params_b", [params_b if params_b is not None else
                              (specs[m].params_b if specs[m] else np.nan) for m in df["model"]])
    df.insert(9, "n_gpus", df["tp"] * df["pp"] * df["dp"])
    for k, v in extra.items():  # before the memory rule, which reads a precision column
        df[k] = [v] * len(df)
    reasons: list[list[str]] = [[] for _ in range(len(df))]
    eps = df["ep"].tolist() if "ep" in df else [1] * len(df)
    for i, (m, t, p, d, n) in enumerate(df[["model", "tp", "pp", "dp", "n_gpus"]].itertuples(
            index=False)):
        if gpus_available is not None and n > gpus_available:
            reasons[i].append(f"needs {n} GPUs (tp*pp*dp), {gpus_available} available")
        if why := expert_parallel_reason(eps[i], t, d):
            reasons[i].append(why)
        if specs[m] is not None and (why := layout_reason(specs[m], t, p)):
            reasons[i].append(why)
    if check_memory:
        fits = memory_fits(df, bytes_per_param=bytes_per_param,
                           kv_bytes_per_token=kv_bytes_per_token)
        for i, fit in enumerate(fits):
            if fit is not None and fit.reason and fit.reason not in reasons[i]:
                reasons[i].append(fit.reason)
        df["running_batch"], df["memory_limited"] = served_batches(fits, df["batch_size"])
        _warn_unchecked(df, fits, kv_bytes_per_token)
    df["feasible"] = [not r for r in reasons]
    df["reason"] = ["; ".join(r) for r in reasons]
    if drop_infeasible:
        df = df[df["feasible"]].reset_index(drop=True)
    return df
