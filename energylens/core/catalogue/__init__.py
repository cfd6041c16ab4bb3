"""The hardware and model catalogue, and the one feasibility rule.

Two tables ship with the package as CSV files (``energylens/core/data/gpus.csv`` and
``models.csv``), each row citing its ``source``: GPUs with memory, bandwidth, dense tensor
FLOP/s per precision, TDP, interconnect, and the idle power and link latency the simulator
assumes (the ``assumed`` column names every value that is an assumption, not a datasheet
figure); models with total and active parameters, layers, widths, heads, vocabulary and
experts, from each model's published ``config.json``. ``docs/catalogue.md`` lists them.

Names resolve robustly: GPUs with or without vendor words and host labels
(``"NVIDIA H100 80GB HBM3"``, ``"A100-40GB (Swing)"``); models by Hugging Face id with or
without the organisation, with fine-tune words (``Instruct``, ``it``, ``chat``, ``hf``,
``Base``, ``Thinking``, four-digit release dates) dropped and precision words (``FP8``,
``BF16``, ``FP16``) read as the checkpoint's precision: an FP8 checkpoint has the same
architecture and one byte per weight. Users add rows or columns with :func:`register_gpus`
and :func:`register_models`.

- :mod:`~energylens.core.catalogue.specs`: :class:`GpuSpec`, :class:`ModelSpec`, precisions;
- :mod:`~energylens.core.catalogue.registry`: the tables, name resolution, registration;
- :mod:`~energylens.core.catalogue.rows`: reading and checking the rows a user registers;
- :mod:`~energylens.core.catalogue.rules`: the feasibility rule (heads, layers, memory)
  and the running batch a memory-limited cap runs;
- :mod:`~energylens.core.catalogue.descriptors`: descriptors aligned with a table's rows;
- :mod:`~energylens.core.catalogue.aliases`: which new names are spellings of trained ones.

The files are read on first use, never by ``import energylens``. A name that does not
resolve raises :class:`CatalogueError` (a ``ValueError``; also ``energylens.CatalogueError``).

Examples
--------
>>> from energylens.core.catalogue import gpu_spec, model_spec
>>> gpu_spec("NVIDIA H100 80GB HBM3").name
'H100-SXM'
>>> m = model_spec("Qwen/Qwen3-235B-A22B-Instruct-2507-FP8")
>>> m.name, m.precision, m.params_b, m.active_b
('Qwen3-235B-A22B', 'fp8', 235.1, 22.1)
"""

from __future__ import annotations

from ...exceptions import CatalogueError
from .aliases import aliased
from .descriptors import DESCRIPTOR_COLUMNS, descriptors
from .registry import (
    entry_key,
    gpu_memory_gb,
    gpu_spec,
    gpu_table,
    model_spec,
    model_table,
    register_gpus,
    register_models,
    reset_catalogue,
    resolve_gpu,
    resolve_model,
)
from .rules import (
    MEMORY_SHARE,
    MemoryFit,
    configuration_fit,
    expert_parallel_reason,
    feasibility_reason,
    kv_replication,
    layout_reason,
    memory_fit,
    memory_reason,
    replica_kv_bytes_per_token,
    replica_weight_bytes,
    whole_degree,
)
from .specs import BYTES_PER_VALUE, GpuSpec, ModelSpec, cache_bytes_per_value, normalize_precision

__all__ = [
    "BYTES_PER_VALUE", "CatalogueError", "DESCRIPTOR_COLUMNS", "MEMORY_SHARE", "GpuSpec",
    "MemoryFit", "ModelSpec", "aliased", "cache_bytes_per_value", "configuration_fit",
    "descriptors", "entry_key", "expert_parallel_reason", "feasibility_reason", "gpu_memory_gb",
    "gpu_spec", "gpu_table", "kv_replication", "layout_reason", "memory_fit", "memory_reason",
    "model_spec", "model_table", "normalize_precision", "register_gpus", "register_models",
    "replica_kv_bytes_per_token", "replica_weight_bytes", "reset_catalogue", "resolve_gpu", "resolve_model", "whole_degree",
]
