"""TokenPowerBench (2025): vLLM and DeepSpeed batch runs on one H100 NVL host."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import pandas as pd

from ...exceptions import EnergyLensWarning
from ..problems import file_error
from ..validate import validate
from ._common import folder

__all__ = ["read_tokenpowerbench", "TOKENPOWERBENCH_NOMINAL_INPUT_TOKENS", "TPB_NAME"]

#: Nominal prompt length of TokenPowerBench's short, unvaried prompts.
TOKENPOWERBENCH_NOMINAL_INPUT_TOKENS = 32.0
#: File names of TokenPowerBench results.
TPB_NAME = re.compile(r"^(?P<engine>[a-z]+)_models--(?P<model>.+?)_(?P<batch>[\d-]+)_"
                      r"(?P<max>\d+)_(?P<stamp>\d{8}_\d{6})\.json$")


def _run_row(run: dict, model: str, m: re.Match, name: str) -> dict:
    responses = float(run["responses"])
    batch = float(run.get("batch_size") or m["batch"].split("-")[0])
    host = len([k for k in run if re.fullmatch(r"gpu\d+_power_watts", k)])
    return {
        "model": model, "gpu": "H100-NVL-94GB", "tp": 1, "pp": 1, "dp": 1,
        "batch_size": batch, "batch_kind": "cap", "running_batch": min(batch, responses),
        "input_tokens": TOKENPOWERBENCH_NOMINAL_INPUT_TOKENS, "input_tokens_assumed": True,
        "output_tokens": float(run["total_output_tokens"]) / responses,
        "max_tokens": float(m["max"]),
        "energy_j": float(run["gpu_energy"]) / responses,
        "n_requests": responses, "duration_s": float(run["duration"]),
        "power_w": float(run["gpu_avg_power"]), "host_gpus": host,
        "engine": m["engine"], "source": f"tokenpowerbench-{m['engine']}",
        "workload": "batch", "file": name,
    }


def _rows(root: Path) -> tuple[list[dict], list[str]]:
    rows, skipped = [], []
    for f in sorted(root.glob("*.json")):
        m = TPB_NAME.match(f.name)
        if not m:
            skipped.append(f"{f.name}: name does not follow engine_models--model_batch_max_time.json")
            continue
        try:
            data = json.loads(f.read_text())
        except ValueError as exc:
            skipped.append(f"{f.name}: not JSON ({exc})")
            continue
        if not isinstance(data, dict) or not data:
            skipped.append(f"{f.name}: no runs")
            continue
        for model_key, runs in data.items():
            if not isinstance(runs, list):
                skipped.append(f"{f.name}: the runs of {model_key!r} are not a list")
                continue
            for run in runs:
                try:
                    rows.append(_run_row(run, model_key.split("--")[-1], m, f.name))
                except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
                    skipped.append(f"{f.name}: run without {exc}")
    return rows, skipped


def read_tokenpowerbench(path: str | os.PathLike, *, aggregate: bool = True) -> pd.DataFrame:
    """Read TokenPowerBench result files (``results/*.json``).

    File names are ``{engine}_models--{model}_{batch}_{max_tokens}_{timestamp}.json`` and
    hold ``{model: [run, ...]}``. Per run: ``energy_j = gpu_energy / responses`` (the
    host's GPU energy, every GPU of the host included: ``host_gpus`` says how many report
    power), ``output_tokens = total_output_tokens / responses``, ``n_requests = responses``,
    ``duration_s = duration``, ``power_w = gpu_avg_power``, ``batch_size`` = the run's batch
    (a cap, ``batch_kind="cap"``), ``running_batch = min(batch, responses)``. The engine
    (vllm, deepspeed) is kept in ``engine`` and ``source`` (``tokenpowerbench-vllm``) so that
    engines are never pooled. Prompts are short and not varied: ``input_tokens`` is
    :data:`TOKENPOWERBENCH_NOMINAL_INPUT_TOKENS`, flagged in ``input_tokens_assumed``.
    Empty or malformed files, and runs without output, are skipped with a warning naming
    them.

    Parameters
    ----------
    path : path
        The folder of result files (or the repository folder holding ``results/``).
    aggregate : bool
        Average repeated runs of one configuration (``n_repeats``).

    Returns
    -------
    DataFrame
        The validated canonical table.

    Examples
    --------
    >>> from energylens.datasets import real_data_dir
    >>> df = read_tokenpowerbench(real_data_dir() / "tokenpowerbench")  # doctest: +SKIP
    >>> sorted(df.source.unique())  # doctest: +SKIP
    ['tokenpowerbench-deepspeed', 'tokenpowerbench-vllm']
    """
    root = folder(path, "read_tokenpowerbench", "the TokenPowerBench results folder")
    if (root / "results").is_dir() and not any(TPB_NAME.match(p.name) for p in root.glob("*.json")):
        root = root / "results"
    rows, skipped = _rows(root)
    empty = [r for r in rows if not (r["energy_j"] > 0 and r["output_tokens"] > 0)]
    skipped += [f"{r['file']}: a run without energy or output" for r in empty]
    rows = [r for r in rows if r["energy_j"] > 0 and r["output_tokens"] > 0]
    if skipped:
        warnings.warn(f"read_tokenpowerbench skipped {len(skipped)} file(s) or run(s): "
                      + "; ".join(skipped[:5]), EnergyLensWarning, stacklevel=2)
    if not rows:
        raise file_error(f"'{root}'", "no readable result files (expected "
                         "{engine}_models--{model}_{batch}_{max_tokens}_{timestamp}.json)",
                         code="file.layout")
    df = pd.DataFrame(rows)
    if not aggregate:
        return validate(df, where=f"'{root}'", duplicates="keep")
    key = ["source", "engine", "model", "gpu", "tp", "pp", "dp", "batch_size", "batch_kind",
           "input_tokens", "input_tokens_assumed", "max_tokens", "n_requests", "workload",
           "host_gpus"]
    num = ["running_batch", "output_tokens", "energy_j", "duration_s", "power_w"]
    agg = df.groupby(key, sort=True)[num].mean().reset_index()
    agg["n_repeats"] = df.groupby(key, sort=True).size().to_numpy()
    return validate(agg, where=f"'{root}'")
