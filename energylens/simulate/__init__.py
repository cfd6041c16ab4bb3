r"""A physics-based simulator of LLM-inference profiling tables (synthetic data).

The simulator turns public GPU and model specifications into energy, latency and power of
serving configurations, with the columns of a measured profiling table. Its output is
**synthetic**: it exists to test energylens against known structure, to make the demo
table and to study protocols; it is no substitute for measurement. ``docs/simulator.md``
gives the same equations with the sources of every hardware and model number.

Notation: a replica has :math:`t \times p` GPUs (tensor, pipeline degree), a configuration
:math:`d` replicas, so :math:`n_\mathrm{gpu} = t p d`. A model has :math:`N` parameters
(:math:`N_a` active per token), :math:`L` layers (:math:`L_a` with attention, fewer in a
hybrid), hidden size :math:`h`, attention width :math:`a = n_\mathrm{heads} d_h` and KV bytes
per token :math:`k = 2 L_a n_{kv} d_h \beta_a`, weights :math:`W = N \beta_w` with
:math:`\beta_w` bytes per weight (2 in bf16, 1 in fp8) and :math:`\beta_a = 2` bytes per
activation and KV value. A GPU has
peak dense FLOP/s :math:`F`, HBM bandwidth :math:`B_m` (of which a share
:math:`\eta_m = 0.75` is reached), link bandwidth :math:`\lambda`, collective latency
:math:`\alpha`, idle and maximum power :math:`P_0, P_1`.

Prefill of :math:`n` prompts of :math:`s_i` tokens, split into :math:`m = \min(n, 4p)`
micro-batches::

    FLOPs   = n (2 N_a s_i + 2 L_a a s_i^2)                   (dense + causal attention)
    compute = FLOPs / (t p F mfu_p),  weights = m W / (t p eta_m B_m)
    work    = max(compute, weights)
    comm    = 2 (L/p) [2 (t-1)/t * A / lambda + m alpha]     (t > 1; A = n s_i h beta_a)
    send    = A / lambda + m alpha                            (p > 1)
    time    = (work + comm + send) (m + p - 1) / m            (pipeline fill and drain)

One decode step with :math:`b` running sequences of mean context :math:`c = s_i + s_o/2`,
split into :math:`m = \min(b, p)` micro-batches of :math:`b/m`::

    memory  = (W + (b/m) c k) / (t p eta_m B_m)              (weights once per micro-batch)
    compute = (b/m) (2 N_a + 4 L_a a c) / (t p F mfu_d)
    work    = max(memory, compute)
    comm    = 2 (L/p) [alpha + 2 (t-1)/t * (b/m) h beta_a / lambda]
    send    = alpha + (b/m) h beta_a / lambda                 (p > 1)
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
``n_requests=None`` every replica is saturated: a cohort of ``cap`` requests (the KV capacity
where smaller, see Memory below) is admitted at once, prefilled and decoded for :math:`s_o`
steps at the full cap; each request runs from the
start of the cohort's prefill, so the running batch is the cap and the latency the cohort's
time. With a finite pool, each replica's
:math:`R = n/d` requests are queued at time 0 with output lengths spread around the mean
(gamma, shape 2, seeded by the pool itself, so that every configuration serves the same
requests); at most the cap run at once, a finished sequence is replaced from the queue, the
prefill of the requests admitted before a decode step pauses decoding, and the tail drains
with fewer running. The running batch is the time average of the running count over the
timeline and the latency the mean service time (start of prefill to last token), so
Little's law, requests x latency / duration = running batch, holds.

Memory: the cap is what a replica may run at once. Where the KV cache of a full cap (at the
mean context :math:`c`) does not fit beside the weights in 90% of the GPUs' memory, the
server does not fail: it runs as many sequences as fit (the KV capacity), and the
configuration is simulated at that cap, its ``running_batch`` below ``batch_size``. Only a
configuration whose weights and one sequence's KV cache do not fit is infeasible (the
catalogue's one rule, :func:`~energylens.core.catalogue.configuration_fit`).
"""

from __future__ import annotations

from ..core.catalogue import GpuSpec, ModelSpec
from .oracle import SimulatorOracle
from .specs import GPU_SPECS, MODEL_SPECS, Precision
from .table import simulate_configurations, simulate_profiles

__all__ = ["GpuSpec", "ModelSpec", "GPU_SPECS", "MODEL_SPECS", "Precision",
           "simulate_profiles", "simulate_configurations", "SimulatorOracle"]
