r"""The twelve-parameter EnergyLens closed form.

Per-request energy of a serving configuration with tensor-parallel degree :math:`t`,
pipeline degree :math:`p`, effective running batch :math:`B`, input length :math:`s_i`
and output length :math:`s_o` (see ``docs/model.md`` for the derivation):

.. math::

    E &= E_\mathrm{prefill} + E_\mathrm{decode} + E_\mathrm{static} \\
    E_\mathrm{prefill} &= s_i\,(c_1 + c_2 s_i)\,(1 + c_3 (t-1))\,(1 + c_4 (p-1)) \\
    E_\mathrm{decode} &= s_o\,\bigl(c_5 / b + c_6 + c_7 (s_i + s_o/2)\bigr)\,
                         (1 + c_8 (t-1))\,(1 + c_9 (p-1)) \\
    E_\mathrm{static} &= t\,p\,(c_{10} + c_{11} s_o) / B + c_{12}

where :math:`b = B / \min(B, p)` is the micro-batch size: a pipeline of :math:`p` stages
splits the running batch into up to :math:`p` micro-batches, and each one reads the stage's
weights again (for :math:`p = 1`, :math:`b = B`).

With ``size_covariate="params_b"`` the compute and memory terms (:math:`c_1, c_2, c_5,
c_6, c_7`) are per billion parameters and multiplied by the model size :math:`N`, so one
model can be fitted across model names on one GPU.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from scipy import optimize

from .base import Parameter, ParametricModel, positive_start

__all__ = ["EnergyLensModel", "energylens_kernel", "energylens_jacobian"]

_OVERHEAD = dict(lower=-0.1, upper=10.0, neutral=0.0)
_PARAMETERS: tuple[Parameter, ...] = (
    Parameter("c1", 1e-2, 0.0, np.inf, "J/token", "prefill energy per prompt token (linear layers)"),
    Parameter("c2", 1e-6, 0.0, np.inf, "J/token^2",
              "prefill attention energy, growing with the prompt length", ("si",)),
    Parameter("c3", 0.0, unit="1", meaning="tensor-parallel overhead on prefill, per extra GPU",
              informed_by=("t",), **_OVERHEAD),
    Parameter("c4", 0.0, unit="1", meaning="pipeline-parallel overhead on prefill, per extra stage",
              informed_by=("p",), **_OVERHEAD),
    Parameter("c5", 1e-1, 0.0, np.inf, "J/token",
              "weight reads per decode step, shared by the (micro-)batch", ("B",)),
    Parameter("c6", 1e-2, 0.0, np.inf, "J/token", "decode compute per output token"),
    Parameter("c7", 1e-6, 0.0, np.inf, "J/token^2",
              "KV-cache reads per output token and token of context", ("si", "so")),
    Parameter("c8", 0.0, unit="1", meaning="tensor-parallel overhead on decode, per extra GPU",
              informed_by=("t",), **_OVERHEAD),
    Parameter("c9", 0.0, unit="1", meaning="pipeline-parallel overhead on decode, per extra stage",
              informed_by=("p",), **_OVERHEAD),
    Parameter("c10", 1.0, 0.0, np.inf, "J",
              "static (idle) energy per GPU and request at batch 1, outside decode"),
    Parameter("c11", 1e-2, 0.0, np.inf, "J/token",
              "static (idle) energy per GPU per decode step at batch 1", ("so",)),
    Parameter("c12", 1.0, 0.0, np.inf, "J", "fixed energy per request (scheduling, sampling)"),
)


def _scale(V: dict[str, np.ndarray], size: bool) -> np.ndarray | float:
    return V["N"] if size else 1.0


def energylens_kernel(V: dict[str, np.ndarray], theta: np.ndarray, size: bool = False) -> np.ndarray:
    r"""Energy per request (J) of the EnergyLens form; see the module docstring.

    Parameters
    ----------
    V : dict of arrays
        ``t, p, B, si, so`` (and ``N`` when ``size``), each of shape (n,).
    theta : array of shape (12,)
        ``c1 ... c12``.
    size : bool
        Multiply the compute and memory terms by the model size ``N``.
    """
    pre, dec, sta = _terms(V, theta, size)
    return pre + dec + sta


def _microbatch(B: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Micro-batch size: the running batch split over up to ``p`` pipeline micro-batches."""
    return B / np.minimum(B, p)


def _terms(V, theta, size):
    c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12 = theta
    t, p, B, si, so = V["t"], V["p"], V["B"], V["si"], V["so"]
    N = _scale(V, size)
    b = _microbatch(B, p)
    pre = N * si * (c1 + c2 * si) * (1 + c3 * (t - 1)) * (1 + c4 * (p - 1))
    dec = N * so * (c5 / b + c6 + c7 * (si + so / 2)) * (1 + c8 * (t - 1)) * (1 + c9 * (p - 1))
    sta = t * p * (c10 + c11 * so) / B + c12
    return pre, dec, sta


def energylens_jacobian(V: dict[str, np.ndarray], theta: np.ndarray, size: bool = False) -> np.ndarray:
    """Analytic Jacobian of :func:`energylens_kernel` with respect to ``theta``, shape (n, 12)."""
    c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12 = theta
    t, p, B, si, so = V["t"], V["p"], V["B"], V["si"], V["so"]
    N = _scale(V, size)
    b = _microbatch(B, p)
    n = len(si)
    a_pre, b_pre = 1 + c3 * (t - 1), 1 + c4 * (p - 1)
    a_dec, b_dec = 1 + c8 * (t - 1), 1 + c9 * (p - 1)
    lin_pre = N * si * (c1 + c2 * si)
    ctx = si + so / 2
    lin_dec = N * so * (c5 / b + c6 + c7 * ctx)
    J = np.empty((n, 12))
    J[:, 0] = N * si * a_pre * b_pre
    J[:, 1] = N * si * si * a_pre * b_pre
    J[:, 2] = lin_pre * (t - 1) * b_pre
    J[:, 3] = lin_pre * a_pre * (p - 1)
    f_dec = a_dec * b_dec
    J[:, 4] = N * so / b * f_dec
    J[:, 5] = N * so * f_dec
    J[:, 6] = N * so * ctx * f_dec
    J[:, 7] = lin_dec * (t - 1) * b_dec
    J[:, 8] = lin_dec * a_dec * (p - 1)
    J[:, 9] = t * p / B
    J[:, 10] = t * p * so / B
    J[:, 11] = 1.0
    return J


class EnergyLensModel(ParametricModel):
    """Twelve-parameter closed form of energy per request with separate prefill, decode and
    static terms and separate tensor- and pipeline-parallel overheads.

    Parameters
    ----------
    size_covariate : {None, "params_b", "active_params_b"}, default=None
        Scale the compute and memory terms by the model size so that one model fits
        several model names on one GPU (use ``"active_params_b"`` for mixture-of-experts).
    loss, fixed, bounds, init, batch_rule, f_scale, max_nfev, poor_fit_mape
        See :class:`~energylens.models.base.ParametricModel`.

    Attributes
    ----------
    coef_ : ndarray of shape (12,)
        Fitted ``c1 ... c12``.
    params_ : DataFrame
        Values, standard errors, bounds, units, meanings and flags.

    Examples
    --------
    >>> import energylens
    >>> df = energylens.simulate_profiles(seed=0)  # doctest: +SKIP
    >>> model = energylens.EnergyLensModel().fit(df)  # doctest: +SKIP
    >>> model.predict(df.head(3))  # doctest: +SKIP
    """

    _parameters: ClassVar[tuple[Parameter, ...]] = _PARAMETERS
    _variables: ClassVar[tuple[str, ...]] = ("t", "p", "B", "si", "so")
    formula: ClassVar[str] = (
        "E = si*(c1 + c2*si)*(1 + c3*(t-1))*(1 + c4*(p-1))"
        " + so*(c5/b + c6 + c7*(si + so/2))*(1 + c8*(t-1))*(1 + c9*(p-1))"
        " + t*p*(c10 + c11*so)/B + c12,  b = B/min(B, p)"
    )

    def __init__(
        self,
        *,
        size_covariate: Literal["params_b", "active_params_b"] | None = None,
        loss="relative",
        fixed=None,
        bounds=None,
        init=None,
        batch_rule="auto",
        f_scale=0.05,
        max_nfev=None,
        poor_fit_mape=25.0,
    ):
        super().__init__(loss=loss, fixed=fixed, bounds=bounds, init=init, batch_rule=batch_rule,
                         f_scale=f_scale, max_nfev=max_nfev, poor_fit_mape=poor_fit_mape)
        self.size_covariate = size_covariate

    @property
    def _size(self) -> bool:
        return self.size_covariate is not None

    def _variables_from(self, X, *, fitting, batch_k=None):
        if self.size_covariate not in (None, "params_b", "active_params_b"):
            raise ValueError(
                "The 'size_covariate' parameter of EnergyLensModel must be a str among "
                f"{{'params_b', 'active_params_b'}} or None. Got {self.size_covariate!r} instead."
            )
        V = super()._variables_from(X, fitting=fitting, batch_k=batch_k)
        if self._size:
            if not isinstance(X, pd.DataFrame) or self.size_covariate not in X.columns:
                raise ValueError(
                    f"size_covariate={self.size_covariate!r} needs a '{self.size_covariate}' "
                    "column in X (model size in billions of parameters)."
                )
            N = pd.to_numeric(X[self.size_covariate], errors="coerce").to_numpy(dtype=float)
            if self.size_covariate == "active_params_b" and "params_b" in X.columns:
                N = np.where(np.isfinite(N), N, pd.to_numeric(X["params_b"], errors="coerce"))
            if np.any(~np.isfinite(N) | (N <= 0)):
                raise ValueError(f"Column '{self.size_covariate}' has missing or non-positive values.")
            V["N"] = N
        return V

    def _kernel(self, V, theta):
        return energylens_kernel(V, theta, self._size)

    def _jacobian(self, V, theta):
        return energylens_jacobian(V, theta, self._size)

    def _components(self, V, theta):
        pre, dec, sta = _terms(V, theta, self._size)
        n = len(V["si"])
        return pd.DataFrame({"prefill_j": np.broadcast_to(pre, n).astype(float),
                             "decode_j": np.broadcast_to(dec, n).astype(float),
                             "static_j": np.broadcast_to(sta, n).astype(float)})

    def _initial_guess(self, V, y, w, theta0, free):
        """Start from a relative-error NNLS fit of the form with the overheads held fixed.

        With the four overhead parameters at their start values the form is linear in the
        other eight, so non-negative least squares on rows divided by y gives a start that
        is already close; the nonlinear fit then only refines it.
        """
        theta = theta0.copy()
        linear = [0, 1, 4, 5, 6, 9, 10, 11]
        J = self._jacobian(V, theta)  # columns of the linear parameters are their basis
        idx = [i for i in linear if free[i]]
        if not idx:
            return theta
        fixed_part = self._kernel(V, np.where(np.isin(np.arange(12), idx), 0.0, theta))
        A = J[:, idx] / y[:, None] * np.sqrt(w)[:, None]
        b = (y - fixed_part) / y * np.sqrt(w)
        norms = np.linalg.norm(A, axis=0)
        norms[norms == 0] = 1.0
        try:
            sol, _ = optimize.nnls(A / norms, b, maxiter=50 * len(idx))
        except RuntimeError:
            return theta
        # Keep every free parameter strictly positive so that no column vanishes at the start.
        sol = positive_start(A, b, sol / norms)
        theta[idx] = sol
        return theta
