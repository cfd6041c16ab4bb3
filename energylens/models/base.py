"""The estimator every closed form in energylens derives from.

A closed form is declared once: its :class:`~energylens.models.parameters.Parameter` list,
the variables it reads (short names of :mod:`energylens.core.variables`), a formula and a
pure kernel ``f(V, theta)`` with its analytic Jacobian. :class:`ParametricModel` is the thin
estimator around it: ``fit`` reads the table (:mod:`.design`), solves
(:mod:`.least_squares`) and records the state (:mod:`.state`); ``predict`` evaluates the
kernel and flags rows outside the training data; intervals (:mod:`.intervals`), reports
(:mod:`.report`) and files (:mod:`.persistence`) live in their own modules.

The same machinery fits the twelve-parameter :class:`~energylens.EnergyLensModel`, the
:class:`~energylens.SweetSpotModel`, the analytical baselines and every formula that
symbolic regression discovers, so they are compared on equal terms.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Mapping
from numbers import Integral, Real
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from ..core.batch import BATCH_RULES, effective, effective_batch, resolve_rule
from ..core.blocks import in_row_blocks
from ..core.domain import Domain, Extrapolation
from ..core.options import Interval, StrOptions, check_fitted
from ..core.threads import single_blas_thread
from ..core.variables import array_variables, check_variables, table_variables
from ..exceptions import ExtrapolationWarning
from . import registry
from .design import TrainingData, check_positive_target, checked_prediction, training_data
from .least_squares import (
    Problem,
    Solution,
    at_bound,
    fit_problem,
    profile_scalar,
)
from .parameters import Parameter, check_overrides, resolve
from .settings import FittedParams, snapshot
from .start import positive_start
from .state import FitState

__all__ = ["Parameter", "ParametricModel", "LOSSES", "positive_start"]

LOSSES = ("relative", "log", "absolute", "robust")
Loss = Literal["relative", "log", "absolute", "robust"]
#: Search range of log10 k for the saturating batch rule.
_LOG_K_BOUNDS = (-2.0, 3.0)


@functools.cache
def _param_names(cls) -> list[str]:
    return BaseEstimator._get_param_names.__func__(cls)


class ParametricModel(FittedParams, RegressorMixin, BaseEstimator):
    """Base class of closed-form energy models fitted by nonlinear least squares.

    Subclasses declare ``_parameters`` (a tuple of
    :class:`~energylens.models.parameters.Parameter`), ``_variables`` (short names, see
    :mod:`energylens.core.variables`), ``formula`` (text) and implement ``_kernel(V, theta)``
    and ``_jacobian(V, theta)`` (a new array each call), where ``V`` maps variable names to
    1-D arrays.

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
        Start-value overrides (they replace the data-driven start).
    batch_rule : {"auto", "running", "littles_law", "saturating", "cap"}, default="auto"
        How the effective batch is obtained (see :mod:`energylens.core.batch`).
    f_scale : float, default=0.05
        Scale of the robust loss (a relative error of 5%).
    max_nfev : int, optional
        Evaluation budget of the optimiser.
    poor_fit_mape : float, default=25.0
        In-sample MAPE (percent) above which the fit warns :class:`~energylens.PoorFitWarning`.

    Notes
    -----
    As in scikit-learn, ``set_params`` on a fitted model takes effect at the next ``fit``:
    predictions, intervals, reports and files keep using the parameters the model was fitted
    with (``fitted_params_``).
    """

    _parameters: ClassVar[tuple[Parameter, ...]] = ()
    _variables: ClassVar[tuple[str, ...]] = ()
    formula: ClassVar[str] = ""
    _target_name: ClassVar[str] = "energy_j"
    _target_unit: ClassVar[str] = "J"
    _parameter_constraints: ClassVar[dict] = {
        "loss": [StrOptions(set(LOSSES))],
        "fixed": [Mapping, None],
        "bounds": [Mapping, None],
        "init": [Mapping, None],
        "batch_rule": [StrOptions(set(BATCH_RULES))],
        "f_scale": [Interval(Real, 0, None, closed="neither")],
        "max_nfev": [Interval(Integral, 1, None, closed="left"), None],
        "poor_fit_mape": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, *, loss: Loss = "relative", fixed: Mapping[str, float] | None = None,
                 bounds: Mapping[str, tuple[float, float]] | None = None,
                 init: Mapping[str, float] | None = None, batch_rule: str = "auto",
                 f_scale: float = 0.05, max_nfev: int | None = None, poor_fit_mape: float = 25.0):
        self.loss = loss
        self.fixed = fixed
        self.bounds = bounds
        self.init = init
        self.batch_rule = batch_rule
        self.f_scale = f_scale
        self.max_nfev = max_nfev
        self.poor_fit_mape = poor_fit_mape

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        registry.register(cls)

    @classmethod
    def _get_param_names(cls):
        # read once per class: scikit-learn reads the signature on every get_params/clone
        return _param_names(cls)

    # ------------------------------------------------------------------ declaration
    def _param_specs(self) -> tuple[Parameter, ...]:
        """Parameter declarations (instance-level so that expression models can vary)."""
        return self._parameters

    def _model_variables(self) -> tuple[str, ...]:
        """Variables the kernel reads (instance-level for models with options)."""
        return tuple(self._variables)

    def _uses_batch(self) -> bool:
        return "B" in self._model_variables()

    @property
    def parameter_names(self) -> list[str]:
        """Names of the parameters, in kernel order."""
        return [p.name for p in self._param_specs()]

    def _kernel(self, V: dict[str, np.ndarray], theta: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _jacobian(self, V: dict[str, np.ndarray], theta: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _components(self, V: dict[str, np.ndarray], theta: np.ndarray) -> pd.DataFrame | None:
        """Prefill, decode and static parts; None where the form has no such split."""
        return None

    def _initial_guess(self, V, y, w, theta0, free) -> np.ndarray:
        """Data-driven start values for forms that need their own (the default: parameters
        declared ``linear`` start from a least-squares solve, see
        :func:`~energylens.models.least_squares.fit_problem`)."""
        return theta0

    def _check_table(self, X: pd.DataFrame) -> None:
        """Model-specific checks of a training table (warnings use ``stacklevel=4``)."""

    def _read_variables(self, X: pd.DataFrame, names, fill, owner) -> dict[str, np.ndarray]:
        """Read kernel variables from a table, unchecked (a hook for models with derived
        variables; the caller checks them)."""
        return table_variables(X, names, fill=fill, owner=owner, check=False)

    # ------------------------------------------------------------------ fitting
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
        with self._fitting():
            self._check_settings()
            if isinstance(X, pd.DataFrame):
                self._check_table(X)
            data = training_data(
                X, y, sample_weight, variables=self._model_variables(), uses_batch=self._uses_batch(),
                target=self._target_name, unit=self._target_unit, owner=type(self).__name__,
                read=self._read_variables)
            self._fit_data(data)
        return self

    def _check_settings(self) -> None:
        """Validate the constructor parameters, and the ``fixed``, ``bounds`` and ``init``
        overrides against the parameters (``ValueError`` naming parameter and value)."""
        self._validate_params()
        check_overrides(type(self).__name__, self._param_specs(), fixed=self.fixed,
                        bounds=self.bounds, init=self.init)

    def _fit_data(self, data: TrainingData) -> None:
        """Fit from arrays (``fit`` and grouped fits end here, inside :meth:`_fitting`)."""
        with single_blas_thread():
            self._fit_arrays(data)

    def _fit_arrays(self, data: TrainingData) -> None:
        t0 = time.perf_counter()
        if self.loss != "absolute":
            check_positive_target(data.y, type(self).__name__, data.index)
        rule = "cap" if data.batch is None else resolve_rule(  # the warning at fit's caller
            data.batch, self.batch_rule, stacklevel=4)
        k = k_se = None
        k_edge = False
        if rule == "saturating":
            def cost(logk):
                try:
                    return self._solve(data, rule, 10.0**logk)[0].cost
                except (ValueError, np.linalg.LinAlgError):
                    return np.inf

            n_free = len(self._param_specs()) - len(self.fixed or {})
            logk, se, k_edge = profile_scalar(cost, _LOG_K_BOUNDS, n=len(data.y), k_free=n_free)
            k = float(10.0**logk)
            k_se = None if se is None else float(k * np.log(10) * se)
        sol, V, resolved = self._solve(data, rule, k)
        self._set_fitted(sol, V, data, resolved, rule, k, k_se, k_edge)
        self._state_.fit_time_s = time.perf_counter() - t0

    def _solve(self, data: TrainingData, rule: str, k: float | None) -> tuple[Solution, dict, object]:
        V = dict(data.V)
        if data.batch is not None:
            V["B"] = effective(data.batch, rule, k)
        specs = self._param_specs()
        resolved = resolve(specs, fixed=self.fixed, bounds=self.bounds, init=self.init)
        problem = Problem(self._kernel, self._jacobian, V, data.y, data.w, self.loss, self.f_scale,
                          jacobian_into=getattr(self, "_jacobian_into", None))
        custom = type(self)._initial_guess is not ParametricModel._initial_guess
        sol = fit_problem(problem, specs, resolved, max_nfev=self.max_nfev,
                          initial_guess=self._initial_guess if custom and not self.init else None,
                          linear_start=not self.init)
        return sol, V, resolved

    def _set_fitted(self, sol: Solution, V, data: TrainingData, resolved, rule, k, k_se,
                    k_edge) -> None:
        self.coef_ = sol.theta
        self._lo_, self._hi_ = resolved.lower, resolved.upper
        self.n_features_in_ = len(self._model_variables())
        from .report import fit_warnings, in_sample

        train_mape, n_negative = in_sample(self, sol, V, data)
        self._state_ = FitState(
            free=sol.free, not_identifiable=sol.not_identifiable, cov=sol.cov, sigma=sol.sigma,
            n=len(data.y), nfev=sol.nfev, success=sol.success, message=sol.message, rank=sol.rank,
            cost=sol.cost, batch_rule=rule, batch_k=k, batch_k_stderr=k_se, batch_k_at_bound=k_edge,
            mape_pct=train_mape, n_negative=n_negative,
            domain=Domain.from_training(V, data.seen(), filled=data.filled,
                                        known=data.ranges, settings=data.settings))
        self.at_bound_ = at_bound(sol.theta, self._lo_, self._hi_, sol.free, sol.cov,
                                  self.parameter_names)
        self._train_ = (V, data.y, data.w)
        for category, message in fit_warnings(self):
            warnings.warn(f"{type(self).__name__}: {message}", category, stacklevel=5)

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        check_fitted(self, "coef_")

    def _predict_variables(self, X, *, warn: bool = True, stacklevel: int = 3
                           ) -> tuple[dict, Extrapolation]:
        """Kernel variables of new rows, and which rows lie outside the training domain (the
        warning's ``stacklevel`` counted from here: 3 is the caller of a public method)."""
        self._check_fitted()
        st = self._state_
        names = self._model_variables()
        ranges: dict = {}
        owner = type(self).__name__
        if isinstance(X, pd.DataFrame):
            plain = [v for v in names if not (v == "B" and self._uses_batch())]
            V = self._read_variables(X, plain, st.domain.constant_values(), owner)
            if self._uses_batch():
                V["B"] = effective_batch(X, st.batch_rule, k=st.batch_k, owner=owner)
            check_variables(V, X.index, owner, ranges)
        else:
            V = array_variables(X, names, owner=owner)
        ext = st.domain.check(V, X if isinstance(X, pd.DataFrame) else None, ranges=ranges)
        if warn and ext.any:
            warnings.warn(f"{owner}: {int(ext.mask.sum())} of {len(ext.mask)} row(s) lie outside "
                          f"the training data ({ext.describe()}); these predictions extrapolate.",
                          ExtrapolationWarning, stacklevel=stacklevel)
        return V, ext

    def _checked_output(self, f: np.ndarray, X) -> np.ndarray:
        return checked_prediction(f, X, type(self).__name__, self._target_name)

    def predict(self, X) -> np.ndarray:
        """Predicted target for each row of ``X`` (joules per request for energy models).

        Rows outside the training data (a variable beyond its fitted range, a model or GPU
        never seen) are predicted and flagged by one :class:`~energylens.ExtrapolationWarning`.
        """
        V, _ = self._predict_variables(X)
        return self._checked_output(in_row_blocks(self._kernel, V, self.coef_), X)

    def predict_components(self, X) -> pd.DataFrame:
        """Prefill, decode and static parts of the prediction (columns ``prefill_j, decode_j,
        static_j``; they sum to :meth:`predict`)."""
        V, _ = self._predict_variables(X)
        comp = self._components(V, self.coef_)
        if comp is None:
            raise NotImplementedError(f"{type(self).__name__} has no prefill/decode/static split.")
        if isinstance(X, pd.DataFrame):
            comp.index = X.index
        return comp

    def predict_interval(self, X, level: float = 0.9, *,
                         kind: Literal["prediction", "confidence"] = "prediction",
                         method: Literal["delta", "bootstrap"] = "delta", n_boot: int = 200,
                         random_state: int | None = 0) -> pd.DataFrame:
        """Prediction with a two-sided interval; see :func:`energylens.models.intervals.predict_interval`."""
        from .intervals import predict_interval

        return predict_interval(self, X, level, kind=kind, method=method, n_boot=n_boot,
                                random_state=random_state)

    # ------------------------------------------------------------------ reporting
    @property
    def params_(self) -> pd.DataFrame:
        """Fitted parameters: value, standard error, bounds, unit, meaning and flags."""
        from .report import params_table

        return params_table(self)

    @property
    def correlation_(self) -> pd.DataFrame:
        """Correlation matrix of the free parameters."""
        from .report import correlation_table

        return correlation_table(self)

    @property
    def n_free_params_(self) -> int:
        self._check_fitted()
        return int(self._state_.free.sum())

    @property
    def aic_(self) -> float:
        """Akaike information criterion of the fit (Gaussian residuals of the loss)."""
        return self.fit_stats_["aic"]

    @property
    def bic_(self) -> float:
        """Bayesian information criterion of the fit."""
        return self.fit_stats_["bic"]

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
    def domain_(self) -> Domain:
        """The training domain: ranges of the variables and labels seen."""
        self._check_fitted()
        return self._state_.domain.resolved()

    @property
    def fit_stats_(self) -> dict:
        """Summary numbers of the fit (n, free parameters, rank, converged, AIC, BIC, ...)."""
        from .report import fit_stats

        return fit_stats(self)

    def fit_report(self, *, min_correlation: float = 0.5) -> str:
        """A text report of the fit: statistics, parameters with errors, strong correlations."""
        from .report import fit_report

        return fit_report(self, min_correlation=min_correlation)

    def _repr_html_(self) -> str:
        from .report import html_report

        return html_report(self)

    # ------------------------------------------------------------------ persistence
    def save(self, path, *, force: bool = False):
        """Save the fitted model as versioned JSON (see :func:`energylens.load_model`); an
        existing file at ``path`` is replaced only if it is an energylens model file, or with
        ``force=True`` (else :class:`FileExistsError`; see :func:`~energylens.models.save_model`)."""
        from .persistence import save_model

        return save_model(self, path, force=force)

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

    def _restore(self, coef: np.ndarray, lower: np.ndarray, upper: np.ndarray, state: FitState) -> None:
        """Set the fitted state read from a model file (checked by the caller)."""
        self.coef_, self._lo_, self._hi_, self._state_ = coef, lower, upper, state
        self.fitted_params_ = snapshot(self)
        self.n_features_in_ = len(self._model_variables())
        self.at_bound_ = at_bound(coef, lower, upper, state.free, state.cov, self.parameter_names)

    def __getstate__(self):
        # The training arrays serve bootstrap intervals in this process only; pickles and
        # model files carry the fitted state, not the data.
        state = self.__dict__.copy()
        state.pop("_train_", None)
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False  # fit(df) reads the target from the table
        tags.target_tags.positive_only = self.loss != "absolute"
        tags.input_tags.allow_nan = False
        return tags
