"""The ML.ENERGY leaderboard, v2 (2024) and v3 (2025-26), into the canonical table.

Both versions measure vLLM serving at saturation with a configured batch cap. v2 keeps
one JSON file per configuration
(``llm_text_generation/<task>/<GPU>/<org>/<model>/bs{B}+tp{T}+pp{P}.json``); v3 keeps every
configuration of a task in ``tasks/<task>.json``. :func:`read_mlenergy_leaderboard` tells
them apart by their files.

Neither records the prompt length, which the task's prompt set fixes: ``input_tokens`` is
the nominal value of :data:`MLENERGY_NOMINAL_INPUT_TOKENS` for the task, flagged in
``input_tokens_assumed``. Within a task every configuration sees the same prompts, so the
nominal value only shifts per-request terms; fit per task (or include ``workload`` in the
groups).

v3 records ``avg_batch_size`` and ``max_num_seqs`` for the whole serving unit, not per
data-parallel replica (its README says per replica), and the reader divides both by ``dp``
to give the schema's per-replica values. The evidence is in the data: on every
data-parallel run (Qwen3-Coder-480B-FP8 on B200, dp = 4 and 8) the running batch never
exceeds the cap (dp = 8 at cap 8 runs exactly 8.0 requests, one per replica), and the
measured output throughput is 0.06-0.87 times ``avg_batch_size / median ITL``, against 0.92
(median 0.94) on the single-replica runs; read per replica, the unit would hold ``dp`` times
more requests and the throughput would be only 0.01-0.2 of what they could serve.
"""

from __future__ import annotations

import difflib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ...core.options import check_options
from ...exceptions import EnergyLensWarning
from ..problems import file_error
from ._common import folder, validated

__all__ = ["read_mlenergy_leaderboard", "MLENERGY_NOMINAL_INPUT_TOKENS", "MLENERGY_V3_TASKS",
           "mlenergy_version"]

#: Nominal prompt length (tokens) per ML.ENERGY task; the leaderboard does not record it.
#: v2: ``chat`` (ShareGPT conversations) and ``code`` (short code prompts). v3: ``gpqa``
#: (a GPQA Diamond question with its four options and instructions, a few hundred
#: tokens), ``lm-arena-chat`` (LMArena user turns), ``sourcegraph-fim`` (fill-in-the-middle
#: code completion, whose prefix and suffix context is about a thousand tokens).
#: Order-of-magnitude values: they shift every configuration of a task alike.
MLENERGY_NOMINAL_INPUT_TOKENS: dict[str, float] = {
    "chat": 256.0, "code": 128.0,
    "gpqa": 256.0, "lm-arena-chat": 256.0, "sourcegraph-fim": 1024.0,
}
#: The text-generation (LLM) tasks of v3, read by default.
MLENERGY_V3_TASKS = ("gpqa", "lm-arena-chat", "sourcegraph-fim")
#: Active parameters (billions) of mixture-of-experts models in v2, from their model cards.
_ACTIVE_PARAMS_B = {"mistralai/Mixtral-8x7B-Instruct-v0.1": 12.9,
                    "mistralai/Mixtral-8x22B-Instruct-v0.1": 39.1}
_V2_GPU = {"A100-SXM4-40GB": "A100-SXM4-40GB", "H100 80GB HBM3": "H100-80GB-HBM3",
           "NVIDIA A100-SXM4-40GB": "A100-SXM4-40GB", "NVIDIA H100 80GB HBM3": "H100-80GB-HBM3"}
_V2_KEYS = ("Model", "GPU", "TP", "PP", "Energy/req (J)", "Avg TPOT (s)", "Token tput (tok/s)",
            "Avg Output Tokens", "Avg BS (reqs)", "Max BS (reqs)")
_V3_KEYS = ("model_id", "gpu_model", "num_gpus", "tensor_parallel", "expert_parallel",
            "data_parallel", "max_num_seqs", "avg_batch_size", "avg_output_len",
            "energy_per_request_joules", "avg_power_watts", "median_itl_ms",
            "total_params_billions", "activated_params_billions", "weight_precision")
_PRECISION = {"bfloat16": "bf16", "bf16": "bf16", "float16": "fp16", "fp16": "fp16",
              "half": "fp16", "float32": "fp32", "fp32": "fp32", "float8": "fp8",
              "fp8": "fp8", "mxfp4": "mxfp4", "int8": "int8", "int4": "int4"}


def v2_root(p: Path) -> Path | None:
    """The folder under ``p`` (itself or ``data/``) that holds the v2 task folders."""
    for root in (p, p / "data"):
        if (root / "llm_text_generation").is_dir() or (root / "mllm_text_generation").is_dir():
            return root
    return None


def v3_root(p: Path) -> Path | None:
    """The folder under ``p`` (itself or ``public/data/``) that holds ``tasks/*.json``."""
    for root in (p, p / "public" / "data"):
        if (root / "tasks").is_dir() and any((root / "tasks").glob("*.json")):
            return root
    return None


def mlenergy_version(path: str | os.PathLike) -> Literal["v2", "v3"] | None:
    """Which ML.ENERGY layout a folder holds: ``"v2"``, ``"v3"`` or None.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "tasks").mkdir(); _ = (d / "tasks" / "gpqa.json").write_text("{}")
    >>> mlenergy_version(d)
    'v3'
    """
    p = Path(path)
    if v3_root(p) is not None:
        return "v3"
    return "v2" if v2_root(p) is not None else None


def read_mlenergy_leaderboard(
    path: str | os.PathLike,
    *,
    tasks: Sequence[str] | None = None,
    include_mllm: bool = False,
    version: Literal["auto", "v2", "v3"] = "auto",
) -> pd.DataFrame:
    """Read the ML.ENERGY leaderboard (v2 or v3, detected from the files).

    **v2** (``path`` holds ``llm_text_generation/``): ``batch_size`` = ``Max BS (reqs)``
    (the cap, ``batch_kind="cap"``), ``running_batch`` = ``Avg BS (reqs)``,
    ``output_tokens`` = ``Avg Output Tokens``, ``energy_j`` = ``Energy/req (J)``,
    ``tpot_s`` = ``Avg TPOT (s)``, ``power_w`` = energy per request x requests per second,
    ``params_b`` from ``models.json``, ``dp = 1``, ``source="mlenergy-v2"``, ``file``.

    **v3** (``path`` holds ``tasks/<task>.json``): ``tp = num_gpus / data_parallel`` (the
    model-parallel width of one replica: expert-parallel-only runs are recorded with
    ``tensor_parallel = 1`` and ``expert_parallel = E`` on E GPUs), ``ep =
    expert_parallel``, ``dp = data_parallel``, ``batch_size = max_num_seqs / dp`` (a cap)
    and ``running_batch = avg_batch_size / dp``, both per replica as the schema wants them:
    the data show that ``avg_batch_size`` and ``max_num_seqs`` count the requests of the
    whole serving unit (module docstring), ``output_tokens = avg_output_len``,
    ``energy_j = energy_per_request_joules``, ``power_w = avg_power_watts``, ``tpot_s`` =
    ``median_itl_ms`` / 1000, ``params_b`` / ``active_params_b`` from the total and
    activated parameters, ``precision`` from ``weight_precision`` (``bfloat16`` -> ``bf16``),
    ``architecture`` kept, GPU names as given (``H100``, ``B200``),
    ``source="mlenergy-v3"``.

    Both: ``workload`` = task; ``input_tokens`` is the task's nominal prompt length
    (:data:`MLENERGY_NOMINAL_INPUT_TOKENS`) with ``input_tokens_assumed=True``.

    Parameters
    ----------
    path : path
        The v2 ``data`` folder (with ``llm_text_generation/``) or the v3 ``public/data``
        folder (with ``tasks/``).
    tasks : str or sequence of str, optional
        Tasks to read; default ``("chat", "code")`` for v2 and :data:`MLENERGY_V3_TASKS`
        for v3 (those of them the folder holds). A task named here that the folder does not
        hold is an error listing the tasks it does hold.
    include_mllm : bool
        v2 only: also read the vision-language models of ``mllm_text_generation``.
    version : {"auto", "v2", "v3"}
        Which layout to read; ``"auto"`` detects it.

    Returns
    -------
    DataFrame
        The validated canonical table.

    Examples
    --------
    >>> from energylens.datasets import real_data_dir
    >>> base = real_data_dir()
    >>> df = read_mlenergy_leaderboard(base / "mlenergy_v3")  # doctest: +SKIP
    >>> bool((df.n_gpus == df.tp * df.pp * df.dp).all())  # doctest: +SKIP
    True
    """
    check_options("read_mlenergy_leaderboard", {"version": [{"auto", "v2", "v3"}]},
                  {"version": version})
    root = folder(path, "read_mlenergy_leaderboard", "the ML.ENERGY v2 'data' folder with "
                  "llm_text_generation/ or the v3 'public/data' folder with tasks/")
    if version == "auto":
        version = mlenergy_version(root) or "v2"
    if version == "v3":
        v3 = v3_root(root)
        if v3 is None:
            raise file_error(f"'{root}'", "holds no tasks/<task>.json files; expected the "
                             "ML.ENERGY v3 'public/data' folder", code="file.layout")
        return _read_v3(v3, _tasks(tasks, MLENERGY_V3_TASKS), explicit=tasks is not None)
    return _read_v2(v2_root(root) or root, _tasks(tasks, ("chat", "code")), include_mllm,
                    explicit=tasks is not None)


def _tasks(tasks, default: tuple[str, ...]) -> tuple[str, ...]:
    """``tasks`` as a tuple of names (a single name is one task, not its letters)."""
    if tasks is None:
        return default
    if isinstance(tasks, str):
        return (tasks,)
    out = tuple(tasks)
    bad = [t for t in out if not isinstance(t, str)]
    if bad:
        raise TypeError(f"read_mlenergy_leaderboard: tasks must be task names (str); got {bad!r}.")
    return out


def _absent_tasks(root: Path, absent: list[str], present: list[str]) -> None:
    """Tasks asked for by name that the folder does not hold: an error, never a smaller table."""
    if absent:
        close = {t: difflib.get_close_matches(t, present, n=1) for t in absent}
        hint = "; ".join(f"did you mean {c[0]!r} for {t!r}?" for t, c in close.items() if c)
        raise file_error(f"'{root}'", f"has no task(s) {absent}; tasks present: {present}"
                         + (f" ({hint})" if hint else ""), code="file.layout")


def _whole(value, name: str) -> int:
    """A count that must be a whole number (1.7 or True are not data-parallel degrees)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(value)


def _v2_row(d: dict, task: str, family: str, params: dict, rel: str) -> dict:
    model = d["Model"]
    rps = d["Token tput (tok/s)"] / d["Avg Output Tokens"]
    return {
        "model": model, "gpu": _V2_GPU.get(d["GPU"], d["GPU"]),
        "tp": d["TP"], "pp": d["PP"], "dp": 1,
        "batch_size": float(d["Max BS (reqs)"]), "batch_kind": "cap",
        "running_batch": float(d["Avg BS (reqs)"]),
        "input_tokens": MLENERGY_NOMINAL_INPUT_TOKENS.get(task, 256.0),
        "input_tokens_assumed": True,
        "output_tokens": float(d["Avg Output Tokens"]),
        "energy_j": float(d["Energy/req (J)"]), "tpot_s": float(d["Avg TPOT (s)"]),
        "power_w": float(d["Energy/req (J)"]) * rps,
        "params_b": params.get(model, np.nan),
        "active_params_b": _ACTIVE_PARAMS_B.get(model, params.get(model, np.nan)),
        "workload": task if family == "llm_text_generation" else f"mllm-{task}",
        "source": "mlenergy-v2", "file": rel,
    }


def _models_json(f: Path) -> dict:
    """``models.json`` of a v2 task: model -> parameters in billions."""
    try:
        data = json.loads(f.read_text())
        return {k: v.get("params") for k, v in data.items()}
    except (ValueError, AttributeError) as exc:
        raise file_error(f"'{f}'", f"is not a JSON object of models with their 'params' ({exc})",
                         code="file.layout") from None


def _read_v2(root: Path, tasks: tuple[str, ...], include_mllm: bool, *,
             explicit: bool = False) -> pd.DataFrame:
    families = ["llm_text_generation"] + (["mllm_text_generation"] if include_mllm else [])
    if explicit:
        present = sorted({p.name for fam in families if (root / fam).is_dir()
                          for p in (root / fam).iterdir() if p.is_dir()})
        _absent_tasks(root, [t for t in tasks if t not in present], present)
    rows, bad = [], []
    for family in families:
        for task in tasks:
            task_dir = root / family / task
            if not task_dir.is_dir():
                continue
            params = {}
            if (task_dir / "models.json").is_file():
                params = _models_json(task_dir / "models.json")
            for f in sorted(task_dir.glob("*/*/*/bs*+tp*+pp*.json")):
                try:
                    d = json.loads(f.read_text())
                    missing = [k for k in _V2_KEYS if k not in d]
                    if missing:
                        raise KeyError(f"missing keys {missing}")
                    rows.append(_v2_row(d, task, family, params, str(f.relative_to(root))))
                except (ValueError, KeyError, TypeError, ZeroDivisionError) as exc:
                    bad.append(f"{f}: {exc}")
    if bad:
        warnings.warn(f"read_mlenergy_leaderboard skipped {len(bad)} unreadable file(s): "
                      + "; ".join(bad[:5]), EnergyLensWarning, stacklevel=3)
    if not rows:
        raise file_error(f"'{root}'", f"no bs*+tp*+pp*.json files for tasks {list(tasks)}; "
                         "expected llm_text_generation/<task>/<GPU>/<org>/<model>/"
                         "bs{B}+tp{T}+pp{P}.json", code="file.layout")
    df = pd.DataFrame(rows)
    return validated(df, f"'{root}'", df["file"].astype(str).tolist())


def _v3_rows(configs: list, task: str, bad: list) -> list[dict]:
    rows = []
    for i, c in enumerate(configs):
        try:
            missing = [k for k in _V3_KEYS if k not in c]
            if missing:
                raise KeyError(f"missing keys {missing}")
            dp = _whole(c["data_parallel"], "data_parallel")
            precision = str(c["weight_precision"]).lower()
            rows.append({
                "model": c["model_id"], "gpu": c["gpu_model"],
                "tp": c["num_gpus"] / dp, "pp": 1, "dp": dp, "ep": c["expert_parallel"],
                # per replica: the source counts both over the unit (module docstring)
                "batch_size": float(c["max_num_seqs"]) / dp, "batch_kind": "cap",
                "running_batch": float(c["avg_batch_size"]) / dp,
                "input_tokens": MLENERGY_NOMINAL_INPUT_TOKENS.get(task, 256.0),
                "input_tokens_assumed": True,
                "output_tokens": float(c["avg_output_len"]),
                "energy_j": float(c["energy_per_request_joules"]),
                "tpot_s": float(c["median_itl_ms"]) / 1e3,
                "power_w": float(c["avg_power_watts"]),
                "params_b": float(c["total_params_billions"]),
                "active_params_b": float(c["activated_params_billions"]),
                "precision": _PRECISION.get(precision, precision),
                "workload": task, "source": "mlenergy-v3",
                "architecture": c.get("architecture"),
                "_origin": f"tasks/{task}.json configuration {i}",
            })
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            bad.append(f"tasks/{task}.json configuration {i}: {exc}")
    return rows


def _read_v3(root: Path, tasks: tuple[str, ...], *, explicit: bool = False) -> pd.DataFrame:
    rows, bad, absent = [], [], []
    if explicit:
        present = sorted(p.stem for p in (root / "tasks").glob("*.json"))
        _absent_tasks(root, [t for t in tasks if t not in present], present)
    for task in tasks:
        f = root / "tasks" / f"{task}.json"
        if not f.is_file():
            absent.append(task)
            continue
        try:
            configs = json.loads(f.read_text()).get("configurations")
        except (ValueError, AttributeError) as exc:
            bad.append(f"{f}: {exc}")
            continue
        if not isinstance(configs, list):
            bad.append(f"{f}: no 'configurations' list (got {type(configs).__name__})")
            continue
        rows += _v3_rows(configs, task, bad)
    if bad:
        warnings.warn(f"read_mlenergy_leaderboard skipped {len(bad)} unreadable entries: "
                      + "; ".join(bad[:5]), EnergyLensWarning, stacklevel=3)
    if not rows:
        have = sorted(p.stem for p in (root / "tasks").glob("*.json"))
        raise file_error(f"'{root}'", f"no configurations for tasks {list(tasks)} (absent: "
                         f"{absent}); tasks present: {have}", code="file.layout")
    df = pd.DataFrame(rows)
    return validated(df.drop(columns="_origin"), f"'{root}'", df["_origin"].tolist())
