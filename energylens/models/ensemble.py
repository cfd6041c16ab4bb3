"""Black-box ensemble surrogates with the same estimator API as the closed forms.

Random forest, scikit-learn's histogram gradient boosting and (optional extra) XGBoost,
on the numeric configuration variables (with the effective batch) plus one-hot labels
(GPU, model, workload, source), fitted on log energy by default; and a closed form plus
gradient boosting on its log residual.

A 2-D array input is taken as numeric features as they are (no labels), so the estimators
also work on plain matrices.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.utils.validation import check_array, column_or_1d

from .._optional import import_optional
from ..core.batch import effective_batch, resolve_batch_rule
from ..core.domain import Domain
from ..core.options import check_fitted
from ..exceptions import ExtrapolationWarning

__all__ = ["EnsembleEnergyModel", "RandomForestEnergyModel", "GradientBoostingEnergyModel",
           "XGBoostEnergyModel", "ResidualBoostedModel", "NUMERIC_FEATURES", "LABEL_FEATURES"]

NUMERIC_FEATURES = ("tp", "pp", "dp", "batch", "requests_per_replica", "input_tokens",
                    "output_tokens", "params_b", "n_gpus")
LABEL_FEATURES = ("gpu", "model", "workload", "source")


def _batch_rule(X: pd.DataFrame) -> str:
    """The batch rule of the features: the table's own, except that the saturating rule
    (whose constant a closed form fits) becomes the cap plus the requests per replica as a
    feature of its own, which trees can combine as they need."""
    rule = resolve_batch_rule(X, "auto") if "batch_size" in X.columns else "cap"
    return "cap" if rule == "saturating" else rule


def _features(X: pd.DataFrame, rule: str) -> pd.DataFrame:
    F = pd.DataFrame(index=X.index)
    for c in NUMERIC_FEATURES:
        if c == "batch" and "batch_size" in X.columns:
            F[c] = effective_batch(X, rule)
        elif c == "requests_per_replica" and "n_requests" in X.columns:
            dp = pd.to_numeric(X["dp"], errors="coerce") if "dp" in X.columns else 1.0
            F[c] = pd.to_numeric(X["n_requests"], errors="coerce") / dp
        elif c == "n_gpus" and {"tp", "pp"} <= set(X.columns):
            dp = X["dp"] if "dp" in X.columns else 1
            F[c] = (X["tp"] * X["pp"] * dp).astype(float)
        elif c in X.columns:
            F[c] = pd.to_numeric(X[c], errors="coerce").astype(float)
    for c in LABEL_FEATURES:
        if c in X.columns:
            F[c] = X[c].astype(str).to_numpy(dtype=object)
    return F


class EnsembleEnergyModel(RegressorMixin, BaseEstimator):
    """Base of the ensemble surrogates; subclasses provide ``_regressor()``.

    Parameters
    ----------
    log_target : bool, default=True
        Fit log energy and predict its exponential (energies span orders of magnitude).
    random_state : int, default=0
        Seed of the underlying ensemble.
    """

    def __init__(self, *, log_target: bool = True, random_state: int = 0):
        self.log_target = log_target
        self.random_state = random_state

    def _regressor(self):
        raise NotImplementedError

    def fit(self, X, y=None):
        """Fit on a canonical table (``y`` defaults to ``X["energy_j"]``) or a numeric array."""
        if y is None:
            if not isinstance(X, pd.DataFrame) or "energy_j" not in X.columns:
                raise ValueError("y is None and X has no 'energy_j' column.")
            y = X["energy_j"]
        y = column_or_1d(np.asarray(y, dtype=float), warn=True)
        if isinstance(X, pd.DataFrame) and not all(isinstance(c, (int, np.integer)) for c in X.columns):
            self.batch_rule_ = _batch_rule(X)
            F = _features(X, self.batch_rule_)
            self.numeric_ = [c for c in F.columns if c in NUMERIC_FEATURES]
            self.labels_ = [c for c in F.columns if c in LABEL_FEATURES]
            if not self.numeric_:
                raise ValueError(f"X has none of the numeric features {list(NUMERIC_FEATURES)}.")
            pre = ColumnTransformer(
                [("num", "passthrough", self.numeric_)]
                + ([("lab", OneHotEncoder(handle_unknown="ignore", sparse_output=False), self.labels_)]
                   if self.labels_ else []))
            self.pipeline_ = make_pipeline(pre, self._regressor())
            data = F
            self.table_input_ = True
            self.domain_ = Domain.from_training({c: F[c].to_numpy(float) for c in self.numeric_}, X)
        else:
            data = check_array(X, dtype=np.float64)
            self.pipeline_ = self._regressor()
            self.table_input_ = False
        if len(y) != len(data):
            raise ValueError(f"X and y have inconsistent numbers of samples: {len(data)} and {len(y)}.")
        if self.log_target:
            if np.any(y <= 0):
                raise ValueError("log_target=True needs y > 0; pass log_target=False otherwise.")
            target = np.log(y)
        else:
            target = y
        self.pipeline_.fit(data, target)
        self.log_target_ = bool(self.log_target)  # set_params after fit changes the next fit only
        self.n_features_in_ = data.shape[1]
        return self

    def predict(self, X) -> np.ndarray:
        """Predicted energy per request (J)."""
        check_fitted(self, "pipeline_")
        if self.table_input_:
            if not isinstance(X, pd.DataFrame):
                raise ValueError("This model was fitted on a table: predict needs a DataFrame.")
            data = _features(X, self.batch_rule_)
            missing = [c for c in self.numeric_ + self.labels_ if c not in data.columns]
            if missing:
                raise ValueError(f"X lacks the column(s) {missing} used in fit.")
            ext = self.domain_.check({c: data[c].to_numpy(float) for c in self.numeric_}, X)
            if ext.any:
                warnings.warn(f"{type(self).__name__}: {int(ext.mask.sum())} of {len(X)} row(s) lie "
                              f"outside the training data ({ext.describe()}); trees predict there "
                              "the values of the nearest training rows.", ExtrapolationWarning,
                              stacklevel=2)
        else:
            data = check_array(X, dtype=np.float64)
            if data.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {data.shape[1]} features, but {type(self).__name__} is "
                                 f"expecting {self.n_features_in_} features as input.")
        pred = self.pipeline_.predict(data)
        return np.exp(pred) if self.log_target_ else pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.target_tags.positive_only = self.log_target
        return tags


class RandomForestEnergyModel(EnsembleEnergyModel):
    """Random forest surrogate (300 trees; fully grown trees suit tables of tens of rows)."""

    def __init__(self, *, n_estimators: int = 300, min_samples_leaf: int = 1,
                 log_target: bool = True, random_state: int = 0, n_jobs: int | None = None):
        super().__init__(log_target=log_target, random_state=random_state)
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.n_jobs = n_jobs

    def _regressor(self):
        return RandomForestRegressor(n_estimators=self.n_estimators,
                                     min_samples_leaf=self.min_samples_leaf,
                                     random_state=self.random_state, n_jobs=self.n_jobs)


class GradientBoostingEnergyModel(EnsembleEnergyModel):
    """scikit-learn's histogram gradient boosting (small leaves for small tables)."""

    def __init__(self, *, max_iter: int = 300, learning_rate: float = 0.1, min_samples_leaf: int = 3,
                 log_target: bool = True, random_state: int = 0):
        super().__init__(log_target=log_target, random_state=random_state)
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.min_samples_leaf = min_samples_leaf

    @property
    def n_iter_(self) -> int:
        """Boosting iterations run (early stopping may end before ``max_iter``)."""
        check_fitted(self, "pipeline_")
        return self.pipeline_[-1].n_iter_ if hasattr(self.pipeline_, "steps") else self.pipeline_.n_iter_

    def _regressor(self):
        return HistGradientBoostingRegressor(max_iter=self.max_iter, learning_rate=self.learning_rate,
                                             min_samples_leaf=self.min_samples_leaf,
                                             random_state=self.random_state)


class XGBoostEnergyModel(EnsembleEnergyModel):
    """XGBoost surrogate (optional extra: ``pip install 'energylens[xgboost]'``)."""

    def __init__(self, *, n_estimators: int = 300, max_depth: int = 4, learning_rate: float = 0.1,
                 log_target: bool = True, random_state: int = 0):
        super().__init__(log_target=log_target, random_state=random_state)
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate

    def _regressor(self):
        xgb = import_optional("xgboost", purpose="use XGBoostEnergyModel")
        return xgb.XGBRegressor(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                learning_rate=self.learning_rate, random_state=self.random_state,
                                n_jobs=1, verbosity=0)


class ResidualBoostedModel(RegressorMixin, BaseEstimator):
    """A closed form plus gradient boosting on its log residual.

    ``predict = base.predict * exp(booster.predict)``: the closed form carries the structure
    and extrapolation; the booster corrects what the form misses inside the data.

    Parameters
    ----------
    base : estimator, optional
        The closed form (default: :class:`~energylens.EnergyLensModel` per (model, GPU)
        group).
    booster : estimator, optional
        Residual learner on the same features (default: histogram gradient boosting with
        a slow learning rate).
    """

    def __init__(self, base=None, booster=None):
        self.base = base
        self.booster = booster

    def fit(self, X: pd.DataFrame, y=None):
        from .energylens import EnergyLensModel
        from .grouped import GroupedModel

        y = X["energy_j"].to_numpy(float) if y is None else np.asarray(y, dtype=float)
        base = self.base if self.base is not None else GroupedModel(EnergyLensModel())
        booster = self.booster if self.booster is not None else GradientBoostingEnergyModel(
            max_iter=100, learning_rate=0.05, log_target=False)
        self.base_ = clone(base).fit(X, y)
        resid = np.log(y) - np.log(np.maximum(self.base_.predict(X), 1e-300))
        self.booster_ = clone(booster).fit(X, resid)
        # The correction never leaves the range of residuals seen in training, nor a factor of
        # ten either way: a booster correcting more than that is no longer a correction.
        lim = np.log(10.0)
        self.resid_range_ = (max(float(np.min(resid)), -lim), min(float(np.max(resid)), lim))
        return self

    def predict(self, X) -> np.ndarray:
        check_fitted(self, "booster_")
        corr = np.clip(self.booster_.predict(X), *self.resid_range_)
        return self.base_.predict(X) * np.exp(corr)
