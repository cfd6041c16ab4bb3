"""Sweep a user's inference function over a grid of configurations and measure each one.

For each configuration: warm-up runs (not measured), then ``repeats`` measured runs of the
full generation and, separately, of a one-token generation (prefill); decode energy is the
difference. The GPUs are let back to near idle before every measured run. Each finished
configuration is appended to a CSV file at once, so an interrupted sweep loses nothing, and
a resumed sweep skips what the file already holds.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ..schema import validate
from .meter import EnergyMeter

__all__ = ["profile_grid", "expand_grid"]

_REQUIRED = ("batch_size", "input_tokens", "output_tokens")


def expand_grid(grid: Mapping[str, Iterable] | Iterable[Mapping]) -> list[dict]:
    """A dict of lists becomes its cartesian product; a list of dicts is taken as it is."""
    if isinstance(grid, Mapping):
        keys = list(grid)
        values = [list(v) if isinstance(v, (list, tuple, range, np.ndarray)) else [v] for v in grid.values()]
        configs = [dict(zip(keys, combo)) for combo in itertools.product(*values)]
    else:
        configs = [dict(c) for c in grid]
    for c in configs:
        missing = [k for k in _REQUIRED if k not in c]
        if missing:
            raise ValueError(f"Grid configuration {c} lacks {missing}; every configuration needs "
                             f"{list(_REQUIRED)}.")
        if int(c["output_tokens"]) < 1 or int(c["batch_size"]) < 1 or int(c["input_tokens"]) < 1:
            raise ValueError(f"Grid configuration {c}: batch_size, input_tokens and output_tokens must be >= 1.")
    return configs


def _key(config: Mapping) -> str:
    return json.dumps({k: config[k] for k in sorted(config)}, sort_keys=True, default=str)


def _progress(i: int, n: int, config: Mapping, t0: float, enabled: bool) -> None:
    if enabled:
        elapsed = time.perf_counter() - t0
        print(f"[{i}/{n}] {elapsed:7.1f}s  {dict(config)}", file=sys.stderr, flush=True)


def profile_grid(
    run_fn: Callable[..., object],
    grid: Mapping[str, Iterable] | Iterable[Mapping],
    *,
    repeats: int = 3,
    warmup: int = 1,
    meter: EnergyMeter | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = True,
    measure_prefill: bool = True,
    idle_tolerance: float = 0.15,
    idle_timeout_s: float = 60.0,
    model: str = "model",
    gpu: str | None = None,
    tp: int = 1,
    pp: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Measure ``run_fn`` over ``grid`` and return the canonical profiling table.

    Parameters
    ----------
    run_fn : callable
        ``run_fn(**config)`` runs one batch: ``batch_size`` prompts of ``input_tokens``
        tokens, generating ``output_tokens`` tokens each, and returns when the GPU work is
        done (synchronise inside it).
    grid : dict of lists, or list of dicts
        Configurations; each needs ``batch_size``, ``input_tokens``, ``output_tokens`` and
        may hold anything else ``run_fn`` takes.
    repeats, warmup : int
        Measured and unmeasured runs per configuration.
    meter : EnergyMeter, optional
        Default: all GPUs through NVML.
    out : path, optional
        CSV file each finished configuration is appended to; with ``resume`` its
        configurations are skipped.
    measure_prefill : bool
        Also measure a one-token run per repeat: prefill energy; decode = full minus prefill
        (clipped at 0, counted in ``decode_clipped``).
    idle_tolerance, idle_timeout_s : float
        Before each measured run, wait until power is within this relative tolerance of the
        idle power measured at the start (at most this long; ``idle_timeouts`` counts misses).
    model, gpu, tp, pp : str, str, int, int
        Recorded in the table (``gpu`` defaults to the first GPU's NVML name).

    Returns
    -------
    DataFrame
        Canonical table (``energylens.schema``) with per-request energies, latency, time to
        first token, time per output token, mean power, ``n_requests`` and the sweep's extra
        columns (``repeats``, ``energy_rel_sd``, ``idle_power_w``, ``method``, ``measured_at``).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0; got {repeats!r}, {warmup!r}.")
    configs = expand_grid(grid)
    meter = meter if meter is not None else EnergyMeter()
    path = Path(out) if out is not None else None
    done: set[str] = set()
    if path is not None and path.exists() and resume:
        previous = pd.read_csv(path)
        if "config_key" in previous.columns:
            done = set(previous["config_key"])
    elif path is not None and path.exists() and not resume:
        raise FileExistsError(f"'{path}' exists; pass resume=True to continue it or remove it.")
    idle = meter.idle_power_w(seconds=1.0)
    gpu_name = gpu or (meter.names[0] if meter.names else "unknown")
    t0 = time.perf_counter()
    todo = [c for c in configs if _key(c) not in done]
    rows: list[dict] = []
    for i, config in enumerate(todo, 1):
        _progress(i, len(todo), config, t0, progress)
        for _ in range(warmup):
            run_fn(**config)
        full, pre, timeouts = [], [], 0
        for _ in range(repeats):
            timeouts += not meter.wait_until_idle(idle, tolerance=idle_tolerance, timeout_s=idle_timeout_s)
            with meter.measure() as m:
                run_fn(**config)
            full.append(m)
            if measure_prefill:
                timeouts += not meter.wait_until_idle(idle, tolerance=idle_tolerance, timeout_s=idle_timeout_s)
                with meter.measure() as mp:
                    run_fn(**{**config, "output_tokens": 1})
                pre.append(mp)
        row = _row(config, full, pre, idle, timeouts, model=model, gpu=gpu_name, tp=tp, pp=pp,
                   n_gpus=len(meter.gpus))
        rows.append(row)
        if path is not None:
            _append(path, row)
    if path is not None and path.exists():
        table = pd.read_csv(path)
        table = table[table["config_key"].isin({_key(c) for c in configs})]
    else:
        table = pd.DataFrame(rows)
    return validate(table.reset_index(drop=True), where=str(path) if path else "<profile_grid>",
                    duplicates="keep")


def _row(config, full, pre, idle, timeouts, *, model, gpu, tp, pp, n_gpus) -> dict:
    b = float(config["batch_size"])
    so = float(config["output_tokens"])
    e_full = np.array([m.energy_j for m in full])
    t_full = np.array([m.duration_s for m in full])
    row = {k: v for k, v in config.items() if k not in _REQUIRED}
    row.update({
        "model": model, "gpu": gpu, "tp": tp, "pp": pp, "dp": 1,
        "batch_size": b, "batch_kind": "running",
        "input_tokens": float(config["input_tokens"]), "output_tokens": so,
        "energy_j": float(e_full.mean() / b),
        "latency_s": float(t_full.mean()),
        "power_w": float(e_full.sum() / t_full.sum()),
        "n_requests": b * len(full),
        "run_energy_j": float(e_full.sum()),
        "duration_s": float(t_full.sum()),
        "repeats": len(full),
        "energy_rel_sd": float(e_full.std(ddof=1) / e_full.mean()) if len(full) > 1 else float("nan"),
        "idle_power_w": float(np.sum(idle)),
        "n_gpus_measured": n_gpus,
        "method": full[0].method,
        "failed_samples": int(sum(m.failed_samples for m in full + pre)),
        "idle_timeouts": int(timeouts),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": "energylens.profile",
        "config_key": _key(config),
    })
    if pre:
        e_pre = float(np.mean([m.energy_j for m in pre]))
        t_pre = float(np.mean([m.duration_s for m in pre]))
        decode = e_full.mean() - e_pre
        row.update({
            "prefill_energy_j": e_pre / b,
            "decode_energy_j": max(decode, 0.0) / b,
            "decode_clipped": bool(decode < 0),
            "ttft_s": t_pre,
            "tpot_s": (row["latency_s"] - t_pre) / (so - 1) if so > 1 else float("nan"),
        })
        if decode < 0:  # keep prefill + decode = energy
            row["energy_j"] = e_pre / b
    return row


def _append(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    if not new:
        with open(path, newline="") as fh:
            header = next(csv.reader(fh), [])
        missing = [k for k in row if k not in header]
        if missing:
            raise ValueError(f"'{path}' has columns {header}; this sweep adds {missing}. Use a new file.")
        fields = header
    else:
        fields = list(row)
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerow(row)
        fh.flush()
        os.fsync(fh.fileno())
