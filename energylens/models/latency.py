r"""A closed form for latency, fitted by the same machinery as the energy models.

One model per target column (``target="tpot_s"``, ``"ttft_s"`` or ``"latency_s"``), from
the same physics as :class:`~energylens.EnergyLensModel`:

.. math::

    T_\mathrm{prefill} &= s_i (a_1 + a_2 s_i)(1 + a_{10} (B-1))/t + a_3 (t-1) + a_4 (p-1) + a_{11} \\
    T_\mathrm{step} &= \bigl(a_5/t + a_6\, B\,(s_i + s_o/2)/(t p)\bigr)\,(1 + a_7 (p-1))
                      + a_8 (t - 1) + a_9

Prefill is compute-bound and split over the :math:`t` GPUs of a layer, plus all-reduce
and pipeline costs; a decode step reads the weights (:math:`a_5`, split over :math:`t`)
and the KV cache of the running batch (:math:`a_6`), waits on :math:`p` stages, and pays a
latency per all-reduce (:math:`a_8`). Time to first token is :math:`T_\mathrm{prefill}`,
time per output token is :math:`T_\mathrm{step}`, and request latency is
:math:`T_\mathrm{prefill} + s_o T_\mathrm{step}`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np

from ..core.options import StrOptions
from .base import Parameter, ParametricModel

__all__ = ["LatencyModel"]

_TARGETS = ("latency_s", "ttft_s", "tpot_s")


class LatencyModel(ParametricModel):
    """Closed form of request latency, time to first token or time per output token.

    Parameters
    ----------
    target : {"latency_s", "ttft_s", "tpot_s"}, default="tpot_s"
        Column the model predicts (seconds).
    loss, fixed, bounds, init, batch_rule, f_scale, max_nfev, poor_fit_mape
        See :class:`~energylens.models.base.ParametricModel`.

    Examples
    --------
    >>> import warnings
    >>> from energylens import LatencyModel, simulate_profiles
    >>> table = simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"], noise=0.0)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     tpot = LatencyModel(target="tpot_s").fit(table)
    >>> list(tpot.params_.index)
    ['a5', 'a6', 'a7', 'a8', 'a9']
    >>> bool(tpot.fit_stats_["mape_pct"] < 10)
    True
    """

    _parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("a1", 1e-5, 0.0, np.inf, "s/token", "prefill time per prompt token on one GPU"),
        Parameter("a2", 1e-9, 0.0, np.inf, "s/token^2", "prefill attention time, quadratic in the prompt",
                  ("si",)),
        Parameter("a3", 1e-3, 0.0, np.inf, "s", "prefill all-reduce time per extra TP GPU", ("t",)),
        Parameter("a4", 1e-3, 0.0, np.inf, "s", "prefill pipeline time per extra stage", ("p",)),
        Parameter("a5", 1e-2, 0.0, np.inf, "s", "weight-read time of a decode step on one GPU"),
        Parameter("a6", 1e-8, 0.0, np.inf, "s/token", "KV-cache read time per running sequence and token of context",
                  ("B",)),
        Parameter("a7", 0.0, 0.0, 10.0, "1", "pipeline slowdown of a decode step per extra stage", ("p",),
                  neutral=0.0),
        Parameter("a8", 1e-4, 0.0, np.inf, "s", "all-reduce latency of a decode step per extra TP GPU", ("t",)),
        Parameter("a9", 1e-3, 0.0, np.inf, "s", "fixed time per decode step (scheduling, sampling)"),
        Parameter("a10", 0.0, 0.0, np.inf, "1",
                  "prefill slowdown per extra request prefilled with it (batched prompts)", ("B",)),
        Parameter("a11", 1e-3, 0.0, np.inf, "s", "fixed time of a prefill (launch, scheduling)"),
    )
    _variables: ClassVar[tuple[str, ...]] = ("t", "p", "B", "si", "so")
    formula: ClassVar[str] = (
        "T_pre = si*(a1 + a2*si)*(1 + a10*(B-1))/t + a3*(t-1) + a4*(p-1) + a11;  "
        "T_step = (a5/t + a6*B*(si + so/2)/(t*p))*(1 + a7*(p-1)) + a8*(t-1) + a9"
    )
    _target_unit: ClassVar[str] = "s"
    _parameter_constraints: ClassVar[dict] = {
        **ParametricModel._parameter_constraints,
        "target": [StrOptions(set(_TARGETS))],
    }

    def __init__(self, *, target: Literal["latency_s", "ttft_s", "tpot_s"] = "tpot_s", loss="relative",
                 fixed=None, bounds=None, init=None, batch_rule="auto", f_scale=0.05, max_nfev=None,
                 poor_fit_mape=25.0):
        super().__init__(loss=loss, fixed=fixed, bounds=bounds, init=init, batch_rule=batch_rule,
                         f_scale=f_scale, max_nfev=max_nfev, poor_fit_mape=poor_fit_mape)
        self.target = target

    @property
    def _target_name(self) -> str:  # type: ignore[override]
        return self._setting("target")

    def _used(self) -> list[int]:
        """Indices of the parameters that the target depends on."""
        target = self._setting("target")
        if target not in _TARGETS:
            self._validate_params()
        return {"ttft_s": [0, 1, 2, 3, 9, 10], "tpot_s": [4, 5, 6, 7, 8]}.get(target, list(range(11)))

    def _param_specs(self):
        return tuple(self._parameters[i] for i in self._used())

    def _full(self, th):
        full = np.zeros(11)
        full[self._used()] = th
        return full

    def _parts(self, V, full):
        a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11 = full
        t, p, B, si, so = V["t"], V["p"], V["B"], V["si"], V["so"]
        ctx = si + so / 2
        pre = si * (a1 + a2 * si) * (1 + a10 * (B - 1)) / t + a3 * (t - 1) + a4 * (p - 1) + a11
        mem = a5 / t + a6 * B * ctx / (t * p)
        step = mem * (1 + a7 * (p - 1)) + a8 * (t - 1) + a9
        return pre, step, mem

    def _kernel(self, V, th):
        pre, step, _ = self._parts(V, self._full(th))
        target = self._setting("target")
        if target == "ttft_s":
            return pre
        if target == "tpot_s":
            return step
        return pre + V["so"] * step

    def _jacobian(self, V, th):
        a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11 = self._full(th)
        t, p, B, si, so = V["t"], V["p"], V["B"], V["si"], V["so"]
        ctx = si + so / 2
        n = len(si)
        Jp = np.zeros((n, 11))
        Js = np.zeros((n, 11))
        Jp[:, 10] = 1.0
        fb = 1 + a10 * (B - 1)
        Jp[:, 0] = si * fb / t
        Jp[:, 1] = si * si * fb / t
        Jp[:, 9] = si * (a1 + a2 * si) * (B - 1) / t
        Jp[:, 2] = t - 1
        Jp[:, 3] = p - 1
        f = 1 + a7 * (p - 1)
        Js[:, 4] = f / t
        Js[:, 5] = f * B * ctx / (t * p)
        Js[:, 6] = (a5 / t + a6 * B * ctx / (t * p)) * (p - 1)
        Js[:, 7] = t - 1
        Js[:, 8] = 1.0
        target = self._setting("target")
        if target == "ttft_s":
            J = Jp
        elif target == "tpot_s":
            J = Js
        else:
            J = Jp + so[:, None] * Js
        return J[:, self._used()]
