"""Readers for public measurement layouts, into the canonical profiling table.

Each reader takes a local folder the user points to (nothing is downloaded), keeps the
source's own numbers, fills the canonical columns the source has (``dp``, ``running_batch``,
``n_requests``, ``duration_s``, ``latency_s``, ``tpot_s``, ``power_w``, ``params_b``), adds a
``source`` column, and ends with :func:`energylens.schema.validate`. Where a source does
not record a quantity the schema requires (the prompt length of ML.ENERGY and
TokenPowerBench), the reader fills a documented nominal value and flags it in
``input_tokens_assumed``.

- :func:`read_mlenergy_leaderboard`: ML.ENERGY leaderboard v2 (vLLM, saturated serving).
- :func:`read_wilkins`: Wilkins, Keshav and Mortier (2024), one query at a time.
- :func:`read_tokenpowerbench`: TokenPowerBench (2025), vLLM and DeepSpeed batch runs.
- :func:`read_splitwise`: Splitwise latency profiles (no energy; latency columns only).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .exceptions import EnergyLensWarning, SchemaError
from .schema import validate

__all__ = [
    "read_mlenergy_leaderboard",
    "read_wilkins",
    "read_tokenpowerbench",
    "read_splitwise",
    "MLENERGY_NOMINAL_INPUT_TOKENS",
    "TOKENPOWERBENCH_NOMINAL_INPUT_TOKENS",
]

#: Nominal prompt length per ML.ENERGY task. The leaderboard does not record input length;
#: it is fixed by the task's prompt set, so within a task it only shifts per-request terms.
MLENERGY_NOMINAL_INPUT_TOKENS: dict[str, float] = {"chat": 256.0, "code": 128.0}
#: Nominal prompt length of TokenPowerBench's short, unvaried prompts.
TOKENPOWERBENCH_NOMINAL_INPUT_TOKENS = 32.0
#: Active parameters (billions) of mixture-of-experts models, from their model cards.
_ACTIVE_PARAMS_B = {"mistralai/Mixtral-8x7B-Instruct-v0.1": 12.9,
                    "mistralai/Mixtral-8x22B-Instruct-v0.1": 39.1}
_MLENERGY_GPU = {"A100-SXM4-40GB": "A100-SXM4-40GB", "H100 80GB HBM3": "H100-80GB-HBM3",
                 "NVIDIA A100-SXM4-40GB": "A100-SXM4-40GB", "NVIDIA H100 80GB HBM3": "H100-80GB-HBM3"}


def _folder(path, what: str, expect: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{what}: '{p}' does not exist; expected {expect}.")
    if not p.is_dir():
        raise SchemaError(f"{what}: '{p}' is not a folder; expected {expect}.")
    return p


# --------------------------------------------------------------------------- ML.ENERGY
_MLE_KEYS = ("Model", "GPU", "TP", "PP", "Energy/req (J)", "Avg TPOT (s)", "Token tput (tok/s)",
             "Avg Output Tokens", "Avg BS (reqs)", "Max BS (reqs)")


def read_mlenergy_leaderboard(
    path: str | os.PathLike,
    *,
    tasks: Sequence[str] = ("chat", "code"),
    include_mllm: bool = False,
) -> pd.DataFrame:
    """Read the ML.ENERGY leaderboard v2 JSON layout.

    Files ``llm_text_generation/<task>/<GPU>/<org>/<model>/bs{B}+tp{T}+pp{P}.json``, one
    measured configuration each (vLLM serving at saturation). ``path`` is the folder that
    holds ``llm_text_generation`` (e.g. ``../shared/data/mlenergy_v2``).

    Columns filled: ``batch_size`` = ``Max BS (reqs)`` (the configured cap,
    ``batch_kind="cap"``), ``running_batch`` = ``Avg BS (reqs)`` (the measured mean
    concurrency), ``output_tokens`` = ``Avg Output Tokens``, ``energy_j`` = ``Energy/req
    (J)``, ``tpot_s`` = ``Avg TPOT (s)``, ``power_w`` = energy per request x requests per
    second (``Token tput / Avg Output Tokens``), ``params_b`` from ``models.json``
    (``active_params_b`` for the Mixtral models), ``workload`` = task, ``dp = 1``.

    The leaderboard does not record prompt length: ``input_tokens`` is the nominal value of
    :data:`MLENERGY_NOMINAL_INPUT_TOKENS` for the task and ``input_tokens_assumed`` is True.
    Fit per task (or include ``workload`` in groups) so the assumption only shifts
    per-request terms.

    Parameters
    ----------
    path : path
        Folder with ``llm_text_generation/`` (and optionally ``mllm_text_generation/``).
    tasks : sequence of str
        Task folders to read.
    include_mllm : bool
        Also read the vision-language models of ``mllm_text_generation``.
    """
    root = _folder(path, "read_mlenergy_leaderboard", "the ML.ENERGY v2 'data' folder with "
                   "llm_text_generation/")
    families = ["llm_text_generation"] + (["mllm_text_generation"] if include_mllm else [])
    rows, bad = [], []
    for family in families:
        for task in tasks:
            task_dir = root / family / task
            if not task_dir.is_dir():
                continue
            params = {}
            if (task_dir / "models.json").is_file():
                params = {k: v.get("params") for k, v in json.loads((task_dir / "models.json").read_text()).items()}
            for f in sorted(task_dir.glob("*/*/*/bs*+tp*+pp*.json")):
                try:
                    d = json.loads(f.read_text())
                    missing = [k for k in _MLE_KEYS if k not in d]
                    if missing:
                        raise KeyError(f"missing keys {missing}")
                except (ValueError, KeyError) as exc:
                    bad.append(f"{f}: {exc}")
                    continue
                model = d["Model"]
                rps = d["Token tput (tok/s)"] / d["Avg Output Tokens"]
                rows.append({
                    "model": model,
                    "gpu": _MLENERGY_GPU.get(d["GPU"], d["GPU"]),
                    "tp": d["TP"], "pp": d["PP"], "dp": 1,
                    "batch_size": float(d["Max BS (reqs)"]), "batch_kind": "cap",
                    "running_batch": float(d["Avg BS (reqs)"]),
                    "input_tokens": MLENERGY_NOMINAL_INPUT_TOKENS.get(task, 256.0),
                    "input_tokens_assumed": True,
                    "output_tokens": float(d["Avg Output Tokens"]),
                    "energy_j": float(d["Energy/req (J)"]),
                    "tpot_s": float(d["Avg TPOT (s)"]),
                    "power_w": float(d["Energy/req (J)"]) * rps,
                    "params_b": params.get(model, np.nan),
                    "active_params_b": _ACTIVE_PARAMS_B.get(model, params.get(model, np.nan)),
                    "workload": task if family == "llm_text_generation" else f"mllm-{task}",
                    "source": "mlenergy-v2",
                    "file": str(f.relative_to(root)),
                })
    if bad:
        warnings.warn(f"read_mlenergy_leaderboard skipped {len(bad)} unreadable file(s): "
                      + "; ".join(bad[:5]), EnergyLensWarning, stacklevel=2)
    if not rows:
        raise SchemaError(f"read_mlenergy_leaderboard: no bs*+tp*+pp*.json files under "
                          f"'{root}' for tasks {list(tasks)}; expected "
                          "llm_text_generation/<task>/<GPU>/<org>/<model>/bs{B}+tp{T}+pp{P}.json.")
    return validate(pd.DataFrame(rows), where=f"'{root}'")


# --------------------------------------------------------------------------- Wilkins et al.
#: The experiments of Wilkins et al. and the CSV inside each folder.
WILKINS_EXPERIMENTS = ("input-test", "output-test", "parameter-scale-input-test",
                       "parameter-scale-output-test")
_WILKINS_GPU = {
    "Palmetto Intel+V100": "V100-16GB (Palmetto)",
    "Palmetto Intel+A100": "A100-40GB (Palmetto)",
    "Swing AMD+A100": "A100-40GB (Swing)",
    "argonne-swing": "A100-40GB (Swing)",  # the same host under a second label
    "M1-Pro": "Apple M1 Pro",
}


def read_wilkins(
    path: str | os.PathLike,
    *,
    experiments: Sequence[str] = WILKINS_EXPERIMENTS,
    aggregate: bool = True,
    include_cpu: bool = False,
) -> pd.DataFrame:
    """Read the Wilkins, Keshav and Mortier (2024) CSVs (``plots/<experiment>/all-*.csv``).

    Rows whose ``Phase`` contains ``inference`` are kept, and iteration 0 of each bin is
    dropped (it includes warm-up). One row is one query served alone by a Hugging Face
    pipeline, so ``batch_size = 1``. Multi-GPU runs shard layers sequentially (a pipeline
    without micro-batching): ``tp = 1`` and ``pp`` = number of GPUs. Energy per request is the
    query's GPU energy (plus CPU energy with ``include_cpu=True``); ``latency_s`` is its
    runtime. ``output_tokens`` is the output token limit (``max_new_tokens``), a cap rather
    than the realised length: ``output_tokens_kind = "cap"``. ``gpu`` names the GPU and the
    host (``A100-40GB (Swing)``; ``argonne-swing`` is the same host as ``Swing AMD+A100``).

    Parameters
    ----------
    path : path
        The repository folder holding ``plots/`` (or ``plots/`` itself).
    experiments : sequence of str
        Experiment folders to read; their name becomes ``workload``.
    aggregate : bool
        Average the repeats of one configuration (``n_repeats``, ``energy_rel_sd``);
        otherwise return every query (validated with ``duplicates="keep"``).
    include_cpu : bool
        Add the CPU energy of the query to ``energy_j``.
    """
    root = _folder(path, "read_wilkins", "the energy-inference repository folder with plots/")
    plots = root / "plots" if (root / "plots").is_dir() else root
    frames = []
    for exp in experiments:
        files = sorted((plots / exp).glob("all-*.csv"))
        for f in files:
            d = pd.read_csv(f)
            need = {"Phase", "GPU Energy (J)", "Runtime (s)", "Number of Input Tokens", "Iteration",
                    "Model", "Number of GPUs", "System"}
            if not need <= set(d.columns):
                raise SchemaError(f"read_wilkins: '{f}' lacks columns {sorted(need - set(d.columns))}.")
            d = d[d["Phase"].astype(str).str.contains("inference")]
            d = d[d["Iteration"] != 0]
            out_col = "Number of Output Tokens" if "Number of Output Tokens" in d else "Output Token Limit"
            energy = d["GPU Energy (J)"].astype(float)
            if include_cpu:
                energy = energy + d["CPU Energy (J)"].astype(float)
            frames.append(pd.DataFrame({
                "model": d["Model"].astype(str).to_numpy(),
                "gpu": d["System"].map(lambda s: _WILKINS_GPU.get(s, s)).astype(str).to_numpy(),
                "system": d["System"].astype(str).to_numpy(),
                "tp": 1, "pp": d["Number of GPUs"].astype(int).to_numpy(), "dp": 1,
                "batch_size": 1.0, "batch_kind": "running",
                "input_tokens": d["Number of Input Tokens"].astype(float).to_numpy(),
                "output_tokens": d[out_col].astype(float).to_numpy(),
                "output_tokens_kind": "cap",
                "energy_j": energy.to_numpy(),
                "latency_s": d["Runtime (s)"].astype(float).to_numpy(),
                "workload": exp, "source": "wilkins2024",
                "iteration": d["Iteration"].astype(int).to_numpy(),
            }))
    if not frames:
        raise SchemaError(f"read_wilkins: no plots/<experiment>/all-*.csv under '{root}' for "
                          f"experiments {list(experiments)}.")
    df = pd.concat(frames, ignore_index=True)
    if not aggregate:
        return validate(df, where=f"'{root}'", duplicates="keep")
    key = ["source", "workload", "model", "gpu", "system", "tp", "pp", "dp", "batch_size",
           "batch_kind", "input_tokens", "output_tokens", "output_tokens_kind"]
    agg = df.groupby(key, sort=True).agg(
        energy_j=("energy_j", "mean"), energy_sd=("energy_j", "std"),
        latency_s=("latency_s", "mean"), n_repeats=("energy_j", "size")).reset_index()
    agg["energy_rel_sd"] = agg.pop("energy_sd") / agg["energy_j"]
    return validate(agg, where=f"'{root}'")


# --------------------------------------------------------------------------- TokenPowerBench
_TPB_NAME = re.compile(r"^(?P<engine>[a-z]+)_models--(?P<model>.+?)_(?P<batch>[\d-]+)_(?P<max>\d+)_"
                       r"(?P<stamp>\d{8}_\d{6})\.json$")


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
    Empty or malformed files are skipped with a warning naming them.

    Parameters
    ----------
    path : path
        The folder of result files.
    aggregate : bool
        Average repeated runs of one configuration (``n_repeats``).
    """
    root = _folder(path, "read_tokenpowerbench", "the TokenPowerBench results folder")
    rows, skipped = [], []
    for f in sorted(root.glob("*.json")):
        m = _TPB_NAME.match(f.name)
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
            model = model_key.split("--")[-1]
            for run in runs if isinstance(runs, list) else []:
                try:
                    responses = float(run["responses"])
                    batch = float(run.get("batch_size") or m["batch"].split("-")[0])
                    host = len([k for k in run if re.fullmatch(r"gpu\d+_power_watts", k)])
                    rows.append({
                        "model": model, "gpu": "H100-NVL-94GB", "tp": 1, "pp": 1, "dp": 1,
                        "batch_size": batch, "batch_kind": "cap",
                        "running_batch": min(batch, responses),
                        "input_tokens": TOKENPOWERBENCH_NOMINAL_INPUT_TOKENS,
                        "input_tokens_assumed": True,
                        "output_tokens": float(run["total_output_tokens"]) / responses,
                        "max_tokens": float(m["max"]),
                        "energy_j": float(run["gpu_energy"]) / responses,
                        "n_requests": responses, "duration_s": float(run["duration"]),
                        "power_w": float(run["gpu_avg_power"]), "host_gpus": host,
                        "engine": m["engine"], "source": f"tokenpowerbench-{m['engine']}",
                        "workload": "batch", "file": f.name,
                    })
                except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
                    skipped.append(f"{f.name}: run without {exc}")
    if skipped:
        warnings.warn(f"read_tokenpowerbench skipped {len(skipped)} file(s) or run(s): "
                      + "; ".join(skipped[:5]), EnergyLensWarning, stacklevel=2)
    if not rows:
        raise SchemaError(f"read_tokenpowerbench: no readable result files in '{root}'.")
    df = pd.DataFrame(rows)
    df = df[(df["energy_j"] > 0) & (df["output_tokens"] > 0)]
    if not aggregate:
        return validate(df, where=f"'{root}'", duplicates="keep")
    key = ["source", "engine", "model", "gpu", "tp", "pp", "dp", "batch_size", "batch_kind",
           "input_tokens", "input_tokens_assumed", "max_tokens", "n_requests", "workload", "host_gpus"]
    num = ["running_batch", "output_tokens", "energy_j", "duration_s", "power_w"]
    agg = df.groupby(key, sort=True)[num].mean().reset_index()
    agg["n_repeats"] = df.groupby(key, sort=True).size().to_numpy()
    return validate(agg, where=f"'{root}'")


# --------------------------------------------------------------------------- Splitwise
def read_splitwise(path: str | os.PathLike) -> pd.DataFrame:
    """Read the Splitwise latency profiles (``perf_model.csv``): latency only, no energy.

    Returns canonical latency columns: ``model, gpu, tp, pp, batch_size, input_tokens,
    output_tokens, ttft_s`` (``prompt_time``), ``tpot_s`` (``token_time``), ``latency_s``
    (``e2e_time``), all in seconds, ``source="splitwise"``. Not validated as a profiling
    table (there is no energy), but its columns are checked.

    Parameters
    ----------
    path : path
        ``perf_model.csv`` or the folder that holds it.
    """
    p = Path(path).expanduser()
    f = p / "perf_model.csv" if p.is_dir() else p
    if not f.is_file():
        raise FileNotFoundError(f"read_splitwise: '{f}' does not exist; expected perf_model.csv.")
    d = pd.read_csv(f)
    need = ["model", "hardware", "tensor_parallel", "batch_size", "prompt_size", "token_size",
            "prompt_time", "token_time", "e2e_time"]
    missing = [c for c in need if c not in d.columns]
    if missing:
        raise SchemaError(f"read_splitwise: '{f}' lacks columns {missing}.")
    out = pd.DataFrame({
        "model": d["model"].astype(str), "gpu": d["hardware"].astype(str),
        "tp": d["tensor_parallel"].astype(int), "pp": 1, "dp": 1,
        "batch_size": d["batch_size"].astype(float),
        "input_tokens": d["prompt_size"].astype(float),
        "output_tokens": d["token_size"].astype(float),
        "ttft_s": d["prompt_time"].astype(float) / 1e3,
        "tpot_s": d["token_time"].astype(float) / 1e3,
        "latency_s": d["e2e_time"].astype(float) / 1e3,
        "source": "splitwise",
    })
    bad = ~np.isfinite(out[["ttft_s", "tpot_s", "latency_s"]]).all(axis=1) | (out["batch_size"] <= 0)
    if bad.any():
        raise SchemaError(f"read_splitwise: '{f}' has {int(bad.sum())} rows with missing or "
                          f"invalid times or batch sizes (first rows {list(np.flatnonzero(bad)[:5])}).")
    return out
