"""GPU and model specifications as data classes, and precisions with their byte sizes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BYTES_PER_VALUE", "GpuSpec", "ModelSpec", "cache_bytes_per_value",
           "normalize_precision"]

#: Bytes per stored value of each precision (MXFP4: 4 bits plus a shared 8-bit scale per 32).
BYTES_PER_VALUE: dict[str, float] = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0,
                                     "int8": 1.0, "mxfp4": 0.53125, "int4": 0.5}
_PRECISION_ALIASES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16",
                      "float32": "fp32", "float": "fp32", "float8": "fp8", "fp8_e4m3": "fp8",
                      "e4m3": "fp8", "fp4": "mxfp4"}
#: Tensor throughput used for each precision, in order of preference.
_FLOP_ORDER = {"fp8": ("fp8", "bf16", "fp16"), "int8": ("fp8", "bf16", "fp16"),
               "bf16": ("bf16", "fp16"), "fp16": ("fp16", "bf16"),
               "mxfp4": ("bf16", "fp16"), "int4": ("bf16", "fp16"), "fp32": ()}


def normalize_precision(value) -> str | None:
    """Canonical precision name (``"bf16"``, ``"fp8"``, ...), or None when empty or unknown.

    Examples
    --------
    >>> normalize_precision("bfloat16"), normalize_precision("FP8"), normalize_precision("")
    ('bf16', 'fp8', None)
    """
    if not isinstance(value, str) or not value.strip():
        return None
    v = value.strip().lower()
    v = _PRECISION_ALIASES.get(v, v)
    return v if v in BYTES_PER_VALUE else None


def cache_bytes_per_value(precision) -> float:
    """Bytes per KV-cache (and activation) value of a model whose weights are at ``precision``.

    16 bits whatever the weights: vLLM keeps the cache and the activations in the model's
    compute precision unless told otherwise, also for FP8 or MXFP4 weights; 32 bits for FP32.

    Examples
    --------
    >>> cache_bytes_per_value("fp8"), cache_bytes_per_value("bf16"), cache_bytes_per_value("fp32")
    (2.0, 2.0, 4.0)
    """
    return 4.0 if normalize_precision(precision) == "fp32" else 2.0


@dataclass(frozen=True)
class GpuSpec:
    """One accelerator of the catalogue (vendor datasheets; ``docs/catalogue.md``).

    Attributes
    ----------
    name : str
        Catalogue name.
    flops : float
        Peak dense BF16 tensor throughput, FLOP/s (no sparsity); NaN where the GPU has none.
    hbm_bw : float
        Memory bandwidth, bytes/s.
    memory_gb : float
        Memory, GB (1e9 bytes).
    idle_w, max_w : float
        Idle power (assumed) and maximum board power (TDP), W.
    link_bw : float
        Bandwidth between the GPUs of one server, bytes/s per GPU per direction.
    link_latency_s : float
        Fixed cost of one collective or point-to-point send, s (assumed).
    interconnect : str
        Kind of link (``"NVLink"``, ``"PCIe"``, ``"Infinity Fabric"``).
    fp16_flops, fp8_flops : float
        Peak dense FP16 and FP8 tensor throughput, FLOP/s; NaN where the GPU has none.
    """

    name: str
    flops: float
    hbm_bw: float
    memory_gb: float
    idle_w: float
    max_w: float
    link_bw: float
    link_latency_s: float
    interconnect: str = "NVLink"
    fp16_flops: float = float("nan")
    fp8_flops: float = float("nan")

    def flop_s(self, precision: str = "bf16") -> float:
        """Peak dense tensor FLOP/s for computing at ``precision``.

        FP8 falls back to BF16 where the GPU has no FP8 units (A100), BF16 to FP16 where it
        has no BF16 (V100, T4); weight-only formats (MXFP4, INT4) compute in BF16.
        """
        by = {"bf16": self.flops, "fp16": self.fp16_flops, "fp8": self.fp8_flops}
        for p in _FLOP_ORDER.get(normalize_precision(precision) or "", ()):
            if np.isfinite(by[p]):
                return float(by[p])
        return float("nan")


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of one model (from its published ``config.json``).

    Attributes
    ----------
    name : str
        Catalogue name.
    params_b : float
        Parameters, billions.
    layers, hidden, heads, kv_heads, head_dim, vocab : int or None
        Decoder layers, hidden size, attention heads, key-value heads, head dimension and
        vocabulary size (None where the catalogue leaves them empty).
    active_params_b : float or None
        Parameters active per token, billions (mixtures of experts).
    architecture : str
        ``"dense"``, ``"moe"`` or ``"hybrid"``.
    experts, active_experts : int or None
        Routed experts and experts per token (mixtures of experts).
    attn_layers : int or None
        Layers holding a KV cache where fewer than ``layers`` (hybrids).
    kv_dim : int or None
        Values cached per token and layer where not ``2 * kv_heads * head_dim`` (latent
        attention).
    intermediate : int or None
        MLP width (per expert for mixtures of experts).
    precision : str
        Precision of the checkpoint's weights (``"bf16"``, ``"fp8"``, ...).
    """

    name: str
    params_b: float
    layers: int | None
    hidden: int | None
    heads: int | None
    kv_heads: int | None
    head_dim: int | None
    vocab: int | None
    active_params_b: float | None = None
    architecture: str = "dense"
    experts: int | None = None
    active_experts: int | None = None
    attn_layers: int | None = None
    kv_dim: int | None = None
    intermediate: int | None = None
    precision: str = "bf16"

    @property
    def active_b(self) -> float:
        """Parameters active per token, billions (``params_b`` for dense models)."""
        return self.active_params_b or self.params_b

    @property
    def kv_values_per_token(self) -> int | None:
        """Values in the KV cache per token, over all attention layers (None if unknown)."""
        layers = self.attn_layers or self.layers
        per = self.kv_dim
        if per is None and self.kv_heads is not None and self.head_dim is not None:
            per = 2 * self.kv_heads * self.head_dim
        return None if layers is None or per is None else layers * per

    def kv_bytes_per_token(self, bytes_per_value: float = 2.0) -> float:
        """KV-cache bytes per token at ``bytes_per_value`` (NaN if the architecture is unknown)."""
        n = self.kv_values_per_token
        return float("nan") if n is None else n * bytes_per_value
