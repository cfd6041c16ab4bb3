"""The one feasibility rule: how a model splits over GPUs, and whether it fits in memory."""

from __future__ import annotations

from .specs import BYTES_PER_VALUE, GpuSpec, ModelSpec, cache_bytes_per_value, normalize_precision

__all__ = ["MEMORY_SHARE", "kv_replication", "layout_reason", "memory_reason",
           "feasibility_reason"]

#: Share of one GPU's memory that weights and the KV cache of a full batch may use.
MEMORY_SHARE = 0.90


def kv_replication(model: ModelSpec, tp: int) -> float:
    """How many times the KV cache is stored over ``tp`` GPUs (more GPUs than KV heads)."""
    kv = model.kv_heads
    return float(tp) / kv if kv and tp > kv else 1.0


def layout_reason(model: ModelSpec, tp: int, pp: int = 1) -> str:
    """Why ``tp``/``pp`` cannot split the model ('' when they can).

    Tensor parallelism splits the attention heads, so ``tp`` must divide them, and the KV
    heads: ``tp`` divides them, or is a multiple of them (each KV head is then replicated,
    as vLLM does). Pipeline parallelism needs at least one layer per stage.

    Examples
    --------
    >>> from energylens.core.catalogue import model_spec
    >>> layout_reason(model_spec("Llama-3.2-3B"), 3)
    'tp=3 does not divide the 8 KV heads (24 attention heads)'
    >>> layout_reason(model_spec("Llama-3.1-8B"), 8, 2)
    ''
    """
    h, kv = model.heads, model.kv_heads
    if h is not None and h % tp:
        return f"tp={tp} does not divide the {h} attention heads"
    if kv is not None and (kv % tp if tp <= kv else tp % kv):
        return f"tp={tp} does not divide the {kv} KV heads ({h} attention heads)"
    if model.layers is not None and pp > model.layers:
        return f"pp={pp} exceeds the {model.layers} layers"
    return ""


def memory_reason(*, weight_bytes: float, kv_bytes_per_token: float, batch: float,
                  tokens: float, gpus: int, memory_gb: float,
                  share: float = MEMORY_SHARE) -> str:
    """Why a replica does not fit in GPU memory ('' when it fits): the one memory rule.

    Weights plus the KV cache of a full batch of ``batch`` sequences of ``tokens`` tokens,
    split over the ``gpus = tp * pp`` GPUs of a replica, must fit in ``share`` of one GPU's
    memory.

    Examples
    --------
    >>> memory_reason(weight_bytes=141e9, kv_bytes_per_token=0.0, batch=1, tokens=1, gpus=1,
    ...               memory_gb=80)
    'needs 141.0 GB per GPU for weights and KV cache, more than 90% of 80 GB'
    """
    need = (weight_bytes + batch * tokens * kv_bytes_per_token) / gpus
    if need > share * memory_gb * 1e9:
        return (f"needs {need / 1e9:.1f} GB per GPU for weights and KV cache, more than "
                f"{share:.0%} of {memory_gb:g} GB")
    return ""


def feasibility_reason(model: ModelSpec, gpu: GpuSpec, tp: int, pp: int, batch: float,
                       input_tokens: float, output_tokens: float, *,
                       precision: str | None = None, bytes_per_weight: float | None = None,
                       kv_bytes_per_value: float | None = None,
                       share: float = MEMORY_SHARE) -> str:
    """Why a configuration cannot run ('' when it can): :func:`layout_reason`, then
    :func:`memory_reason` with the model's weights and KV cache (replicated KV heads counted).

    The weights take the bytes of ``precision`` (default: the model's, from its name's
    precision word or its checkpoint), or ``bytes_per_weight`` where given; the KV cache
    takes :func:`~energylens.core.catalogue.cache_bytes_per_value` (16 bits, as vLLM keeps
    it also for FP8 weights), or ``kv_bytes_per_value`` where given.

    Examples
    --------
    >>> from energylens.core.catalogue import gpu_spec, model_spec
    >>> feasibility_reason(model_spec("Llama-3.1-70B"), gpu_spec("L4"), 1, 1, 8, 512, 128)
    'needs 142.9 GB per GPU for weights and KV cache, more than 90% of 24 GB'
    >>> feasibility_reason(model_spec("Llama-3.1-405B-FP8"), gpu_spec("H100"), 8, 1, 64, 512, 256)
    ''
    """
    why = layout_reason(model, tp, pp)
    if why:
        return why
    prec = normalize_precision(precision) if precision is not None else model.precision
    if prec is None:
        raise ValueError(f"precision must be one of {sorted(BYTES_PER_VALUE)}; got {precision!r}.")
    bpw = BYTES_PER_VALUE[prec] if bytes_per_weight is None else bytes_per_weight
    kvb = model.kv_bytes_per_token(cache_bytes_per_value(prec) if kv_bytes_per_value is None
                                   else kv_bytes_per_value)
    rep = kv_replication(model, tp)
    return memory_reason(weight_bytes=model.params_b * 1e9 * bpw,
                         kv_bytes_per_token=kvb * rep if rep != 1.0 else kvb, batch=batch,
                         tokens=input_tokens + output_tokens, gpus=tp * pp,
                         memory_gb=gpu.memory_gb, share=share)
