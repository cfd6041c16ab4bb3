"""Simulated profiling tables: given configurations, or a grid of them with noise."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core.catalogue import BYTES_PER_VALUE, ModelSpec, normalize_precision, resolve_gpu
from ..core.options import Integral, Interval, Real, check_options
from ..schema import validate
from .physics import _Physics, _pooled, _saturated
from .specs import Precision, _cache_bytes, _feasible, _fit, _precision, _sim_gpu, _sim_model

__all__ = ["simulate_configurations", "simulate_profiles"]

_CONFIG_NEEDS = ("model", "gpu", "tp", "batch_size", "input_tokens", "output_tokens")


def _row_precisions(configs: pd.DataFrame, precision: str | None,
                    models: dict[str, ModelSpec]) -> list[str]:
    """Each row's precision, read as everywhere in energylens: ``precision`` where given,
    else the row's ``precision`` column, else the model name's precision word (``-FP8``),
    else the checkpoint's (the catalogue's ``precision``)."""
    if precision is not None:
        return [_precision(precision)] * len(configs)
    native = [models[m].precision for m in configs["model"]]
    if "precision" not in configs.columns:
        return native
    out, bad = [], []
    for i, (v, own) in enumerate(zip(configs["precision"].astype(object), native)):
        if v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str)
                                                                   and not v.strip()):
            out.append(own)
        elif (p := normalize_precision(v)) is None:
            bad.append((configs.index[i], v))
        else:
            out.append(p)
    if bad:
        raise ValueError(f"Column 'precision' must hold one of {sorted(BYTES_PER_VALUE)} (or be "
                         f"empty: the model's own precision); rows {[r for r, _ in bad[:5]]} "
                         f"have {[v for _, v in bad[:5]]}.")
    return out


def _simulate_rows(configs: pd.DataFrame, precision: str | None) -> pd.DataFrame:
    """Noise-free rows (canonical columns, internal ``_``-columns and ``reason``)."""
    if not isinstance(configs, pd.DataFrame):
        raise TypeError(f"Expected a DataFrame of configurations, got {type(configs).__name__}.")
    missing = [c for c in _CONFIG_NEEDS if c not in configs.columns]
    if missing:
        raise ValueError(f"Configurations lack the columns {missing}; the simulator needs "
                         f"{list(_CONFIG_NEEDS)} (pp, dp, ep, n_requests, precision "
                         "optional).")
    recs = configs.to_dict("records")
    models = {k: _sim_model(k) for k in pd.unique(configs["model"])}
    gpus = {k: _sim_gpu(k) for k in pd.unique(configs["gpu"])}
    precs = _row_precisions(configs, precision, models)
    rows = []
    for i, (r, prec) in enumerate(zip(recs, precs)):
        m, g = models[r["model"]], gpus[r["gpu"]]
        where = f"Row {configs.index[i]!r}"

        def _int(name, default=1, r=r, where=where):
            v = r.get(name, default)
            v = default if v is None or (isinstance(v, float) and np.isnan(v)) else v
            if float(v) < 1 or float(v) != int(float(v)):
                raise ValueError(f"Column '{name}' must hold positive integers; "
                                 f"{where[0].lower()}{where[1:]} has {v!r}.")
            return int(float(v))

        t, p, d, e = _int("tp"), _int("pp"), _int("dp"), _int("ep")
        cap, si, so = (float(r[c]) for c in ("batch_size", "input_tokens", "output_tokens"))
        if not (cap >= 1 and si > 0 and so >= 1):
            raise ValueError(f"{where}: batch_size must be >= 1, input_tokens > 0 and "
                             f"output_tokens >= 1; got {cap}, {si}, {so}.")
        pool = r.get("n_requests", np.nan)
        pool = np.nan if pool is None else float(pool)
        if np.isfinite(pool):
            _check_pool(where, cap, d, pool)
        fit = _fit(m, g, t, p, cap, si, so, prec, ep=e, dp=d)
        if not fit.fits:
            rows.append({"energy_j": np.nan, "reason": fit.reason})
            continue
        # A cap the KV memory cannot hold runs memory-limited: the scheduler admits as many
        # sequences as fit (vLLM does not fail), so the server runs that many at once.
        run = fit.running_batch
        ph = _Physics(m, g, t, p, BYTES_PER_VALUE[prec], _cache_bytes(prec))
        row = _saturated(ph, d, run, si, so) if not np.isfinite(pool) else \
            _pooled(ph, d, run, si, so, pool)
        row.update({
            "model": m.name, "gpu": g.name, "tp": t, "pp": p, "dp": d, "batch_size": cap,
            "batch_kind": "cap", "input_tokens": si, "output_tokens": so, "precision": prec,
            "params_b": m.params_b, "active_params_b": m.active_b,
            "energy_j": row["prefill_energy_j"] + row["decode_energy_j"], "reason": "",
        })
        if "ep" in configs.columns:
            row["ep"] = e
        rows.append(row)
    return pd.DataFrame(rows, index=configs.index)


def _check_pool(where: str, cap: float, d: int, pool: float) -> None:
    """A request pool splits evenly over the replicas, and runs at most a whole cap at once."""
    if pool < 1 or pool != int(pool):
        raise ValueError(f"{where}: n_requests must be a whole number >= 1; got {pool:g}.")
    if int(pool) % d:
        raise ValueError(f"{where}: n_requests={pool:g} does not split evenly over dp={d} "
                         "replicas; give a multiple of dp.")
    if cap != int(cap):
        raise ValueError(f"{where}: with n_requests, batch_size is the most requests running at "
                         f"once and must be a whole number; got {cap:g}.")


_OUT_COLUMNS = ["model", "gpu", "tp", "pp", "dp", "ep", "batch_size", "batch_kind", "running_batch",
                "input_tokens", "output_tokens", "precision", "params_b", "active_params_b",
                "energy_j", "prefill_energy_j", "decode_energy_j", "latency_s", "ttft_s",
                "tpot_s", "power_w", "n_requests", "run_energy_j", "duration_s"]


def simulate_configurations(configs: pd.DataFrame, *, precision: Precision | None = None
                            ) -> pd.DataFrame:
    """Noise-free simulator output for given configurations (one row each, same index).

    Parameters
    ----------
    configs : DataFrame
        Columns ``model, gpu, tp, batch_size, input_tokens, output_tokens`` and optionally
        ``pp``, ``dp`` (default 1), ``ep`` (expert-parallel degree, default 1: the routed
        experts of a mixture of experts are split over ``ep`` GPUs for the memory rule, as
        :func:`~energylens.selection.candidate_grid` does; a row with ``ep > tp * dp`` is
        infeasible), ``n_requests`` (NaN or absent: saturated; else a whole
        multiple of ``dp``, with a whole ``batch_size``) and ``precision``. Model and GPU
        names are resolved by the catalogue (:mod:`energylens.core.catalogue`); the output
        names them as the catalogue does.
    precision : str, optional
        Precision of the weights of every row (``"bf16"``, ``"fp16"``, ``"fp8"``, ``"int8"``,
        ``"mxfp4"``, ``"int4"``, ``"fp32"``); the KV cache and activations stay in 16 bits.
        None reads each row's precision as everywhere in energylens: its ``precision``
        column where given, else the model name's precision word (``"Llama-3.1-8B-FP8"``),
        else the checkpoint's.

    Returns
    -------
    DataFrame
        The simulator's columns (not validated) and ``reason``: empty for feasible rows;
        infeasible rows have NaN energies and say why (memory, heads, layers). A cap
        larger than the KV memory holds runs memory-limited: its ``running_batch`` is the
        KV capacity (:func:`~energylens.core.catalogue.configuration_fit`), and it is
        simulated at that batch.

    Examples
    --------
    >>> import pandas as pd
    >>> from energylens.simulate import simulate_configurations
    >>> cfg = pd.DataFrame({"model": ["Llama-3.1-70B"] * 2, "gpu": ["L4", "H100-SXM"],
    ...                     "tp": [1, 4], "batch_size": [8, 8], "input_tokens": [512, 512],
    ...                     "output_tokens": [128, 128]})
    >>> out = simulate_configurations(cfg)
    >>> bool(out["energy_j"].isna().iloc[0]), bool(out["energy_j"].iloc[1] > 0)
    (True, True)
    """
    if precision is not None:
        _precision(precision)
    rows = _simulate_rows(configs, precision)
    cols = [c for c in _OUT_COLUMNS if c in rows.columns] + ["reason"]
    return rows.reindex(columns=cols)


def _check_grid(name: str, values, *, integer: bool, lower: float) -> list:
    vals = [values] if np.isscalar(values) else list(values)
    if not vals:
        raise ValueError(f"{name} must hold at least one value.")
    for v in vals:
        try:
            if isinstance(v, (bool, np.bool_)):
                raise TypeError
            x = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must hold numbers; got {v!r}.") from None
        if not np.isfinite(x) or x < lower or (integer and x != int(x)):
            kind = "integers" if integer else "numbers"
            raise ValueError(f"{name} must hold {kind} >= {lower:g}; got {v!r}.")
    out = [int(v) for v in vals] if integer else [float(v) for v in vals]
    _no_repeats(name, out, vals)
    return out


def _no_repeats(name: str, keys: list, given: list, what: str = "") -> None:
    """Refuse values of one grid axis that are one value (``8`` and ``8.0``, two spellings
    of one catalogue entry): they would make repeated configurations."""
    seen: dict = {}
    for k, v in zip(keys, given):
        if k in seen:
            same = f"{seen[k]!r} and {v!r} are both {what.format(k)}" if what else \
                f"{v!r} is there more than once"
            raise ValueError(f"{name} repeats a value: {same}, which would simulate the same "
                             "configurations twice. Give each once.")
        seen[k] = v


def _names(name: str, values) -> list[str]:
    vals = [values] if isinstance(values, str) else list(values)
    if not vals:
        raise ValueError(f"{name} must name at least one {'GPU' if name == 'gpus' else 'model'}; "
                         "got none.")
    bad = [v for v in vals if not isinstance(v, str) or not v.strip()]
    if bad:
        raise ValueError(f"{name} must hold non-empty names (strings); got {bad}.")
    return vals


#: The largest relative noise a simulated table takes: beyond a standard deviation of 100%,
#: the noise throws rows out of the physical ranges every profiling table must respect.
MAX_NOISE = 1.0

_OPTIONS = {
    "noise": [Interval(Real, 0, MAX_NOISE, closed="both")],
    "seed": [Interval(Integral, 0, None, closed="left")],
    "max_rows": [Interval(Integral, 1, None, closed="left"), None],
    "precision": [str, None],
    "workload": [str],
}


def simulate_profiles(
    *,
    models: Sequence[str] = ("Llama-3.2-1B", "Llama-3.1-8B", "Llama-3.1-70B"),
    gpus: Sequence[str] = ("A100-80GB", "H100-SXM"),
    tp: Sequence[int] = (1, 2, 4, 8),
    pp: Sequence[int] = (1, 2),
    dp: Sequence[int] = (1,),
    batch_size: Sequence[float] = (1, 8, 32, 128),
    input_tokens: Sequence[float] = (128, 1024),
    output_tokens: Sequence[float] = (64, 512),
    n_requests: int | Sequence[int] | None = None,
    noise: float = 0.02,
    seed: int = 0,
    precision: Precision | None = None,
    workload: str = "synthetic",
    max_rows: int | None = None,
) -> pd.DataFrame:
    """Simulate a profiling table over a grid of configurations (synthetic data).

    Parameters
    ----------
    models, gpus : sequence of str
        Model and GPU names the catalogue resolves (:mod:`energylens.core.catalogue`; its
        complete rows: every GPU with FLOP/s, bandwidth, memory and power figures, every
        model with its layer and head counts). Each at least one, and no two names of one
        catalogue entry (``"Llama-3.2-1B"`` and ``"meta-llama/Llama-3.2-1B-Instruct"``);
        ``"Llama-3.1-8B"`` and ``"Llama-3.1-8B-FP8"`` are two models (two precisions).
    tp, pp, dp : sequence of int
        Tensor-, pipeline- and data-parallel degrees (a configuration uses ``tp*pp*dp``
        GPUs).
    batch_size : sequence of float
        Batch caps (``max_num_seqs``); with ``n_requests=None`` the cap is always full, or
        as full as the KV memory allows: a cap whose KV cache does not fit beside the
        weights runs memory-limited, as many sequences as fit
        (:func:`~energylens.core.catalogue.configuration_fit`). With ``n_requests``, whole
        numbers.
    input_tokens, output_tokens : sequence of float
        Mean prompt and answer lengths, tokens.
    n_requests : int, sequence of int, or None
        Requests of the whole run, split evenly over the ``dp`` replicas: each must be a
        multiple of every ``dp``. A small pool leaves the cap under-used, and
        ``running_batch`` records the real concurrency. None simulates saturated serving
        (``running_batch`` equals the cap, or the KV capacity where that is smaller;
        ``n_requests``, ``duration_s`` and ``run_energy_j`` are then NaN).
    noise : float
        Relative standard deviation of the seeded, mean-one log-normal measurement noise,
        from 0 to :data:`MAX_NOISE` (1, that is 100%).
        The energies of a row share one factor (so prefill + decode = total), its times
        another (so Little's law still holds); mean power gets their ratio.
    seed : int
        Seed (>= 0) of the noise and of the ``max_rows`` subsample. The physics, including
        the spread of output lengths in a request pool, does not depend on it.
    precision : str, optional
        Precision of the weights of every model (``"bf16"``, ``"fp16"``, ``"fp8"``,
        ``"int8"``, ``"mxfp4"``, ``"int4"``, ``"fp32"``; bytes only: peak FLOP/s stay the
        BF16 figures, and the KV cache and activations stay in 16 bits). None (default):
        each model's own, the precision word of its name (``"Llama-3.1-405B-FP8"``), else
        its checkpoint's (the catalogue's ``precision``), as :func:`energylens.candidate_grid`
        and the catalogue's descriptors read it.
    workload : str
        Scenario label written to ``workload``.
    max_rows : int, optional
        Keep a seeded random subset of this many feasible rows.

    Returns
    -------
    DataFrame
        A canonical table validated by :func:`energylens.schema.validate`, with
        ``batch_kind="cap"``, ``source="simulator"`` and each row's ``precision``.
        Configurations that cannot run (weights and one sequence's KV cache over 90% of GPU
        memory, TP not dividing the heads, more stages than layers) are never emitted; a cap
        larger than the KV memory holds is emitted with its ``running_batch`` below it.

    Raises
    ------
    ValueError
        Unknown model, GPU or precision, a bad or repeated grid value (each named by its
        argument), or no feasible configuration.

    Examples
    --------
    >>> import energylens
    >>> df = energylens.simulate_profiles(models=["Llama-3.2-1B"], gpus=["H100-SXM"], seed=0)
    >>> bool((df["prefill_energy_j"] + df["decode_energy_j"] - df["energy_j"]).abs().max() < 1e-9)
    True
    >>> pool = energylens.simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"], tp=[1],
    ...                                     pp=[1], dp=[2], batch_size=[128], n_requests=64)
    >>> bool((pool["running_batch"] < pool["batch_size"]).all())
    True
    """
    check_options("simulate_profiles", _OPTIONS, locals())
    prec = None if precision is None else _precision(precision)
    models, gpus = _names("models", models), _names("gpus", gpus)
    mspecs = {k: _sim_model(k) for k in models}
    gspecs = {k: _sim_gpu(k) for k in gpus}
    mprec = {k: prec or mspecs[k].precision for k in models}
    _no_repeats("models", [(mspecs[k].name, mprec[k]) for k in models], models,
                "the catalogue's model {0[0]} in {0[1]}")
    _no_repeats("gpus", [resolve_gpu(k) for k in gpus], gpus, "the catalogue's GPU {0}")
    grids = {
        "tp": _check_grid("tp", tp, integer=True, lower=1),
        "pp": _check_grid("pp", pp, integer=True, lower=1),
        "dp": _check_grid("dp", dp, integer=True, lower=1),
        "batch_size": _check_grid("batch_size", batch_size, integer=False, lower=1),
        "input_tokens": _check_grid("input_tokens", input_tokens, integer=False, lower=1),
        "output_tokens": _check_grid("output_tokens", output_tokens, integer=False, lower=1),
    }
    pools = [np.nan]
    if n_requests is not None:
        pools = [float(v) for v in _check_grid("n_requests", n_requests, integer=True, lower=1)]
        uneven = [(int(n), d) for n in pools for d in grids["dp"] if int(n) % d]
        if uneven:
            raise ValueError("n_requests must split evenly over the dp replicas (give multiples "
                             "of every dp); got "
                             + ", ".join(f"n_requests={n} with dp={d}" for n, d in uneven[:3])
                             + ".")
        frac = [b for b in grids["batch_size"] if b != int(b)]
        if frac:
            raise ValueError(f"batch_size must hold whole numbers with n_requests (the most "
                             f"requests running at once); got {frac}.")
    keep, why = [], {}
    for c in itertools.product(models, gpus, *grids.values(), pools):
        ok, reason = _feasible(mspecs[c[0]], gspecs[c[1]], c[2], c[3], c[5], c[6], c[7],
                               mprec[c[0]])
        if ok:
            keep.append((*c, mprec[c[0]]))
        elif len(why) < 3:
            why.setdefault(reason, c)
    if not keep:
        shown = "; ".join(f"{c[0]} on {c[1]} tp={c[2]} pp={c[3]} batch_size={c[5]:g}: {r}"
                          for r, c in why.items())
        raise ValueError(f"No feasible configuration in the requested grid (for example {shown}).")
    grid = pd.DataFrame(keep, columns=["model", "gpu", *grids, "n_requests", "precision"])
    rng = np.random.default_rng(seed)
    if max_rows is not None and len(grid) > max_rows:
        pick = np.sort(rng.choice(len(grid), int(max_rows), replace=False))
        grid = grid.iloc[pick].reset_index(drop=True)
    out = simulate_configurations(grid).drop(columns="reason")
    n = len(out)
    f_e = np.exp(rng.normal(0.0, noise, n) - noise**2 / 2)
    f_t = np.exp(rng.normal(0.0, noise, n) - noise**2 / 2)
    for c in ("energy_j", "prefill_energy_j", "decode_energy_j", "run_energy_j"):
        out[c] = out[c] * f_e
    for c in ("latency_s", "ttft_s", "tpot_s", "duration_s"):
        out[c] = out[c] * f_t
    out["power_w"] = out["power_w"] * f_e / f_t
    out["workload"] = workload
    out["source"] = "simulator"
    return validate(out, where="<simulator>")
