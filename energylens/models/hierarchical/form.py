r"""The hierarchical model's closed form: its parameters, its terms and a pure kernel.

Energy per request (joules, all GPUs of the serving unit), for a row with ``n`` GPUs,
``dp`` replicas, ``B`` requests in flight over the unit, ``s_o`` output tokens and a prompt
of ``s_i`` tokens (recorded, else a per-workload latent):

.. math::

    M_w &= W_d\,dp + W_e\,(1-(1-k/E)^B)
        &&\text{weight bytes streamed per decode step}\\
    M_{kv} &= B\,((s_i + s_o/2)\,\kappa_{kv} + \sigma_{st})
        &&\text{KV cache and recurrent state read per step}\\
    B_c &= B_\mathrm{ref}\,(B/B_\mathrm{ref})^{d_c}
        &&\text{effective compute batch}\\
    T &= \frac{a_m M_w + a_k M_{kv}}{n\,BW}(1 + c_{pp}(pp-1)) + a_c\frac{B_c F}{n\,\Phi}
         + L\,(\nu + \lambda_{tp}(1-1/tp) + \lambda_{ep}(1-1/ep)) + \tau_1 B/dp
        &&\text{decode step time}\\
    E_\mathrm{step} &= n P \pi_0 T (1 + \rho B) + P \pi_m \frac{a_m M_w + a_k M_{kv}}{BW}
         + P \pi_c a_c \frac{B_c F}{\Phi}
        &&\text{static (with the drain), memory, compute}\\
    E &= s\,\Bigl(\frac{s_o}{B} E_\mathrm{step}
         + (a_p s_i F + a_a\,2 L d\, s_i^2)\frac{P(\pi_0 + \pi_c)}{\Phi}\Bigr)
        &&\text{decode + prefill}

``P`` is the GPU's board power (TDP), ``BW`` its memory bandwidth, ``\Phi`` its dense tensor
FLOP/s at the weights' precision, ``W_d``/``W_e`` the bytes of dense and routed-expert
weights, ``k/E`` the share of experts a token routes to, ``\kappa_{kv}`` the KV bytes per
token of context, ``\sigma_{st}`` a hybrid model's recurrent state per sequence (read and
written), ``F = 2 N_\mathrm{active}`` the FLOPs per token, ``L`` the layers, ``d`` the hidden
size, ``B_\mathrm{ref} = 256``. ``\rho`` is the drain of a finite benchmark run (one value per
workload, or ``\kappa_N / N`` where the run's request count ``N`` is recorded). Every
parameter is positive and fitted as its logarithm, except one with a physical upper bound
(:data:`UPPER`: the pipeline share ``c_pp``), fitted as the logit of its share of the bound,
so that it stays inside its range (see :func:`theta_from_link`); :data:`PARAMETERS` gives
each one's unit, meaning and bounds, :data:`PRIOR_SD` its prior spread (of the log, or of the
logit), :data:`TERMS` the switches of the ablation.

**The pipeline share** ``c_pp``. A pipeline of ``pp`` stages puts ``1/pp`` of the layers on
each group of ``tp`` GPUs, so every GPU of the ``n = tp pp dp`` streams its own share of the
weights (and of the KV cache) at each step, in ``t_w`` (``t_{kv}``): the memory terms of
``T`` above. If micro-batches keep every stage busy at once (perfect overlap), a step
streams in ``t_w``: ``c_pp = 0``. If one stage works at a time while the others wait (no
overlap), the ``pp`` stages take turns and a step streams in ``pp t_w``: ``c_pp = 1``.
Between the two, ``c_pp`` is the share of the pipeline that runs sequentially, so it lies
in [0, 1] by construction, and the idle stages' static power is charged through ``T``. A
pipeline slower than one stage at a time is not a larger share but another cost (transfers
between stages on different nodes, waits on the network) that this term does not describe;
a fit that wants ``c_pp > 1`` reads such a cost, or the scale of the few pipelined groups,
into it (ML.ENERGY v2: 17 rows of two groups, both 8 GPUs x 2 stages over two nodes, gave
3.4 +/- 1.9 fitted as a log). Fitted as a logit it stays in range, and a value the data
push against the bound is reported as the bound's, not measured
(:func:`energylens.models.hierarchical.report.population_table`).

The kernel is a pure numpy function of the row variables ``V`` (see
:func:`energylens.models.hierarchical.variables.form_variables`) and a row-wise parameter
matrix; :func:`energy_jacobian` returns ``log E`` and its analytic derivatives in the
log-parameters (for a bounded parameter: in the log of its value, which
:func:`link_slope` turns into the derivative in its logit).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.special import expit

from ...core.options import check_options
from ..parameters import Parameter

__all__ = ["PARAMETERS", "PARAMETER_NAMES", "PRIOR_SD", "WORKLOAD_PARAMETERS", "TERMS",
           "B_REF", "FORMULA", "UPPER", "resolve_terms", "energy_kernel", "energy_jacobian",
           "energy_components", "theta_from_link", "link_from_theta", "link_slope",
           "PHASE_TOTAL", "PHASE_PREFILL", "PHASE_DECODE"]

_INF = np.inf
#: The parameters of the form, in kernel order (all positive; fitted as logarithms).
PARAMETERS: tuple[Parameter, ...] = (
    Parameter("s", 1.0, 0.0, _INF, "1", "energy scale: a level's deviation of its whole energy "
              "from the form (population value held at 1)"),
    Parameter("pi0", 0.3, 0.0, _INF, "1", "static power of each GPU while a step runs, as a "
              "share of its TDP"),
    Parameter("pim", 0.3, 0.0, _INF, "1", "extra power while streaming memory, share of TDP"),
    Parameter("pic", 0.5, 0.0, _INF, "1", "extra power while computing, share of TDP"),
    Parameter("am", 1.5, 0.0, _INF, "1", "inverse achieved weight-streaming bandwidth "
              "(1 = peak bandwidth)"),
    Parameter("ac", 3.0, 0.0, _INF, "1", "inverse decode compute efficiency at the reference "
              "batch (1/MFU)"),
    Parameter("ap", 2.0, 0.0, _INF, "1", "inverse prefill compute efficiency (1/MFU)"),
    Parameter("ak", 1.5, 0.0, _INF, "1", "inverse achieved bandwidth of the KV-cache and state "
              "reads (1 = peak)"),
    Parameter("aa", 1.0, 0.0, _INF, "1", "inverse efficiency of prefill attention "
              "(2 L d s_i^2 FLOP)"),
    Parameter("nu", 3e-5, 0.0, _INF, "s/layer", "fixed time per decode step and layer "
              "(kernel launches, synchronisation)"),
    Parameter("ltp", 2e-5, 0.0, _INF, "s/layer", "tensor-parallel all-reduce latency per step "
              "and layer"),
    Parameter("lep", 2e-5, 0.0, _INF, "s/layer", "expert-parallel all-to-all latency per step "
              "and layer"),
    Parameter("tau1", 5e-5, 0.0, _INF, "s/request", "host time (scheduler, sampler) per step "
              "and request in a replica's batch"),
    Parameter("dc", 0.8, 0.0, _INF, "1", "growth of decode compute time with the batch, "
              "t_c ~ B**dc (GEMMs get more efficient as the batch fills them; 1 = fixed "
              "efficiency)"),
    Parameter("cpp", 0.05, 0.0, 1.0, "1", "share of a pipeline that runs sequentially "
              "(0 = perfect overlap, 1 = one stage at a time; bounded by 1)"),
    Parameter("rho", 3e-6, 0.0, _INF, "1/request", "drain of a finite run: extra run time per "
              "request in flight (one value per workload)"),
    Parameter("kappa", 0.5, 0.0, _INF, "1", "drain length in request lifetimes where the run's "
              "request count N is recorded (then rho = kappa / N)"),
    Parameter("si", 300.0, 0.0, _INF, "token", "prompt length of a workload whose rows do not "
              "record it (a latent, one value per workload)"),
)
PARAMETER_NAMES: tuple[str, ...] = tuple(p.name for p in PARAMETERS)
_IDX = {name: i for i, name in enumerate(PARAMETER_NAMES)}
#: Parameters with a finite physical upper bound, and the bound: each is fitted as the logit
#: of its share of the bound (``log(theta / (upper - theta))``) instead of its logarithm.
UPPER: dict[str, float] = {p.name: float(p.upper) for p in PARAMETERS if np.isfinite(p.upper)}
#: Spread (sd of the log; of the logit for :data:`UPPER`) of the weak prior around each start
#: value: 1 (a factor of e) by default, 1.5 for latencies, 2 for the drain, the latent prompt
#: length and the pipeline share (whose 90% prior range is then 0.002 to 0.6), 0.3 for the
#: GEMM growth, 0.01 for the population scale (the scale belongs to the levels).
PRIOR_SD: dict[str, float] = {
    "s": 0.01, "pi0": 1.0, "pim": 1.0, "pic": 1.0, "am": 1.0, "ac": 1.0, "ap": 1.0, "ak": 1.0,
    "aa": 1.0, "nu": 1.5, "ltp": 1.5, "lep": 1.5, "tau1": 1.5, "dc": 0.3, "cpp": 2.0,
    "rho": 2.0, "kappa": 1.0, "si": 2.0}
#: Parameters with one population value per workload (prompt set and benchmark run).
WORKLOAD_PARAMETERS: tuple[str, ...] = ("rho", "si")
#: Batch at which the decode compute efficiency ``1/ac`` is quoted (requests).
B_REF = 256.0
#: The switchable terms of the form and what each adds (all on by default).
TERMS: dict[str, str] = {
    "replicas": "dense weights read once per replica (dp) and GPUs counted over all replicas",
    "experts": "routed experts read only as far as the batch touches them, 1-(1-k/E)^B",
    "drain": "the drain of a finite run, (1 + rho B) on static energy",
    "gemm": "decode compute time growing as B**dc instead of B",
    "roofline": "a decode compute term besides memory streaming",
    "prefill": "prefill compute (a_p s_i F) and the prompt's KV cache",
    "attention": "prefill attention, quadratic in the prompt length",
    "host": "host time per request in flight, tau1 B / dp",
    "ep": "expert-parallel all-to-all latency",
    "pipeline": "sequential share of pipeline stages",
}
FORMULA = ("E = s*(s_o/B*(n*P*pi0*T*(1+rho*B) + P*pim*(am*M_w + ak*M_kv)/BW + P*pic*ac*B_c*F/Phi)"
           " + (ap*s_i*F + aa*2*L*d*s_i^2)*P*(pi0+pic)/Phi), "
           "T = (am*M_w + ak*M_kv)/(n*BW)*(1+cpp*(pp-1)) + ac*B_c*F/(n*Phi)"
           " + L*(nu + ltp*(1-1/tp) + lep*(1-1/ep)) + tau1*B/dp")


def _bounded(upper: Mapping[str, float] | None) -> list[tuple[int, float]]:
    return [(_IDX[k], float(v)) for k, v in (UPPER if upper is None else upper).items()]


def theta_from_link(LT: np.ndarray, upper: Mapping[str, float] | None = None) -> np.ndarray:
    """Parameter values from their link values (the unknowns of a fit): ``exp`` of each
    column, and for a parameter with an upper bound ``u`` (:data:`UPPER`, or the mapping
    ``upper`` a model was fitted with) ``u * expit(x)``, which never leaves ``(0, u)``.

    Examples
    --------
    >>> LT = link_from_theta(np.array([p.init for p in PARAMETERS]))
    >>> theta = theta_from_link(LT + 20.0)  # pushed far up: cpp stays below its bound 1
    >>> float(theta[PARAMETER_NAMES.index("cpp")]) < 1.0 < float(theta[PARAMETER_NAMES.index("s")])
    True
    """
    LT = np.asarray(LT, dtype=float)
    theta = np.exp(LT)
    for k, u in _bounded(upper):
        theta[..., k] = u * expit(LT[..., k])
    return theta


def link_from_theta(theta: np.ndarray, upper: Mapping[str, float] | None = None) -> np.ndarray:
    """Link values of parameter values (the inverse of :func:`theta_from_link`): ``log``, or
    ``log(theta / (u - theta))`` for a parameter bounded by ``u``.

    Examples
    --------
    >>> theta = np.array([p.init for p in PARAMETERS])
    >>> bool(np.allclose(theta_from_link(link_from_theta(theta)), theta))
    True
    """
    theta = np.asarray(theta, dtype=float)
    LT = np.log(theta)
    for k, u in _bounded(upper):
        LT[..., k] = np.log(theta[..., k]) - np.log(u - theta[..., k])
    return LT


def link_slope(LT: np.ndarray, upper: Mapping[str, float] | None = None) -> np.ndarray:
    """``d log theta / d link`` of each column: 1, or ``1 - theta/u = expit(-x)`` for a
    bounded parameter (the data lose their grip on it as it nears its bound). Multiplying the
    columns of :func:`energy_jacobian` by it gives the derivatives in the link values.

    Examples
    --------
    >>> LT = link_from_theta(np.array([p.init for p in PARAMETERS]))
    >>> round(float(link_slope(LT)[PARAMETER_NAMES.index("cpp")]), 12)  # 1 - 0.05
    0.95
    """
    LT = np.asarray(LT, dtype=float)
    out = np.ones_like(LT)
    for k, _ in _bounded(upper):
        out[..., k] = expit(-LT[..., k])
    return out


def resolve_terms(terms: Mapping[str, bool] | None, owner: str = "HierarchicalEnergyModel") -> dict:
    """Every switch of :data:`TERMS`, on unless ``terms`` turns it off.

    Examples
    --------
    >>> resolve_terms({"drain": False})["drain"], resolve_terms(None)["experts"]
    (False, True)
    """
    given = dict(terms or {})
    unknown = sorted(set(given) - set(TERMS))
    if unknown:
        raise ValueError(f"The 'terms' parameter of {owner} names unknown terms {unknown}; terms "
                         f"are {sorted(TERMS)}.")
    check_options(owner, {k: [bool] for k in given}, given)
    return {k: bool(given.get(k, True)) for k in TERMS}


def _parts(V: Mapping[str, np.ndarray], TH: np.ndarray, f: Mapping[str, bool]) -> dict:
    """Every intermediate quantity of the form (arrays of one value per row)."""
    th = {k: TH[:, i] for k, i in _IDX.items()}
    n, B, so, dp = V["n"], V["B"], V["so"], V["dp"]
    latent = ~np.isfinite(V["si_obs"])
    si = np.where(latent, th["si"], V["si_obs"]) if f["prefill"] else np.zeros_like(B)
    r = np.minimum(V["r"], 1.0)
    if f["experts"]:
        fe = np.where(r >= 1.0, 1.0, -np.expm1(B * np.log1p(-np.minimum(r, 1 - 1e-12))))
    else:
        fe = np.ones_like(B)
    w_bytes = V["Wd"] * dp + V["We"] * fe
    kv_bytes = B * ((si + so / 2.0) * V["kvb"] + V["state"])
    t_w, t_kv = w_bytes / (n * V["bw"]), kv_bytes / (n * V["bw"])
    Bc = B_REF * (B / B_REF) ** th["dc"] if f["gemm"] else B
    t_c = Bc * V["Ftok"] / (n * V["F"]) if f["roofline"] else np.zeros_like(B)
    gpp = 1.0 + th["cpp"] * (V["pp"] - 1.0) if f["pipeline"] else np.ones_like(B)
    lat_ep = th["lep"] * (1.0 - 1.0 / V["ep"]) if f["ep"] else 0.0
    lat = V["L"] * (th["nu"] + th["ltp"] * (1.0 - 1.0 / V["tp"]) + lat_ep)
    host = th["tau1"] * B / dp if f["host"] else np.zeros_like(B)
    T = (th["am"] * t_w + th["ak"] * t_kv) * gpp + th["ac"] * t_c + lat + host
    rho = np.where(np.isfinite(V["nreq"]), th["kappa"] / V["nreq"], th["rho"])
    drain = 1.0 + rho * B if f["drain"] else np.ones_like(B)
    P = V["P"]
    e_static = n * P * th["pi0"] * T * drain
    e_mem = P * th["pim"] * (th["am"] * w_bytes + th["ak"] * kv_bytes) / V["bw"]
    e_cmp = P * th["pic"] * th["ac"] * Bc * V["Ftok"] / V["F"] if f["roofline"] else np.zeros_like(B)
    pre_lin = th["ap"] * si * V["Ftok"]
    pre_att = th["aa"] * 2.0 * V["L"] * V["H"] * si**2 if f["attention"] else np.zeros_like(B)
    pre_w = P * (th["pi0"] + th["pic"]) / V["F"]
    return {"th": th, "si": si, "latent": latent, "w_bytes": w_bytes, "kv_bytes": kv_bytes,
            "t_w": t_w, "t_kv": t_kv, "Bc": Bc, "t_c": t_c, "gpp": gpp, "lat": lat, "host": host,
            "T": T, "rho": rho, "drain": drain, "e_static": e_static, "e_mem": e_mem,
            "e_cmp": e_cmp, "pre_lin": pre_lin, "pre_att": pre_att, "pre_w": pre_w,
            "dec": so * (e_static + e_mem + e_cmp) / B, "pre": (pre_lin + pre_att) * pre_w}


#: Values of the row variable ``phase`` (optional in ``V``): what a row's energy measures.
PHASE_TOTAL, PHASE_PREFILL, PHASE_DECODE = 0, 1, 2


def _phase_weights(V: Mapping[str, np.ndarray]) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Weights of the prefill and decode parts in each row's measured energy: both 1 for a
    total (the default), one of them for a row that measures one phase (``V["phase"]``)."""
    phase = V.get("phase")
    if phase is None:
        return 1.0, 1.0
    phase = np.asarray(phase)
    return (phase != PHASE_DECODE).astype(float), (phase != PHASE_PREFILL).astype(float)


def energy_kernel(V: Mapping[str, np.ndarray], theta: np.ndarray,
                  terms: Mapping[str, bool] | None = None) -> np.ndarray:
    """Energy per request (J) of each row (or of the phase a row measures, ``V["phase"]``:
    0 the total, 1 prefill, 2 decode).

    Parameters
    ----------
    V : mapping
        Row variables (see :func:`~energylens.models.hierarchical.variables.form_variables`).
    theta : ndarray of shape (n_rows, len(PARAMETERS)) or (len(PARAMETERS),)
        Parameter values, per row or shared.
    terms : mapping, optional
        Switches of :data:`TERMS` (all on by default).

    Returns
    -------
    ndarray
        Energy per request, J.

    Examples
    --------
    >>> from energylens.models.hierarchical.variables import example_variables
    >>> V = example_variables()
    >>> theta = np.array([p.init for p in PARAMETERS])
    >>> bool(np.all(energy_kernel(V, theta) > 0))
    True
    """
    TH = np.broadcast_to(np.asarray(theta, dtype=float), (len(V["B"]), len(PARAMETERS)))
    p = _parts(V, TH, resolve_terms(terms))
    w_pre, w_dec = _phase_weights(V)
    return p["th"]["s"] * (w_dec * p["dec"] + w_pre * p["pre"])


def energy_jacobian(V: Mapping[str, np.ndarray], theta: np.ndarray,
                    terms: Mapping[str, bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``log E`` per row and its derivatives in the log-parameters, shape (n_rows, K).

    ``D[i, k] = d log E_i / d log theta_k``, analytic (a term that is switched off, or a
    parameter a row does not use, has derivative 0).

    Examples
    --------
    >>> from energylens.models.hierarchical.variables import example_variables
    >>> V = example_variables()
    >>> theta = np.array([p.init for p in PARAMETERS])
    >>> logE, D = energy_jacobian(V, theta)
    >>> D.shape == (len(V["B"]), len(PARAMETERS)), float(D[0, 0])  # d log E / d log s
    (True, 1.0)
    """
    f = resolve_terms(terms)
    TH = np.broadcast_to(np.asarray(theta, dtype=float), (len(V["B"]), len(PARAMETERS)))
    p = _parts(V, TH, f)
    th = p["th"]
    w_pre, w_dec = _phase_weights(V)
    G = w_dec * p["dec"] + w_pre * p["pre"]
    dec, pre = _decode_gradients(V, p, f), _prefill_gradients(V, p, f)
    D = np.zeros((len(V["B"]), len(PARAMETERS)))
    D[:, _IDX["s"]] = 1.0
    for name in set(dec) | set(pre):
        D[:, _IDX[name]] = (w_dec * dec.get(name, 0.0) + w_pre * pre.get(name, 0.0)) / G
    return np.log(th["s"] * G), D


def _decode_gradients(V, p, f) -> dict:
    """``theta_k * d(decode energy)/d theta_k`` per row (before the scale ``s``)."""
    th, so, B = p["th"], V["so"], V["B"]
    c_T = so / B * V["n"] * V["P"] * th["pi0"] * p["drain"]  # d dec / d T
    per_b = so / B
    mem_w = V["P"] * th["pim"] / V["bw"]  # d e_mem / d (am*w_bytes + ak*kv_bytes)
    g = {"pi0": per_b * p["e_static"], "pim": per_b * p["e_mem"], "pic": per_b * p["e_cmp"]}
    g["am"] = c_T * th["am"] * p["t_w"] * p["gpp"] + per_b * mem_w * th["am"] * p["w_bytes"]
    g["ak"] = c_T * th["ak"] * p["t_kv"] * p["gpp"] + per_b * mem_w * th["ak"] * p["kv_bytes"]
    g["ac"] = c_T * th["ac"] * p["t_c"] + per_b * p["e_cmp"]
    g["nu"] = c_T * V["L"] * th["nu"]
    g["ltp"] = c_T * V["L"] * th["ltp"] * (1.0 - 1.0 / V["tp"])
    g["lep"] = c_T * V["L"] * th["lep"] * (1.0 - 1.0 / V["ep"]) if f["ep"] else 0.0
    g["tau1"] = c_T * p["host"]
    if f["gemm"] and f["roofline"]:
        g["dc"] = (c_T * th["ac"] * p["t_c"] + per_b * p["e_cmp"]) * th["dc"] * np.log(B / B_REF)
    if f["pipeline"]:
        g["cpp"] = c_T * (th["am"] * p["t_w"] + th["ak"] * p["t_kv"]) * th["cpp"] * (V["pp"] - 1.0)
    if f["drain"]:
        d_drain = per_b * V["n"] * V["P"] * th["pi0"] * p["T"] * p["rho"] * B
        recorded = np.isfinite(V["nreq"])
        g["rho"] = np.where(recorded, 0.0, d_drain)
        g["kappa"] = np.where(recorded, d_drain, 0.0)
    if f["prefill"]:  # the prompt's KV cache is read at every decode step
        dT = th["ak"] * p["gpp"] * B * V["kvb"] / (V["n"] * V["bw"])
        d_mem = mem_w * th["ak"] * B * V["kvb"]
        g["si"] = np.where(p["latent"], (c_T * dT + per_b * d_mem) * p["si"], 0.0)
    return g


def _prefill_gradients(V, p, f) -> dict:
    """``theta_k * d(prefill energy)/d theta_k`` per row (before the scale ``s``)."""
    th = p["th"]
    pre = p["pre_lin"] + p["pre_att"]
    g = {"pi0": pre * V["P"] * th["pi0"] / V["F"], "pic": pre * V["P"] * th["pic"] / V["F"],
         "ap": p["pre_lin"] * p["pre_w"], "aa": p["pre_att"] * p["pre_w"]}
    if f["prefill"]:
        d_pre = (th["ap"] * V["Ftok"] + (2.0 * th["aa"] * 2.0 * V["L"] * V["H"] * p["si"]
                                         if f["attention"] else 0.0)) * p["pre_w"]
        g["si"] = np.where(p["latent"], d_pre * p["si"], 0.0)
    return g


def energy_components(V: Mapping[str, np.ndarray], theta: np.ndarray,
                      terms: Mapping[str, bool] | None = None) -> pd.DataFrame:
    """The parts of each row's energy (J) and its decode step time (s).

    Columns ``prefill_j`` (prefill compute at static plus compute power), ``decode_j``
    (memory traffic and compute of the decode steps), ``static_j`` (static power over the
    decode steps and the drain; the three sum to :func:`energy_kernel`),
    ``decode_memory_j``, ``decode_compute_j`` (the two parts of ``decode_j``) and
    ``step_time_s``.

    Examples
    --------
    >>> from energylens.models.hierarchical.variables import example_variables
    >>> V = example_variables()
    >>> theta = np.array([p.init for p in PARAMETERS])
    >>> c = energy_components(V, theta)
    >>> bool(np.allclose(c[["prefill_j", "decode_j", "static_j"]].sum(axis=1),
    ...                  energy_kernel(V, theta)))
    True
    """
    TH = np.broadcast_to(np.asarray(theta, dtype=float), (len(V["B"]), len(PARAMETERS)))
    p = _parts(V, TH, resolve_terms(terms))
    s, per_b = p["th"]["s"], V["so"] / V["B"]
    mem, cmp_ = s * per_b * p["e_mem"], s * per_b * p["e_cmp"]
    return pd.DataFrame({"prefill_j": s * p["pre"], "decode_j": mem + cmp_,
                         "static_j": s * per_b * p["e_static"], "decode_memory_j": mem,
                         "decode_compute_j": cmp_, "step_time_s": np.asarray(p["T"], dtype=float)})
