"""The simulator's physics: roofline times, dynamic energies, prefill passes and batching."""

from __future__ import annotations

import heapq
import zlib

import numpy as np

from ..core.catalogue import GpuSpec, ModelSpec, kv_replication

#: Model-FLOPs utilisation in prefill and decode, and the share of HBM bandwidth reached.
_MFU_PREFILL, _MFU_DECODE, _BW_EFF = 0.55, 0.35, 0.75
#: Utilisation while working (floor + compute-bound share) and while waiting on a link.
_U_FLOOR, _U_COMPUTE, _U_COMM = 0.55, 0.40, 0.30
#: Shape of the gamma spread of output lengths around their mean (finite pools).
_LENGTH_SHAPE = 2.0
#: Prompt tokens per prefill pass (vLLM's ``max_num_batched_tokens``): admitted requests
#: are prefilled in chunks of at most this many tokens.
_PREFILL_TOKENS = 8192


class _Physics:
    """Roofline times and dynamic energies of one replica (no noise, no static power)."""

    def __init__(self, m: ModelSpec, g: GpuSpec, t: int, p: int, bpw: float, bpa: float = 2.0):
        # bpw: bytes per weight; bpa: bytes per activation and KV-cache value (16 bits)
        self.m, self.g, self.t, self.p, self.bpp = m, g, t, p, bpa
        self.W = m.params_b * 1e9 * bpw
        # KV bytes per token over the replica, heads replicated where tp exceeds them
        self.kvb = m.kv_values_per_token * bpa * kv_replication(m, t)
        self.attn = m.heads * m.head_dim
        self.L = m.layers  # layers: the collectives of tensor parallelism
        self.La = m.attn_layers or m.layers  # layers with attention (fewer in hybrids)
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
        flops = n * (2 * m.active_b * 1e9 * si + 2 * self.La * self.attn * si**2)
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
        compute = per * (2 * m.active_b * 1e9 + 4 * self.La * self.attn * ctx) / (
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
    _, _, pre_t, pre_dyn, _ = (np.asarray(v).item() for v in _prefill_groups(ph, si, cap))
    st_t, st_dyn = (float(v) for v in ph.step(cap, si + so / 2))
    # The whole cohort of ``cap`` requests is admitted at once and runs from the start of its
    # prefill to its last token: the cap is full all along (Little's law: cap requests per
    # cohort time, each for the cohort time, is cap running), and every request waits for
    # the cohort's whole prefill before its first decode step.
    cohort_t = pre_t + so * st_t
    ttft, latency = pre_t, cohort_t
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
    R = int(n_requests) // d  # whole requests per replica (the callers check n_requests % d)
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
