"""The catalogue as the simulator sees it: complete specifications, and feasibility.

The simulator keeps no numbers of its own: every GPU and model comes from
:mod:`energylens.core.catalogue`, and a configuration is feasible by the catalogue's one
rule (:func:`~energylens.core.catalogue.configuration_fit`), which also says how many
sequences a memory-limited cap runs at once. :data:`GPU_SPECS` and
:data:`MODEL_SPECS` are read-only views of the catalogue for code written against the
simulator's former dictionaries.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from typing import Generic, Literal, TypeVar

from ..core.catalogue import (
    BYTES_PER_VALUE,
    GpuSpec,
    MemoryFit,
    ModelSpec,
    cache_bytes_per_value,
    configuration_fit,
    gpu_spec,
    gpu_table,
    model_spec,
    model_table,
    normalize_precision,
)
from ..exceptions import CatalogueError

__all__ = ["GPU_SPECS", "MODEL_SPECS", "Precision"]

Precision = Literal["bf16", "fp16", "fp8", "int8", "mxfp4", "int4", "fp32"]

#: What the simulator needs of a GPU and of a model (catalogue columns, spec attributes).
_GPU_NEEDS = {"bf16_flop_s (or fp16_flop_s)": "flops", "memory_bw_bytes_s": "hbm_bw",
              "memory_gb": "memory_gb", "idle_w": "idle_w", "tdp_w": "max_w",
              "link_bw_bytes_s": "link_bw", "link_latency_s": "link_latency_s"}
_MODEL_NEEDS = ("params_b", "layers", "hidden", "heads", "kv_heads", "head_dim")

S = TypeVar("S")


class _View(Mapping, Generic[S]):
    """A read-only mapping from catalogue names to specifications (live: registered rows show)."""

    def __init__(self, table, spec):
        self._table, self._spec = table, spec

    def __getitem__(self, name: str) -> S:
        if name not in self._table().index:
            raise KeyError(name)
        return self._spec(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._table().index))

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return f"<catalogue view of {len(self)} specifications: {list(self)}>"


#: GPU name -> :class:`GpuSpec`, a read-only view of the catalogue.
GPU_SPECS: Mapping[str, GpuSpec] = _View(gpu_table, gpu_spec)
#: Model name -> :class:`ModelSpec`, a read-only view of the catalogue.
MODEL_SPECS: Mapping[str, ModelSpec] = _View(model_table, model_spec)


def _precision(value, what: str = "precision") -> str:
    """The catalogue's name of a precision (``"FP8"`` is ``"fp8"``); an error naming ``what``."""
    p = normalize_precision(value)
    if p is None:
        raise ValueError(f"{what} must be one of {sorted(BYTES_PER_VALUE)} (or None: each "
                         f"model's own precision); got {value!r}.")
    return p


def _bytes_per_value(precision: str) -> float:
    """Bytes per weight at ``precision``."""
    return BYTES_PER_VALUE[_precision(precision)]


def _sim_gpu(name: str) -> GpuSpec:
    """The catalogue's GPU, checked complete; FLOP/s at the BF16 rate (FP16 where no BF16)."""
    g = gpu_spec(name)
    g = dataclasses.replace(g, flops=g.flop_s("bf16"))
    missing = [col for col, attr in _GPU_NEEDS.items() if not math.isfinite(getattr(g, attr))]
    if missing:
        raise CatalogueError(
            f"The simulator cannot use GPU {g.name!r}: the catalogue has no {missing} for it. "
            f"Add them with energylens.core.catalogue.register_gpus(pd.DataFrame({{'name': "
            f"[{g.name!r}], ...}})).")
    return g


def _sim_model(name: str) -> ModelSpec:
    """The catalogue's model, checked complete for the simulator's equations."""
    m = model_spec(name)
    missing = [c for c in _MODEL_NEEDS if getattr(m, c) is None
               or (isinstance(getattr(m, c), float) and math.isnan(getattr(m, c)))]
    if missing or m.kv_values_per_token is None:
        raise CatalogueError(
            f"The simulator cannot use model {m.name!r}: the catalogue has no "
            f"{missing or ['attn_layers / kv_dim']} for it. Add them with "
            f"energylens.core.catalogue.register_models(pd.DataFrame({{'name': [{m.name!r}], "
            "...}).")
    return m


def _fit(m: ModelSpec, g: GpuSpec, t: int, p: int, cap: float, si: float, so: float,
         precision: str, *, ep: int = 1, dp: int = 1) -> MemoryFit:
    """The catalogue's one rule for a configuration, weights at ``precision`` and the KV
    cache in 16 bits, the routed experts split over ``ep`` GPUs (at most ``tp * dp``):
    whether it can run (``reason``) and how many sequences it runs at once
    (``running_batch``: the cap, or the KV capacity where the cap is memory-limited), as
    :func:`~energylens.selection.candidate_grid` applies it."""
    return configuration_fit(m, g, t, p, cap, si, so, ep=ep, dp=dp, precision=precision)


def _feasible(m: ModelSpec, g: GpuSpec, t: int, p: int, cap: float, si: float, so: float,
              precision: str, *, ep: int = 1, dp: int = 1) -> tuple[bool, str]:
    """Whether a configuration can run, and why not: the catalogue's one rule (:func:`_fit`);
    a cap larger than the KV memory holds can run, memory-limited."""
    why = _fit(m, g, t, p, cap, si, so, precision, ep=ep, dp=dp).reason
    return not why, why


def _cache_bytes(precision: str) -> float:
    """Bytes per KV-cache and activation value (16 bits whatever the weights)."""
    return cache_bytes_per_value(precision)
