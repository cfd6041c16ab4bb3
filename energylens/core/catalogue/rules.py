"""The one feasibility rule: how a model splits over GPUs, whether it fits in memory, and how
many sequences its KV cache lets a server run at once."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .specs import BYTES_PER_VALUE, GpuSpec, ModelSpec, cache_bytes_per_value, normalize_precision

__all__ = ["MEMORY_SHARE", "whole_degree", "MemoryFit", "kv_replication", "layout_reason",
           "replica_kv_bytes_per_token", "replica_weight_bytes", "expert_parallel_reason",
           "memory_fit", "memory_reason", "configuration_fit", "feasibility_reason"]

#: Share of one GPU's memory that the weights and the KV cache may use (vLLM's default
#: ``gpu_memory_utilization``).
MEMORY_SHARE = 0.90


def kv_replication(model: ModelSpec, tp: int) -> float:
    """How many times the KV cache is stored over ``tp`` GPUs (more GPUs than KV heads)."""
    kv = model.kv_heads
    return float(tp) / kv if kv and tp > kv else 1.0


def replica_kv_bytes_per_token(model: ModelSpec, tp: int, bytes_per_value: float) -> float:
    """KV-cache bytes of one token over the ``tp`` GPUs of a replica, at ``bytes_per_value``
    per cached value, replicated KV heads counted (:func:`kv_replication`); 0 for a model
    the catalogue knows without KV descriptors, whose weights alone are then checked."""
    kvb = model.kv_bytes_per_token(bytes_per_value) * kv_replication(model, tp)
    return kvb if math.isfinite(kvb) else 0.0


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


def whole_degree(v) -> bool:
    """A parallel degree: a whole number >= 1 (``8`` or ``8.0``; never ``0``, ``2.5``, NaN or
    ``True``)."""
    if isinstance(v, bool) or type(v).__name__ == "bool_":
        return False
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return math.isfinite(f) and f >= 1 and f == int(f)


def expert_parallel_reason(ep, tp, dp=1) -> str:
    """Why an expert-parallel degree cannot be served ('' when it can).

    ``ep`` must be a whole number >= 1, and at most ``tp * dp``: vLLM's expert-parallel group
    is the ``tp x dp`` GPUs of the data-parallel replicas (every ML.ENERGY v3 row has
    ``ep == tp * dp``), so experts cannot be spread over GPUs the configuration lacks.

    Examples
    --------
    >>> expert_parallel_reason(8, 1, 8), expert_parallel_reason(8, 1, 1)
    ('', 'ep=8 exceeds tp*dp=1 (tp=1, dp=1): experts are spread over the GPUs of the tp x dp replicas')
    >>> expert_parallel_reason(2.5, 4, 1)
    'ep=2.5 must be a whole number >= 1'
    """
    if not whole_degree(ep):
        shown = f"{ep:g}" if isinstance(ep, (int, float)) and not isinstance(ep, bool) else repr(ep)
        return f"ep={shown} must be a whole number >= 1"
    if int(float(ep)) > int(tp) * int(dp):
        return (f"ep={int(float(ep))} exceeds tp*dp={int(tp) * int(dp)} (tp={int(tp)}, "
                f"dp={int(dp)}): experts are spread over the GPUs of the tp x dp replicas")
    return ""


def replica_weight_bytes(model: ModelSpec | None, params_b: float, bytes_per_weight: float,
                         tp: int, pp: int = 1, ep: int = 1) -> float:
    """Bytes of weights that the ``tp * pp`` GPUs of one replica hold together.

    All of ``params_b`` without expert parallelism. With ``ep`` above ``tp`` (vLLM's
    expert-parallel serving, experts spread over ``ep`` GPUs shared by ``ep / tp`` replicas),
    a mixture of experts' routed experts are split over the ``ep`` GPUs and the rest
    (attention, embeddings, shared experts) over the ``tp`` GPUs of the replica. The experts'
    share is the catalogue's: ``(params - active) / (experts - active_experts)`` parameters per
    expert. A model the catalogue does not know, or not as a mixture of experts, keeps all of
    its weights on the replica. ``ep`` must be a whole number >= 1 (a ValueError otherwise).

    Examples
    --------
    >>> from energylens.core.catalogue import model_spec
    >>> m = model_spec("Qwen3-Coder-480B-A35B")
    >>> round(replica_weight_bytes(m, m.params_b, 1.0, 1) / 1e9, 1)
    480.2
    >>> round(replica_weight_bytes(m, m.params_b, 1.0, 1, ep=8) / 1e9, 1)  # one GPU of eight
    70.5
    """
    if not whole_degree(ep):
        raise ValueError(f"ep must be a whole number >= 1 (the expert-parallel degree); got {ep!r}.")
    ep = int(float(ep))
    total = params_b * 1e9 * bytes_per_weight
    if ep <= tp or model is None:
        return total
    e, a, act = model.experts, model.active_experts, model.active_params_b
    if not (e and a and act and e > a and model.params_b > act):
        return total
    per_expert = (model.params_b - act) / (e - a)
    expert_share = min(1.0, per_expert * e / model.params_b)
    return total * (1.0 - expert_share) + total * expert_share * tp / ep


@dataclass(frozen=True)
class MemoryFit:
    """How one replica's GPU memory holds a configuration (see :func:`memory_fit`).

    A batch cap (vLLM's ``max_num_seqs``) is the most sequences a server *may* run at once.
    Where their KV cache does not fit beside the weights the server does not fail: its
    scheduler runs fewer at once, so the cap is *memory-limited* and runs
    :attr:`running_batch` sequences. A configuration cannot run only when the weights and the
    KV cache of one sequence at its full length do not fit (:attr:`reason`).

    Attributes
    ----------
    reason : str
        Why the configuration cannot run, naming the GB needed and available ('' when it
        can; a layout reason where :func:`configuration_fit` found one).
    batch : float
        The batch cap asked for.
    capacity : float
        Whole sequences that the KV memory left beside the weights holds at their mean
        context, ``input_tokens + output_tokens / 2`` (``inf`` where no KV cache is counted;
        0 where the configuration cannot run, i.e. where not even one sequence fits at its
        full length beside the weights).
    weights_gb, full_batch_gb : float
        Per GPU, GB: the weights; the weights and the KV cache of a full cap of sequences
        at their mean context.
    memory_gb, share : float
        One GPU's memory (GB) and the share of it the weights and KV cache may use.
    """

    reason: str
    batch: float
    capacity: float
    weights_gb: float
    full_batch_gb: float
    memory_gb: float
    share: float = MEMORY_SHARE

    @property
    def fits(self) -> bool:
        """Whether the configuration can run."""
        return not self.reason

    @property
    def memory_limited(self) -> bool:
        """Whether it runs, with fewer sequences at once than its cap."""
        return self.fits and self.capacity < self.batch

    @property
    def running_batch(self) -> float:
        """Sequences the server runs at once, ``min(batch, capacity)``; NaN when it cannot
        run."""
        return float(min(self.batch, self.capacity)) if self.fits else math.nan

    def note(self) -> str:
        """The memory limit in words ('' unless :attr:`memory_limited`).

        Examples
        --------
        >>> fit = memory_fit(weight_bytes=16e9, kv_bytes_per_token=131072, batch=256,
        ...                  input_tokens=4096, output_tokens=1024, gpus=1, memory_gb=80)
        >>> fit.memory_limited, fit.running_batch
        (True, 92.0)
        >>> fit.note()
        'memory-limited: runs 92 of its cap of 256 sequences at once (the full cap needs 170.6 GB per GPU for weights and KV cache, more than 90% of 80 GB)'
        """
        if not self.memory_limited:
            return ""
        return (f"memory-limited: runs {self.running_batch:g} of its cap of {self.batch:g} "
                f"sequences at once (the full cap needs {self.full_batch_gb:.1f} GB per GPU for "
                f"weights and KV cache, more than {self.share:.0%} of {self.memory_gb:g} GB)")


def memory_fit(*, weight_bytes: float, kv_bytes_per_token: float, batch: float,
               input_tokens: float, output_tokens: float, gpus: int, memory_gb: float,
               share: float = MEMORY_SHARE) -> MemoryFit:
    """How a replica's memory holds a batch cap: the one memory rule.

    Per GPU of the ``gpus = tp * pp`` GPUs of a replica, within ``share`` of one GPU's
    memory:

    - the configuration **can run** when the weights and the KV cache of one sequence at its
      full length (``input_tokens + output_tokens`` tokens) fit, as vLLM requires at start;
    - it runs ``min(batch, capacity)`` sequences at once, ``capacity`` being the whole
      sequences the KV memory left beside the weights holds at their mean context
      ``input_tokens + output_tokens / 2`` (each sequence grows from its prompt to its full
      length while it runs; the scheduler admits a sequence when its current tokens fit).
      A cap above the capacity is **memory-limited**, not infeasible.

    Parameters
    ----------
    weight_bytes : float
        Bytes of weights the replica holds (:func:`replica_weight_bytes`).
    kv_bytes_per_token : float
        KV-cache bytes of one token over the replica (replicated KV heads counted); 0 checks
        the weights only, and the capacity is unbounded.
    batch : float
        The batch cap (the most sequences the server may run at once).
    input_tokens, output_tokens : float
        Mean prompt and answer lengths.
    gpus : int
        GPUs of one replica, ``tp * pp``.
    memory_gb : float
        One GPU's memory, GB.
    share : float
        Share of the memory the weights and KV cache may use.

    Raises
    ------
    ValueError
        If an argument is not a finite number (NaN or infinite), naming it.

    Examples
    --------
    >>> memory_fit(weight_bytes=141e9, kv_bytes_per_token=0.0, batch=1, input_tokens=1,
    ...            output_tokens=0, gpus=1, memory_gb=80).reason
    'needs 141.0 GB per GPU for weights and KV cache, more than 90% of 80 GB'
    """
    args = {"weight_bytes": weight_bytes, "kv_bytes_per_token": kv_bytes_per_token,
            "batch": batch, "input_tokens": input_tokens, "output_tokens": output_tokens,
            "gpus": gpus, "memory_gb": memory_gb, "share": share}
    for name, v in args.items():
        try:
            ok = not isinstance(v, bool) and math.isfinite(float(v))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"memory_fit: {name} must be a finite number; got {v!r}.")
    if gpus < 1:
        raise ValueError(f"memory_fit: gpus must be >= 1; got {gpus!r}.")
    avail = share * memory_gb * 1e9
    w = weight_bytes / gpus
    kvb = kv_bytes_per_token / gpus
    full = input_tokens + output_tokens
    mean = input_tokens + output_tokens / 2
    need = w + full * kvb
    reason = ""
    if need > avail:
        one = f" (one sequence of {full:g} tokens)" if kvb > 0 else ""
        reason = (f"needs {need / 1e9:.1f} GB per GPU for weights and KV cache{one}, more than "
                  f"{share:.0%} of {memory_gb:g} GB")
    if reason:  # cannot run: not even one sequence at its full length fits
        capacity = 0.0
    elif kvb <= 0 or mean <= 0:
        capacity = math.inf
    else:  # at least the one sequence that fits at its full length
        capacity = max(1.0, float(math.floor((avail - w) / (mean * kvb))))
    return MemoryFit(reason=reason, batch=float(batch), capacity=capacity, weights_gb=w / 1e9,
                     full_batch_gb=(w + batch * mean * kvb) / 1e9, memory_gb=float(memory_gb),
                     share=float(share))


def memory_reason(*, weight_bytes: float, kv_bytes_per_token: float, batch: float,
                  tokens: float, gpus: int, memory_gb: float,
                  share: float = MEMORY_SHARE) -> str:
    """Why a replica does not fit in GPU memory ('' when it fits): :func:`memory_fit`'s
    reason, for sequences of ``tokens`` tokens at their full length.

    A configuration fits when its weights and the KV cache of *one* sequence of ``tokens``
    tokens, split over the ``gpus = tp * pp`` GPUs of a replica, fit in ``share`` of one
    GPU's memory. The batch cap ``batch`` never makes it unfit: a cap whose KV cache does not
    fit runs memory-limited, fewer sequences at once (:func:`memory_fit` says how many).

    Examples
    --------
    >>> memory_reason(weight_bytes=141e9, kv_bytes_per_token=0.0, batch=1, tokens=1, gpus=1,
    ...               memory_gb=80)
    'needs 141.0 GB per GPU for weights and KV cache, more than 90% of 80 GB'
    >>> memory_reason(weight_bytes=16e9, kv_bytes_per_token=131072, batch=4096, tokens=5120,
    ...               gpus=1, memory_gb=80)  # the cap runs memory-limited
    ''
    """
    return memory_fit(weight_bytes=weight_bytes, kv_bytes_per_token=kv_bytes_per_token,
                      batch=batch, input_tokens=tokens, output_tokens=0.0, gpus=gpus,
                      memory_gb=memory_gb, share=share).reason


def configuration_fit(model: ModelSpec, gpu: GpuSpec, tp: int, pp: int, batch: float,
                      input_tokens: float, output_tokens: float, *, ep: int = 1,
                      dp: int | None = None, precision: str | None = None,
                      bytes_per_weight: float | None = None,
                      kv_bytes_per_value: float | None = None,
                      share: float = MEMORY_SHARE) -> MemoryFit:
    """Whether a configuration can run, and how many sequences it runs at once:
    :func:`layout_reason`, then :func:`memory_fit` with the model's weights and KV cache
    (replicated KV heads counted).

    The weights take the bytes of ``precision`` (default: the model's, from its name's
    precision word or its checkpoint), or ``bytes_per_weight`` where given, split as
    :func:`replica_weight_bytes` says (``ep``: expert-parallel degree); the KV cache takes
    :func:`~energylens.core.catalogue.cache_bytes_per_value` (16 bits, as vLLM keeps it also
    for FP8 weights), or ``kv_bytes_per_value`` where given; a model whose KV cache the
    catalogue cannot size (no KV descriptors) is checked on its weights only (capacity
    ``inf``), as :func:`~energylens.selection.candidate_grid` does. A layout that cannot split
    the model gives its reason; with ``dp`` given, so does an ``ep`` above ``tp * dp``
    (:func:`expert_parallel_reason`).

    Examples
    --------
    >>> from energylens.core.catalogue import gpu_spec, model_spec
    >>> fit = configuration_fit(model_spec("Llama-3.1-8B"), gpu_spec("H100"), 1, 1, 512,
    ...                         4096, 1024)
    >>> fit.fits, fit.memory_limited, fit.running_batch  # a cap of 512 runs 92 at once
    (True, True, 92.0)
    >>> configuration_fit(model_spec("Llama-3.1-8B"), gpu_spec("H100"), 1, 1, 64, 4096,
    ...                   1024).memory_limited
    False
    """
    if not whole_degree(ep):
        raise ValueError(f"ep must be a whole number >= 1 (the expert-parallel degree); got {ep!r}.")
    why = "; ".join(r for r in (layout_reason(model, tp, pp),
                                expert_parallel_reason(ep, tp, dp) if dp is not None else "") if r)
    prec = normalize_precision(precision) if precision is not None else model.precision
    if prec is None:
        raise ValueError(f"precision must be one of {sorted(BYTES_PER_VALUE)}; got {precision!r}.")
    bpw = BYTES_PER_VALUE[prec] if bytes_per_weight is None else bytes_per_weight
    kvb = replica_kv_bytes_per_token(model, tp, cache_bytes_per_value(prec)
                                     if kv_bytes_per_value is None else kv_bytes_per_value)
    fit = memory_fit(weight_bytes=replica_weight_bytes(model, model.params_b, bpw, tp, pp, ep),
                     kv_bytes_per_token=kvb, batch=batch,
                     input_tokens=input_tokens, output_tokens=output_tokens, gpus=tp * pp,
                     memory_gb=gpu.memory_gb, share=share)
    return dataclasses.replace(fit, reason=why, capacity=0.0) if why else fit


def feasibility_reason(model: ModelSpec, gpu: GpuSpec, tp: int, pp: int, batch: float,
                       input_tokens: float, output_tokens: float, *, ep: int = 1,
                       dp: int | None = None, precision: str | None = None,
                       bytes_per_weight: float | None = None,
                       kv_bytes_per_value: float | None = None,
                       share: float = MEMORY_SHARE) -> str:
    """Why a configuration cannot run ('' when it can): :func:`configuration_fit`'s reason.

    The layout must split the model (:func:`layout_reason`), and the weights and the KV cache
    of one sequence must fit (:func:`memory_fit`); a batch cap larger than the KV memory
    holds is no reason: it runs memory-limited (:func:`configuration_fit` says at what
    running batch).

    Examples
    --------
    >>> from energylens.core.catalogue import gpu_spec, model_spec
    >>> feasibility_reason(model_spec("Llama-3.1-70B"), gpu_spec("L4"), 1, 1, 8, 512, 128)
    'needs 141.4 GB per GPU for weights and KV cache (one sequence of 640 tokens), more than 90% of 24 GB'
    >>> feasibility_reason(model_spec("Llama-3.1-405B-FP8"), gpu_spec("H100"), 8, 1, 64, 512, 256)
    ''
    """
    return configuration_fit(model, gpu, tp, pp, batch, input_tokens, output_tokens, ep=ep,
                             dp=dp, precision=precision, bytes_per_weight=bytes_per_weight,
                             kv_bytes_per_value=kv_bytes_per_value, share=share).reason
