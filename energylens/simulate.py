r"""A physics-based simulator of LLM-inference profiling tables (synthetic data).

The simulator turns public GPU and model specifications into energy, latency and power for
serving configurations, with the same columns as a measured profiling table. Its output is
**synthetic**: it exists to test energylens against known structure, to make the demo
table, and to study protocols; it is no substitute for measurement. ``docs/simulator.md``
gives the equations and the sources of every hardware number.

Equations (per replica of :math:`t \times p` GPUs, bf16 weights of :math:`W` bytes):

* prefill of one request of :math:`s_i` tokens: :math:`F = 2 N_a s_i + 2 L h s_i^2` FLOPs,
  time :math:`F / (t p \cdot \mathrm{peak} \cdot \mathrm{mfu})` per stage plus two ring
  all-reduces per layer (:math:`2(t-1)/t` of the activation bytes over the link, plus a
  fixed latency), pipeline sends, and a bubble factor :math:`(m+p-1)/m`;
* one decode step with :math:`b` running sequences of mean context :math:`c`: each stage
  reads its weights once and the KV cache of its share of the batch,
  :math:`\max(\text{bytes}/\mathrm{bw},\ \text{FLOPs}/(\mathrm{peak}\cdot\mathrm{mfu}))` per
  micro-batch, plus all-reduces, times :math:`(m+p-1)` micro-batch slots;
* power: every GPU draws idle power for the whole run; busy GPUs add
  :math:`(P_\max - P_\mathrm{idle})\,u` with :math:`u` higher when compute-bound;
* a finite pool of requests per replica runs under continuous batching with at most the
  cap at once; the tail drains with fewer running, so the cap overstates concurrency.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, RegressorMixin

from .schema import validate

__all__ = ["GpuSpec", "ModelSpec", "GPU_SPECS", "MODEL_SPECS", "simulate_profiles",
           "simulate_configurations", "SimulatorOracle"]


@dataclass(frozen=True)
class GpuSpec:
    """Public specification of one accelerator (vendor datasheets; see docs/simulator.md)."""

    name: str
    flops: float  # dense BF16 FLOP/s
    hbm_bw: float  # bytes/s
    memory_gb: float
    idle_w: float
    max_w: float
    link_bw: float  # bytes/s per direction between GPUs of one server
    link_latency_s: float  # fixed cost of one collective step


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of one public model (from its published configuration)."""

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
        return self.active_params_b or self.params_b


GPU_SPECS: dict[str, GpuSpec] = {g.name: g for g in [
    GpuSpec("A100-40GB", 312e12, 1.555e12, 40, 50.0, 400.0, 300e9, 8e-6),
    GpuSpec("A100-80GB", 312e12, 2.039e12, 80, 55.0, 400.0, 300e9, 8e-6),
    GpuSpec("H100-SXM", 989e12, 3.35e12, 80, 70.0, 700.0, 450e9, 6e-6),
    GpuSpec("H200", 989e12, 4.8e12, 141, 75.0, 700.0, 450e9, 6e-6),
    GpuSpec("L4", 121e12, 0.3e12, 24, 16.0, 72.0, 25e9, 20e-6),
]}

MODEL_SPECS: dict[str, ModelSpec] = {m.name: m for m in [
    ModelSpec("Llama-3.2-1B", 1.24, 16, 2048, 32, 8, 64, 128256),
    ModelSpec("Llama-3.2-3B", 3.21, 28, 3072, 24, 8, 128, 128256),
    ModelSpec("Llama-3.1-8B", 8.03, 32, 4096, 32, 8, 128, 128256),
    ModelSpec("Qwen2.5-14B", 14.7, 48, 5120, 40, 8, 128, 152064),
    ModelSpec("Llama-3.1-70B", 70.6, 80, 8192, 64, 8, 128, 128256),
    ModelSpec("Mixtral-8x7B", 46.7, 32, 4096, 32, 8, 128, 32000, active_params_b=12.9),
]}

_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0}
#: Model-FLOPs utilisation in prefill and decode, and the share of HBM bandwidth reached.
_MFU_PREFILL, _MFU_DECODE, _BW_EFF = 0.55, 0.35, 0.75
#: Memory headroom: weights and KV cache may use this share of GPU memory.
_MEM_SHARE = 0.90
#: Shape of the gamma spread of output lengths around their mean (finite pools).
_LENGTH_SHAPE = 2.0


def _resolve(table: dict, names, what: str):
    out = []
    for n in names:
        if n not in table:
            raise ValueError(f"Unknown {what} {n!r}; known: {sorted(table)}.")
        out.append(table[n])
    return out


def _feasible(m: ModelSpec, g: GpuSpec, t: int, p: int, cap: float, si: float, so: float,
              bpp: float) -> tuple[bool, str]:
    if m.kv_heads % t or m.heads % t:
        return False, f"tp={t} does not divide the {m.kv_heads} KV heads"
    if p > m.layers:
        return False, f"pp={p} exceeds {m.layers} layers"
    kvb = 2 * m.layers * m.kv_heads * m.head_dim * bpp
    need = (m.params_b * 1e9 * bpp + cap * (si + so) * kvb) / (t * p)
    if need > _MEM_SHARE * g.memory_gb * 1e9:
        return False, f"needs {need / 1e9:.1f} GB per GPU, more than {g.memory_gb:g} GB"
    return True, ""


class _Physics:
    """Times and energies of one configuration (no noise)."""

    def __init__(self, m: ModelSpec, g: GpuSpec, t: int, p: int, bpp: float):
        self.m, self.g, self.t, self.p, self.bpp = m, g, t, p, bpp
        self.W = m.params_b * 1e9 * bpp
        self.kvb = 2 * m.layers * m.kv_heads * m.head_dim * bpp  # KV bytes per token
        self.L = m.layers

    # ---- prefill ------------------------------------------------------------------------
    def prefill(self, si: np.ndarray | float, n_req: float = 1.0) -> tuple[float, float]:
        """Time (s) and energy (J, all GPUs, dynamic + idle) to prefill ``n_req`` prompts."""
        m, g, t, p = self.m, self.g, self.t, self.p
        flops = n_req * (2 * m.active_b * 1e9 * si + 2 * self.L * m.hidden * si**2)
        mb = max(1.0, min(n_req, 4.0 * p))  # micro-batches in flight
        compute = flops / (t * p * g.flops * _MFU_PREFILL)
        weights = self.W / (t * p) / (g.hbm_bw * _BW_EFF)
        act = n_req * si * m.hidden * self.bpp
        comm = 0.0
        if t > 1:
            comm = 2 * (self.L / p) * (2 * (t - 1) / t * act / mb / g.link_bw + g.link_latency_s) * mb
        sends = (p - 1) * (act / g.link_bw + g.link_latency_s * mb)
        stage = max(compute, weights) + comm
        time = stage * (mb + p - 1) / mb + sends
        busy = t * p * (max(compute, weights) * 0.95 + comm * 0.35)
        energy = t * p * g.idle_w * time + (g.max_w - g.idle_w) * busy
        return float(time), float(energy)

    # ---- decode -------------------------------------------------------------------------
    def step(self, b: np.ndarray, ctx: float) -> tuple[np.ndarray, np.ndarray]:
        """Time (s) and energy (J) of one decode step with ``b`` running sequences."""
        m, g, t, p = self.m, self.g, self.t, self.p
        b = np.asarray(b, dtype=float)
        mb = np.clip(np.minimum(b, p), 1, None)  # micro-batches
        per_mb = b / mb
        mem = (self.W / (t * p) + per_mb * ctx * self.kvb / (t * p)) / (g.hbm_bw * _BW_EFF)
        comp = 2 * m.active_b * 1e9 * per_mb / (t * p * g.flops * _MFU_DECODE)
        work = np.maximum(mem, comp)
        comm = np.zeros_like(b)
        if t > 1:
            comm = 2 * (self.L / p) * (g.link_latency_s + 2 * (t - 1) / t * per_mb * m.hidden
                                       * self.bpp / g.link_bw)
        send = (g.link_latency_s + per_mb * m.hidden * self.bpp / g.link_bw) if p > 1 else 0.0
        slot = work + comm + send
        # Decode is a continuous stream: a micro-batch's next token enters the first stage
        # once it leaves the last, so a step of the whole batch takes p slots; with fewer
        # micro-batches than stages, stages idle (the bubble) while drawing idle power.
        time = slot * p
        u = 0.55 + 0.4 * comp / work
        busy = t * p * mb * (work * u + (comm + send) * 0.3)
        energy = t * p * g.idle_w * time + (g.max_w - g.idle_w) * busy
        return time, energy


def _lengths(mean: float, n: int, seed: int) -> np.ndarray:
    """Deterministic spread of ``n`` output lengths with the given mean (gamma quantiles)."""
    q = (np.arange(n) + 0.5) / n
    x = stats.gamma.ppf(q, _LENGTH_SHAPE, scale=mean / _LENGTH_SHAPE)
    x = np.maximum(1.0, np.round(x * mean / x.mean()))
    return np.random.default_rng(seed).permutation(x)


def _running_profile(lengths: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Continuous batching of queued requests: running count per decode step, and each
    request's start step. Requests take the first free slot in queue order."""
    n = len(lengths)
    cap = max(1, min(int(cap), n))
    slots = [(0, i) for i in range(cap)]
    heapq.heapify(slots)
    start = np.empty(n, dtype=np.int64)
    end = np.empty(n, dtype=np.int64)
    for j in range(n):
        free, s = heapq.heappop(slots)
        start[j] = free
        end[j] = free + int(lengths[j])
        heapq.heappush(slots, (end[j], s))
    horizon = int(end.max())
    delta = np.zeros(horizon + 1)
    np.add.at(delta, start, 1)
    np.add.at(delta, end, -1)
    running = np.cumsum(delta)[:horizon]
    return running, start


def _simulate_one(m, g, t, p, d, cap, si, so, n_requests, bpp, seed):
    """Noise-free result of one configuration as a dict of canonical columns."""
    ph = _Physics(m, g, t, p, bpp)
    ctx = si + so / 2
    n_gpus = t * p * d
    if n_requests is None:
        # Saturated replica: the cap is always running.
        pre_t, pre_e = ph.prefill(si, cap)
        st_t, st_e = ph.step(np.array([cap]), ctx)
        dec_t_req = so * st_t[0]
        dec_e_req = so * st_e[0] / cap
        pre_e_req = pre_e / cap
        latency = pre_t + dec_t_req
        running = float(cap)
        row = {"n_requests": np.nan, "duration_s": np.nan,
               "run_energy_j": np.nan, "ttft_s": ph.prefill(si, 1)[0]}
        tpot = st_t[0]
        power = (pre_e_req + dec_e_req) * cap / latency
    else:
        R = max(1, int(round(n_requests / d)))
        lengths = _lengths(so, R, seed)
        running_k, start = _running_profile(lengths, cap)
        uniq, inv = np.unique(running_k, return_inverse=True)
        st_t, st_e = ph.step(uniq, ctx)
        step_t, step_e = st_t[inv], st_e[inv]
        t_cum = np.concatenate([[0.0], np.cumsum(step_t)])
        pre_t1, pre_e1 = ph.prefill(si, 1)
        # Prefills pause decoding: each admitted request adds one prefill to the timeline.
        # Admissions at step k happen before step k; their prefill time is serial.
        adm = np.bincount(start, minlength=len(running_k) + 1)[: len(running_k) + 1]
        pre_cum = np.cumsum(adm) * pre_t1
        ends = start + lengths.astype(np.int64)
        finish = t_cum[ends] + pre_cum[np.minimum(ends, len(pre_cum) - 1)]
        begin = t_cum[start] + pre_cum[start] - pre_t1
        service = finish - begin
        duration = float(t_cum[-1] + R * pre_t1)
        dec_e = float(np.sum(step_e))
        pre_e = R * pre_e1
        pre_e_req, dec_e_req = pre_e / R, dec_e / R
        latency = float(np.mean(service))
        running = float(np.sum(service) / duration)
        tpot = float(np.sum(step_t * running_k) / np.sum(running_k))
        total = (pre_e + dec_e) * d
        row = {"n_requests": float(R * d), "duration_s": duration, "run_energy_j": total,
               "ttft_s": pre_t1}
        power = total / duration
    row.update({
        "model": m.name, "gpu": g.name, "tp": t, "pp": p, "dp": d, "batch_size": float(cap),
        "batch_kind": "cap", "running_batch": running, "input_tokens": float(si),
        "output_tokens": float(so), "params_b": m.params_b,
        "active_params_b": m.active_b, "prefill_energy_j": pre_e_req,
        "decode_energy_j": dec_e_req, "energy_j": pre_e_req + dec_e_req,
        "latency_s": latency, "tpot_s": tpot, "power_w": power, "n_gpus": n_gpus,
    })
    return row


def simulate_configurations(configs: pd.DataFrame, *, precision: str = "bf16") -> pd.DataFrame:
    """Noise-free simulator output for the given configurations (one row each).

    ``configs`` needs ``model, gpu, tp, batch_size, input_tokens, output_tokens`` (and
    optionally ``pp``, ``dp``, ``n_requests``); model and GPU names must be in
    :data:`MODEL_SPECS` and :data:`GPU_SPECS`. Infeasible rows get NaN energy and a
    ``reason``.
    """
    bpp = _BYTES[precision]
    rows = []
    for i, (_, r) in enumerate(configs.iterrows()):
        (m,) = _resolve(MODEL_SPECS, [r["model"]], "model")
        (g,) = _resolve(GPU_SPECS, [r["gpu"]], "GPU")
        t, p = int(r["tp"]), int(r.get("pp", 1))
        d = int(r.get("dp", 1)) if pd.notna(r.get("dp", 1)) else 1
        cap, si, so = float(r["batch_size"]), float(r["input_tokens"]), float(r["output_tokens"])
        ok, why = _feasible(m, g, t, p, cap, si, so, bpp)
        if not ok:
            rows.append({"energy_j": np.nan, "reason": why})
            continue
        n_req = r.get("n_requests", np.nan)
        n_req = None if n_req is None or not np.isfinite(n_req) else float(n_req)
        row = _simulate_one(m, g, t, p, d, cap, si, so, n_req, bpp, seed=i)
        row["reason"] = ""
        rows.append(row)
    return pd.DataFrame(rows, index=configs.index)


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
    precision: str = "bf16",
    workload: str = "synthetic",
    max_rows: int | None = None,
) -> pd.DataFrame:
    """Simulate a profiling table over a grid of configurations (synthetic data).

    Parameters
    ----------
    models, gpus : sequence of str
        Names from :data:`MODEL_SPECS` and :data:`GPU_SPECS`.
    tp, pp, dp : sequence of int
        Tensor-, pipeline- and data-parallel degrees.
    batch_size : sequence of float
        Batch caps (``max_num_seqs``); with ``n_requests=None`` the cap is always full.
    input_tokens, output_tokens : sequence of float
        Mean prompt and answer lengths.
    n_requests : int, sequence of int, or None
        Requests of the whole run (split over ``dp`` replicas), so that small pools leave
        the cap under-used; None simulates saturated serving.
    noise : float
        Relative standard deviation of the seeded multiplicative measurement noise
        (energies share one factor per row, so prefill + decode = total; latencies get
        their own).
    seed : int
        Seed of the noise and of the row subsample.
    precision : {"bf16", "fp16", "fp8"}
        Weight and KV-cache precision.
    workload : str
        Scenario label written to ``workload``.
    max_rows : int, optional
        Keep a seeded random subset of this many feasible rows.

    Returns
    -------
    DataFrame
        A validated canonical table with ``source="simulator"``; infeasible configurations
        (memory, head divisibility) are never emitted.

    Examples
    --------
    >>> import energylens
    >>> df = energylens.simulate_profiles(models=["Llama-3.2-1B"], gpus=["H100-SXM"], seed=0)
    >>> bool((df["prefill_energy_j"] + df["decode_energy_j"] - df["energy_j"]).abs().max() < 1e-9)
    True
    """
    if precision not in _BYTES:
        raise ValueError(f"precision must be one of {sorted(_BYTES)}; got {precision!r}.")
    if noise < 0:
        raise ValueError(f"noise must be >= 0; got {noise!r}.")
    _resolve(MODEL_SPECS, models, "model")
    _resolve(GPU_SPECS, gpus, "GPU")
    pools = [None] if n_requests is None else (
        [int(n_requests)] if np.isscalar(n_requests) else [int(v) for v in n_requests])
    grid = pd.DataFrame(
        list(itertools.product(models, gpus, tp, pp, dp, batch_size, input_tokens, output_tokens,
                               pools)),
        columns=["model", "gpu", "tp", "pp", "dp", "batch_size", "input_tokens", "output_tokens",
                 "n_requests"],
    )
    grid["n_requests"] = pd.to_numeric(grid["n_requests"], errors="coerce")
    bpp = _BYTES[precision]
    feas = [
        _feasible(MODEL_SPECS[r.model], GPU_SPECS[r.gpu], int(r.tp), int(r.pp), float(r.batch_size),
                  float(r.input_tokens), float(r.output_tokens), bpp)[0]
        for r in grid.itertuples()
    ]
    grid = grid[np.asarray(feas, dtype=bool)].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    if max_rows is not None and len(grid) > max_rows:
        grid = grid.iloc[np.sort(rng.choice(len(grid), max_rows, replace=False))].reset_index(drop=True)
    if grid.empty:
        raise ValueError("No feasible configuration in the requested grid (check memory and TP).")
    out = simulate_configurations(grid, precision=precision).drop(columns="reason")
    n = len(out)
    f_e = np.exp(rng.normal(0.0, noise, n) - noise**2 / 2)
    f_t = np.exp(rng.normal(0.0, noise, n) - noise**2 / 2)
    for c in ("energy_j", "prefill_energy_j", "decode_energy_j", "run_energy_j", "power_w"):
        out[c] = out[c] * f_e
    for c in ("latency_s", "ttft_s", "tpot_s", "duration_s"):
        if c in out.columns:
            out[c] = out[c] * f_t
    out["power_w"] = out["power_w"] / f_t  # energy and time noise both reach mean power
    out["precision"] = precision
    out["workload"] = workload
    out["source"] = "simulator"
    out = out.drop(columns=["n_gpus"])
    if out["n_requests"].isna().all():
        out = out.drop(columns=["n_requests", "duration_s", "run_energy_j"])
    return validate(out, where="<simulator>")


class SimulatorOracle(RegressorMixin, BaseEstimator):
    """The simulator without noise, as an estimator: ``predict(X)`` is the true energy.

    ``fit`` learns nothing (it only checks the table); use it to test selection and
    protocols against the truth.

    Parameters
    ----------
    precision : {"bf16", "fp16", "fp8"}
        Precision the simulator assumes.
    """

    def __init__(self, *, precision: str = "bf16"):
        self.precision = precision

    def fit(self, X: pd.DataFrame, y=None):
        if not isinstance(X, pd.DataFrame):
            raise ValueError("SimulatorOracle needs a canonical table (DataFrame).")
        self.is_fitted_ = True
        return self

    def _sim(self, X: pd.DataFrame) -> pd.DataFrame:
        if not hasattr(self, "is_fitted_"):
            from .exceptions import NotFittedError

            raise NotFittedError("This SimulatorOracle instance is not fitted yet. Call 'fit' first.")
        return simulate_configurations(X, precision=self.precision)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Noise-free energy per request (J); NaN for infeasible configurations."""
        return self._sim(X)["energy_j"].to_numpy(dtype=float)

    def predict_components(self, X: pd.DataFrame) -> pd.DataFrame:
        """Prefill and decode energy per request; static energy is inside both (idle power
        of every GPU during each phase), so ``static_j`` is 0 here."""
        s = self._sim(X)
        return pd.DataFrame({"prefill_j": s["prefill_energy_j"], "decode_j": s["decode_energy_j"],
                             "static_j": 0.0}, index=X.index)
