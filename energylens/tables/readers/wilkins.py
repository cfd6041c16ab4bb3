"""Wilkins, Keshav and Mortier (2024), "Offline energy-optimal LLM serving".

One query at a time through a Hugging Face pipeline, with the input swept at a fixed output
limit and the output limit swept at a fixed input (``plots/<experiment>/all-*.csv``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..problems import file_error
from ..validate import validate
from ..values import missing_mask, plain, to_numeric
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


def _csv(f) -> pd.DataFrame:
    """One of the study's CSV files, or an error naming it."""
    try:
        return pd.read_csv(f)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise file_error(f"'{f}'", f"cannot be read as CSV ({exc})", code="file.parse") from None


def _numbers(d: pd.DataFrame, col: str, f, *, whole: bool = False) -> np.ndarray:
    """A numeric column of the kept rows; a missing or non-numeric cell is an error naming
    the file, the column and its lines (never a silently dropped or averaged row)."""
    v = to_numeric(d[col])
    bad = ~np.isfinite(v)
    if whole:
        bad |= np.isfinite(v) & (v != np.round(v))
    if bad.any():
        lines = (d.index[bad] + 2).tolist()[:5]  # the header is line 1
        shown = [plain(d[col].iloc[i]) for i in np.flatnonzero(bad)[:5]]
        raise file_error(f"'{f}'", f"column {col!r} has {int(bad.sum())} missing or non-numeric "
                         f"value(s) in inference rows (file lines {lines}: {shown})",
                         code="missing_value")
    return v


def _labels(d: pd.DataFrame, col: str, f) -> np.ndarray:
    v = d[col]
    bad = missing_mask(v)
    if bad.any():
        raise file_error(f"'{f}'", f"column {col!r} is blank in {int(bad.sum())} inference "
                         f"row(s) (file lines {(d.index[bad] + 2).tolist()[:5]})",
                         code="missing_value")
    return v.astype(str).to_numpy()


def _one_file(f, exp: str, include_cpu: bool) -> pd.DataFrame:
    d = _csv(f)
    need = [*_NEED, *(["CPU Energy (J)"] if include_cpu else [])]
    missing = sorted(set(need) - set(d.columns))
    if missing:
        raise file_error(f"'{f}'", f"lacks columns {missing}; read_wilkins expects {need}",
                         code="file.layout")
    iteration = pd.to_numeric(d["Iteration"], errors="coerce")
    d = d[d["Phase"].astype(str).str.contains("inference") & (iteration != 0)]
    out_col = "Number of Output Tokens" if "Number of Output Tokens" in d else "Output Token Limit"
    energy = _numbers(d, "GPU Energy (J)", f)
    if include_cpu:
        energy = energy + _numbers(d, "CPU Energy (J)", f)
    system = _labels(d, "System", f)
    return pd.DataFrame({
        "model": _labels(d, "Model", f),
        "gpu": [_GPU.get(x, x) for x in system],
        "host": system,
        "tp": 1, "pp": _numbers(d, "Number of GPUs", f, whole=True).astype(int), "dp": 1,
        "batch_size": 1.0, "batch_kind": "running",
        "input_tokens": _numbers(d, "Number of Input Tokens", f),
        "output_tokens": _numbers(d, out_col, f),
        "output_tokens_kind": "cap",
        "energy_j": energy,
        "latency_s": _numbers(d, "Runtime (s)", f),
        "workload": exp, "source": "wilkins2024",
        "iteration": _numbers(d, "Iteration", f, whole=True).astype(int),
    })


def read_wilkins(
    path: str | os.PathLike,
    *,
    experiments: Sequence[str] | None = None,
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
    experiments : str or sequence of str, optional
        Experiment folders to read (default: those of :data:`WILKINS_EXPERIMENTS` the
        folder holds); their name becomes ``workload``. One named here that the folder does
        not hold is an error listing those it does hold.
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
    if experiments is None:
        experiments = WILKINS_EXPERIMENTS
    else:
        experiments = (experiments,) if isinstance(experiments, str) else tuple(experiments)
        present = sorted(p.name for p in plots.iterdir() if p.is_dir() and any(p.glob("all-*.csv")))
        absent = [e for e in experiments if e not in present]
        if absent:
            raise file_error(f"'{root}'", f"has no experiment(s) {absent} (no plots/<experiment>/"
                             f"all-*.csv); experiments present: {present}", code="file.layout")
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
