"""Sweep a user's inference function over a grid of configurations and measure each one.

For each configuration: warm-up runs (not measured), then ``repeats`` measured runs of the
full generation and, separately, of a one-token generation (prefill); decode energy is the
difference. The GPUs are let back to near idle before every measured run. Each finished
configuration is appended to a CSV file at once (one complete line, synced to disk), so an
interrupted sweep loses nothing, and a resumed sweep skips what the file already holds.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from ..core.options import Integral, Interval, Real, StrOptions, check_options
from ..core.progress import logger
from ..core.progress import progress as progress_bar
from ..exceptions import EnergyLensWarning, ImplausibleValueWarning, RunFailedError, SchemaError
from ..schema import validate
from .configs import Plan, expand_grid, plan_sweep, sweep_columns
from .meter import EnergyMeter, Measurement
from .sweepfile import SweepFile

__all__ = ["profile_grid", "expand_grid", "RunFailedError"]

_CONSTRAINTS = {
    "run_fn": [callable],
    "repeats": [Interval(Integral, 1, None, closed="left")],
    "warmup": [Interval(Integral, 0, None, closed="left")],
    "meter": [EnergyMeter, None],
    "out": [str, os.PathLike, None],
    "resume": ["boolean"],
    "measure_prefill": ["boolean"],
    "idle_tolerance": [Interval(Real, 0, None, closed="left")],
    "idle_timeout_s": [Interval(Real, 0, None, closed="left")],
    "model": [str, None],
    "gpu": [str, None],
    "tp": [Interval(Integral, 1, None, closed="left"), None],
    "pp": [Interval(Integral, 1, None, closed="left"), None],
    "dp": [Interval(Integral, 1, None, closed="left"), None],
    "progress": ["boolean"],
    "on_error": [StrOptions({"raise", "skip"})],
}


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
    model: str | None = None,
    gpu: str | None = None,
    tp: int | None = None,
    pp: int | None = None,
    dp: int | None = None,
    progress: bool = True,
    on_error: str = "raise",
) -> pd.DataFrame:
    """Measure ``run_fn`` over ``grid`` and return the canonical profiling table.

    Parameters
    ----------
    run_fn : callable
        ``run_fn(**config)`` runs one batch: ``batch_size`` prompts of ``input_tokens``
        tokens, generating ``output_tokens`` tokens each, and returns when the GPU work is
        done (synchronise inside it).
    grid : dict of lists, or list of dicts
        Configurations; each needs ``batch_size``, ``input_tokens``, ``output_tokens``
        (whole numbers >= 1) and may hold anything else ``run_fn`` takes. Where the grid
        sweeps ``model``, ``gpu``, ``tp``, ``pp`` or ``dp`` (or an alias the schema reads as
        one, such as ``tensor_parallel_size``), each row records the grid's value.
        Configurations equal after normalising numbers (``1``, ``1.0``, ``np.int64(1)``)
        are measured once.
    repeats, warmup : int
        Measured and unmeasured runs per configuration.
    meter : EnergyMeter, optional
        Default: all GPUs through NVML.
    out : path, optional
        CSV file each finished configuration is appended to, one complete line at a time;
        with ``resume`` its configurations are skipped. A line left incomplete by a crash
        is moved to ``<out>.torn`` (with a logged warning) and measured again.
    resume : bool
        Continue an existing ``out``; False refuses to touch an existing file.
    measure_prefill : bool
        Also measure a one-token run per repeat: prefill energy; decode = full minus prefill
        (clipped at 0, flagged in ``decode_clipped``; prefill is then the whole measured
        energy, so that the phases still add up to ``energy_j``).
    idle_tolerance, idle_timeout_s : float
        Before each measured run, wait until power is within this relative tolerance of the
        idle power measured at the start (at most this many seconds; ``idle_timeouts``
        counts misses).
    model, gpu, tp, pp, dp : str, str, int, int, int, optional
        Labels for every row where the grid does not sweep them (defaults ``"model"``, the
        first measured GPU's NVML name, 1, 1, 1). Fixing one the grid also sweeps, with a
        different value, is an error.
    progress : bool
        Show a progress bar (on a terminal) and log each configuration at INFO level.
    on_error : {"raise", "skip"}
        What an exception raised by ``run_fn`` does (``KeyboardInterrupt`` always stops the
        sweep as it is). ``"raise"``: stop with a :class:`RunFailedError` naming the
        configuration, the rows measured so far in its ``table`` (and in ``out``).
        ``"skip"``: warn, leave the configuration out (not written to ``out``, so a resumed
        sweep tries it again) and go on, e.g. past configurations that run out of memory;
        the returned table lists them in ``attrs["failed"]``.

    Returns
    -------
    DataFrame
        Canonical table (``energylens.schema``) with per-request energies, latency, time to
        first token, time per output token, mean power, ``n_requests`` and the sweep's extra
        columns (``repeats``, ``energy_rel_sd``, ``idle_power_w``, ``method``, ``measured_at``).
        ``attrs["failed"]`` lists the configurations skipped with ``on_error="skip"``
        (dicts ``{"config": ..., "error": ...}``; empty otherwise).

    Raises
    ------
    InvalidParameterError
        An option or the grid is invalid (every problem named), before anything runs.
    RunFailedError
        ``run_fn`` raised (``on_error="raise"``); the message names the configuration, the
        error's ``table`` holds the rows measured before it.
    SchemaError
        ``out`` exists and cannot be resumed (the message names the lines), or the measured
        table breaks the schema (the rows are in ``out``, or in the error's ``table``).

    Warns
    -----
    ImplausibleValueWarning
        A configuration whose GPUs (``tp * pp * dp``) are not the measured GPUs, and a
        configuration whose measured energy is not positive (not recorded; a resumed sweep
        measures it again).
    EnergyLensWarning
        A configuration skipped because ``run_fn`` raised (``on_error="skip"``).

    Examples
    --------
    A replayed 300 W GPU and a run function that takes 10 ms per output token:

    >>> from energylens.profile import GpuTrace, ReplayBackend
    >>> now = [0.0]
    >>> def clock(): return now[0]
    >>> def sleep(dt): now[0] += dt
    >>> trace = GpuTrace("H100", [0, 1e6], [300e3, 300e3], [0, 1e6], [0, 300e3 * 1e6])
    >>> meter = EnergyMeter(backend=ReplayBackend([trace], clock), sample_power=False,
    ...                     clock=clock, sleep=sleep)
    >>> def run_fn(batch_size, input_tokens, output_tokens, **_): sleep(0.01 * output_tokens)
    >>> df = profile_grid(run_fn, {"batch_size": [1], "input_tokens": [64],
    ...                            "output_tokens": [10, 100], "tp": [1]},
    ...                   meter=meter, model="toy", progress=False)
    >>> df[["model", "gpu", "tp", "output_tokens", "energy_j"]].to_numpy().tolist()
    [['toy', 'H100', 1, 10.0, 30.0], ['toy', 'H100', 1, 100.0, 300.0]]
    """
    check_options("profile_grid", _CONSTRAINTS, locals())
    configs = expand_grid(grid, check=False)
    meter = meter if meter is not None else EnergyMeter()
    defaults = {"model": "model", "gpu": meter.names[0] if meter.names else "unknown",
                "tp": 1, "pp": 1, "dp": 1}
    plans = plan_sweep(configs, {"model": model, "gpu": gpu, "tp": tp, "pp": pp, "dp": dp}, defaults)
    _warn_gpu_count(plans, meter)
    sweep = SweepFile(out, sweep_columns(plans, measure_prefill)) if out is not None else None
    done = sweep.open(resume) if sweep is not None else set()
    todo = [p for p in plans if p.key not in done]
    if len(todo) < len(plans):
        logger.info("'%s' holds %d of the %d configurations; measuring the other %d.", out,
                    len(plans) - len(todo), len(plans), len(todo))
    idle = meter.idle_power_w(seconds=1.0) if todo else np.zeros(len(meter.gpus))
    settings = dict(repeats=repeats, warmup=warmup, measure_prefill=measure_prefill,
                    idle=idle, tolerance=idle_tolerance, timeout_s=idle_timeout_s)
    rows: list[dict] = []
    failed: list[dict] = []
    t0 = time.perf_counter()
    for i, plan in enumerate(progress_bar(todo, desc="profile_grid", unit="config",
                                          enabled=None if progress else False), 1):
        if progress:
            logger.info("[%d/%d] %.1fs %s", i, len(todo), time.perf_counter() - t0, plan.config)
        try:
            row = _measure_plan(run_fn, plan, meter, **settings)
        except Exception as exc:  # noqa: BLE001 - any failure of the user's run_fn
            what = f"{type(exc).__name__}: {exc}"
            if on_error == "raise":
                kept = (f"The {len(rows)} row(s) measured before it are in '{out}' and in this "
                        "error's 'table' attribute; a resumed sweep skips them"
                        if sweep is not None else
                        f"The {len(rows)} row(s) measured before it are in this error's 'table' "
                        "attribute")
                raise RunFailedError(
                    f"profile_grid: run_fn failed on configuration {plan.config} ({what}). "
                    f"{kept}. on_error='skip' leaves failing configurations out and goes on.",
                    dict(plan.config), pd.DataFrame(rows)) from exc
            failed.append({"config": dict(plan.config), "error": what})
            warnings.warn(f"profile_grid: run_fn failed on configuration {plan.config} ({what}); "
                          "skipped (not recorded: a resumed sweep tries it again).",
                          EnergyLensWarning, stacklevel=2)
            continue
        if row is not None:
            rows.append(row)
            if sweep is not None:
                sweep.append(row)
    if sweep is not None:
        table, lines = sweep.table({p.key for p in plans})
    else:
        table, lines = pd.DataFrame(rows), None
    where = str(out) if out is not None else "<profile_grid>"
    if failed and len(table) == 0:
        raise SchemaError(f"profile_grid {where}: no configuration has a usable measurement; "
                          f"run_fn failed on all {len(failed)}: {failed[:3]}.")
    df = _validated(table, where, lines)
    df.attrs["failed"] = failed
    return df


def _warn_gpu_count(plans: list[Plan], meter: EnergyMeter) -> None:
    n = len(meter.gpus)
    other = sorted({p.labels["tp"] * p.labels["pp"] * p.labels["dp"] for p in plans} - {n})
    if other:
        warnings.warn(
            f"profile_grid measures {n} GPU(s) {meter.names}, but configurations use "
            f"tp * pp * dp = {other} GPU(s): their energy_j covers the measured GPUs, idle ones "
            "included and unmeasured ones left out. Measure the GPUs each configuration uses "
            "(EnergyMeter(gpus=...)).", ImplausibleValueWarning, stacklevel=3)


def _validated(table: pd.DataFrame, where: str, lines: list[int] | None) -> pd.DataFrame:
    if len(table) == 0:
        raise SchemaError(f"profile_grid {where}: no configuration has a usable measurement.")
    try:
        return validate(table.reset_index(drop=True), where=where, duplicates="keep",
                        line_offset=lines)
    except SchemaError as exc:
        kept = ("The measured rows stay in that file." if lines is not None
                else "The measured rows are in this error's 'table' attribute.")
        err = SchemaError(f"{exc}\n{kept}", exc.problems)
        err.table = table
        raise err from None


def _measure_plan(run_fn, plan: Plan, meter: EnergyMeter, *, repeats, warmup, measure_prefill,
                  idle, tolerance, timeout_s) -> dict | None:
    """Warm up, measure ``repeats`` full (and one-token) runs; the row, or None if unusable."""
    config = plan.config
    for _ in range(warmup):
        run_fn(**config)
    full: list[Measurement] = []
    pre: list[Measurement] = []
    timeouts = 0
    for _ in range(repeats):
        timeouts += not meter.wait_until_idle(idle, tolerance=tolerance, timeout_s=timeout_s)
        with meter.measure() as m:
            run_fn(**config)
        full.append(m)
        if measure_prefill:
            timeouts += not meter.wait_until_idle(idle, tolerance=tolerance, timeout_s=timeout_s)
            with meter.measure() as mp:
                run_fn(**{**config, "output_tokens": 1})
            pre.append(mp)
    energies = [m.energy_j for m in full + pre]
    if not all(np.isfinite(e) and e > 0 for e in energies):
        warnings.warn(
            f"profile_grid: configuration {config} measured energies {energies} J; a run must "
            "use a positive energy (runs shorter than the counter's update interval read 0). "
            "The row is not recorded; a resumed sweep measures it again. Give each run more "
            "work.", ImplausibleValueWarning, stacklevel=3)
        return None
    return _row(plan, full, pre, idle, timeouts, n_gpus=len(meter.gpus))


def _row(plan: Plan, full, pre, idle, timeouts, *, n_gpus) -> dict:
    config = plan.config
    b = float(config["batch_size"])
    so = float(config["output_tokens"])
    e_full = np.array([m.energy_j for m in full])
    t_full = np.array([m.duration_s for m in full])
    row = {**plan.labels, "batch_size": b, "batch_kind": "running",
           "input_tokens": float(config["input_tokens"]), "output_tokens": so, **plan.extras}
    row.update({
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
        "config_key": plan.key,
    })
    if pre:
        e_pre = float(np.mean([m.energy_j for m in pre]))
        t_pre = float(np.mean([m.duration_s for m in pre]))
        decode = e_full.mean() - e_pre
        decode_s = row["latency_s"] - t_pre
        row.update({
            # noise can make the one-token run cost more than the whole generation: the
            # measured energy per request stays, all of it read as prefill (clipped)
            "prefill_energy_j": min(e_pre, float(e_full.mean())) / b,
            "decode_energy_j": max(decode, 0.0) / b,
            "decode_clipped": bool(decode < 0),
            "ttft_s": t_pre,
            # noise can make the one-token run the longer one: no decode time is measured
            "tpot_s": decode_s / (so - 1) if so > 1 and decode_s > 0 else float("nan"),
        })
    return row
