"""The parametric-model machinery shared by every closed form in energylens.

A closed form is declared once: its :class:`Parameter` list (name, start value, bounds,
unit, meaning, which variables identify it), the variables it reads from a profiling
table, and a pure kernel ``f(V, theta)`` with its analytic Jacobian. :class:`ParametricModel`
adds everything else: fitting with :func:`scipy.optimize.least_squares` on relative, log,
absolute or robust residuals; identifiability checks; standard errors, correlations,
AIC and BIC; prediction intervals by the delta method or a bootstrap; a text and HTML
report; and JSON persistence (see :mod:`energylens.models.persistence`).

The same machinery fits the twelve-parameter :class:`~energylens.EnergyLensModel`, the
:class:`~energylens.SweetSpotModel`, the analytical baselines and every formula that
symbolic regression discovers, so they are compared on equal terms.
"""

from __future__ import annotations

import html
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from scipy import linalg, optimize, stats
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError
from sklearn.utils.validation import check_array

from ..exceptions import (
    ConvergenceWarning,
    IdentifiabilityWarning,
    NotFittedError,
    PoorFitWarning,
)
from .batch import BATCH_RULES, effective_batch, resolve_batch_rule

__all__ = ["Parameter", "ParametricModel", "LOSSES"]

LOSSES = ("relative", "log", "absolute", "robust")
Loss = Literal["relative", "log", "absolute", "robust"]

#: Canonical column behind each kernel variable name.
VARIABLE_COLUMNS: dict[str, str] = {
    "t": "tp",
    "p": "pp",
    "B": "batch_size",  # through the effective-batch rule
    "si": "input_tokens",
    "so": "output_tokens",
    "N": "params_b",
}
#: Largest rows x free parameters for which least_squares uses its exact (SVD) solver.
_EXACT_SOLVER_MAX = 24_000
#: Kernel variables that are physically positive (degrees, batch, lengths, model size).
_POSITIVE = frozenset({"t", "p", "B", "si", "so", "N"})
_VARIABLE_LABELS = {"t": "tp", "p": "pp", "B": "batch size", "si": "input_tokens",
                    "so": "output_tokens", "N": "params_b"}


@dataclass(frozen=True)
class Parameter:
    """One named parameter of a closed form.

    Attributes
    ----------
    name : str
        Parameter name, e.g. ``"c1"``.
    init : float
        Start value (overridden by a data-driven start where the model has one).
    lower, upper : float
        Bounds.
    unit : str
        Physical unit, e.g. ``"J/token"``.
    meaning : str
        What the parameter means physically.
    informed_by : tuple of str
        Kernel variables (``t, p, B, si, so, N``) whose variation identifies the parameter;
        when every one of them has a single value in the training data the parameter is
        fixed at ``neutral`` and reported as not identifiable.
    neutral : float
        Value used when the parameter cannot be identified (0 for overheads).
    """

    name: str
    init: float
    lower: float = -np.inf
    upper: float = np.inf
    unit: str = ""
    meaning: str = ""
    informed_by: tuple[str, ...] = ()
    neutral: float = 0.0


@dataclass
class _FitState:
    """Everything a fit learns besides the parameter values (kept together for save/load)."""

    free: np.ndarray  # bool mask over parameters
    not_identifiable: dict[str, str] = field(default_factory=dict)
    cov: np.ndarray | None = None  # over free parameters
    sigma: float = np.nan  # residual sd in the units of the loss
    n: int = 0
    nfev: int = 0
    success: bool = True
    message: str = ""
    rank: int = 0
    cost: float = np.nan
    fit_time_s: float = 0.0
    batch_rule: str = "cap"
    batch_k: float | None = None
    batch_k_stderr: float | None = None
    mape_pct: float = np.nan  # in-sample mean absolute percentage error
    training_summary: dict = field(default_factory=dict)


class ParametricModel(RegressorMixin, BaseEstimator):
    """Base class of closed-form energy models fitted by nonlinear least squares.

    Subclasses declare ``_parameters`` (a tuple of :class:`Parameter`), ``_variables``
    (kernel variable names, see :data:`VARIABLE_COLUMNS`), ``formula`` (text) and
    implement ``_kernel(V, theta)`` and ``_jacobian(V, theta)``, where ``V`` maps variable
    names to 1-D arrays.

    Parameters
    ----------
    loss : {"relative", "log", "absolute", "robust"}, default="relative"
        Residual minimised: ``(f - y) / y``; ``log f - log y``; ``f - y`` (joules; rarely
        wise, energies span orders of magnitude); or the relative residual under a soft-L1
        loss with scale ``f_scale``, robust to outlying runs.
    fixed : dict, optional
        Parameters held at given values, e.g. ``{"c4": 0.0}``.
    bounds : dict, optional
        Bound overrides, e.g. ``{"c3": (0.0, 0.5)}``.
    init : dict, optional
        Start-value overrides.
    batch_rule : {"auto", "running", "littles_law", "saturating", "cap"}, default="auto"
        How the effective batch is obtained (see :mod:`energylens.models.batch`).
    f_scale : float, default=0.05
        Scale of the robust loss (a relative error of 5%).
    max_nfev : int, optional
        Evaluation budget of the optimiser.
    poor_fit_mape : float, default=25.0
        In-sample MAPE (percent) above which the fit warns :class:`PoorFitWarning`.
    """

    _parameters: ClassVar[tuple[Parameter, ...]] = ()
    _variables: ClassVar[tuple[str, ...]] = ()
    formula: ClassVar[str] = ""
    #: Minimum number of distinct rows needed to fit, per free parameter.
    _target_name: ClassVar[str] = "energy_j"
    _target_unit: ClassVar[str] = "J"

    def __init__(
        self,
        *,
        loss: Loss = "relative",
        fixed: Mapping[str, float] | None = None,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        init: Mapping[str, float] | None = None,
        batch_rule: str = "auto",
        f_scale: float = 0.05,
        max_nfev: int | None = None,
        poor_fit_mape: float = 25.0,
    ):
        self.loss = loss
        self.fixed = fixed
        self.bounds = bounds
        self.init = init
        self.batch_rule = batch_rule
        self.f_scale = f_scale
        self.max_nfev = max_nfev
        self.poor_fit_mape = poor_fit_mape

    _REGISTRY: ClassVar[dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        ParametricModel._REGISTRY[cls.__name__] = cls

    @staticmethod
    def _registry() -> dict[str, type]:
        """Classes :func:`~energylens.load_model` may rebuild (every subclass, by name)."""
        return dict(ParametricModel._REGISTRY)

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> os.PathLike:
        """Save the fitted model as versioned JSON (see :func:`energylens.load_model`)."""
        from .persistence import save_model

        return save_model(self, path)

    def _get_extra_state(self) -> dict:
        """Model-specific content of the model file (expression models store their formula)."""
        return {}

    @classmethod
    def _from_extra_state(cls, init_params: dict, extra: dict) -> ParametricModel:
        """Rebuild an unfitted instance from a model file's ``init_params`` and ``extra``."""
        valid = set(cls().get_params(deep=False))
        unknown = set(init_params) - valid
        if unknown:
            raise ValueError(f"unknown constructor arguments {sorted(unknown)}")
        return cls(**init_params)

    def _variables_for_n_features(self) -> tuple[str, ...]:
        return self._variables

    # ------------------------------------------------------------------ declaration
    def _param_specs(self) -> tuple[Parameter, ...]:
        """Parameter declarations (instance-level so that expression models can vary)."""
        return self._parameters

    def _uses_batch(self) -> bool:
        return "B" in self._variables

    @property
    def parameter_names(self) -> list[str]:
        """Names of the parameters, in kernel order."""
        return [p.name for p in self._param_specs()]

    # ------------------------------------------------------------------ kernel API
    def _kernel(self, V: dict[str, np.ndarray], theta: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _jacobian(self, V: dict[str, np.ndarray], theta: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _components(self, V: dict[str, np.ndarray], theta: np.ndarray) -> pd.DataFrame | None:
        """Prefill, decode and static parts; None where the form has no such split."""
        return None

    def _initial_guess(self, V, y, w, theta0, free) -> np.ndarray:
        """Data-driven start values; the default keeps the declared ones."""
        return theta0

    # ------------------------------------------------------------------ data handling
    def _variables_from(self, X, *, fitting: bool, batch_k: float | None = None) -> dict:
        """Map a canonical table (or a 2-D array in ``_variables`` order) to kernel variables."""
        if isinstance(X, pd.DataFrame):
            V: dict[str, np.ndarray] = {}
            missing = []
            for v in self._variables:
                if v == "B":
                    continue
                col = VARIABLE_COLUMNS.get(v, v)
                if col in X.columns:
                    V[v] = pd.to_numeric(X[col], errors="coerce").to_numpy(dtype=float)
                elif v in ("p",):
                    V[v] = np.ones(len(X))
                else:
                    missing.append(col)
            if "B" in self._variables:
                if "batch_size" not in X.columns:
                    missing.append("batch_size")
                else:
                    rule = self._batch_rule_for(X, fitting=fitting)
                    V["B"] = effective_batch(X, rule, k=batch_k)
            if missing:
                raise ValueError(
                    f"{type(self).__name__} needs the column(s) {missing} in X; got columns "
                    f"{list(map(str, X.columns))}."
                )
        else:
            arr = check_array(X, dtype=np.float64, ensure_all_finite=False)
            if arr.shape[1] != len(self._variables):
                raise ValueError(
                    f"X has n_features = {arr.shape[1]}, but {type(self).__name__} expects "
                    f"{len(self._variables)} (columns "
                    f"{[VARIABLE_COLUMNS.get(v, v) for v in self._variables]}, in this order)."
                )
            V = {v: arr[:, i] for i, v in enumerate(self._variables)}
        n = len(next(iter(V.values()))) if V else 0
        bad = np.zeros(n, dtype=bool)
        for arr in V.values():
            bad |= ~np.isfinite(arr)
        if bad.any():
            raise ValueError(
                f"Input X contains NaN or infinity in {int(bad.sum())} row(s) (first rows at "
                f"positions {np.flatnonzero(bad)[:5].tolist()})."
            )
        for v, arr in V.items():
            if v in _POSITIVE and np.any(arr <= 0):
                rows = np.flatnonzero(arr <= 0)[:5].tolist()
                raise ValueError(
                    f"{type(self).__name__}: '{VARIABLE_COLUMNS.get(v, v)}' must be > 0; "
                    f"{int(np.sum(arr <= 0))} row(s) are not (first at positions {rows})."
                )
        return V

    def _batch_rule_for(self, X: pd.DataFrame, *, fitting: bool) -> str:
        if fitting:
            return resolve_batch_rule(X, self.batch_rule)
        return self._state_.batch_rule

    # ------------------------------------------------------------------ residuals
    def _check_params(self):
        if self.loss not in LOSSES:
            raise ValueError(
                f"The 'loss' parameter of {type(self).__name__} must be a str among "
                f"{set(LOSSES)}. Got {self.loss!r} instead."
            )
        if self.batch_rule not in BATCH_RULES:
            raise ValueError(
                f"The 'batch_rule' parameter of {type(self).__name__} must be a str among "
                f"{set(BATCH_RULES)}. Got {self.batch_rule!r} instead."
            )
        names = set(self.parameter_names)
        for arg in ("fixed", "bounds", "init"):
            given = getattr(self, arg) or {}
            unknown = set(given) - names
            if unknown:
                raise ValueError(
                    f"The '{arg}' parameter of {type(self).__name__} names unknown parameters "
                    f"{sorted(unknown)}; parameters are {self.parameter_names}."
                )

    def _residual_fns(self, V, y, sw, theta_full, free):
        """Residual and Jacobian functions over the free parameters."""
        loss = self.loss
        sqrt_w = np.sqrt(sw)

        def full(x):
            th = theta_full.copy()
            th[free] = x
            return th

        def fun(x):
            f = self._kernel(V, full(x))
            if loss in ("relative", "robust"):
                r = (f - y) / y
            elif loss == "log":
                r = np.log(np.maximum(f, 1e-300)) - np.log(y)
            else:
                r = f - y
            return sqrt_w * r

        def jac(x):
            th = full(x)
            J = self._jacobian(V, th)[:, free]
            if loss in ("relative", "robust"):
                J = J / y[:, None]
            elif loss == "log":
                f = self._kernel(V, th)
                J = J / np.maximum(f, 1e-300)[:, None]
            return sqrt_w[:, None] * J

        return fun, jac

    # ------------------------------------------------------------------ fitting
    def _check_table(self, X: pd.DataFrame) -> None:
        """Model-specific checks of a canonical training table (warnings use stacklevel=3)."""

    def fit(self, X, y=None, sample_weight=None):
        """Fit the parameters to measured energies.

        Parameters
        ----------
        X : DataFrame or array of shape (n_samples, n_variables)
            Canonical profiling table, or the kernel variables in ``_variables`` order.
        y : array-like of shape (n_samples,), optional
            Target (joules per request); ``X[target]`` when omitted.
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the residuals.

        Returns
        -------
        self
        """
        t0 = time.perf_counter()
        self._check_params()
        if isinstance(X, pd.DataFrame):
            self._check_table(X)
        else:
            X = check_array(X, dtype=np.float64, ensure_min_samples=2)
        y = self._target_from(X, y)
        specs = self._param_specs()
        if len(y) != len(X):
            raise ValueError(f"X and y have inconsistent numbers of samples: {len(X)} and {len(y)}.")
        if len(y) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 samples to fit; got "
                             f"n_samples = {len(y)}.")
        sw = np.ones_like(y) if sample_weight is None else np.asarray(sample_weight, float)
        if sw.shape != y.shape or np.any(~np.isfinite(sw)) or np.any(sw < 0):
            raise ValueError("sample_weight must be finite, non-negative and of the length of y.")
        if not np.any(sw > 0):
            raise ValueError("Sample weights are all zero: at least one weight must be positive.")
        if self.loss != "absolute" and np.any(y <= 0):
            raise ValueError(
                f"The {self.loss} loss needs a strictly positive target; {int(np.sum(y <= 0))} "
                f"value(s) of y are <= 0 (first {y[y <= 0][:5].tolist()}). Use loss='absolute' "
                "or clean the table."
            )
        self._state_ = _FitState(free=np.ones(len(specs), dtype=bool))
        is_df = isinstance(X, pd.DataFrame)
        rule = resolve_batch_rule(X, self.batch_rule) if (is_df and self._uses_batch()) else "cap"
        self._state_.batch_rule = rule

        if rule == "saturating":
            # Profile the fit over the saturation constant k (1-D, on a log scale).
            def objective(logk):
                try:
                    self._fit_fixed_batch(X, y, sw, specs, batch_k=10.0**logk, quiet=True)
                except (ValueError, np.linalg.LinAlgError):
                    return np.inf
                return self._state_.cost

            res = optimize.minimize_scalar(objective, bounds=(-2.0, 3.0), method="bounded",
                                           options={"xatol": 1e-3})
            k = float(10.0 ** res.x)
            self._fit_fixed_batch(X, y, sw, specs, batch_k=k, quiet=False)
            self._state_.batch_k = k
            self._state_.batch_k_stderr = self._profile_stderr(objective, res.x, k)
        else:
            self._fit_fixed_batch(X, y, sw, specs, batch_k=None, quiet=False)
        self._state_.fit_time_s = time.perf_counter() - t0
        self._state_.training_summary = self._summarise(X, y)
        return self

    def _profile_stderr(self, objective, logk, k) -> float | None:
        """Standard error of k from the curvature of the profiled cost."""
        h = 0.02
        c0, cp, cm = objective(logk), objective(logk + h), objective(logk - h)
        # Restore the fit at the optimum (objective refits as a side effect).
        objective(logk)
        curv = (cp - 2 * c0 + cm) / h**2
        n, kfree = self._state_.n, int(self._state_.free.sum()) + 1
        if not np.isfinite(curv) or curv <= 0 or n <= kfree:
            return None
        s2 = 2 * c0 / (n - kfree)
        se_logk = np.sqrt(s2 / curv)
        return float(k * np.log(10) * se_logk)

    def _target_from(self, X, y) -> np.ndarray:
        if y is None:
            if isinstance(X, pd.DataFrame) and self._target_name in X.columns:
                y = X[self._target_name]
            else:
                raise ValueError(
                    f"y is None and X has no '{self._target_name}' column: pass the measured "
                    f"target ({self._target_unit}) as y."
                )
        y = np.asarray(pd.to_numeric(pd.Series(np.asarray(y).ravel()), errors="coerce"), float)
        if np.any(~np.isfinite(y)):
            raise ValueError("Input y contains NaN or infinity.")
        return y

    def _fit_fixed_batch(self, X, y, sw, specs, *, batch_k, quiet):
        V = self._variables_from(X, fitting=True, batch_k=batch_k)
        n = len(y)
        if len(V) and len(next(iter(V.values()))) != n:
            raise ValueError(f"X and y have different lengths ({len(next(iter(V.values())))} and {n}).")
        names = [p.name for p in specs]
        theta = np.array([p.init for p in specs], dtype=float)
        lo = np.array([p.lower for p in specs], dtype=float)
        hi = np.array([p.upper for p in specs], dtype=float)
        for name, (a, b) in (self.bounds or {}).items():
            i = names.index(name)
            lo[i], hi[i] = float(a), float(b)
        for name, v in (self.init or {}).items():
            theta[names.index(name)] = float(v)
        free = np.ones(len(specs), dtype=bool)
        for name, v in (self.fixed or {}).items():
            i = names.index(name)
            theta[i] = float(v)
            free[i] = False

        # Identifiability: parameters informed only by variables that do not vary.
        not_ident: dict[str, str] = {}
        constant = {v for v, a in V.items() if np.ptp(a) <= 1e-12 * max(1.0, np.max(np.abs(a)))}
        for i, p in enumerate(specs):
            if free[i] and p.informed_by and all(v in constant for v in p.informed_by):
                label = ", ".join(_VARIABLE_LABELS.get(v, v) for v in p.informed_by)
                not_ident[p.name] = f"not identifiable from this data: a single value of {label}"
                theta[i] = p.neutral
                free[i] = False
        theta = np.clip(theta, lo, hi)
        # Numerical rank check at the start: freeze parameters whose columns are dependent.
        fun, jac = self._residual_fns(V, y, sw, theta, free)
        if free.any():
            J = jac(theta[free])
            dep = _dependent_columns(J)
            if dep:
                idx = np.flatnonzero(free)[dep]
                for i in idx:
                    not_ident[specs[i].name] = (
                        "not identifiable from this data: its effect is collinear with other terms"
                    )
                    theta[i] = specs[i].neutral
                    free[i] = False
                theta = np.clip(theta, lo, hi)
        # The data-driven start is solved for the final set of free parameters.
        if not self.init and free.any():
            theta = np.clip(self._initial_guess(V, y, sw, theta, free), lo, hi)
        fun, jac = self._residual_fns(V, y, sw, theta, free)
        if not_ident and not quiet:
            warnings.warn(
                f"{type(self).__name__}: parameter(s) {sorted(not_ident)} fixed at neutral values "
                f"because they are not identifiable from this data ("
                + "; ".join(f"{k}: {v.split(': ', 1)[-1]}" for k, v in not_ident.items())
                + ").",
                IdentifiabilityWarning,
                stacklevel=3,
            )
        state = self._state_
        state.free, state.not_identifiable, state.n = free, not_ident, n
        if free.any():
            x0 = theta[free]
            lo_f, hi_f = lo[free], hi[free]
            # Keep the start strictly inside the bounds (required by 'trf').
            span = np.where(np.isfinite(hi_f - lo_f), hi_f - lo_f, 1.0)
            x0 = np.clip(x0, lo_f + 1e-10 * span, hi_f - 1e-10 * span)
            x0 = np.where(lo_f == hi_f, lo_f, x0)
            # The exact trust-region solver is the most robust; on tall problems (thousands
            # of rows) the iterative one reaches the same optimum in a fraction of the time.
            res = optimize.least_squares(
                fun, x0, jac=jac, bounds=(lo_f, hi_f), method="trf", x_scale="jac",
                tr_solver="exact" if n * len(x0) <= _EXACT_SOLVER_MAX else "lsmr",
                loss="soft_l1" if self.loss == "robust" else "linear",
                f_scale=self.f_scale, max_nfev=self.max_nfev, xtol=1e-10, ftol=1e-10,
                gtol=1e-10,
            )
            theta[free] = res.x
            r, J = res.fun, res.jac
            state.nfev, state.success, state.message = int(res.nfev), bool(res.status > 0), res.message
        else:
            r = fun(np.empty(0))
            J = np.zeros((n, 0))
            state.nfev, state.success, state.message = 0, True, "all parameters fixed"
        self._train_ = (V, y, sw)
        k = int(free.sum())
        state.cost = float(0.5 * np.sum(r**2))
        dof = max(n - k, 1)
        state.sigma = float(np.sqrt(np.sum(r**2) / dof))
        state.cov, state.rank = _covariance(J, state.sigma) if k else (np.zeros((0, 0)), 0)
        self.coef_ = theta
        self.n_features_in_ = len(self._variables)
        self.at_bound_ = self._at_bound(theta, lo, hi, free)
        self._lo_, self._hi_ = lo, hi
        if quiet:
            return
        if not state.success:
            warnings.warn(
                f"{type(self).__name__}: the fit did not converge ({state.message}); the "
                "parameters may be unreliable.", ConvergenceWarning, stacklevel=3)
        if self.at_bound_:
            warnings.warn(
                f"{type(self).__name__}: parameter(s) {self.at_bound_} ended at a bound; "
                "their standard errors are not meaningful (see fit_report()).",
                ConvergenceWarning, stacklevel=3)
        mape = self._in_sample_mape(V, y)
        state.mape_pct = mape
        if mape > self.poor_fit_mape:
            warnings.warn(
                f"{type(self).__name__}: poor fit, in-sample MAPE {mape:.1f}% exceeds "
                f"{self.poor_fit_mape:g}%: this closed form does not describe the data well.",
                PoorFitWarning, stacklevel=3)

    def _in_sample_mape(self, V, y) -> float:
        f = self._kernel(V, self.coef_)
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(100 * np.mean(np.abs(f - y) / np.abs(y)))

    def _at_bound(self, theta, lo, hi, free) -> list[str]:
        """Free parameters at a finite bound: within a relative 1e-6 of it, or closer to it
        than a thousandth of their own standard error (indistinguishable from the bound)."""
        st = getattr(self, "_state_", None)
        se = np.full(len(theta), np.nan)
        if st is not None and st.cov is not None and st.cov.size and free.sum() == st.cov.shape[0]:
            se[free] = np.sqrt(np.maximum(np.diag(st.cov), 0))
        out = []
        for i, p in enumerate(self._param_specs()):
            if not free[i]:
                continue
            for b in (lo[i], hi[i]):
                if not np.isfinite(b):
                    continue
                tol = 1e-6 * max(abs(theta[i]), abs(b))
                if np.isfinite(se[i]):
                    tol = max(tol, 1e-3 * se[i])
                if abs(theta[i] - b) <= tol + 1e-300:
                    out.append(p.name)
                    break
        return out

    def _summarise(self, X, y) -> dict:
        s: dict[str, Any] = {"n_rows": int(len(y)), "target_min": float(np.min(y)),
                             "target_max": float(np.max(y))}
        if isinstance(X, pd.DataFrame):
            for col in ("model", "gpu", "workload", "source"):
                if col in X.columns:
                    s[f"{col}_values"] = sorted(map(str, X[col].dropna().unique()))[:20]
            ranges = {}
            for v in self._variables:
                col = VARIABLE_COLUMNS.get(v, v)
                if col in X.columns:
                    a = pd.to_numeric(X[col], errors="coerce")
                    ranges[col] = [float(a.min()), float(a.max())]
            s["ranges"] = ranges
        return s

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self):
        if not hasattr(self, "coef_"):
            raise _NotFitted(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def predict(self, X) -> np.ndarray:
        """Predicted target for each row of ``X`` (joules per request for energy models)."""
        self._check_fitted()
        V = self._variables_from(X, fitting=False, batch_k=self._state_.batch_k)
        return self._kernel(V, self.coef_)

    def predict_components(self, X) -> pd.DataFrame:
        """Prefill, decode and static parts of the prediction (columns ``prefill_j, decode_j,
        static_j``; they sum to :meth:`predict`)."""
        self._check_fitted()
        V = self._variables_from(X, fitting=False, batch_k=self._state_.batch_k)
        comp = self._components(V, self.coef_)
        if comp is None:
            raise NotImplementedError(f"{type(self).__name__} has no prefill/decode/static split.")
        if isinstance(X, pd.DataFrame):
            comp.index = X.index
        return comp

    def predict_interval(
        self,
        X,
        level: float = 0.9,
        *,
        kind: Literal["prediction", "confidence"] = "prediction",
        method: Literal["delta", "bootstrap"] = "delta",
        n_boot: int = 200,
        random_state: int | None = 0,
    ) -> pd.DataFrame:
        """Prediction with a two-sided interval.

        Parameters
        ----------
        X : DataFrame or array
            Configurations.
        level : float, default=0.9
            Coverage probability of the interval.
        kind : {"prediction", "confidence"}
            ``"prediction"`` covers a new measurement (parameter uncertainty plus the
            residual scatter); ``"confidence"`` covers the mean only.
        method : {"delta", "bootstrap"}
            Delta method from the parameter covariance (fast), or a residual bootstrap that
            refits the model ``n_boot`` times (needs the training data kept by ``fit``;
            slower, better for strongly nonlinear parameters).

        Returns
        -------
        DataFrame
            Columns ``energy_j`` (the prediction), ``lower``, ``upper``, ``stderr``.
        """
        self._check_fitted()
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1); got {level!r}.")
        if kind not in ("prediction", "confidence"):
            raise ValueError(f"kind must be 'prediction' or 'confidence'; got {kind!r}.")
        if method not in ("delta", "bootstrap"):
            raise ValueError(f"method must be 'delta' or 'bootstrap'; got {method!r}.")
        V = self._variables_from(X, fitting=False, batch_k=self._state_.batch_k)
        f = self._kernel(V, self.coef_)
        st = self._state_
        free = st.free
        dof = max(st.n - int(free.sum()), 1)
        z = stats.t.ppf(0.5 + level / 2, dof)
        if method == "delta":
            G = self._jacobian(V, self.coef_)[:, free]
            var_mean = np.einsum("ij,jk,ik->i", G, st.cov, G) if free.any() else np.zeros(len(f))
            var_mean = np.maximum(var_mean, 0)
        else:
            var_mean = self._bootstrap_variance(V, f, n_boot, random_state)
        if kind == "prediction":
            noise = self._noise_sd(f)
            var = var_mean + noise**2
        else:
            var = var_mean
        sd = np.sqrt(var)
        if self.loss == "log":
            # Interval on the log scale: symmetric in relative terms, never negative.
            rel = sd / np.maximum(f, 1e-300)
            lower, upper = f * np.exp(-z * rel), f * np.exp(z * rel)
        else:
            lower, upper = np.maximum(f - z * sd, 0.0), f + z * sd
        out = pd.DataFrame({self._target_name: f, "lower": lower, "upper": upper, "stderr": sd})
        if isinstance(X, pd.DataFrame):
            out.index = X.index
        return out

    def _noise_sd(self, f: np.ndarray) -> np.ndarray:
        """Residual scatter of one measurement, in the target's units."""
        s = self._state_.sigma
        if self.loss == "absolute":
            return np.full_like(f, s)
        return s * np.abs(f)

    def _bootstrap_variance(self, V, f, n_boot, random_state):
        """Variance of the mean prediction over refits on residual-resampled targets."""
        Vt, yt, swt = self._train_
        st = self._state_
        free = st.free
        if not free.any():
            return np.zeros(len(f))
        rng = np.random.default_rng(random_state)
        f_train = self._kernel(Vt, self.coef_)
        if self.loss == "absolute":
            resid = yt - f_train
        elif self.loss == "log":
            resid = np.log(yt) - np.log(f_train)
        else:
            resid = (yt - f_train) / f_train
        lo, hi = self._lo_[free], self._hi_[free]
        preds = []
        for _ in range(n_boot):
            r = rng.choice(resid, size=len(resid), replace=True)
            if self.loss == "absolute":
                yb = f_train + r
            elif self.loss == "log":
                yb = f_train * np.exp(r)
            else:
                yb = f_train * (1 + r)
            if self.loss != "absolute" and np.any(yb <= 0):
                yb = np.maximum(yb, 1e-12 * np.max(np.abs(yb)))
            fun, jac = self._residual_fns(Vt, yb, swt, self.coef_.copy(), free)
            x0 = np.clip(self.coef_[free], lo, hi)
            res = optimize.least_squares(fun, x0, jac=jac, bounds=(lo, hi), method="trf",
                                         x_scale="jac", max_nfev=200)
            th = self.coef_.copy()
            th[free] = res.x
            preds.append(self._kernel(V, th))
        return np.var(np.asarray(preds), axis=0, ddof=1)

    # ------------------------------------------------------------------ reporting
    @property
    def params_(self) -> pd.DataFrame:
        """Fitted parameters: value, standard error, bounds, unit, meaning and flags."""
        self._check_fitted()
        st = self._state_
        specs = self._param_specs()
        se = np.full(len(specs), np.nan)
        if st.free.any():
            se[st.free] = np.sqrt(np.maximum(np.diag(st.cov), 0))
        rows = []
        for i, p in enumerate(specs):
            fixed_by_user = p.name in (self.fixed or {})
            rows.append({
                "value": float(self.coef_[i]),
                "stderr": float(se[i]),
                "rel_stderr": float(se[i] / abs(self.coef_[i])) if self.coef_[i] != 0 else np.nan,
                "lower": float(self._lo_[i]),
                "upper": float(self._hi_[i]),
                "unit": p.unit,
                "meaning": p.meaning,
                "fixed": not bool(st.free[i]),
                "at_bound": p.name in self.at_bound_,
                "identifiable": p.name not in st.not_identifiable,
                "note": st.not_identifiable.get(p.name, "fixed by the user" if fixed_by_user else ""),
            })
        df = pd.DataFrame(rows, index=pd.Index([p.name for p in specs], name="parameter"))
        return df

    @property
    def correlation_(self) -> pd.DataFrame:
        """Correlation matrix of the free parameters."""
        self._check_fitted()
        st = self._state_
        names = [p.name for p, f in zip(self._param_specs(), st.free) if f]
        cov = st.cov
        d = np.sqrt(np.maximum(np.diag(cov), 1e-300))
        corr = cov / np.outer(d, d)
        return pd.DataFrame(corr, index=names, columns=names)

    @property
    def n_free_params_(self) -> int:
        self._check_fitted()
        return int(self._state_.free.sum())

    @property
    def aic_(self) -> float:
        """Akaike information criterion of the fit (Gaussian residuals of the loss)."""
        self._check_fitted()
        n, k = self._state_.n, self.n_free_params_
        rss = max(2 * self._state_.cost, 1e-300)
        return float(n * np.log(rss / n) + 2 * k)

    @property
    def bic_(self) -> float:
        """Bayesian information criterion of the fit."""
        self._check_fitted()
        n, k = self._state_.n, self.n_free_params_
        rss = max(2 * self._state_.cost, 1e-300)
        return float(n * np.log(rss / n) + k * np.log(n))

    @property
    def batch_rule_(self) -> str:
        """Effective-batch rule used by the fit (``"running"``, ``"littles_law"``, ...)."""
        self._check_fitted()
        return self._state_.batch_rule

    @property
    def batch_k_(self) -> float | None:
        """Fitted saturation constant of the ``"saturating"`` batch rule (else None)."""
        self._check_fitted()
        return self._state_.batch_k

    @property
    def fit_stats_(self) -> dict:
        """Summary numbers of the fit (n, free parameters, rank, converged, AIC, BIC, ...)."""
        self._check_fitted()
        st = self._state_
        return {
            "n": st.n, "n_params": len(self.coef_), "n_free": self.n_free_params_,
            "rank": st.rank, "converged": st.success, "nfev": st.nfev, "loss": self.loss,
            "sigma": st.sigma, "mape_pct": st.mape_pct, "aic": self.aic_, "bic": self.bic_, "fit_time_s": st.fit_time_s,
            "batch_rule": st.batch_rule, "batch_k": st.batch_k,
            "not_identifiable": sorted(st.not_identifiable), "at_bound": list(self.at_bound_),
        }

    def fit_report(self, *, min_correlation: float = 0.5) -> str:
        """A text report of the fit: statistics, parameters with errors, strong correlations."""
        self._check_fitted()
        st = self._state_
        P = self.params_
        lines = [f"[[{type(self).__name__} fit]]"]
        if self.formula:
            lines.append(f"    formula: {self.formula}")
        lines.append(f"    loss = {self.loss}, n = {st.n}, parameters = {len(P)} "
                     f"(free {self.n_free_params_}, fixed {len(P) - self.n_free_params_})")
        lines.append(f"    converged: {'yes' if st.success else 'NO'} (nfev {st.nfev}); "
                     f"Jacobian rank {st.rank} of {self.n_free_params_}")
        lines.append(f"    residual sd ({self.loss}) = {st.sigma:.4g}; in-sample MAPE = "
                     f"{st.mape_pct:.2f}%; AIC = {self.aic_:.2f}; BIC = {self.bic_:.2f}")
        if self._uses_batch():
            btxt = f"    effective batch: {st.batch_rule}"
            if st.batch_k is not None:
                se = f" +/- {st.batch_k_stderr:.3g}" if st.batch_k_stderr else ""
                btxt += f" (k = {st.batch_k:.4g}{se})"
            lines.append(btxt)
        warn = []
        if not st.success:
            warn.append("the optimiser did not converge")
        if self.at_bound_:
            warn.append(f"at bound: {', '.join(self.at_bound_)}")
        if st.not_identifiable:
            warn.append(f"not identifiable: {', '.join(st.not_identifiable)}")
        if st.mape_pct > self.poor_fit_mape:
            warn.append(f"POOR FIT (in-sample MAPE {st.mape_pct:.1f}% > {self.poor_fit_mape:g}%)")
        if warn:
            lines.append("    WARNING: " + "; ".join(warn))
        lines.append("[[Parameters]]")
        w = max(len(n) for n in P.index) if len(P) else 1
        for name, r in P.iterrows():
            if r["fixed"]:
                why = r["note"] or "fixed"
                txt = f"    {name:<{w}} = {r['value']: .6g} ({why})"
            else:
                rel = (f" ({100 * r['rel_stderr']:.1f}%)"
                       if np.isfinite(r["rel_stderr"]) and not r["at_bound"] else "")
                txt = f"    {name:<{w}} = {r['value']: .6g} +/- {r['stderr']:.3g}{rel}"
                if r["at_bound"]:
                    txt += " AT BOUND"
            txt += f"  [{r['unit']}]  {r['meaning']}"
            lines.append(txt)
        if self.n_free_params_ > 1:
            C = self.correlation_
            pairs = []
            names = list(C.index)
            for i in range(len(names)):
                for j in range(i + 1, len(names)):
                    c = C.iat[i, j]
                    if abs(c) >= min_correlation:
                        pairs.append((abs(c), names[i], names[j], c))
            if pairs:
                lines.append(f"[[Correlations]] (|C| >= {min_correlation})")
                for _, a, b, c in sorted(pairs, reverse=True):
                    lines.append(f"    C({a}, {b}) = {c:+.3f}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        if not hasattr(self, "coef_"):
            return f"<pre>{html.escape(repr(self))} (not fitted)</pre>"
        st = self._state_
        P = self.params_
        head = (f"<p><b>{html.escape(type(self).__name__)}</b> &mdash; n = {st.n}, loss = "
                f"{html.escape(self.loss)}, converged = {st.success}, AIC = {self.aic_:.2f}, "
                f"BIC = {self.bic_:.2f}</p>")
        if self.formula:
            head += f"<p><code>{html.escape(self.formula)}</code></p>"
        rows = []
        for name, r in P.iterrows():
            val = f"{r['value']:.6g}"
            err = "fixed" if r["fixed"] else f"{r['stderr']:.3g}"
            flag = html.escape(r["note"]) + (" at bound" if r["at_bound"] else "")
            rows.append(f"<tr><td>{html.escape(name)}</td><td>{val}</td><td>{err}</td>"
                        f"<td>{html.escape(r['unit'])}</td><td>{html.escape(r['meaning'])}</td>"
                        f"<td>{flag}</td></tr>")
        table = ("<table><thead><tr><th>parameter</th><th>value</th><th>std. error</th>"
                 "<th>unit</th><th>meaning</th><th>note</th></tr></thead><tbody>"
                 + "".join(rows) + "</tbody></table>")
        return head + table

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # fit(df) reads the target from the table, so y is optional.
        tags.target_tags.required = False
        # Relative, log and robust losses need energies > 0.
        tags.target_tags.positive_only = self.loss != "absolute"
        tags.input_tags.allow_nan = False
        return tags


class _NotFitted(NotFittedError, _SklearnNotFittedError):
    """Raised before fit: energylens's and scikit-learn's NotFittedError at once."""


def positive_start(A: np.ndarray, b: np.ndarray, sol: np.ndarray) -> np.ndarray:
    """Replace zero entries of a non-negative least-squares start by small positive values.

    A parameter that starts exactly at its lower bound of 0 cannot leave it under the
    trust-region-reflective scaling; each zero becomes the value whose term alone would
    explain 0.1% of the (scaled) target, so that the optimiser can still move it.
    """
    out = sol.copy()
    scale_b = float(np.median(np.abs(b))) or 1.0
    for j in np.flatnonzero(out <= 0):
        col = float(np.median(np.abs(A[:, j])))
        out[j] = 1e-3 * scale_b / col if col > 0 else 1e-12
    return out


def _dependent_columns(J: np.ndarray, tol: float = 1e-7) -> list[int]:
    """Indices of columns of J that are (numerically) linear combinations of the others.

    Works on the Gram matrix of the unit-normalised columns (k x k, cheap for tall J) with
    a column-pivoted QR; ``tol`` is relative to the largest singular value of J.
    """
    if J.size == 0:
        return []
    norms = np.linalg.norm(J, axis=0)
    dead = np.flatnonzero(norms <= 1e-300)
    Js = J / np.where(norms > 1e-300, norms, 1.0)
    G = Js.T @ Js
    _, R, piv = linalg.qr(G, pivoting=True)
    diag = np.abs(np.diag(R))
    rank = int(np.sum(diag > tol**2 * max(diag[0], 1e-300)))
    dep = set(piv[rank:].tolist()) | set(dead.tolist())
    return sorted(dep)


def _covariance(J: np.ndarray, sigma: float) -> tuple[np.ndarray, int]:
    """Parameter covariance sigma^2 (J^T J)^-1 and the numerical rank of J.

    Uses the eigen-decomposition of the k x k Gram matrix of the column-scaled Jacobian
    (cheap for tall J); directions with singular values below 1e-7 of the largest are
    treated as unidentified (pseudo-inverse).
    """
    norms = np.linalg.norm(J, axis=0)
    norms = np.where(norms > 0, norms, 1.0)
    Js = J / norms
    w, U = np.linalg.eigh(Js.T @ Js)
    keep = w > 1e-14 * max(w.max(initial=0.0), 1e-300)
    w_inv = np.where(keep, 1.0 / np.where(keep, w, 1.0), 0.0)
    cov_s = (U * w_inv) @ U.T
    return cov_s / np.outer(norms, norms) * sigma**2, int(keep.sum())
