r"""A physics-based simulator of LLM-inference profiling tables (synthetic data).

The simulator turns public GPU and model specifications into energy, latency and power of
serving configurations, with the columns of a measured profiling table. Its output is
**synthetic**: it exists to test energylens against known structure, to make the demo
table and to study protocols; it is no substitute for measurement. ``docs/simulator.md``
gives the same equations with the sources of every hardware and model number.

Notation: a replica has :math:`t \times p` GPUs (tensor, pipeline degree), a configuration
:math:`d` replicas, so :math:`n_\mathrm{gpu} = t p d`. A model has :math:`N` parameters
(:math:`N_a` active per token), :math:`L` layers, hidden size :math:`h`, attention width
:math:`a = n_\mathrm{heads} d_h` and KV bytes per token :math:`k = 2 L n_{kv} d_h \beta_w`
with :math:`\beta_w` bytes per value (2 in bf16), weights :math:`W = N \beta_w`. A GPU has
peak dense FLOP/s :math:`F`, HBM bandwidth :math:`B_m` (of which a share
:math:`\eta_m = 0.75` is reached), link bandwidth :math:`\lambda`, collective latency
:math:`\alpha`, idle and maximum power :math:`P_0, P_1`.

Prefill of :math:`n` prompts of :math:`s_i` tokens, split into :math:`m = \min(n, 4p)`
micro-batches::

    FLOPs   = n (2 N_a s_i + 2 L a s_i^2)                     (dense + causal attention)
    compute = FLOPs / (t p F mfu_p),  weights = m W / (t p eta_m B_m)
    work    = max(compute, weights)
    comm    = 2 (L/p) [2 (t-1)/t * A / lambda + m alpha]     (t > 1; A = n s_i h bytes)
    send    = A / lambda + m alpha                            (p > 1)
    time    = (work + comm + send) (m + p - 1) / m            (pipeline fill and drain)

One decode step with :math:`b` running sequences of mean context :math:`c = s_i + s_o/2`,
split into :math:`m = \min(b, p)` micro-batches of :math:`b/m`::

    memory  = (W + (b/m) c k) / (t p eta_m B_m)              (weights once per micro-batch)
    compute = (b/m) (2 N_a + 4 L a c) / (t p F mfu_d)
    work    = max(memory, compute)
    comm    = 2 (L/p) [alpha + 2 (t-1)/t * (b/m) h beta_w / lambda]
    send    = alpha + (b/m) h beta_w / lambda                 (p > 1)
    time    = p (work + comm + send)

A step of the whole batch takes :math:`p` micro-batch slots, of which each stage works
:math:`m`: with fewer micro-batches than stages the pipeline is busy :math:`m/p` of the time
(the decode form of the :math:`m/(m+p-1)` bubble) while every stage draws idle power.

Power and energy: every GPU of the configuration draws :math:`P_0` for the whole run
(static energy :math:`t p P_0 T` per replica); a GPU adds :math:`(P_1 - P_0) u` while it
works, with utilisation :math:`u = 0.55 + 0.4\,\mathrm{compute}/\mathrm{work}` (0.95 when
compute-bound) and :math:`u = 0.3` while it waits on a collective or a send.

Requests: admitted prompts are prefilled in passes of at most 8,192 prompt tokens (vLLM's
``max_num_batched_tokens``), a request counting as running from the start of its pass. With
``n_requests=None`` every replica is saturated: a cohort of ``cap`` requests is prefilled and
decoded for :math:`s_o` steps at the full cap. With a finite pool, each replica's
:math:`R = n/d` requests are queued at time 0 with output lengths spread around the mean
(gamma, shape 2, seeded by the pool itself, so that every configuration serves the same
requests); at most the cap run at once, a finished sequence is replaced from the queue, the
prefill of the requests admitted before a decode step pauses decoding, and the tail drains
with fewer running. The running batch is the time average of the running count over the
timeline and the latency the mean service time (start of prefill to last token), so
Little's law, requests x latency / duration = running batch, holds.
"""

from __future__ import annotations

import heapq
import itertools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from .exceptions import NotFittedError
from .schema import validate

__all__ = ["GpuSpec", "ModelSpec", "GPU_SPECS", "MODEL_SPECS", "Precision",
           "simulate_profiles", "simulate_configurations", "SimulatorOracle"]

Precision = Literal["bf16", "fp16", "fp8"]


@dataclass(frozen=True)
class GpuSpec:
    """Public specification of one accelerator (vendor datasheets; see ``docs/simulator.md``).

    Attributes
    ----------
    name : str
        Name used in the ``gpu`` column.
    flops : float
        Peak dense BF16 tensor throughput, FLOP/s (no sparsity).
    hbm_bw : float
        Memory bandwidth, bytes/s.
    memory_gb : float
        Memory, GB (1e9 bytes).
    idle_w, max_w : float
        Idle power and maximum board power (TDP), W.
    link_bw : float
        Bandwidth between the GPUs of one server, bytes/s per direction.
    link_latency_s : float
        Fixed cost of one collective (all-reduce) or point-to-point send, s.
    interconnect : str
        Kind of link (``"NVLink"`` or ``"PCIe"``).
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


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of one public model (from its published ``config.json``).

    Attributes
    ----------
    name : str
        Name used in the ``model`` column.
    params_b : float
        Parameters, billions.
    layers, hidden, heads, kv_heads, head_dim, vocab : int
        Decoder layers, hidden size, attention heads, key-value heads, head dimension and
        vocabulary size.
    active_params_b : float or None
        Parameters active per token (mixture of experts), billions; None for dense models.
    """

    name: str
    params_b: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    active_params_b: float | None = None

    @property
    def active_b(self) -> float:
        """Parameters active per token, billions (``params_b`` for dense models)."""
        return self.active_params_b or self.params_b


GPU_SPECS: dict[str, GpuSpec] = {g.name: g for g in [
    GpuSpec("A100-40GB", 312e12, 1.555e12, 40, 50.0, 400.0, 300e9, 8e-6),
    GpuSpec("A100-80GB", 312e12, 2.039e12, 80, 55.0, 400.0, 300e9, 8e-6),
    GpuSpec("H100-SXM", 989e12, 3.35e12, 80, 70.0, 700.0, 450e9, 6e-6),
    GpuSpec("H200", 989e12, 4.8e12, 141, 75.0, 700.0, 450e9, 6e-6),
    GpuSpec("L4", 121e12, 0.3e12, 24, 16.0, 72.0, 25e9, 20e-6, interconnect="PCIe"),
]}

MODEL_SPECS: dict[str, ModelSpec] = {m.name: m for m in [
    ModelSpec("Llama-3.2-1B", 1.24, 16, 2048, 32, 8, 64, 128256),
    ModelSpec("Llama-3.2-3B", 3.21, 28, 3072, 24, 8, 128, 128256),
    ModelSpec("Mistral-7B", 7.24, 32, 4096, 32, 8, 128, 32000),
    ModelSpec("Llama-3.1-8B", 8.03, 32, 4096, 32, 8, 128, 128256),
    ModelSpec("Qwen2.5-14B", 14.7, 48, 5120, 40, 8, 128, 152064),
    ModelSpec("Llama-3.1-70B", 70.6, 80, 8192, 64, 8, 128, 128256),
    ModelSpec("Mixtral-8x7B", 46.7, 32, 4096, 32, 8, 128, 32000, active_params_b=12.9),
]}

_BYTES: dict[str, float] = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0}
#: Model-FLOPs utilisation in prefill and decode, and the share of HBM bandwidth reached.
_MFU_PREFILL, _MFU_DECODE, _BW_EFF = 0.55, 0.35, 0.75
#: Utilisation while working (floor + compute-bound share) and while waiting on a link.
_U_FLOOR, _U_COMPUTE, _U_COMM = 0.55, 0.40, 0.30
#: Memory headroom: weights and KV cache may use this share of GPU memory.
_MEM_SHARE = 0.90
#: Shape of the gamma spread of output lengths around their mean (finite pools).
_LENGTH_SHAPE = 2.0
#: Prompt tokens per prefill pass (vLLM's ``max_num_batched_tokens``): admitted requests
#: are prefilled in chunks of at most this many tokens.
_PREFILL_TOKENS = 8192
_CONFIG_NEEDS = ("model", "gpu", "tp", "batch_size", "input_tokens", "output_tokens")


def _resolve(table: dict, names: Sequence[str], what: str) -> list:
    out = []
    for n in names:
        if n not in table:
            raise ValueError(f"Unknown {what} {n!r}; known: {sorted(table)}.")
        out.append(table[n])
    return out


def _bytes_per_value(precision: str) -> float:
    if precision not in _BYTES:
        raise ValueError(f"precision must be one of {sorted(_BYTES)}; got {precision!r}.")
    return _BYTES[precision]


def _feasible(m: ModelSpec, g: GpuSpec, t: int, p: int, cap: float, si: float, so: float,
              bpp: float) -> tuple[bool, str]:
    """Whether a configuration can run, and why not."""
    if m.kv_heads % t or m.heads % t:
        return False, f"tp={t} does not divide the {m.heads} heads / {m.kv_heads} KV heads"
    if p > m.layers:
        return False, f"pp={p} exceeds the {m.layers} layers"
    kvb = 2 * m.layers * m.kv_heads * m.head_dim * bpp
    need = (m.params_b * 1e9 * bpp + cap * (si + so) * kvb) / (t * p)
    if need > _MEM_SHARE * g.memory_gb * 1e9:
        return False, (f"needs {need / 1e9:.1f} GB per GPU, more than {_MEM_SHARE:.0%} of "
                       f"{g.memory_gb:g} GB")
    return True, ""


class _Physics:
    """Roofline times and dynamic energies of one replica (no noise, no static power)."""

    def __init__(self, m: ModelSpec, g: GpuSpec, t: int, p: int, bpp: float):
        self.m, self.g, self.t, self.p, self.bpp = m, g, t, p, bpp
        self.W = m.params_b * 1e9 * bpp
        self.kvb = 2 * m.layers * m.kv_heads * m.head_dim * bpp  # KV bytes per token
        self.attn = m.heads * m.head_dim
        self.L = m.layers
        self.static_w = t * p * g.idle_w  # idle power of the replica
        self.dyn_w = g.max_w - g.idle_w

    def _energy(self, compute, work, wait, busy_slots):
        u = _U_FLOOR + _U_COMPUTE * compute / work
        return self.dyn_w * self.t * self.p * busy_slots * (work * u + wait * _U_COMM)

    def prefill(self, si: float, n) -> tuple[np.ndarray, np.ndarray]:
        """Time (s) and dynamic energy (J) to prefill ``n`` prompts of ``si`` tokens at once."""
        m, g, t, p = self.m, self.g, self.t, self.p
        n = np.asarray(n, dtype=float)
        mb = np.clip(np.minimum(n, 4.0 * p), 1.0, None)
        flops = n * (2 * m.active_b * 1e9 * si + 2 * self.L * self.attn * si**2)
        compute = flops / (t * p * g.flops * _MFU_PREFILL)
        work = np.maximum(compute, mb * self.W / (t * p * g.hbm_bw * _BW_EFF))
        act = n * si * m.hidden * self.bpp
        comm = (2 * (self.L / p) * (2 * (t - 1) / t * act / g.link_bw + mb * g.link_latency_s)
                if t > 1 else 0.0 * n)
        send = act / g.link_bw + mb * g.link_latency_s if p > 1 else 0.0 * n
        time = (work + comm + send) * (mb + p - 1) / mb
        return time, self._energy(compute, work, comm + send, 1.0)

    def step(self, b, ctx: float) -> tuple[np.ndarray, np.ndarray]:
        """Time (s) and dynamic energy (J) of one decode step with ``b`` running sequences."""
        m, g, t, p = self.m, self.g, self.t, self.p
        b = np.asarray(b, dtype=float)
        mb = np.clip(np.minimum(b, p), 1.0, None)
        per = b / mb
        memory = (self.W + per * ctx * self.kvb) / (t * p * g.hbm_bw * _BW_EFF)
        compute = per * (2 * m.active_b * 1e9 + 4 * self.L * self.attn * ctx) / (
            t * p * g.flops * _MFU_DECODE)
        work = np.maximum(memory, compute)
        comm = (2 * (self.L / p) * (g.link_latency_s + 2 * (t - 1) / t * per * m.hidden * self.bpp
                                    / g.link_bw) if t > 1 else 0.0 * b)
        send = g.link_latency_s + per * m.hidden * self.bpp / g.link_bw if p > 1 else 0.0 * b
        time = p * (work + comm + send)
        return time, self._energy(compute, work, comm + send, mb)


def _lengths(mean: float, n: int) -> np.ndarray:
    """Output lengths (decode steps) of a pool of ``n`` requests with the given mean.

    Gamma-distributed, rescaled to the mean, at least 1; seeded by ``(mean, n)`` alone so
    that every configuration serving this pool sees the same requests in the same order.
    """
    rng = np.random.default_rng(zlib.crc32(f"{mean:.6g}|{n}".encode()))
    x = rng.gamma(_LENGTH_SHAPE, mean / _LENGTH_SHAPE, n)
    return np.maximum(1.0, np.round(x * mean / x.mean()))


def _running_profile(lengths: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Continuous batching of requests queued at time 0.

    Returns the running count at each decode step and each request's first step. Requests
    take the first free slot in queue order (a heap of slot release steps).
    """
    n = len(lengths)
    cap = max(1, min(int(cap), n))
    steps = lengths.astype(np.int64)
    start = np.zeros(n, dtype=np.int64)
    slots = list(steps[:cap])
    heapq.heapify(slots)
    for j in range(cap, n):
        start[j] = heapq.heappop(slots)
        heapq.heappush(slots, start[j] + steps[j])
    end = start + steps
    delta = np.zeros(int(end.max()) + 1)
    np.add.at(delta, start, 1.0)
    np.add.at(delta, end, -1.0)
    return np.cumsum(delta)[:-1], start


def _prefill_groups(ph: _Physics, si: float, admitted) -> tuple[np.ndarray, ...]:
    """Prefill of ``admitted`` queued prompts in chunks of at most :data:`_PREFILL_TOKENS`.

    Returns the chunk size ``c`` (requests), the time of a full chunk, and per group the
    total time, dynamic energy and ``ramp`` (integral over the pause of the number of
    these requests already admitted: a request counts from the start of its chunk).
    """
    a = np.asarray(admitted, dtype=float)
    c = max(1.0, float(np.floor(_PREFILL_TOKENS / si)))
    q, r = np.floor(a / c), np.mod(a, c)
    t_c, e_c = (float(v) for v in ph.prefill(si, c))
    t_r, e_r = ph.prefill(si, np.maximum(r, 1.0))
    t_r, e_r = np.where(r > 0, t_r, 0.0), np.where(r > 0, e_r, 0.0)
    time = q * t_c + t_r
    ramp = c * t_c * q * (q + 1) / 2 + a * t_r
    return c, t_c, time, q * e_c + e_r, ramp


def _saturated(ph: _Physics, d: int, cap: float, si: float, so: float) -> dict:
    c, t_c, pre_t, pre_dyn, ramp = (np.asarray(v).item() for v in _prefill_groups(ph, si, cap))
    st_t, st_dyn = (float(v) for v in ph.step(cap, si + so / 2))
    ttft = ramp / cap  # mean time from a request's chunk start to the first decode step
    latency = ttft + so * st_t
    cohort_t = pre_t + so * st_t  # one cohort of ``cap`` requests, prefill to last token
    out = {
        "_prefill_dyn": pre_dyn / cap, "_decode_dyn": so * st_dyn / cap,
        "_static": ph.static_w * cohort_t / cap,
        "prefill_energy_j": (pre_dyn + ph.static_w * pre_t) / cap,
        "decode_energy_j": so * (st_dyn + ph.static_w * st_t) / cap,
        "latency_s": latency, "ttft_s": ttft, "tpot_s": st_t, "running_batch": float(cap),
        "n_requests": np.nan, "duration_s": np.nan, "run_energy_j": np.nan,
    }
    out["power_w"] = d * (out["prefill_energy_j"] + out["decode_energy_j"]) * cap / cohort_t
    return out


def _pooled(ph: _Physics, d: int, cap: float, si: float, so: float, n_requests: float) -> dict:
    R = max(1, int(round(n_requests / d)))
    lengths = _lengths(so, R)
    running, start = _running_profile(lengths, int(cap))
    K = len(running)
    uniq, inv = np.unique(running, return_inverse=True)
    st_t, st_dyn = (a[inv] for a in ph.step(uniq, si + so / 2))
    admitted = np.bincount(start, minlength=K)
    a_uniq, a_inv = np.unique(admitted, return_inverse=True)
    c, t_c, pa_t, pa_dyn, pa_ramp = _prefill_groups(ph, si, a_uniq)
    pause_t, pause_dyn, ramp = pa_t[a_inv], pa_dyn[a_inv], pa_ramp[a_inv]
    seg = pause_t + st_t  # segment k: prefill of the admissions at k, then decode step k
    t_begin = np.concatenate([[0.0], np.cumsum(seg)])
    duration = float(t_begin[-1])
    end = start + lengths.astype(np.int64)
    # Requests admitted together are prefilled chunk after chunk, in queue order; a
    # request is running from the start of its chunk.
    rank = np.arange(R) - np.searchsorted(start, start, side="left")
    t_in = t_begin[start] + np.floor(rank / c) * t_c
    decode_from = t_begin[start] + pause_t[start]
    service = t_begin[end] - t_in
    ttft = decode_from - t_in
    # Time average of the running count from the timeline (Little's law checks it against
    # the service times): requests carried over run through the whole segment, admitted
    # ones from their chunk on.
    carried = running - admitted
    running_avg = float(np.sum(carried * pause_t + ramp + running * st_t) / duration)
    pre_dyn, dec_dyn = float(pause_dyn.sum()), float(st_dyn.sum())
    static = ph.static_w * duration
    prefill_e = pre_dyn + ph.static_w * float(pause_t.sum())
    decode_e = dec_dyn + ph.static_w * float(st_t.sum())
    run_energy = d * (prefill_e + decode_e)
    return {
        "_prefill_dyn": pre_dyn / R, "_decode_dyn": dec_dyn / R, "_static": static / R,
        "prefill_energy_j": prefill_e / R, "decode_energy_j": decode_e / R,
        "latency_s": float(service.mean()), "ttft_s": float(ttft.mean()),
        "tpot_s": float(np.mean((service - ttft) / lengths)), "running_batch": running_avg,
        "n_requests": float(R * d), "duration_s": duration, "run_energy_j": run_energy,
        "power_w": run_energy / duration,
    }


def _simulate_rows(configs: pd.DataFrame, precision: str | Sequence[str]) -> pd.DataFrame:
    """Noise-free rows (canonical columns, internal ``_``-columns and ``reason``)."""
    if not isinstance(configs, pd.DataFrame):
        raise TypeError(f"Expected a DataFrame of configurations, got {type(configs).__name__}.")
    missing = [c for c in _CONFIG_NEEDS if c not in configs.columns]
    if missing:
        raise ValueError(f"Configurations lack the columns {missing}; the simulator needs "
                         f"{list(_CONFIG_NEEDS)} (pp, dp, n_requests optional).")
    n = len(configs)
    precs = [precision] * n if isinstance(precision, str) else list(precision)
    recs = configs.to_dict("records")
    rows = []
    for i, (r, prec) in enumerate(zip(recs, precs)):
        bpp = _bytes_per_value(prec)
        (m,) = _resolve(MODEL_SPECS, [r["model"]], "model")
        (g,) = _resolve(GPU_SPECS, [r["gpu"]], "GPU")

        def _int(name, default=1, r=r, i=i):
            v = r.get(name, default)
            v = default if v is None or (isinstance(v, float) and np.isnan(v)) else v
            if float(v) < 1 or float(v) != int(float(v)):
                raise ValueError(f"Column '{name}' must hold positive integers; row "
                                 f"{configs.index[i]!r} has {v!r}.")
            return int(float(v))

        t, p, d = _int("tp"), _int("pp"), _int("dp")
        cap, si, so = (float(r[c]) for c in ("batch_size", "input_tokens", "output_tokens"))
        if not (cap >= 1 and si > 0 and so >= 1):
            raise ValueError(f"Row {configs.index[i]!r}: batch_size must be >= 1, input_tokens "
                             f"> 0 and output_tokens >= 1; got {cap}, {si}, {so}.")
        ok, why = _feasible(m, g, t, p, cap, si, so, bpp)
        if not ok:
            rows.append({"energy_j": np.nan, "reason": why})
            continue
        ph = _Physics(m, g, t, p, bpp)
        pool = r.get("n_requests", np.nan)
        pool = np.nan if pool is None else float(pool)
        row = _saturated(ph, d, cap, si, so) if not np.isfinite(pool) else \
            _pooled(ph, d, cap, si, so, pool)
        row.update({
            "model": m.name, "gpu": g.name, "tp": t, "pp": p, "dp": d, "batch_size": cap,
            "batch_kind": "cap", "input_tokens": si, "output_tokens": so, "precision": prec,
            "params_b": m.params_b, "active_params_b": m.active_b,
            "energy_j": row["prefill_energy_j"] + row["decode_energy_j"], "reason": "",
        })
        rows.append(row)
    return pd.DataFrame(rows, index=configs.index)


_OUT_COLUMNS = ["model", "gpu", "tp", "pp", "dp", "batch_size", "batch_kind", "running_batch",
                "input_tokens", "output_tokens", "precision", "params_b", "active_params_b",
                "energy_j", "prefill_energy_j", "decode_energy_j", "latency_s", "ttft_s",
                "tpot_s", "power_w", "n_requests", "run_energy_j", "duration_s"]


def simulate_configurations(configs: pd.DataFrame, *, precision: Precision = "bf16"
                            ) -> pd.DataFrame:
    """Noise-free simulator output for given configurations (one row each, same index).

    Parameters
    ----------
    configs : DataFrame
        Columns ``model, gpu, tp, batch_size, input_tokens, output_tokens`` and optionally
        ``pp``, ``dp`` (default 1) and ``n_requests`` (NaN or absent: saturated). Model and
        GPU names must be keys of :data:`MODEL_SPECS` and :data:`GPU_SPECS`.
    precision : {"bf16", "fp16", "fp8"}
        Weight and KV-cache precision.

    Returns
    -------
    DataFrame
        The simulator's columns (not validated) and ``reason``: empty for feasible rows;
        infeasible rows have NaN energies and say why (memory, heads, layers).

    Examples
    --------
    >>> import pandas as pd
    >>> from energylens.simulate import simulate_configurations
    >>> cfg = pd.DataFrame({"model": ["Llama-3.1-70B"] * 2, "gpu": ["L4", "H100-SXM"],
    ...                     "tp": [1, 4], "batch_size": [8, 8], "input_tokens": [512, 512],
    ...                     "output_tokens": [128, 128]})
    >>> out = simulate_configurations(cfg)
    >>> bool(out["energy_j"].isna().iloc[0]), bool(out["energy_j"].iloc[1] > 0)
    (True, True)
    """
    _bytes_per_value(precision)
    rows = _simulate_rows(configs, precision)
    cols = [c for c in _OUT_COLUMNS if c in rows.columns] + ["reason"]
    return rows.reindex(columns=cols)


def _check_grid(name: str, values, *, integer: bool, lower: float) -> list:
    vals = [values] if np.isscalar(values) else list(values)
    if not vals:
        raise ValueError(f"{name} must hold at least one value.")
    for v in vals:
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must hold numbers; got {v!r}.") from None
        if not np.isfinite(x) or x < lower or (integer and x != int(x)):
            kind = "integers" if integer else "numbers"
            raise ValueError(f"{name} must hold {kind} >= {lower:g}; got {v!r}.")
    return [int(v) for v in vals] if integer else [float(v) for v in vals]


def simulate_profiles(
    *,
    models: Sequence[str] = ("Llama-3.2-1B", "Llama-3.1-8B", "Llama-3.1-70B"),
    gpus: Sequence[str] = ("A100-80GB", "H100-SXM"),
    tp: Sequence[int] = (1, 2, 4, 8),
    pp: Sequence[int] = (1, 2),
    dp: Sequence[int] = (1,),
    batch_size: Sequence[float] = (1, 8, 32, 128),
    input_tokens: Sequence[float] = (128, 1024),
    output_tokens: Sequence[float] = (64, 512),
    n_requests: int | Sequence[int] | None = None,
    noise: float = 0.02,
    seed: int = 0,
    precision: Precision = "bf16",
    workload: str = "synthetic",
    max_rows: int | None = None,
) -> pd.DataFrame:
    """Simulate a profiling table over a grid of configurations (synthetic data).

    Parameters
    ----------
    models, gpus : sequence of str
        Names from :data:`MODEL_SPECS` and :data:`GPU_SPECS`.
    tp, pp, dp : sequence of int
        Tensor-, pipeline- and data-parallel degrees (a configuration uses ``tp*pp*dp``
        GPUs).
    batch_size : sequence of float
        Batch caps (``max_num_seqs``); with ``n_requests=None`` the cap is always full.
    input_tokens, output_tokens : sequence of float
        Mean prompt and answer lengths, tokens.
    n_requests : int, sequence of int, or None
        Requests of the whole run (split evenly over the ``dp`` replicas). A small pool
        leaves the cap under-used, and ``running_batch`` records the real concurrency.
        None simulates saturated serving (``running_batch`` equals the cap; ``n_requests``,
        ``duration_s`` and ``run_energy_j`` are then NaN).
    noise : float
        Relative standard deviation of the seeded, mean-one log-normal measurement noise.
        The energies of a row share one factor (so prefill + decode = total), its times
        another (so Little's law still holds); mean power gets their ratio.
    seed : int
        Seed of the noise and of the ``max_rows`` subsample. The physics, including the
        spread of output lengths in a request pool, does not depend on it.
    precision : {"bf16", "fp16", "fp8"}
        Weight and KV-cache precision (bytes only: peak FLOP/s stay the BF16 figures).
    workload : str
        Scenario label written to ``workload``.
    max_rows : int, optional
        Keep a seeded random subset of this many feasible rows.

    Returns
    -------
    DataFrame
        A canonical table validated by :func:`energylens.schema.validate`, with
        ``batch_kind="cap"`` and ``source="simulator"``. Configurations that cannot run
        (weights and KV cache over 90% of GPU memory, TP not dividing the heads, more
        stages than layers) are never emitted.

    Raises
    ------
    ValueError
        Unknown model, GPU or precision, a bad grid value, or no feasible configuration.

    Examples
    --------
    >>> import energylens
    >>> df = energylens.simulate_profiles(models=["Llama-3.2-1B"], gpus=["H100-SXM"], seed=0)
    >>> bool((df["prefill_energy_j"] + df["decode_energy_j"] - df["energy_j"]).abs().max() < 1e-9)
    True
    >>> pool = energylens.simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"], tp=[1],
    ...                                     pp=[1], dp=[2], batch_size=[128], n_requests=64)
    >>> bool((pool["running_batch"] < pool["batch_size"]).all())
    True
    """
    bpp = _bytes_per_value(precision)
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0; got {noise!r}.")
    if max_rows is not None and int(max_rows) < 1:
        raise ValueError(f"max_rows must be a positive integer or None; got {max_rows!r}.")
    models = [models] if isinstance(models, str) else list(models)
    gpus = [gpus] if isinstance(gpus, str) else list(gpus)
    _resolve(MODEL_SPECS, models, "model")
    _resolve(GPU_SPECS, gpus, "GPU")
    grids = {
        "tp": _check_grid("tp", tp, integer=True, lower=1),
        "pp": _check_grid("pp", pp, integer=True, lower=1),
        "dp": _check_grid("dp", dp, integer=True, lower=1),
        "batch_size": _check_grid("batch_size", batch_size, integer=False, lower=1),
        "input_tokens": _check_grid("input_tokens", input_tokens, integer=False, lower=1),
        "output_tokens": _check_grid("output_tokens", output_tokens, integer=False, lower=1),
    }
    pools = [np.nan] if n_requests is None else [
        float(v) for v in _check_grid("n_requests", n_requests, integer=True, lower=1)]
    combos = itertools.product(models, gpus, *grids.values(), pools)
    keep = [c for c in combos
            if _feasible(MODEL_SPECS[c[0]], GPU_SPECS[c[1]], c[2], c[3], c[5], c[6], c[7], bpp)[0]]
    if not keep:
        raise ValueError("No feasible configuration in the requested grid: every combination "
                         "exceeds GPU memory or has a TP that does not divide the heads.")
    grid = pd.DataFrame(keep, columns=["model", "gpu", *grids, "n_requests"])
    rng = np.random.default_rng(seed)
    if max_rows is not None and len(grid) > max_rows:
        pick = np.sort(rng.choice(len(grid), int(max_rows), replace=False))
        grid = grid.iloc[pick].reset_index(drop=True)
    out = simulate_configurations(grid, precision=precision).drop(columns="reason")
    n = len(out)
    f_e = np.exp(rng.normal(0.0, noise, n) - noise**2 / 2)
    f_t = np.exp(rng.normal(0.0, noise, n) - noise**2 / 2)
    for c in ("energy_j", "prefill_energy_j", "decode_energy_j", "run_energy_j"):
        out[c] = out[c] * f_e
    for c in ("latency_s", "ttft_s", "tpot_s", "duration_s"):
        out[c] = out[c] * f_t
    out["power_w"] = out["power_w"] * f_e / f_t
    out["workload"] = workload
    out["source"] = "simulator"
    return validate(out, where="<simulator>")


class SimulatorOracle(RegressorMixin, BaseEstimator):
    """The simulator without noise, as a regressor: ``predict(X)`` is the true energy.

    ``fit`` learns nothing: it checks the table and records the settings, so that
    selection and evaluation protocols can be tested against the truth.

    Parameters
    ----------
    precision : {"bf16", "fp16", "fp8"} or None
        Precision the simulator assumes; None reads each row's ``precision`` column
        (``"bf16"`` where absent or missing).

    Attributes
    ----------
    precision_ : str or None
        The precision setting used by ``predict``.

    Examples
    --------
    >>> import numpy as np, energylens
    >>> df = energylens.simulate_profiles(models=["Llama-3.2-1B"], gpus=["L4"], noise=0.0)
    >>> oracle = energylens.SimulatorOracle().fit(df)
    >>> bool(np.allclose(oracle.predict(df), df["energy_j"]))
    True
    """

    def __init__(self, *, precision: Precision | None = None):
        self.precision = precision

    def fit(self, X: pd.DataFrame, y=None, sample_weight=None) -> SimulatorOracle:
        """Check ``X`` (a canonical table) and record the settings; ``y`` is ignored."""
        if not isinstance(X, pd.DataFrame):
            raise ValueError("SimulatorOracle needs a canonical profiling table (a DataFrame); "
                             f"got {type(X).__name__}.")
        missing = [c for c in _CONFIG_NEEDS if c not in X.columns]
        if missing:
            raise ValueError(f"SimulatorOracle.fit: the table lacks the columns {missing}.")
        if self.precision is not None:
            _bytes_per_value(self.precision)
        self.precision_ = self.precision
        return self

    def _sim(self, X: pd.DataFrame) -> pd.DataFrame:
        if not hasattr(self, "precision_"):
            raise NotFittedError("This SimulatorOracle instance is not fitted yet. Call 'fit' "
                                 "first.")
        if self.precision_ is not None:
            prec: str | list[str] = self.precision_
        elif "precision" in X.columns:
            prec = [v if isinstance(v, str) and v else "bf16"
                    for v in X["precision"].astype(object)]
        else:
            prec = "bf16"
        return _simulate_rows(X, prec)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Noise-free energy per request (J) of each configuration; NaN where infeasible."""
        return self._sim(X)["energy_j"].to_numpy(dtype=float)

    def predict_components(self, X: pd.DataFrame) -> pd.DataFrame:
        """Dynamic prefill, dynamic decode and static (idle) energy per request, J.

        ``static_j`` is the idle power of every GPU of the configuration over the whole
        run; ``prefill_j`` and ``decode_j`` are what the GPUs draw above idle in each phase.
        The three sum to :meth:`predict` (the table's ``prefill_energy_j`` and
        ``decode_energy_j`` instead include the idle power during each phase).
        """
        s = self._sim(X)
        cols = {"prefill_j": "_prefill_dyn", "decode_j": "_decode_dyn", "static_j": "_static"}
        return pd.DataFrame({k: s[v] if v in s.columns else np.nan for k, v in cols.items()},
                            index=X.index).astype(float)
