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

:meth:`SweetSpotModel.optimum` says which of four cases a fit is in: an optimum the data
determine; one they do not (:math:`t_4` within two standard errors of zero: its point
estimate, flagged, with a Fieller interval that may be unbounded); no interior optimum
because the fitted efficiency keeps rising with longer answers (:math:`t_4` at zero, or an
optimum beyond a million tokens); and no optimum of one token or more because it keeps
falling (an estimate below one token).
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
#: (Replicas and expert parallelism are named by every closed form's fit warnings.)
SETTINGS = ("model", "gpu", "tp", "pp", "batch_size", "workload", "precision")

#: Output lengths (tokens) where an optimum can sensibly lie: one token at least, and at most
#: a million, beyond the longest answer any model generates (the longest context windows
#: are around a million tokens).
SENSIBLE_OUTPUT_TOKENS = (1.0, 1e6)

#: What :meth:`SweetSpotModel.optimum` says of each input length, by its ``status``.
OPTIMUM_STATUS = {
    "optimum": "an optimum the data determine",
    "not determined": "not determined by the data: t4, the decode cost growing with the "
                      "answer, is within two standard errors of zero",
    "unbounded": "not determined by the data: the interval of the optimum reaches zero or "
                 "has no upper end",
    "longer is better": "no interior optimum: the fitted efficiency keeps rising with longer "
                        "answers",
    "shorter is better": "no optimum of one token or more: the fitted efficiency falls with "
                         "every longer answer",
    "no output-length effect": "not determined: the data do not show how the energy per "
                               "token changes with the output length",
}


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
        V, _ = self._predict_variables(X)  # its warning at the caller's line
        return self._checked_output(self._kernel(V, self.coef_), X) / V["so"]

    def efficiency(self, X) -> np.ndarray:
        """Output tokens per joule for each row of ``X``."""
        V, _ = self._predict_variables(X)
        return V["so"] / self._checked_output(self._kernel(V, self.coef_), X)

    def _per_token(self, si, so):
        t0, t1, t2, t3, t4, t5 = self.coef_
        return (t1 * si * si + t3 * si + t5) / so + t2 * si + t4 * so + t0

    def _full_cov(self) -> np.ndarray:
        """Covariance of all six coefficients (zero rows and columns for fixed ones)."""
        st = self._state_
        k = len(self.coef_)
        cov = np.zeros((k, k))
        free = np.asarray(st.free, dtype=bool)
        c = np.asarray(st.cov, dtype=float)
        if c.shape == (free.sum(), free.sum()):
            cov[np.ix_(free, free)] = c
        else:
            cov[:] = np.nan
        return cov

    def optimum(self, input_tokens, *, level: float = 0.9) -> pd.DataFrame:
        """The optimal output length per input length, what kind of optimum it is, its
        interval and the efficiency there.

        Parameters
        ----------
        input_tokens : float or array-like
            Input lengths (tokens).
        level : float, default=0.9
            Coverage of the interval of the optimum.

        Returns
        -------
        DataFrame
            One row per input length:

            - ``status``: ``"optimum"`` (the data determine it: a bounded interval above
              zero); ``"not determined"`` (t4, the decode cost growing with the answer, is
              less than twice its standard error, or the interval of the optimum reaches
              zero or has no upper end: the point estimate is given, flagged); ``"longer is better"`` (no
              interior optimum: t4 is zero or at its bound, or the optimum lies beyond
              :data:`SENSIBLE_OUTPUT_TOKENS`, so the fitted efficiency keeps rising with
              every longer answer); ``"shorter is better"`` (the estimate is below one
              token: the fitted efficiency falls with every answer of one token or more);
              ``"no output-length effect"`` (t4 cannot be identified from the data).
            - ``optimal_output_tokens``: the fitted curve's optimum, for ``"optimum"`` and
              ``"not determined"``; ``inf`` for ``"longer is better"``; NaN otherwise.
            - ``optimal_output_lower``, ``optimal_output_upper``: Fieller's interval of the
              optimum at ``level`` (the square root of a ratio of two fitted linear
              combinations of the parameters, with their covariance); the upper end is
              ``inf`` where t4 is not distinguishable from zero at that level.
            - ``extrapolated``: the optimum lies outside the output lengths fitted, or the
              input length outside the input lengths fitted.
            - ``tokens_per_joule_at_optimum``: the fitted efficiency at the optimum; for
              ``"longer is better"`` the value it approaches as the answer grows (its
              supremum); NaN where there is no optimum of one token or more.
            - ``note``: the status in words, with the measured range where extrapolated.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> si, so = np.meshgrid([64, 256, 1024, 4096], [16, 64, 256, 1024])
        >>> df = pd.DataFrame({"input_tokens": si.ravel(), "output_tokens": so.ravel()})
        >>> e = (2e-6 * df.input_tokens**2 + 1e-3 * df.input_tokens + 0.5) / df.output_tokens \\
        ...     + 1e-5 * df.input_tokens + 2e-5 * df.output_tokens + 0.1
        >>> m = SweetSpotModel().fit(df, e * df.output_tokens)
        >>> m.optimum([1024])[["status", "optimal_output_tokens", "extrapolated"]].round(1)
            status  optimal_output_tokens  extrapolated
        0  optimum                  425.5         False
        """
        from scipy.stats import norm

        self._check_fitted()
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1); got {level!r}.")
        si = np.atleast_1d(np.asarray(input_tokens, dtype=float)).ravel()
        bad = ~(np.isfinite(si) & (si > 0))
        if bad.any():
            raise ValueError(f"{type(self).__name__}.optimum: input lengths must be finite and "
                             f"> 0; got {si[bad][:5].tolist()} (positions "
                             f"{np.flatnonzero(bad)[:5].tolist()}).")
        t0, t1, t2, t3, t4, t5 = self.coef_
        cov = self._full_cov()
        se = float(np.sqrt(max(cov[4, 4], 0.0))) if np.isfinite(cov[4, 4]) else np.nan
        z = float(norm.ppf(0.5 + level / 2))
        lo_so, hi_so = self._state_.domain.ranges.get("so", (np.nan, np.nan))
        lo_si, hi_si = self._state_.domain.ranges.get("si", (np.nan, np.nan))
        low_ok, high_ok = SENSIBLE_OUTPUT_TOKENS
        unidentified = "t4" in self._state_.not_identifiable
        zero = t4 <= 0 or "t4" in self.at_bound_
        weak = not np.isfinite(se) or t4 < 2 * se
        rows = []
        for x in si:
            a = np.array([0.0, x * x, 0.0, x, 0.0, 1.0])  # numerator A = a . theta
            A = float(a @ self.coef_)
            est = np.sqrt(A / t4) if t4 > 0 and A >= 0 else np.nan
            if unidentified:
                status = "no output-length effect"
            elif zero or (np.isfinite(est) and est > high_ok):
                status = "longer is better"
            elif not np.isfinite(est) or est < low_ok:
                status = "shorter is better"
            else:
                status = "not determined" if weak else "optimum"
            lower, upper = self._fieller(A, t4, a, cov, z)
            unbounded = status == "optimum" and not (lower > 0 and np.isfinite(upper))
            if unbounded:
                status = "not determined"
            if status in ("optimum", "not determined"):
                opt = float(est)
                value = 1.0 / float(self._per_token(x, opt))
            elif status == "longer is better":
                opt = np.inf
                floor = t0 + t2 * x + (2 * np.sqrt(A * t4) if t4 > 0 and A > 0 else 0.0)
                value = 1.0 / floor if floor > 0 else np.inf
            else:
                opt, value = np.nan, np.nan
            outside = bool(np.isfinite(opt) and not lo_so * (1 - 1e-9) <= opt <= hi_so * (1 + 1e-9))
            new_input = bool(not lo_si * (1 - 1e-9) <= x <= hi_si * (1 + 1e-9))
            note = OPTIMUM_STATUS["unbounded" if unbounded else status]
            if status == "optimum":
                note = (f"extrapolated: outside the output lengths fitted ({lo_so:g} to {hi_so:g})"
                        if outside else "within the output lengths fitted")
            elif outside:
                note += f"; outside the output lengths fitted ({lo_so:g} to {hi_so:g})"
            if new_input:
                note += f"; input length outside those fitted ({lo_si:g} to {hi_si:g})"
            outside = outside or new_input
            rows.append({"input_tokens": float(x), "status": status, "optimal_output_tokens": opt,
                         "optimal_output_lower": lower, "optimal_output_upper": upper,
                         "extrapolated": outside,
                         "tokens_per_joule_at_optimum": value, "note": note})
        return pd.DataFrame(rows)

    @staticmethod
    def _fieller(A: float, t4: float, a: np.ndarray, cov: np.ndarray, z: float) -> tuple[float, float]:
        """Fieller's interval of ``sqrt(A / t4)``: the ratios r with
        ``(A - r t4)^2 <= z^2 var(A - r t4)``, square-rooted (negative ratios clipped to 0)."""
        if not np.all(np.isfinite(cov)):
            return np.nan, np.nan
        e4 = np.zeros(len(a))
        e4[4] = 1.0
        v_aa, v_44, c_a4 = float(a @ cov @ a), float(cov[4, 4]), float(a @ cov @ e4)
        q2 = t4 * t4 - z * z * v_44
        q1 = -2.0 * (A * t4 - z * z * c_a4)
        q0 = A * A - z * z * v_aa
        disc = q1 * q1 - 4 * q2 * q0
        if q2 > 0 and disc >= 0:  # t4 clear of zero: a bounded interval
            r = np.sort((-q1 + np.array([-1.0, 1.0]) * np.sqrt(disc)) / (2 * q2))
            return float(np.sqrt(max(r[0], 0.0))), float(np.sqrt(max(r[1], 0.0)))
        if q2 > 0:  # an exact fit: the discriminant is zero up to rounding, the interval a point
            r = max(-q1 / (2 * q2), 0.0)
            return float(np.sqrt(r)), float(np.sqrt(r))
        if q2 < 0 and disc > 0:  # two rays: (-inf, r0] and [r1, inf)
            r = np.sort((-q1 + np.array([-1.0, 1.0]) * np.sqrt(disc)) / (2 * q2))
            return (float(np.sqrt(r[1])) if r[0] <= 0 else 0.0), np.inf
        return 0.0, np.inf

    def optimal_output_tokens(self, input_tokens) -> np.ndarray:
        """Output length of lowest fitted energy per output token, for each input length
        (closed form).

        The value is the ``optimal_output_tokens`` column of :meth:`optimum`, which says what
        kind of optimum each one is:

        - the fitted curve's optimum where there is one between one and a million tokens,
          even where the data do not determine it (t4, the decode cost growing with the
          answer, less than twice its standard error): then with an
          :class:`~energylens.EnergyLensWarning` naming the point estimate's interval;
        - ``inf`` with a warning where there is no interior optimum: t4 is zero or at its
          bound, or the optimum lies beyond a million tokens, so the fitted efficiency keeps
          rising with longer answers;
        - NaN with a warning where there is no optimum of one token or more (the fitted
          efficiency falls with every longer answer) or t4 cannot be identified.

        An optimum outside the output lengths the model was fitted on comes with an
        :class:`~energylens.ExtrapolationWarning`. (Before, a t4 within two standard errors
        of zero gave ``inf``, and an estimate below one token was returned as it was.)
        """
        shape = np.shape(input_tokens)
        t = self.optimum(input_tokens)
        for status, rows in t.groupby("status", sort=False):
            if status == "optimum":
                continue
            detail = ""
            if status == "not determined":
                detail = "; " + ", ".join(
                    f"input {r.input_tokens:g}: {r.optimal_output_tokens:.4g} tokens (90% "
                    f"interval {r.optimal_output_lower:.4g} to {r.optimal_output_upper:.4g})"
                    for r in rows.head(3).itertuples())
            returned = {"longer is better": "inf", "not determined": "the point estimate"}
            warnings.warn(f"SweetSpotModel: {OPTIMUM_STATUS[status]}{detail}; returning "
                          f"{returned.get(status, 'NaN')}.", EnergyLensWarning, stacklevel=2)
        out = t[t["extrapolated"]]
        if len(out):
            warnings.warn(
                f"SweetSpotModel: {len(out)} optimum/optima extrapolate ("
                + "; ".join(f"input {r.input_tokens:g}: {r.note}" for r in out.head(3).itertuples())
                + ").", ExtrapolationWarning, stacklevel=2)
        return t["optimal_output_tokens"].to_numpy(dtype=float).reshape(shape)

    def _warn_outside(self, si: np.ndarray, so: np.ndarray) -> None:
        """An :class:`~energylens.ExtrapolationWarning` for grid lengths beyond those fitted."""
        ranges = self._state_.domain.ranges
        parts = []
        for name, label, a in (("si", "input", si), ("so", "output", so)):
            lo, hi = ranges.get(name, (np.nan, np.nan))
            if a.size and (a.min() < lo * (1 - 1e-9) or a.max() > hi * (1 + 1e-9)):
                parts.append(f"{label} lengths {a.min():g} to {a.max():g} (fitted: {lo:g} to {hi:g})")
        if parts:
            warnings.warn("SweetSpotModel: the grid reaches beyond the lengths fitted ("
                          + "; ".join(parts) + "): those efficiencies extrapolate.",
                          ExtrapolationWarning, stacklevel=3)

    def efficiency_surface(self, input_grid, output_grid) -> pd.DataFrame:
        """Output tokens per joule over a grid: rows are input lengths, columns output lengths
        (an :class:`~energylens.ExtrapolationWarning` where the grid leaves the lengths fitted)."""
        self._check_fitted()
        si = np.asarray(input_grid, dtype=float)
        so = np.asarray(output_grid, dtype=float)
        if np.any(si <= 0) or np.any(so <= 0):
            raise ValueError("Input and output lengths must be positive.")
        self._warn_outside(si, so)
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
