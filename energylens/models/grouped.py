"""One closed form per group of a profiling table (by default per model and GPU).

:class:`GroupedModel` fits a clone of any estimator per group and predicts each row with the
model of its group. For the closed forms of energylens the table is read into arrays once
and each group's fit starts from its slice (no per-group table handling); the per-group
work goes through joblib, so ``joblib.parallel_config(backend="dask")`` (or ``"ray"``)
spreads it over a cluster. Under such a distributed backend ``n_jobs=None`` means every
worker of the backend, never a silent in-process loop.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import gc
import re
import time
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from joblib.parallel import get_active_backend
from sklearn.base import BaseEstimator, RegressorMixin, clone

from ..core.checks import plain
from ..core.options import N_JOBS, Integral, Interval, check_fitted, missing_columns_hint
from ..core.threads import single_blas_thread
from ..exceptions import EnergyLensWarning, FitError, ModelFileError
from . import registry
from .design import training_data
from .settings import FittedParams, snapshot

__all__ = ["GroupedModel", "fit_groups", "group_key"]

_DEFAULT_BY = ("model", "gpu")
_LOCAL_BACKENDS = ("LokyBackend", "SequentialBackend", "ThreadingBackend", "MultiprocessingBackend")


def group_key(values) -> tuple:
    """A group's key as plain values, a missing one (NaN, None, NA: a blank label) as None,
    so that a key matches itself after a copy, a pickle or a save (NaN equals nothing).

    >>> group_key((np.int64(2), float("nan"))), group_key("a")
    ((2, None), ('a',))
    """
    return tuple(None if pd.api.types.is_scalar(v) and pd.isna(v) else plain(v)
                 for v in (values if isinstance(values, tuple) else (values,)))


def _n_jobs(n_jobs: int | None) -> int | None:
    """``n_jobs`` for joblib: all workers of a distributed backend when left unset."""
    if n_jobs is None and type(get_active_backend()[0]).__name__ not in _LOCAL_BACKENDS:
        return -1
    return n_jobs


@contextlib.contextmanager
def _collector_paused():
    """Pause Python's cycle collector while the groups are fitted (restored afterwards).

    Each group's fit allocates a few hundred short-lived objects, which trigger collections
    whose full passes walk every model fitted so far, a cost that grows with the number of
    groups. Nothing a fit allocates waits on the cycle collector to be freed; whatever
    cycles exist are collected once the block ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _run(fit, key):
    """Fit one group, recording (never raising) its error and warnings."""
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model, error = fit(), None
        except Exception as exc:  # noqa: BLE001 - recorded per group, re-raised if all fail
            model, error = None, f"{type(exc).__name__}: {exc}"
    return key, model, error, [(w.category, str(w.message)) for w in caught], \
        time.perf_counter() - t0


def _warn_summary(named: list[tuple[str, list]]) -> None:
    """One warning per category of the fits' warnings (``(name, [(category, message)])``
    per fit), naming the fits that gave it and quoting the first message; pointed at the
    caller of ``GroupedModel.fit``."""
    found: dict[type, dict[str, str]] = {}
    for name, warns in named:
        for category, message in warns:
            found.setdefault(category, {}).setdefault(name, message)
    for category, fits in found.items():
        names = list(fits)
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        first = fits[names[0]].split(": ", 1)[-1]
        warnings.warn(f"GroupedModel: {category.__name__} from {len(names)} of {len(named)} "
                      f"fit(s): {shown} (the first: {first[:300]}); every group's warnings are "
                      "in groups_['warnings'].", category, stacklevel=4)


_SUMMARY = re.compile(r"^GroupedModel: \w+ from \d+ of \d+ fit\(s\): ")


def group_warnings(model) -> list[tuple[str, str, str]]:
    """The warnings a fitted grouped model recorded per group, as ``(category, message,
    group)``, the group spelt ``"value / value"`` over ``by_`` (none for other models)."""
    table = getattr(model, "groups_", None)
    if table is None or "warnings" not in getattr(table, "columns", ()):
        return []
    by = [c for c in getattr(model, "by_", ()) if c in table.columns]
    out = []
    for _, row in table.iterrows():
        group = " / ".join(str(row[c]) for c in by)
        for item in str(row["warnings"] or "").split(" | "):
            if item.strip():
                category, sep, message = item.partition(": ")
                out.append((category, message, group) if sep else ("EnergyLensWarning", item, group))
    return out


def fit_listing_groups(estimator, X, y=None):
    """``estimator.fit(X, y)`` for a caller that lists the groups' warnings itself
    (:func:`group_warnings`): the fit's warnings are passed on, except the summary
    :meth:`GroupedModel.fit` gives of those same warnings, which would say everything twice."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = estimator.fit(X, y)
    listed = "warnings" in getattr(getattr(model, "groups_", None), "columns", ())
    for w in caught:
        if not (listed and _SUMMARY.match(str(w.message))):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return model


def _fit_arrays(estimator, params, data, key):
    def fit():
        # A fresh instance with the (already validated) parameters: what clone does, without
        # reading the parameters again for every group.
        model = type(estimator)(**copy.deepcopy(params))
        with model._fitting():
            model._fit_data(data)
        return model
    return _run(fit, key)


def _fit_table(estimator, X, y, key):
    return _run(lambda: clone(estimator).fit(X, y), key)


def _fast(estimator) -> bool:
    from .base import ParametricModel

    return (isinstance(estimator, ParametricModel)
            and type(estimator)._check_table is ParametricModel._check_table)


class GroupedModel(FittedParams, RegressorMixin, BaseEstimator):
    """Fit one clone of ``estimator`` per group of rows and predict with the matching one.

    Parameters
    ----------
    estimator : estimator, optional
        Any energylens model (or scikit-learn regressor taking a canonical table); default
        :class:`~energylens.EnergyLensModel`.
    by : sequence of str, default=("model", "gpu")
        Columns defining the groups. Every column named must be in the table, except with
        the default, whose absent columns are ignored (a table of one GPU groups by model).
    n_jobs : int, optional
        Parallel fits (joblib; ``-1`` for all cores; under a distributed joblib backend,
        None means all its workers).
    min_rows : int, default=3
        Groups with fewer rows are not fitted (recorded in ``groups_``, and named by an
        :class:`~energylens.EnergyLensWarning` at ``fit``); predicting their rows needs a
        ``fallback``, else the error says why the group has no model.
    fallback : {"error", "pooled"} or estimator, default="error"
        What predicts rows of a group without a fitted model: raise ``ValueError``; a clone
        of ``estimator`` fitted on every training row (``"pooled"``); or the given
        estimator fitted on every training row.

    Attributes
    ----------
    models_ : dict
        Fitted model per group key (a tuple of the ``by`` values).
    groups_ : DataFrame
        One row per group: key columns, ``n_rows``, ``fitted``, ``error``, ``warnings``,
        ``fit_time_s`` and, for closed forms, the fit statistics (``mape_pct``, ``aic`` ...).
    fallback_ : estimator or None
    fitted_params_ : dict
        The constructor parameters of the fit (saved with the model).

    Notes
    -----
    The groups' warnings are recorded per group in ``groups_["warnings"]`` and summed up by
    one warning per category that names the groups (e.g. which groups fit poorly).
    """

    _parameter_constraints: dict = {
        "by": [list, tuple], "n_jobs": N_JOBS,
        "min_rows": [Interval(Integral, 1, None, closed="left")], "fallback": "no_validation",
    }

    def __init__(self, estimator=None, *, by: Sequence[str] = _DEFAULT_BY,
                 n_jobs: int | None = None, min_rows: int = 3, fallback="error"):
        self.estimator = estimator
        self.by = by
        self.n_jobs = n_jobs
        self.min_rows = min_rows
        self.fallback = fallback

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        registry.register(cls)

    def _by(self, X) -> list[str]:
        if not isinstance(X, pd.DataFrame):
            raise ValueError("GroupedModel needs a canonical table (DataFrame) to form groups.")
        missing = [c for c in self.by if c not in X.columns]
        if missing and tuple(self.by) != _DEFAULT_BY:
            raise ValueError(f"GroupedModel groups by {list(self.by)}, but the table lacks "
                             f"{missing}{missing_columns_hint(missing, X.columns)}; columns are "
                             f"{list(map(str, X.columns))}.")
        return [c for c in self.by if c in X.columns]

    def _estimator(self):
        from .energylens import EnergyLensModel

        return EnergyLensModel() if self.estimator is None else self.estimator

    def fit(self, X: pd.DataFrame, y=None):
        """Fit one model per group; ``y`` defaults to ``X["energy_j"]``."""
        with self._fitting():
            self._fit(X, y)
        return self

    def _fit(self, X: pd.DataFrame, y) -> None:
        self._validate_params()
        if isinstance(self.fallback, str) and self.fallback not in ("error", "pooled"):
            raise ValueError(f"The 'fallback' parameter of GroupedModel must be 'error', 'pooled' or "
                             f"an estimator. Got {self.fallback!r} instead.")
        # a fresh copy: an estimator fitted before keeps the settings of its own fit
        est, by = clone(self._estimator()), self._by(X)
        for m in (est, self.fallback):  # once here, not once per group
            if hasattr(m, "_check_settings"):
                clone(m)._check_settings()
        target = getattr(est, "_target_name", "energy_j")
        y = (X[target].to_numpy(float) if y is None and target in X.columns
             else np.asarray(y, dtype=float))
        if len(y) != len(X):
            raise ValueError(f"X and y have different lengths ({len(X)} and {len(y)}).")
        groups = X.groupby(by, sort=True, dropna=False).indices if by else {(): np.arange(len(X))}
        keys = {group_key(k): np.asarray(v) for k, v in groups.items()}
        small = {k: len(v) for k, v in keys.items() if len(v) < self.min_rows}
        todo = {k: v for k, v in keys.items() if k not in small}
        if small:
            self._warn_small(small)
        results = self._fit_groups(est, X, y, todo)
        self.by_, self.estimator_ = by, est
        self.models_ = {key: m for key, m, *_ in results if m is not None}
        self.groups_ = self._table(by, results, small)
        self.fallback_, fallback_warns = self._fit_fallback(est, X, y)
        if not self.models_ and self.fallback_ is None:
            errors = "; ".join(e for *_, e, _, _ in results if e)[:2000]
            raise FitError(f"GroupedModel could not fit any group: {errors or 'every group is too small'}")
        named = [(" / ".join(map(str, key)), warns) for key, _, _, warns, _ in results]
        _warn_summary(named + ([] if fallback_warns is None else [("the fallback", fallback_warns)]))

    def _warn_small(self, small: dict) -> None:
        names = [f"{' / '.join(map(str, k))} ({n} row{'s' * (n != 1)})" for k, n in small.items()]
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        then = ("their rows are predicted by the fallback" if self.fallback != "error" else
                "predicting their rows raises an error: pass fallback='pooled' (or a model) to "
                "predict them with a model of every row, or lower min_rows")
        warnings.warn(f"GroupedModel: {len(small)} group(s) have fewer than min_rows="
                      f"{self.min_rows} rows and are not fitted: {shown}; {then}.",
                      EnergyLensWarning, stacklevel=4)

    def _fit_groups(self, est, X, y, todo):
        if _fast(est):
            est._validate_params()
            data = training_data(X, y, None, variables=est._model_variables(),
                                 uses_batch=est._uses_batch(), target=est._target_name,
                                 unit=est._target_unit, owner=type(est).__name__,
                                 read=est._read_variables)
            params = est.get_params(deep=False)
            jobs = (delayed(_fit_arrays)(est, params, data.take(idx), key) for key, idx in todo.items())
        else:
            jobs = (delayed(_fit_table)(est, X.iloc[idx], y[idx], key) for key, idx in todo.items())
        # The thread limit is taken once here, not once per group, when run in-process.
        with single_blas_thread(), _collector_paused():
            return Parallel(n_jobs=_n_jobs(self.n_jobs))(jobs)

    def _table(self, by, results, small) -> pd.DataFrame:
        rows = []
        for key, model, error, warns, seconds in results:
            row = dict(zip(by, key))
            row.update({"n_rows": 0, "fitted": model is not None, "error": error or "",
                        "warnings": " | ".join(f"{c.__name__}: {m}" for c, m in warns),
                        "fit_time_s": seconds})
            stats = getattr(model, "fit_stats_", None) if model is not None else None
            if isinstance(stats, dict):
                row.update({k: v for k, v in stats.items() if np.isscalar(v)})
                row["n_rows"] = stats["n"]
            rows.append(row)
        for key, n in small.items():
            row = dict(zip(by, key))
            row.update({"n_rows": n, "fitted": False, "error": f"fewer than {self.min_rows} rows",
                        "warnings": ""})
            rows.append(row)
        return pd.DataFrame(rows)

    def _fit_fallback(self, est, X, y):
        if isinstance(self.fallback, str):
            if self.fallback == "error":
                return None, None
            fb = est
        else:
            fb = self.fallback
        key, model, error, warns, _ = _fit_table(fb, X, y, ("<fallback>",))
        if model is None:
            warnings.warn(f"GroupedModel: the fallback model could not be fitted ({error}); "
                          "rows of unfitted groups cannot be predicted.", EnergyLensWarning,
                          stacklevel=4)
        return model, warns

    # ------------------------------------------------------------------ prediction
    def _too_small(self, key) -> int | None:
        """Rows a group had in training if it was left unfitted for ``min_rows`` (else None)."""
        table = getattr(self, "groups_", None)
        if not isinstance(table, pd.DataFrame) or not {"fitted", "n_rows"} <= set(table.columns) \
                or not all(c in table.columns for c in self.by_):
            return None
        want = tuple(str(v) for v in key)
        for _, row in table[~table["fitted"].astype(bool)].iterrows():
            if tuple(str(row[c]) for c in self.by_) == want and \
                    str(row.get("error", "")).startswith("fewer than"):
                return int(row["n_rows"])
        return None

    def _model_for(self, key):
        model = self.models_.get(key, self.fallback_)
        if model is not None:
            return model
        want = " / ".join(map(str, key))
        n = self._too_small(key)
        if n is not None:
            min_rows = self._setting("min_rows")
            raise ValueError(
                f"No fitted model for group {want!r} (columns {self.by_}): it had {n} row"
                f"{'s' * (n != 1)} in training, fewer than min_rows={min_rows}, so it was not "
                "fitted. To predict its rows, refit with fallback='pooled' (a model of every "
                "row) or fallback=<an estimator>, or with a lower min_rows.")
        fitted = [" / ".join(map(str, k)) for k in self.models_]
        close = difflib.get_close_matches(want, fitted, n=3, cutoff=0.6)
        lower = [f for f in fitted if f.lower() == want.lower()]
        hint = f" Did you mean {', '.join(repr(c) for c in (lower or close))}?" if (lower or close) else ""
        raise ValueError(
            f"No fitted model for group {want!r} (columns {self.by_}).{hint} Fitted groups: "
            f"{', '.join(fitted[:20])}{' ...' if len(fitted) > 20 else ''}.")

    def _spelt_as_trained(self, X: pd.DataFrame) -> pd.DataFrame:
        """Model and GPU names the catalogue knows as spellings of fitted groups' names
        (``H100-SXM`` for ``H100-80GB-HBM3``) are read as those names."""
        from ..core.catalogue import aliased

        seen = {c: sorted({str(k[i]) for k in self.models_}) for i, c in enumerate(self.by_)
                if c in ("model", "gpu")}
        return aliased(X, seen) if seen else X

    def _collect(self, method: str, X: pd.DataFrame, stacklevel: int, /, **kwargs):
        """``method``'s output per group of rows, with the groups' warnings merged into one
        per category (``stacklevel`` counted from here: 3 is the caller of ``predict``);
        ``kwargs`` go to ``method`` (positional-only above: they may hold a ``method`` of
        their own, as ``predict_interval``'s interval method)."""
        check_fitted(self, "models_")
        if not isinstance(X, pd.DataFrame):
            raise ValueError("GroupedModel needs a canonical table (DataFrame) to find each row's group.")
        missing = [c for c in self.by_ if c not in X.columns]
        if missing:
            raise ValueError(f"GroupedModel needs the group column(s) {missing} in X; columns are "
                             f"{list(map(str, X.columns))}.")
        X = self._spelt_as_trained(X)
        groups = X.groupby(self.by_, sort=False, dropna=False).indices if self.by_ else {(): np.arange(len(X))}
        parts, notes = [], {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EnergyLensWarning)
            for key, idx in groups.items():
                model = self._model_for(group_key(key))
                out = getattr(model, method)(X.iloc[idx], **kwargs)
                parts.append((np.asarray(idx), out))
        for w in caught:
            if issubclass(w.category, EnergyLensWarning):
                notes.setdefault(w.category, []).append(str(w.message).split(": ", 1)[-1])
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        for category, texts in notes.items():
            warnings.warn(f"GroupedModel: {'; '.join(dict.fromkeys(texts))}", category,
                          stacklevel=stacklevel)
        return parts

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predict each row with the model of its group; unknown groups raise ``ValueError``."""
        out = np.full(len(X), np.nan)
        for idx, pred in self._collect("predict", X, 3):
            out[idx] = pred
        return out

    def _frame(self, method: str, X, /, **kwargs) -> pd.DataFrame:
        parts = self._collect(method, X, 4, **kwargs)
        if not parts:  # no rows: the columns any group's model gives
            model = next(iter(self.models_.values()), self.fallback_)
            return getattr(model, method)(X, **kwargs)
        order = np.concatenate([idx for idx, _ in parts])
        frame = pd.concat([p.reset_index(drop=True) for _, p in parts], ignore_index=True)
        frame.index = order
        frame = frame.sort_index()
        frame.index = X.index
        return frame

    def predict_interval(self, X: pd.DataFrame, level: float = 0.9, **kwargs) -> pd.DataFrame:
        """Per-group :meth:`~energylens.models.base.ParametricModel.predict_interval`."""
        return self._frame("predict_interval", X, level=level, **kwargs)

    def predict_components(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-group prefill/decode/static split."""
        return self._frame("predict_components", X)

    @property
    def params_(self) -> pd.DataFrame:
        """Long table of every group's parameters (group columns, parameter, value, stderr ...)."""
        check_fitted(self, "models_")
        frames = []
        for key, model in self.models_.items():
            p = getattr(model, "params_", None)
            if p is None:
                continue
            p = p.reset_index()
            for col, v in reversed(list(zip(self.by_, key))):
                p.insert(0, col, v)
            frames.append(p)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    # ------------------------------------------------------------------ persistence
    def save(self, directory, *, force: bool = False):
        """Save to a folder: one model file per group (named by the group) and ``groups.json``.

        The folder is created if absent. An empty folder or one a grouped model was saved to
        is written into; any other folder, or a file in it that is not an energylens file of
        its kind, only with ``force=True`` (otherwise :class:`FileExistsError`, raised before
        anything is written). An existing file at ``directory`` raises
        :class:`NotADirectoryError`.
        """
        from .persistence import save_grouped

        check_fitted(self, "models_")
        return save_grouped(self, directory, force=force)

    @classmethod
    def _from_saved(cls, by, models, fallback, table, where: str,
                    params: dict | None = None) -> GroupedModel:
        """Rebuild from a saved folder's content (checked by the loader); ``params``: the
        constructor arguments (None for a folder that predates them: ``by`` only)."""
        try:
            g = cls(**params) if params is not None else cls(by=tuple(by))
            g._validate_params()
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{where}: cannot rebuild GroupedModel: {exc}") from exc
        g.fitted_params_ = snapshot(g)
        g.by_, g.fallback_ = list(by), fallback
        g.models_ = {group_key(k): m for k, m in models.items()}
        try:
            g.groups_ = pd.DataFrame(table) if isinstance(table, dict) else pd.DataFrame(
                [dict(zip(by, k)) for k in models])
        except ValueError:
            g.groups_ = pd.DataFrame([dict(zip(by, k)) for k in models])
        first = next(iter(models.values()), fallback)
        g.estimator_ = first
        return g


registry.register(GroupedModel)


def fit_groups(df: pd.DataFrame, by: Sequence[str] = ("model", "gpu"), *, estimator=None,
               n_jobs: int | None = None, min_rows: int = 3) -> GroupedModel:
    """Fit one model per group; see :class:`GroupedModel`.

    Returns
    -------
    GroupedModel
        Fitted; ``.groups_`` holds per-group fit statistics and ``.params_`` the per-group
        parameters.
    """
    return GroupedModel(estimator, by=by, n_jobs=n_jobs, min_rows=min_rows).fit(df)
