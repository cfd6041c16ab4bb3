"""GPU and model descriptors aligned with the rows of a profiling table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from ...exceptions import CatalogueError
from .registry import _GPUS, _MODELS, _model_key
from .specs import _FLOP_ORDER, BYTES_PER_VALUE, cache_bytes_per_value, normalize_precision

__all__ = ["DESCRIPTOR_COLUMNS", "descriptors"]

#: Descriptor column -> catalogue column it comes from (GPU table, then model table).
_GPU_COLS = {"gpu_memory_gb": "memory_gb", "gpu_memory_bw_bytes_s": "memory_bw_bytes_s",
             "gpu_tdp_w": "tdp_w", "gpu_idle_w": "idle_w", "gpu_link_bw_bytes_s": "link_bw_bytes_s",
             "gpu_link_latency_s": "link_latency_s"}
_MODEL_COLS = {"model_params_b": "params_b", "model_active_params_b": "active_params_b",
               "model_layers": "layers", "model_hidden": "hidden", "model_heads": "heads",
               "model_kv_heads": "kv_heads", "model_head_dim": "head_dim", "model_vocab": "vocab",
               "model_experts": "experts", "model_active_experts": "active_experts"}
_DERIVED = {"gpu_flop_s": "the precision's *_flop_s column of the GPU",
            "bytes_per_weight": "the precision", "weight_bytes": "params_b",
            "kv_bytes_per_token": "layers, kv_heads and head_dim (or attn_layers, kv_dim)",
            "kv_bytes_per_token_full": "full_attn_layers (or attn_layers, layers), kv_heads, head_dim",
            "state_bytes": "state_values",
            "weight_read_s": "params_b and memory_bw_bytes_s",
            "token_compute_s": "active_params_b and the *_flop_s columns"}
#: Columns returned by :func:`descriptors`, in order.
DESCRIPTOR_COLUMNS: tuple[str, ...] = (
    "gpu_name", "model_name", "precision", *_GPU_COLS, "gpu_flop_s", *_MODEL_COLS,
    "bytes_per_weight", "weight_bytes", "kv_bytes_per_token", "weight_read_s", "token_compute_s",
    "kv_bytes_per_token_full", "state_bytes")


def _rows_of(codes: np.ndarray, k: int, index: pd.Index) -> list:
    return list(index[np.flatnonzero(codes == k)[:5]])


def _resolve_names(table: pd.DataFrame, problems: list[str]):
    """Factorise the names, resolve each once; returns per-row codes and per-name results."""
    gcodes, guniq = pd.factorize(table["gpu"].astype(str))
    mcodes, muniq = pd.factorize(table["model"].astype(str))
    gcanon = [_GPUS.resolve(n) for n in guniq]
    mcanon = [_MODELS.resolve(n) for n in muniq]
    for what, codes, uniq, canon, cat in (("gpu", gcodes, guniq, gcanon, _GPUS),
                                          ("model", mcodes, muniq, mcanon, _MODELS)):
        for k, (name, c) in enumerate(zip(uniq, canon)):
            if c is None:
                problems.append(f"column {what!r}, rows {_rows_of(codes, k, table.index)}: "
                                f"{cat.unknown(name)}")
    msuffix = [_model_key(n)[1] for n in muniq]
    return gcodes, gcanon, mcodes, mcanon, msuffix


def _precisions(table, mcodes, mcanon, msuffix, problems) -> tuple[np.ndarray, list[str]]:
    """Each row's precision (codes into the returned names): the table's column, else the
    name's suffix, else the checkpoint's."""
    native = [normalize_precision(_MODELS.df.at[c, "precision"]) if c else None for c in mcanon]
    names = sorted(BYTES_PER_VALUE)
    default = np.array([names.index(s or n or "bf16") for s, n in zip(msuffix, native)], dtype=int)
    pcodes = default[mcodes]
    if "precision" in table.columns:
        codes, uniq = pd.factorize(table["precision"].astype(object), use_na_sentinel=True)
        given = np.full(len(uniq) + 1, -1)  # the last entry for missing cells (code -1)
        for k, v in enumerate(uniq):
            p = normalize_precision(v)
            if p is None and not (isinstance(v, str) and not v.strip()):  # not blank
                problems.append(f"column 'precision', rows {_rows_of(codes, k, table.index)}: "
                                f"unknown precision {v!r} (expected one of {names})")
            elif p is not None:
                given[k] = names.index(p)
        row_given = given[codes]
        pcodes = np.where(row_given >= 0, row_given, pcodes)
    return pcodes, names


def _matrix(df: pd.DataFrame, canon: list, cols) -> np.ndarray:
    """Rows of ``df`` for the resolved names (NaN for unresolved ones), numeric columns."""
    keys = [c if c is not None else "\0" for c in canon]
    sub = df.reindex(index=keys, columns=list(cols))
    return sub.to_numpy(dtype=float).reshape(len(keys), len(cols))


def _per_combination(g: np.ndarray, m: np.ndarray, prec: list[str]) -> dict[str, np.ndarray]:
    """The float descriptors of each (GPU, model, precision) combination (rows of g, m)."""
    cols: dict[str, np.ndarray] = {}
    gcols, mcols = list(_GPU_COLS), list(_MODEL_COLS)
    for j, d in enumerate(gcols):
        cols[d] = g[:, j]
    by = {q: g[:, len(gcols) + i] for i, q in enumerate(("bf16", "fp16", "fp8"))}
    flop = np.full(len(prec), np.nan)
    for i, p in enumerate(prec):
        for q in _FLOP_ORDER.get(p, ()):
            if np.isfinite(by[q][i]):
                flop[i] = by[q][i]
                break
    cols["gpu_flop_s"] = flop
    for j, d in enumerate(mcols):
        cols[d] = m[:, j]
    active = cols["model_active_params_b"]
    cols["model_active_params_b"] = np.where(np.isfinite(active), active, cols["model_params_b"])
    layers, attn_layers, kv_dim, full_layers, state = (m[:, len(mcols) + i] for i in range(5))
    layers = np.where(np.isfinite(attn_layers), attn_layers, layers)
    per = np.where(np.isfinite(kv_dim), kv_dim, 2 * cols["model_kv_heads"] * cols["model_head_dim"])
    cols["bytes_per_weight"] = np.array([BYTES_PER_VALUE[p] for p in prec], dtype=float)
    cols["weight_bytes"] = cols["model_params_b"] * 1e9 * cols["bytes_per_weight"]
    value_bytes = np.array([cache_bytes_per_value(p) for p in prec])
    cols["kv_bytes_per_token"] = layers * per * value_bytes
    cols["weight_read_s"] = cols["weight_bytes"] / cols["gpu_memory_bw_bytes_s"]
    cols["token_compute_s"] = 2e9 * cols["model_active_params_b"] / flop
    # Sliding-window layers keep a bounded cache: only the layers whose cache spans the whole
    # context grow with it. A recurrent (Mamba) state is a fixed size per sequence.
    full = np.where(np.isfinite(full_layers), full_layers, layers)
    cols["kv_bytes_per_token_full"] = full * per * value_bytes
    cols["state_bytes"] = np.where(np.isfinite(state), state, 0.0) * value_bytes
    return cols


def _names(canon: list, codes: np.ndarray) -> pd.Categorical:
    cats = sorted({c for c in canon if c is not None})
    pos = np.array([cats.index(c) if c is not None else -1 for c in canon] + [-1], dtype=int)
    return pd.Categorical.from_codes(pos[codes], categories=cats)


def _check_required(out: pd.DataFrame, required: Sequence[str]) -> None:
    problems = []
    for col in required:
        if col not in out.columns:
            raise CatalogueError(f"descriptors: unknown descriptor {col!r} in required; "
                                 f"descriptors are {list(DESCRIPTOR_COLUMNS)}.")
        miss = out[col].isna().to_numpy()
        if not miss.any():
            continue
        is_gpu = col.startswith("gpu_")
        names = sorted(set(out.loc[miss, "gpu_name" if is_gpu else "model_name"].dropna()))
        src = _GPU_COLS.get(col) or _MODEL_COLS.get(col) or _DERIVED.get(col, col)
        fn = "register_gpus" if is_gpu else "register_models"
        problems.append(f"{col!r} is missing for rows {list(out.index[miss][:5])} "
                        f"({'GPUs' if is_gpu else 'models'} {names}): the catalogue has no "
                        f"{src} for them; add it with energylens.core.catalogue.{fn}("
                        f"pd.DataFrame({{'name': {names[:1]}, '{src.split()[0]}': [...]}}))")
    if problems:
        raise CatalogueError("descriptors: " + "; ".join(problems) + ".")


def descriptors(table: pd.DataFrame, *, errors: Literal["raise", "coerce"] = "raise",
                required: Sequence[str] = ()) -> pd.DataFrame:
    """GPU and model descriptors for each row of a profiling table.

    Each distinct name is resolved once and each (GPU, model, precision) combination
    computed once, then the values are spread over the rows: a table of a million rows takes
    about 0.1 s once warm and 0.7 s on a session's first call (pandas' string kernels and
    fresh memory; ``python benchmarks/descriptors_speed.py``).

    Parameters
    ----------
    table : DataFrame
        A canonical profiling table: columns ``model`` and ``gpu``, optionally ``precision``
        (the weights' precision; where absent or empty, a ``-FP8`` style suffix of the model
        name, else the checkpoint's precision from the catalogue).
    errors : {"raise", "coerce"}
        What an unknown name or precision does: raise :class:`CatalogueError` (every problem
        at once, with the rows), or give NaN descriptors for those rows.
    required : sequence of str
        Descriptor columns that must be known for every row; a missing value raises an
        error naming the GPUs or models and how to add the value.

    Returns
    -------
    DataFrame
        Indexed like ``table``, columns :data:`DESCRIPTOR_COLUMNS`: ``gpu_name`` and
        ``model_name`` (catalogue names; NaN where unresolved) and ``precision``, as
        categoricals; GPU memory (GB), bandwidth
        (bytes/s), TDP, idle power (W), link bandwidth (bytes/s per direction) and latency
        (s), ``gpu_flop_s`` (peak dense tensor FLOP/s for the row's precision: FP8 units
        where the GPU has them, else BF16/FP16); model parameters and active parameters
        (billions), layers, hidden size, heads, KV heads, head dimension, vocabulary,
        experts; ``bytes_per_weight`` (of the row's precision), ``weight_bytes``,
        ``kv_bytes_per_token`` (all attention layers, values in 16 bits: vLLM keeps the KV
        cache in the activations' precision unless told otherwise), ``weight_read_s``
        (weight bytes over bandwidth: one read of the weights), ``token_compute_s``
        (``2 * active parameters`` FLOPs over ``gpu_flop_s``), ``kv_bytes_per_token_full``
        (the same over the layers whose cache spans the whole context: sliding-window layers
        excluded, catalogue column ``full_attn_layers``) and ``state_bytes`` (a hybrid
        model's recurrent state per sequence, ``state_values`` in 16 bits; 0 where the
        catalogue gives none).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"model": ["meta-llama/Llama-3.1-8B-Instruct", "Llama-3.1-8B-FP8"],
    ...                   "gpu": ["H100 80GB HBM3", "H100"]})
    >>> d = descriptors(t)
    >>> d[["model_name", "precision", "bytes_per_weight"]].values.tolist()
    [['Llama-3.1-8B', 'bf16', 2.0], ['Llama-3.1-8B', 'fp8', 1.0]]
    >>> round(float(d["gpu_flop_s"].iloc[1] / d["gpu_flop_s"].iloc[0]), 2)  # FP8 units
    2.0
    """
    from ..options import check_options

    check_options("descriptors", {"errors": [{"raise", "coerce"}]},
                  {"errors": errors})
    if not isinstance(table, pd.DataFrame):
        raise CatalogueError(f"descriptors needs a DataFrame; got {type(table).__name__}.")
    missing = [c for c in ("model", "gpu") if c not in table.columns]
    if missing:
        raise CatalogueError(f"descriptors: the table lacks the columns {missing}; columns are "
                             f"{list(table.columns)}.")
    problems: list[str] = []
    gcodes, gcanon, mcodes, mcanon, msuffix = _resolve_names(table, problems)
    pcodes, pnames = _precisions(table, mcodes, mcanon, msuffix, problems)
    if problems and errors == "raise":
        raise CatalogueError("descriptors: " + " | ".join(problems))
    # Every descriptor depends on (GPU, model, precision) alone: compute it once for each
    # combination present, then spread the combinations over the rows in one take.
    nm, npr = len(mcanon), len(pnames)
    ccodes, combos = pd.factorize((gcodes * nm + mcodes) * npr + pcodes)
    gi, mi, pi = combos // (nm * npr), combos // npr % nm, combos % npr
    g = _matrix(_GPUS.df, gcanon, [*_GPU_COLS.values(), "bf16_flop_s", "fp16_flop_s",
                                   "fp8_flop_s"])[gi]
    m = _matrix(_MODELS.df, mcanon, [*_MODEL_COLS.values(), "layers", "attn_layers",
                                     "kv_dim", "full_attn_layers", "state_values"])[mi]
    per = _per_combination(g, m, [pnames[i] for i in pi])
    floats = list(DESCRIPTOR_COLUMNS[3:])
    block = np.stack([per[c] for c in floats]).reshape(len(floats), len(combos))
    res = pd.DataFrame(np.take(block, ccodes, axis=1).T, index=table.index, columns=floats,
                       copy=False)
    res.insert(0, "precision", pd.Categorical.from_codes(pcodes, categories=pnames))
    res.insert(0, "model_name", _names(mcanon, mcodes))
    res.insert(0, "gpu_name", _names(gcanon, gcodes))
    _check_required(res, required)
    return res
