r"""The SweetSpot model of energy against input and output length (after Cavagna et al. 2026).

Energy per output token as a function of the input length :math:`n_i` and output length
:math:`n_o`:

.. math::

    e(n_i, n_o) = \frac{t_1 n_i^2 + t_3 n_i + t_5}{n_o} + t_2 n_i + t_4 n_o + t_0

The first term is the prefill cost (quadratic attention, linear projections and a fixed
per-request cost) amortised over the answer; the others are the decode cost per token,
growing with the context (:math:`t_2 n_i + t_4 n_o`) above a constant :math:`t_0`.
Energy per request is :math:`E = n_o\,e`, which is linear in the six parameters.

For a fixed input length the most efficient output length is

.. math::

    n_o^* = \sqrt{\frac{t_1 n_i^2 + t_3 n_i + t_5}{t_4}}.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
import pandas as pd

from ..exceptions import EnergyLensWarning, ExtrapolationWarning
from .base import Parameter
from .linear_forms import LinearFormModel

__all__ = ["SweetSpotModel"]

#: Settings that must not vary within a sweet-spot fit (the running batch within 10%).
SETTINGS = ("model", "gpu", "tp", "pp", "dp", "batch_size", "workload", "precision")


def _mixed_settings(X: pd.DataFrame) -> list[str]:
    out = []
    for c in SETTINGS:
        if c in X.columns and X[c].nunique(dropna=True) > 1:
            uniq = list(X[c].dropna().unique())
            try:
                uniq = sorted(uniq)
            except TypeError:
                uniq = sorted(uniq, key=str)
            vals = [f"{v:g}" if isinstance(v, (float, np.floating)) else str(v) for v in uniq]
            out.append(f"{c} ({', '.join(vals[:4])}{', ...' if len(vals) > 4 else ''})")
    if "running_batch" in X.columns:
        rb = pd.to_numeric(X["running_batch"], errors="coerce").dropna()
        if len(rb) and rb.min() > 0 and rb.max() / rb.min() > 1.1:
            out.append(f"running_batch ({rb.min():.3g} to {rb.max():.3g})")
    return out


class SweetSpotModel(LinearFormModel):
    """Energy per output token against input and output length, with its sweet spot.

    ``predict`` returns joules per request (like every energy model in energylens);
    :meth:`predict_per_token` returns joules per output token and :meth:`efficiency`
    output tokens per joule.

    Parameters
    ----------
    loss, fixed, bounds, init, f_scale, max_nfev, poor_fit_mape
        See :class:`~energylens.models.base.ParametricModel`. The batch rule does not
        apply: fit one model per (model, GPU, batch setting).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from energylens import SweetSpotModel
    >>> si, so = np.meshgrid([64, 256, 1024, 4096], [16, 64, 256, 1024])
    >>> df = pd.DataFrame({"input_tokens": si.ravel(), "output_tokens": so.ravel()})
    >>> e = (2e-6 * df.input_tokens**2 + 1e-3 * df.input_tokens + 0.5) / df.output_tokens \\
    ...     + 1e-5 * df.input_tokens + 2e-5 * df.output_tokens + 0.1
    >>> m = SweetSpotModel().fit(df, e * df.output_tokens)
    >>> round(float(m.optimal_output_tokens(1024)), 1)
    425.5
    """

    _parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("t0", 0.1, 0.0, np.inf, "J/token", "decode energy per output token at no context"),
        Parameter("t1", 1e-7, 0.0, np.inf, "J/token^2",
                  "prefill attention energy per squared prompt token", ("si",)),
        Parameter("t2", 1e-6, 0.0, np.inf, "J/token^2",
                  "decode energy per output token per prompt token of context", ("si",)),
        Parameter("t3", 1e-3, 0.0, np.inf, "J/token", "prefill energy per prompt token", ("si",)),
        Parameter("t4", 1e-6, 0.0, np.inf, "J/token^2",
                  "decode energy per output token per generated token of context", ("so",)),
        Parameter("t5", 1.0, 0.0, np.inf, "J", "fixed energy per request (amortised over the answer)"),
    )
    _variables: ClassVar[tuple[str, ...]] = ("si", "so")
    formula: ClassVar[str] = (
        "e = (t1*si^2 + t3*si + t5)/so + t2*si + t4*so + t0;  E = so*e"
    )

    def _check_table(self, X: pd.DataFrame) -> None:
        """Warn when the rows differ in a setting other than the lengths.

        The model has no term for model, GPU, parallelism, batch, workload or precision, so
        their effect would be read as a length effect (:class:`~energylens.EnergyLensWarning`).
        Fit one model per setting instead (e.g. ``GroupedModel(SweetSpotModel(), by=[...])``).
        """
        mixed = _mixed_settings(X)
        if mixed:
            warnings.warn(
                "SweetSpotModel: the rows differ in " + ", ".join(mixed) + "; the model "
                "describes one configuration in which only the lengths vary, so these "
                "differences would be read as length effects. Fit one model per setting.",
                EnergyLensWarning, stacklevel=3)

    def _basis(self, V):
        si, so = V["si"], V["so"]
        return np.column_stack([so, si * si, si * so, si, so * so, np.ones_like(si)])

    def _components(self, V, theta):
        t0, t1, t2, t3, t4, t5 = theta
        si, so = V["si"], V["so"]
        return pd.DataFrame({
            "prefill_j": t1 * si * si + t3 * si,
            "decode_j": so * (t0 + t2 * si + t4 * so),
            "static_j": np.full(len(si), t5, dtype=float),
        })

    # ------------------------------------------------------------------ sweet spot
    def predict_per_token(self, X) -> np.ndarray:
        """Energy per output token (J/token) for each row of ``X``."""
        V, _ = self._predict_variables(X, warn=False)
        return self.predict(X) / V["so"]

    def efficiency(self, X) -> np.ndarray:
        """Output tokens per joule for each row of ``X``."""
        return 1.0 / self.predict_per_token(X)

    def _per_token(self, si, so):
        t0, t1, t2, t3, t4, t5 = self.coef_
        return (t1 * si * si + t3 * si + t5) / so + t2 * si + t4 * so + t0

    def optimal_output_tokens(self, input_tokens) -> np.ndarray:
        """Output length of lowest energy per output token, for each input length (closed form).

        Returns ``inf`` with a warning where the fitted decode-context term ``t4`` is zero, at
        its lower bound, or not distinguishable from zero (less than twice its standard
        error): the data then show no interior optimum (efficiency keeps improving with
        longer answers). An optimum outside the output lengths the model was
        fitted on is returned with an :class:`~energylens.ExtrapolationWarning`.
        """
        self._check_fitted()
        t0, t1, t2, t3, t4, t5 = self.coef_
        si = np.asarray(input_tokens, dtype=float)
        se = float(self.params_.loc["t4", "stderr"])
        if (t4 <= 0 or "t4" in self.at_bound_ or "t4" in self._state_.not_identifiable
                or (np.isfinite(se) and t4 < 2 * se)):
            warnings.warn("SweetSpotModel: the data show no interior optimum of the output length "
                          "(t4, the decode cost growing with the answer, is not distinguishable "
                          "from zero); "
                          "efficiency keeps improving with longer answers, so the optimum is inf.",
                          EnergyLensWarning, stacklevel=2)
            return np.full_like(si, np.inf)
        opt = np.sqrt((t1 * si * si + t3 * si + t5) / t4)
        lo, hi = self._state_.domain.ranges.get("so", (np.nan, np.nan))
        outside = (opt > hi * (1 + 1e-9)) | (opt < lo * (1 - 1e-9))
        if np.any(outside):
            warnings.warn(
                f"SweetSpotModel: the optimal output length ({np.nanmax(opt[outside]):.4g} tokens) "
                f"lies outside the output lengths fitted ({lo:g} to {hi:g}): an extrapolation.",
                ExtrapolationWarning, stacklevel=2)
        return opt

    def efficiency_surface(self, input_grid, output_grid) -> pd.DataFrame:
        """Output tokens per joule over a grid: rows are input lengths, columns output lengths."""
        self._check_fitted()
        si = np.asarray(input_grid, dtype=float)
        so = np.asarray(output_grid, dtype=float)
        if np.any(si <= 0) or np.any(so <= 0):
            raise ValueError("Input and output lengths must be positive.")
        grid_in, grid_out = np.meshgrid(si, so, indexing="ij")
        eff = 1.0 / self._per_token(grid_in, grid_out)
        return pd.DataFrame(eff, index=pd.Index(si, name="input_tokens"),
                            columns=pd.Index(so, name="output_tokens"))

    def sweet_spot(self, input_grid, output_grid, *, tolerance: float = 0.9) -> dict:
        """The maximum-efficiency point and the region within ``tolerance`` of it.

        Parameters
        ----------
        input_grid, output_grid : array-like
            Lengths to search (tokens).
        tolerance : float, default=0.9
            The region holds every (input, output) pair whose efficiency is at least
            ``tolerance`` times the maximum on the grid.

        Returns
        -------
        dict
            ``input_tokens``, ``output_tokens`` and ``tokens_per_joule`` of the best grid
            point; ``region`` (a DataFrame of the pairs in the region with their
            efficiency); ``optimal_output_tokens`` (closed form, per input length);
            ``max_to_min_ratio`` (how much the best pair beats the worst).
        """
        if not 0 < tolerance <= 1:
            raise ValueError(f"tolerance must be in (0, 1]; got {tolerance!r}.")
        surf = self.efficiency_surface(input_grid, output_grid)
        values = surf.to_numpy()
        i, j = np.unravel_index(np.argmax(values), values.shape)
        best = values[i, j]
        long = surf.stack().rename("tokens_per_joule").reset_index()
        region = long[long["tokens_per_joule"] >= tolerance * best].reset_index(drop=True)
        opt = pd.Series(self.optimal_output_tokens(surf.index.to_numpy()), index=surf.index,
                        name="optimal_output_tokens")
        return {
            "input_tokens": float(surf.index[i]),
            "output_tokens": float(surf.columns[j]),
            "tokens_per_joule": float(best),
            "region": region,
            "optimal_output_tokens": opt,
            "max_to_min_ratio": float(best / values.min()),
        }
