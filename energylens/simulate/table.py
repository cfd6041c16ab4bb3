"""Simulated profiling tables: given configurations, or a grid of them with noise."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..schema import validate
from .physics import _Physics, _pooled, _saturated
from .specs import Precision, _bytes_per_value, _feasible, _sim_gpu, _sim_model

__all__ = ["simulate_configurations", "simulate_profiles"]

_CONFIG_NEEDS = ("model", "gpu", "tp", "batch_size", "input_tokens", "output_tokens")


def _simulate_rows(configs: pd.DataFrame, precision: str | Sequence[str]) -> pd.DataFrame:
    """Noise-free rows (canonical columns, internal ``_``-columns and ``reason``)."""
    if not isinstance(configs, pd.DataFrame):
        raise TypeError(f"Expected a DataFrame of configurations, got {type(configs).__name__}.")
    missing = [c for c in _CONFIG_NEEDS if c not in configs.columns]
    if missing:
        raise ValueError(f"Configurations lack the columns {missing}; the simulator needs "
                         f"{list(_CONFIG_NEEDS)} (pp, dp, n_requests optional).")
    n = len(configs)
    precs = [precision] * n if isinstance(precision, str) else list(precision)
    recs = configs.to_dict("records")
    models = {k: _sim_model(k) for k in pd.unique(configs["model"])}
    gpus = {k: _sim_gpu(k) for k in pd.unique(configs["gpu"])}
    rows = []
    for i, (r, prec) in enumerate(zip(recs, precs)):
        bpp = _bytes_per_value(prec)
        m, g = models[r["model"]], gpus[r["gpu"]]

        def _int(name, default=1, r=r, i=i):
            v = r.get(name, default)
            v = default if v is None or (isinstance(v, float) and np.isnan(v)) else v
            if float(v) < 1 or float(v) != int(float(v)):
                raise ValueError(f"Column '{name}' must hold positive integers; row "
                                 f"{configs.index[i]!r} has {v!r}.")
            return int(float(v))

        t, p, d = _int("tp"), _int("pp"), _int("dp")
        cap, si, so = (float(r[c]) for c in ("batch_size", "input_tokens", "output_tokens"))
        if not (cap >= 1 and si > 0 and so >= 1):
            raise ValueError(f"Row {configs.index[i]!r}: batch_size must be >= 1, input_tokens "
                             f"> 0 and output_tokens >= 1; got {cap}, {si}, {so}.")
        ok, why = _feasible(m, g, t, p, cap, si, so, bpp)
        if not ok:
            rows.append({"energy_j": np.nan, "reason": why})
            continue
        ph = _Physics(m, g, t, p, bpp)
        pool = r.get("n_requests", np.nan)
        pool = np.nan if pool is None else float(pool)
        row = _saturated(ph, d, cap, si, so) if not np.isfinite(pool) else \
            _pooled(ph, d, cap, si, so, pool)
        row.update({
            "model": m.name, "gpu": g.name, "tp": t, "pp": p, "dp": d, "batch_size": cap,
            "batch_kind": "cap", "input_tokens": si, "output_tokens": so, "precision": prec,
            "params_b": m.params_b, "active_params_b": m.active_b,
            "energy_j": row["prefill_energy_j"] + row["decode_energy_j"], "reason": "",
        })
        rows.append(row)
    return pd.DataFrame(rows, index=configs.index)


_OUT_COLUMNS = ["model", "gpu", "tp", "pp", "dp", "batch_size", "batch_kind", "running_batch",
                "input_tokens", "output_tokens", "precision", "params_b", "active_params_b",
                "energy_j", "prefill_energy_j", "decode_energy_j", "latency_s", "ttft_s",
                "tpot_s", "power_w", "n_requests", "run_energy_j", "duration_s"]


def simulate_configurations(configs: pd.DataFrame, *, precision: Precision = "bf16"
                            ) -> pd.DataFrame:
    """Noise-free simulator output for given configurations (one row each, same index).

    Parameters
    ----------
    configs : DataFrame
        Columns ``model, gpu, tp, batch_size, input_tokens, output_tokens`` and optionally
        ``pp``, ``dp`` (default 1) and ``n_requests`` (NaN or absent: saturated). Model and
        GPU names are resolved by the catalogue (:mod:`energylens.core.catalogue`); the
        output names them as the catalogue does.
    precision : {"bf16", "fp16", "fp8"}
        Weight and KV-cache precision.

    Returns
    -------
    DataFrame
        The simulator's columns (not validated) and ``reason``: empty for feasible rows;
        infeasible rows have NaN energies and say why (memory, heads, layers).

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
    _bytes_per_value(precision)
    rows = _simulate_rows(configs, precision)
    cols = [c for c in _OUT_COLUMNS if c in rows.columns] + ["reason"]
    return rows.reindex(columns=cols)


def _check_grid(name: str, values, *, integer: bool, lower: float) -> list:
    vals = [values] if np.isscalar(values) else list(values)
    if not vals:
        raise ValueError(f"{name} must hold at least one value.")
    for v in vals:
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must hold numbers; got {v!r}.") from None
        if not np.isfinite(x) or x < lower or (integer and x != int(x)):
            kind = "integers" if integer else "numbers"
            raise ValueError(f"{name} must hold {kind} >= {lower:g}; got {v!r}.")
    return [int(v) for v in vals] if integer else [float(v) for v in vals]


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
    precision: Precision = "bf16",
    workload: str = "synthetic",
    max_rows: int | None = None,
) -> pd.DataFrame:
    """Simulate a profiling table over a grid of configurations (synthetic data).

    Parameters
    ----------
    models, gpus : sequence of str
        Model and GPU names the catalogue resolves (:mod:`energylens.core.catalogue`; its
        complete rows: every GPU with FLOP/s, bandwidth, memory and power figures, every
        model with its layer and head counts).
    tp, pp, dp : sequence of int
        Tensor-, pipeline- and data-parallel degrees (a configuration uses ``tp*pp*dp``
        GPUs).
    batch_size : sequence of float
        Batch caps (``max_num_seqs``); with ``n_requests=None`` the cap is always full.
    input_tokens, output_tokens : sequence of float
        Mean prompt and answer lengths, tokens.
    n_requests : int, sequence of int, or None
        Requests of the whole run (split evenly over the ``dp`` replicas). A small pool
        leaves the cap under-used, and ``running_batch`` records the real concurrency.
        None simulates saturated serving (``running_batch`` equals the cap; ``n_requests``,
        ``duration_s`` and ``run_energy_j`` are then NaN).
    noise : float
        Relative standard deviation of the seeded, mean-one log-normal measurement noise.
        The energies of a row share one factor (so prefill + decode = total), its times
        another (so Little's law still holds); mean power gets their ratio.
    seed : int
        Seed of the noise and of the ``max_rows`` subsample. The physics, including the
        spread of output lengths in a request pool, does not depend on it.
    precision : {"bf16", "fp16", "fp8"}
        Weight and KV-cache precision (bytes only: peak FLOP/s stay the BF16 figures).
    workload : str
        Scenario label written to ``workload``.
    max_rows : int, optional
        Keep a seeded random subset of this many feasible rows.

    Returns
    -------
    DataFrame
        A canonical table validated by :func:`energylens.schema.validate`, with
        ``batch_kind="cap"`` and ``source="simulator"``. Configurations that cannot run
        (weights and KV cache over 90% of GPU memory, TP not dividing the heads, more
        stages than layers) are never emitted.

    Raises
    ------
    ValueError
        Unknown model, GPU or precision, a bad grid value, or no feasible configuration.

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
    bpp = _bytes_per_value(precision)
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0; got {noise!r}.")
    if max_rows is not None and int(max_rows) < 1:
        raise ValueError(f"max_rows must be a positive integer or None; got {max_rows!r}.")
    models = [models] if isinstance(models, str) else list(models)
    gpus = [gpus] if isinstance(gpus, str) else list(gpus)
    mspecs = {k: _sim_model(k) for k in models}
    gspecs = {k: _sim_gpu(k) for k in gpus}
    grids = {
        "tp": _check_grid("tp", tp, integer=True, lower=1),
        "pp": _check_grid("pp", pp, integer=True, lower=1),
        "dp": _check_grid("dp", dp, integer=True, lower=1),
        "batch_size": _check_grid("batch_size", batch_size, integer=False, lower=1),
        "input_tokens": _check_grid("input_tokens", input_tokens, integer=False, lower=1),
        "output_tokens": _check_grid("output_tokens", output_tokens, integer=False, lower=1),
    }
    pools = [np.nan] if n_requests is None else [
        float(v) for v in _check_grid("n_requests", n_requests, integer=True, lower=1)]
    combos = itertools.product(models, gpus, *grids.values(), pools)
    keep = [c for c in combos
            if _feasible(mspecs[c[0]], gspecs[c[1]], c[2], c[3], c[5], c[6], c[7], bpp)[0]]
    if not keep:
        raise ValueError("No feasible configuration in the requested grid: every combination "
                         "exceeds GPU memory or has a TP that does not divide the heads.")
    grid = pd.DataFrame(keep, columns=["model", "gpu", *grids, "n_requests"])
    rng = np.random.default_rng(seed)
    if max_rows is not None and len(grid) > max_rows:
        pick = np.sort(rng.choice(len(grid), int(max_rows), replace=False))
        grid = grid.iloc[pick].reset_index(drop=True)
    out = simulate_configurations(grid, precision=precision).drop(columns="reason")
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

