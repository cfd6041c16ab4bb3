"""Splitwise (ISCA 2024) latency profiles: time only, no energy."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..problems import file_error
from ..validate import validate

__all__ = ["read_splitwise"]

_NEED = ["model", "hardware", "tensor_parallel", "batch_size", "prompt_size", "token_size",
         "prompt_time", "token_time", "e2e_time"]


def read_splitwise(path: str | os.PathLike) -> pd.DataFrame:
    """Read the Splitwise latency profiles (``perf_model.csv``): latency only, no energy.

    Returns canonical latency columns: ``model, gpu, tp, pp, dp, batch_size,
    input_tokens, output_tokens, ttft_s`` (``prompt_time``), ``tpot_s`` (``token_time``),
    ``latency_s`` (``e2e_time``), all in seconds, ``source="splitwise"``. It is not a
    profiling table (there is no energy): its columns are checked as candidate
    configurations are (``validate(..., measurements=False)``), which also adds
    ``batch_kind="running"`` (a simulator batch of B requests runs B at a time) and
    ``n_gpus``.

    Parameters
    ----------
    path : path
        ``perf_model.csv`` or the folder that holds it.

    Returns
    -------
    DataFrame
        The checked latency table.

    Examples
    --------
    >>> from energylens.datasets import real_data_dir
    >>> df = read_splitwise(real_data_dir() / "splitwise")  # doctest: +SKIP
    >>> {"ttft_s", "tpot_s", "latency_s"} <= set(df.columns)  # doctest: +SKIP
    True
    """
    p = Path(path).expanduser()
    f = p / "perf_model.csv" if p.is_dir() else p
    if not f.is_file():
        raise FileNotFoundError(f"read_splitwise: '{f}' does not exist; expected perf_model.csv.")
    try:
        d = pd.read_csv(f)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise file_error(f"'{f}'", f"cannot be read as CSV ({exc})", code="file.parse") from None
    missing = [c for c in _NEED if c not in d.columns]
    if missing:
        raise file_error(f"'{f}'", f"lacks columns {missing}; read_splitwise expects {_NEED}",
                         code="file.layout")
    out = pd.DataFrame({
        "model": d["model"].astype(str), "gpu": d["hardware"].astype(str),
        "tp": d["tensor_parallel"], "pp": 1, "dp": 1,
        "batch_size": d["batch_size"],
        "input_tokens": d["prompt_size"], "output_tokens": d["token_size"],
        "ttft_s": pd.to_numeric(d["prompt_time"], errors="coerce") / 1e3,
        "tpot_s": pd.to_numeric(d["token_time"], errors="coerce") / 1e3,
        "latency_s": pd.to_numeric(d["e2e_time"], errors="coerce") / 1e3,
        "source": "splitwise",
    })
    times = out[["ttft_s", "tpot_s", "latency_s"]].to_numpy(dtype=float)
    bad = ~np.isfinite(times).all(axis=1)
    if bad.any():
        raise file_error(f"'{f}'", f"{int(bad.sum())} row(s) have missing or non-numeric times "
                                   f"(first rows {np.flatnonzero(bad)[:5].tolist()})",
                         code="missing_value")
    return validate(out, where=f"'{f}'", measurements=False, duplicates="keep")
