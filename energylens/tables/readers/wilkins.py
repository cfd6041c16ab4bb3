"""Wilkins, Keshav and Mortier (2024), "Offline energy-optimal LLM serving".

One query at a time through a Hugging Face pipeline, with the input swept at a fixed output
limit and the output limit swept at a fixed input (``plots/<experiment>/all-*.csv``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from ..problems import file_error
from ..validate import validate
from ._common import folder

__all__ = ["read_wilkins", "WILKINS_EXPERIMENTS"]

#: The experiments of Wilkins et al. and the CSV inside each folder.
WILKINS_EXPERIMENTS = ("input-test", "output-test", "parameter-scale-input-test",
                       "parameter-scale-output-test")
_GPU = {
    "Palmetto Intel+V100": "V100-16GB (Palmetto)",
    "Palmetto Intel+A100": "A100-40GB (Palmetto)",
    "Swing AMD+A100": "A100-40GB (Swing)",
    "argonne-swing": "A100-40GB (Swing)",  # the same host under a second label
    "M1-Pro": "Apple M1 Pro",
}
_NEED = ("Phase", "GPU Energy (J)", "Runtime (s)", "Number of Input Tokens", "Iteration",
         "Model", "Number of GPUs", "System")


def _one_file(f, exp: str, include_cpu: bool) -> pd.DataFrame:
    d = pd.read_csv(f)
    missing = sorted(set(_NEED) - set(d.columns))
    if missing:
        raise file_error(f"'{f}'", f"lacks columns {missing}; read_wilkins expects {list(_NEED)}",
                         code="file.layout")
    d = d[d["Phase"].astype(str).str.contains("inference") & (d["Iteration"] != 0)]
    out_col = "Number of Output Tokens" if "Number of Output Tokens" in d else "Output Token Limit"
    energy = d["GPU Energy (J)"].astype(float)
    if include_cpu:
        energy = energy + d["CPU Energy (J)"].astype(float)
    return pd.DataFrame({
        "model": d["Model"].astype(str).to_numpy(),
        "gpu": d["System"].map(lambda s: _GPU.get(s, s)).astype(str).to_numpy(),
        "host": d["System"].astype(str).to_numpy(),
        "tp": 1, "pp": d["Number of GPUs"].astype(int).to_numpy(), "dp": 1,
        "batch_size": 1.0, "batch_kind": "running",
        "input_tokens": d["Number of Input Tokens"].astype(float).to_numpy(),
        "output_tokens": d[out_col].astype(float).to_numpy(),
        "output_tokens_kind": "cap",
        "energy_j": energy.to_numpy(),
        "latency_s": d["Runtime (s)"].astype(float).to_numpy(),
        "workload": exp, "source": "wilkins2024",
        "iteration": d["Iteration"].astype(int).to_numpy(),
    })


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
    than the realised length: ``output_tokens_kind = "cap"``. ``gpu`` names the GPU and its
    host (``A100-40GB (Swing)``); ``host`` keeps the study's own system label
    (``argonne-swing`` is the same host as ``Swing AMD+A100``).

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

    Returns
    -------
    DataFrame
        The validated canonical table.

    Examples
    --------
    >>> from energylens.datasets import real_data_dir
    >>> df = read_wilkins(real_data_dir() / "wilkins2024")  # doctest: +SKIP
    >>> sorted(df.workload.unique())[:2]  # doctest: +SKIP
    ['input-test', 'output-test']
    """
    root = folder(path, "read_wilkins", "the energy-inference repository folder with plots/")
    plots = root / "plots" if (root / "plots").is_dir() else root
    frames = [_one_file(f, exp, include_cpu) for exp in experiments
              for f in sorted((plots / exp).glob("all-*.csv"))]
    if not frames:
        raise file_error(f"'{root}'", f"no plots/<experiment>/all-*.csv for experiments "
                                      f"{list(experiments)}", code="file.layout")
    df = pd.concat(frames, ignore_index=True)
    if not aggregate:
        return validate(df, where=f"'{root}'", duplicates="keep")
    key = ["source", "workload", "model", "gpu", "host", "tp", "pp", "dp", "batch_size",
           "batch_kind", "input_tokens", "output_tokens", "output_tokens_kind"]
    agg = df.groupby(key, sort=True).agg(
        energy_j=("energy_j", "mean"), energy_sd=("energy_j", "std"),
        latency_s=("latency_s", "mean"), n_repeats=("energy_j", "size")).reset_index()
    agg["energy_rel_sd"] = agg.pop("energy_sd") / agg["energy_j"]
    return validate(agg, where=f"'{root}'")
