r"""Analytical baselines with the same API as the closed forms.

``WilkinsModel``
    Wilkins, Keshav and Mortier (2024): :math:`E = a_0 n_i + a_1 n_o + a_2 n_i n_o`, no
    intercept, fitted per model and hardware.
``LinearEnergyModel``
    Energy linear in the configuration variables:
    :math:`E = b_0 + b_1 t + b_2 p + b_3 B + b_4 n_i + b_5 n_o`.
``LogLinearEnergyModel``
    A power law, linear in logs:
    :math:`\log E = g_0 + g_1 \log t + g_2 \log p + g_3 \log B + g_4 \log n_i + g_5 \log n_o`.

All are fitted on relative (or, for the power law, log) residuals: background studies
found the Wilkins form at 490% MAPE when fitted in joules and about 26% on relative error.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import Parameter, ParametricModel
from .linear_forms import LinearFormModel

__all__ = ["WilkinsModel", "LinearEnergyModel", "LogLinearEnergyModel"]


class WilkinsModel(LinearFormModel):
    """Wilkins et al. (2024): ``E = a0*si + a1*so + a2*si*so`` (joules per request).

    Examples
    --------
    >>> import pandas as pd
    >>> from energylens import WilkinsModel
    >>> df = pd.DataFrame({"input_tokens": [10., 20, 40, 80], "output_tokens": [5., 50, 10, 20]})
    >>> y = 0.1 * df.input_tokens + 0.5 * df.output_tokens + 1e-3 * df.input_tokens * df.output_tokens
    >>> WilkinsModel().fit(df, y).coef_.round(4).tolist()
    [0.1, 0.5, 0.001]
    """

    _parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("a0", 1e-2, 0.0, np.inf, "J/token", "energy per input token"),
        Parameter("a1", 1e-1, 0.0, np.inf, "J/token", "energy per output token"),
        Parameter("a2", 1e-5, 0.0, np.inf, "J/token^2",
                  "interaction: output tokens attending to the prompt", ("si", "so")),
    )
    _variables: ClassVar[tuple[str, ...]] = ("si", "so")
    formula: ClassVar[str] = "E = a0*si + a1*so + a2*si*so"

    def _basis(self, V):
        si, so = V["si"], V["so"]
        return np.column_stack([si, so, si * so])


class LinearEnergyModel(LinearFormModel):
    """Energy linear in the configuration: ``E = b0 + b1*t + b2*p + b3*B + b4*si + b5*so``."""

    _parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("b0", 1.0, unit="J", meaning="intercept"),
        Parameter("b1", 0.0, unit="J", meaning="energy per tensor-parallel GPU", informed_by=("t",)),
        Parameter("b2", 0.0, unit="J", meaning="energy per pipeline stage", informed_by=("p",)),
        Parameter("b3", 0.0, unit="J/request", meaning="energy per unit of running batch",
                  informed_by=("B",)),
        Parameter("b4", 1e-2, unit="J/token", meaning="energy per input token", informed_by=("si",)),
        Parameter("b5", 1e-1, unit="J/token", meaning="energy per output token", informed_by=("so",)),
    )
    _variables: ClassVar[tuple[str, ...]] = ("t", "p", "B", "si", "so")
    formula: ClassVar[str] = "E = b0 + b1*t + b2*p + b3*B + b4*si + b5*so"

    def _basis(self, V):
        return np.column_stack([np.ones_like(V["si"]), V["t"], V["p"], V["B"], V["si"], V["so"]])


class LogLinearEnergyModel(ParametricModel):
    """Power law ``E = exp(g0) * t^g1 * p^g2 * B^g3 * si^g4 * so^g5``, fitted on log residuals."""

    _parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("g0", 0.0, unit="log J", meaning="log energy at t = p = B = si = so = 1"),
        Parameter("g1", 0.0, unit="1", meaning="elasticity of energy to the TP degree", informed_by=("t",)),
        Parameter("g2", 0.0, unit="1", meaning="elasticity of energy to the PP degree", informed_by=("p",)),
        Parameter("g3", 0.0, unit="1", meaning="elasticity of energy to the batch", informed_by=("B",)),
        Parameter("g4", 0.0, unit="1", meaning="elasticity of energy to the input length",
                  informed_by=("si",)),
        Parameter("g5", 1.0, unit="1", meaning="elasticity of energy to the output length",
                  informed_by=("so",)),
    )
    _variables: ClassVar[tuple[str, ...]] = ("t", "p", "B", "si", "so")
    formula: ClassVar[str] = "log E = g0 + g1*log t + g2*log p + g3*log B + g4*log si + g5*log so"

    def __init__(self, *, loss="log", fixed=None, bounds=None, init=None, batch_rule="auto",
                 f_scale=0.05, max_nfev=None, poor_fit_mape=25.0):
        super().__init__(loss=loss, fixed=fixed, bounds=bounds, init=init, batch_rule=batch_rule,
                         f_scale=f_scale, max_nfev=max_nfev, poor_fit_mape=poor_fit_mape)

    def _logs(self, V):
        cols = [V[v] for v in self._variables]
        if any(np.any(c <= 0) for c in cols):
            raise ValueError("LogLinearEnergyModel needs positive tp, pp, batch and lengths.")
        return np.column_stack([np.ones_like(cols[0])] + [np.log(c) for c in cols])

    def _kernel(self, V, theta):
        return np.exp(self._logs(V) @ theta)

    def _jacobian(self, V, theta):
        L = self._logs(V)
        return L * np.exp(L @ theta)[:, None]

    def _initial_guess(self, V, y, w, theta0, free):
        theta = theta0.copy()
        L = self._logs(V)
        rhs = np.log(y) - (L[:, ~free] @ theta[~free] if (~free).any() else 0.0)
        sol = np.linalg.lstsq(L[:, free] * np.sqrt(w)[:, None], rhs * np.sqrt(w), rcond=None)[0]
        theta[free] = sol
        return theta
