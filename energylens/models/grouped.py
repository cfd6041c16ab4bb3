"""One closed form per group of a profiling table (by default per model and GPU).

A study of the starting form on real data found that fitting per (model, GPU) group is
the right default: across model names, scaling by parameter count misses architecture.
:class:`GroupedModel` fits a clone of any estimator per group, in parallel with joblib (so
that dask or ray backends work through :func:`joblib.parallel_config`), and predicts each
row with the model of its group.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, RegressorMixin, clone

from ..exceptions import NotFittedError

__all__ = ["GroupedModel", "fit_groups"]


def _key(values) -> tuple:
    return tuple(values) if isinstance(values, tuple) else (values,)


def _fit_one(estimator, X, y, key):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = clone(estimator).fit(X, y)
            error = None
        except Exception as exc:  # noqa: BLE001 - recorded per group, re-raised if all fail
            model, error = None, f"{type(exc).__name__}: {exc}"
    return key, model, error, [f"{w.category.__name__}: {w.message}" for w in caught]


class GroupedModel(RegressorMixin, BaseEstimator):
    """Fit one clone of ``estimator`` per group of rows and predict with the matching one.

    Parameters
    ----------
    estimator : estimator
        Any energylens model (or scikit-learn regressor taking a canonical table).
    by : sequence of str, default=("model", "gpu")
        Columns defining the groups (those absent from the table are ignored).
    n_jobs : int, optional
        Parallel fits (joblib; ``-1`` for all cores).
    min_rows : int, default=3
        Groups with fewer rows are not fitted (recorded in ``groups_``).
    fallback : {"error", "pooled"} or estimator, default="error"
        What predicts rows of a group without a fitted model: raise ``ValueError``; a clone
        of ``estimator`` fitted on every training row (``"pooled"``); or the given
        estimator fitted on every training row (for example
        ``EnergyLensModel(size_covariate="params_b")`` across model names).

    Attributes
    ----------
    models_ : dict
        Fitted model per group key (a tuple of the ``by`` values).
    groups_ : DataFrame
        One row per group: key columns, ``n_rows``, ``fitted``, ``error``, ``warnings``
        and, for parametric models, the fit statistics (``aic``, ``bic``, ``mape_pct`` ...).
    """

    def __init__(self, estimator=None, *, by: Sequence[str] = ("model", "gpu"),
                 n_jobs: int | None = None, min_rows: int = 3, fallback="error"):
        self.estimator = estimator
        self.by = by
        self.n_jobs = n_jobs
        self.min_rows = min_rows
        self.fallback = fallback

    def _by(self, X: pd.DataFrame) -> list[str]:
        if not isinstance(X, pd.DataFrame):
            raise ValueError("GroupedModel needs a canonical table (DataFrame) to form groups.")
        return [c for c in self.by if c in X.columns]

    def fit(self, X: pd.DataFrame, y=None):
        """Fit one model per group; ``y`` defaults to ``X["energy_j"]``."""
        from .energylens import EnergyLensModel

        estimator = EnergyLensModel() if self.estimator is None else self.estimator
        by = self._by(X)
        y = X["energy_j"].to_numpy(float) if y is None else np.asarray(y, dtype=float)
        if len(y) != len(X):
            raise ValueError(f"X and y have different lengths ({len(X)} and {len(y)}).")
        ys = pd.Series(y, index=X.index)
        tasks, skipped = [], []
        groups = X.groupby(by, sort=True, dropna=False) if by else [((), X)]
        for key, part in groups:
            key = _key(key)
            if len(part) < self.min_rows:
                skipped.append((key, len(part)))
                continue
            tasks.append((key, part, ys.loc[part.index].to_numpy()))
        results = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_one)(estimator, part, yy, key) for key, part, yy in tasks
        )
        self.by_ = by
        self.models_ = {}
        rows = []
        for (key, model, error, warns), (_, part, yy) in zip(results, tasks):
            row = dict(zip(by, key))
            row.update({"n_rows": len(part), "fitted": model is not None, "error": error or "",
                        "warnings": " | ".join(warns)})
            if model is not None:
                self.models_[key] = model
                pred = model.predict(part)
                row["mape_pct"] = float(100 * np.mean(np.abs(pred - yy) / yy))
                stats = getattr(model, "fit_stats_", None)
                if isinstance(stats, dict):
                    row.update({k: v for k, v in stats.items() if np.isscalar(v)})
            rows.append(row)
        for key, n in skipped:
            row = dict(zip(by, key))
            row.update({"n_rows": n, "fitted": False, "error": f"fewer than {self.min_rows} rows",
                        "warnings": ""})
            rows.append(row)
        self.groups_ = pd.DataFrame(rows)
        self.fallback_ = None
        if isinstance(self.fallback, str):
            if self.fallback not in ("error", "pooled"):
                raise ValueError("The 'fallback' parameter of GroupedModel must be 'error', 'pooled' "
                                 f"or an estimator. Got {self.fallback!r} instead.")
            if self.fallback == "pooled":
                self.fallback_ = _fit_one(estimator, X, y, ("<pooled>",))[1]
        elif self.fallback is not None:
            self.fallback_ = _fit_one(self.fallback, X, y, ("<pooled>",))[1]
        if not self.models_ and self.fallback_ is None:
            raise ValueError(
                "GroupedModel could not fit any group: "
                + "; ".join(f"{r.get('error')}" for r in rows[:5])
            )
        self.estimator_ = estimator
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predict each row with the model of its group; unknown groups raise ``ValueError``."""
        if not hasattr(self, "models_"):
            raise NotFittedError("This GroupedModel instance is not fitted yet. Call 'fit' first.")
        out = np.full(len(X), np.nan)
        if not self.by_:
            return self.models_[()].predict(X)
        missing = []
        for key, part in X.groupby(self.by_, sort=False, dropna=False):
            key = _key(key)
            model = self.models_.get(key, self.fallback_)
            if model is None:
                missing.append(key)
                continue
            out[X.index.get_indexer(part.index)] = model.predict(part)
        if missing:
            raise ValueError(
                f"No fitted model for group(s) {missing[:5]} over columns {self.by_}; fitted "
                f"groups are {list(self.models_)[:10]}."
            )
        return out

    def _collect(self, method: str, X: pd.DataFrame, **kwargs) -> pd.DataFrame:
        parts = []
        for key, part in X.groupby(self.by_, sort=False, dropna=False):
            model = self.models_.get(_key(key), self.fallback_)
            if model is None:
                raise ValueError(f"No fitted model for group {key} over columns {self.by_}.")
            parts.append(getattr(model, method)(part, **kwargs))
        return pd.concat(parts).loc[X.index]

    def predict_interval(self, X: pd.DataFrame, level: float = 0.9, **kwargs) -> pd.DataFrame:
        """Per-group :meth:`~energylens.models.base.ParametricModel.predict_interval`."""
        return self._collect("predict_interval", X, level=level, **kwargs)

    def predict_components(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-group prefill/decode/static split."""
        return self._collect("predict_components", X)

    @property
    def params_(self) -> pd.DataFrame:
        """Long table of every group's parameters (group columns, parameter, value, stderr ...)."""
        frames = []
        for key, model in self.models_.items():
            p = getattr(model, "params_", None)
            if p is None:
                continue
            p = p.reset_index()
            for col, v in zip(self.by_, key):
                p.insert(0, col, v)
            frames.append(p)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def fit_groups(df: pd.DataFrame, by: Sequence[str] = ("model", "gpu"), *, estimator=None,
               n_jobs: int | None = None, min_rows: int = 3) -> GroupedModel:
    """Fit one model per group in parallel; see :class:`GroupedModel`.

    Parameters
    ----------
    df : DataFrame
        Canonical profiling table.
    by : sequence of str
        Group columns, e.g. ``["model", "gpu"]``.
    estimator : estimator, optional
        Model to clone per group (default :class:`~energylens.EnergyLensModel`).
    n_jobs : int, optional
        joblib workers; use :func:`joblib.parallel_config` for dask or ray backends.

    Returns
    -------
    GroupedModel
        Fitted; ``.groups_`` holds per-group fit statistics and ``.params_`` the
        per-group parameters.
    """
    return GroupedModel(estimator, by=by, n_jobs=n_jobs, min_rows=min_rows).fit(df)
